"""What a batch reads: folders, list files and object-store URIs, turned into one name per audio
file (an absolute local path or a URI), plus each file's content hash and a local copy to decode.

URIs go through pyarrow's filesystems (s3://, gs://, hdfs://, file://, ... as far as the installed
pyarrow reaches); local paths are read directly.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath

from ..errors import AudioError
from ..files import audio_files_in, is_candidate
from ..hashing import sha256_file

_CHUNK = 1 << 20


def is_uri(name: str) -> bool:
    return "://" in name


@dataclass(frozen=True)
class Listing:
    files: list[str]                   # audio files, in the order found, each once
    errors: list[tuple[str, str]]      # (source, one-line message): each becomes an error row


def list_sources(sources: list[str], patterns: list[str], ignore: list[str]) -> Listing:
    """Folders are walked recursively; a local file that is not audio is a list file (one path or
    URI per line, `#` comments; relative paths are relative to the list file's folder)."""
    files: list[str] = []
    errors: list[tuple[str, str]] = []
    for source in sources:
        if is_uri(source):
            files += _list_uri(source, patterns, ignore, errors)
            continue
        path = Path(source).expanduser()
        if path.is_dir():
            files += [str(p.resolve()) for p in audio_files_in(path, patterns, ignore, recursive=True)]
        elif not path.exists():
            errors.append((str(path.absolute()), f"{path.absolute()}: file not found"))
        elif is_candidate(path, patterns, []):
            files.append(str(path.resolve()))
        else:
            try:
                inner = list_sources(_read_list_file(path), patterns, ignore)
            except AudioError as exc:
                errors.append((str(path.resolve()), str(exc)))
                continue
            files += inner.files
            errors += inner.errors
    return Listing(list(dict.fromkeys(files)), list(dict(errors).items()))


def _read_list_file(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        raise AudioError(path, "neither an audio file nor a text list of files") from None
    names = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            names.append(line if is_uri(line) or Path(line).is_absolute() else str(path.parent / line))
    return names


def _list_uri(uri: str, patterns: list[str], ignore: list[str], errors: list[tuple[str, str]]) -> list[str]:
    from pyarrow import fs

    filesystem, root = fs.FileSystem.from_uri(uri)
    info = filesystem.get_file_info(root)
    if info.type == fs.FileType.NotFound:
        errors.append((uri, f"{uri}: file not found"))
        return []
    if info.type == fs.FileType.File:
        return [uri]
    scheme = uri.split("://", 1)[0]
    found = []
    for entry in sorted(filesystem.get_file_info(fs.FileSelector(root, recursive=True)), key=lambda e: e.path):
        rel = PurePosixPath(entry.path).relative_to(root)
        hidden = any(fnmatch(part.lower(), pat.lower()) for part in rel.parts[:-1] for pat in ignore)
        if entry.type == fs.FileType.File and not hidden and is_candidate(Path(rel.name), patterns, ignore):
            found.append(f"{scheme}://{entry.path}")
    return found


def content_hash(name: str) -> str:
    """sha256 of the file's bytes; AudioError (naming the file) when it cannot be read."""
    try:
        if not is_uri(name):
            return sha256_file(name)
        from pyarrow import fs

        filesystem, path = fs.FileSystem.from_uri(name)
        digest = hashlib.sha256()
        with filesystem.open_input_stream(path) as stream:
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
        return digest.hexdigest()
    except FileNotFoundError:
        raise AudioError(name, "file not found") from None
    except OSError as exc:
        raise AudioError(name, f"cannot be read ({exc.strerror or exc})") from None


@contextmanager
def local_copy(name: str) -> Iterator[Path]:
    """A local path to decode: the file itself, or a temporary copy of an object-store file (same
    suffix, so the decoder picks the same route)."""
    if not is_uri(name):
        yield Path(name)
        return
    from pyarrow import fs

    filesystem, path = fs.FileSystem.from_uri(name)
    with tempfile.TemporaryDirectory(prefix="aimusicd-batch-") as tmp:
        local = Path(tmp) / PurePosixPath(path).name
        try:
            with filesystem.open_input_stream(path) as stream, open(local, "wb") as out:
                shutil.copyfileobj(stream, out, _CHUNK)
        except OSError as exc:
            raise AudioError(name, f"cannot be fetched ({exc})") from None
        yield local
