"""Real music for the learning tests, through the corpora code training uses (cached, fetched on
first use: the ACE-Step wheel from PyPI, the small held-out Debian packages with apt)."""

from __future__ import annotations

from pathlib import Path

from daemon.config import cache_dir
from daemon.training.corpora import CORPORA, fetch_package, index_tracks, real_tracks

ROOT = cache_dir() / "corpora"


def ace_step(*splits: str) -> list[Path]:
    """Real ACE-Step 1.5 tracks of the given prompt splits (train / calib / test)."""
    return [t.files[0] for t in real_tracks(ROOT, print) if t.split in splits]


def package(name: str) -> list[Path]:
    """The music files of one Debian package of the corpora (single-file tracks)."""
    corpus = next(c for c in CORPORA if c.package == name)
    return [t.files[0] for t in index_tracks(corpus, fetch_package(corpus, ROOT, print)) if len(t.files) == 1]
