"""Which files count as audio to analyse: the configured patterns, minus the ignore list."""

from __future__ import annotations

from fnmatch import fnmatch
from pathlib import Path


def is_candidate(path: Path, patterns: list[str], ignore: list[str]) -> bool:
    name = path.name.lower()
    if any(fnmatch(name, pat.lower()) for pat in ignore):
        return False
    return any(fnmatch(name, pat.lower()) for pat in patterns)


def audio_files_in(folder: Path, patterns: list[str], ignore: list[str], recursive: bool) -> list[Path]:
    """Candidate files under `folder`, sorted; ignored folders (e.g. hidden ones) are not entered."""
    found: list[Path] = []
    for entry in sorted(folder.iterdir()):
        if entry.is_dir():
            if recursive and not any(fnmatch(entry.name.lower(), pat.lower()) for pat in ignore):
                found += audio_files_in(entry, patterns, ignore, recursive)
        elif entry.is_file() and is_candidate(entry, patterns, ignore):
            found.append(entry)
    return found
