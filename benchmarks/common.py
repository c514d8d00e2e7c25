"""Shared by the benchmarks: test material from the allowed corpora, child-process measurement,
and the result table."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from daemon.audio import ENGINE_RATE, resample
from daemon.config import cache_dir
from daemon.training.corpora import load_corpora


def corpus_music(seconds: float, rate: int = ENGINE_RATE) -> np.ndarray:
    """(2, n) float32: tracks of the small training packages, concatenated to `seconds`."""
    tracks = sorted(load_corpora(cache_dir() / "corpora", quick=True, log=lambda m: None),
                    key=lambda t: (t.package, t.name))
    parts, total = [], 0
    for track in tracks:
        x = track.load()
        parts.append(x)
        total += x.shape[1]
        if total >= seconds * ENGINE_RATE:
            break
    music = np.concatenate(parts, axis=1)[:, : int(seconds * ENGINE_RATE)]
    return resample(music, ENGINE_RATE, rate)


def write_wav(path: Path, x: np.ndarray, rate: int) -> Path:
    sf.write(path, x.T, rate, subtype="PCM_16")
    return path


def run_child(script: Path, *args: str) -> dict:
    """Run one measurement in a fresh interpreter (so its peak memory is its own); it prints JSON."""
    out = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{script.name} {' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


@dataclass
class Row:
    what: str
    value: float
    unit: str
    ratio: str = ""
    target: str = ""
    ok: bool | None = None


def print_table(title: str, rows: list[Row]) -> None:
    print(f"\n{title}\n")
    head = f"| {'measurement':<52} | {'value':>10} | {'unit':<8} | {'vs baseline':>13} | {'target':<14} | ok  |"
    print(head)
    print("|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|")
    for r in rows:
        ok = "" if r.ok is None else ("yes" if r.ok else "NO")
        print(f"| {r.what:<52} | {r.value:>10.2f} | {r.unit:<8} | {r.ratio:>13} | {r.target:<14} | {ok:<3} |")
