"""The fast-pass evidence of every excerpt of a folder of music, under each codec condition,
measured as the daemon measures a file, and cached per file by its sha256.

A file is cut into excerpts of EXCERPT_S (at most MAX_EXCERPTS, spread over it; a shorter file is
one excerpt): the unit a false-positive rate is counted in, and the length of most generators'
output. Each excerpt goes through the codec condition in memory (the real encoders, time-aligned),
then exactly the daemon's fast pass: level normalisation, the codec history, the long-term peak
spectrum and, where asked for, the CNN (its logit and its track embedding, from one forward pass)
and the image score. Files are measured in parallel, one process per core; a second run over the
same files reads the cache and takes seconds.

The Demucs features (`measure_demucs`, for `learn --demucs`) are the engine's, per file and
condition, as the daemon measures them: its excerpts of the file, separated by HTDemucs, their
features averaged; every 30-s excerpt of a file shares them. They cost about a second of CPU per
second of separated music, so they are cached the same way.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ..audio import AudioInfo, load_audio, normalise_level
from ..audio.codec import codec_history
from ..engines.fingerprint import long_term_spectrum
from ..errors import AudioError, UsageError
from ..files import audio_files_in, replaced
from ..hashing import sha256_file
from ..evaluation.codecs import CONDITIONS, NONE, CodecSpec, apply_codec

EXCERPT_S = 30.0
MAX_EXCERPTS = 12
FEATURES_VERSION = 2       # bump when what is measured changes: old cache entries are then unused
# (2: the CNN's track embedding beside its logit)


@dataclass(frozen=True)
class Source:
    path: Path
    sha256: str
    label: int            # 1: generator output, 0: human music


@dataclass
class Measured:
    """Every excerpt of one file under one condition."""
    source: int                 # index into the sources list
    condition: str
    spectrum: np.ndarray        # (excerpts, bins) float32
    bandwidth_hz: np.ndarray    # (excerpts,)
    lossy: np.ndarray           # (excerpts,) bool
    seconds: np.ndarray         # (excerpts,) excerpt durations
    cnn_logit: np.ndarray | None = None      # (excerpts,), with the CNN only
    images_score: np.ndarray | None = None
    embedding: np.ndarray | None = None      # (excerpts, hidden) the CNN's track embedding
    demucs: np.ndarray | None = None         # (excerpts, features) the file's Demucs features (measure_demucs)


def find_files(folders: list[Path], patterns: list[str], ignore: list[str]) -> list[Path]:
    files: list[Path] = []
    for folder in folders:
        if not folder.is_dir():
            raise UsageError(f"{folder}: not a folder")
        found = audio_files_in(folder, patterns, ignore, recursive=True)
        if not found:
            raise UsageError(f"{folder}: no audio files found")
        files += found
    return files


def sources_of(ai: list[Path], human: list[Path]) -> list[Source]:
    """Each file once, by content; the same music on both sides is an error naming both files."""
    seen: dict[str, Source] = {}
    for paths, label in ((ai, 1), (human, 0)):
        for path in paths:
            digest = sha256_file(path)
            other = seen.get(digest)
            if other is not None and other.label != label:
                raise UsageError(f"{path}: the same audio as {other.path} (sha256 {digest[:12]}), "
                                   "given as both AI and human music")
            seen.setdefault(digest, Source(path, digest, label))
    return list(seen.values())


def excerpt_spans(duration_s: float) -> list[tuple[float, float]]:
    if duration_s <= EXCERPT_S:
        return [(0.0, duration_s)]
    count = min(MAX_EXCERPTS, int(duration_s // EXCERPT_S))
    starts = np.linspace(0.0, duration_s - EXCERPT_S, count)
    return [(float(s), EXCERPT_S) for s in starts]


def duration_of(path: Path) -> float:
    """The file's duration from its header (0 where it cannot be read: it is skipped later)."""
    import av
    import soundfile as sf

    try:
        return float(sf.info(str(path)).duration)
    except (sf.LibsndfileError, RuntimeError, OSError):
        pass
    try:
        with av.open(str(path)) as container:
            return (container.duration or 0) / 1e6
    except (av.FFmpegError, OSError, ValueError):
        return 0.0


def planned_excerpts(sources: list[Source]) -> tuple[int, float]:
    """How many excerpts, and minutes, the readable files will give."""
    durations = [duration_of(s.path) for s in sources]
    return sum(len(excerpt_spans(d)) for d in durations if d > 0), sum(durations) / 60


def _cache_file(cache: Path, sha: str, condition: str, kind: str) -> Path:
    return cache / sha[:2] / f"{sha}-{condition}-v{FEATURES_VERSION}-{kind}.npz"


def _read_cache(path: Path, source: int, condition: str) -> Measured | None:
    try:
        with np.load(path) as z:
            return Measured(source, condition, z["spectrum"], z["bandwidth_hz"], z["lossy"], z["seconds"],
                            z["cnn_logit"] if "cnn_logit" in z else None,
                            z["images_score"] if "images_score" in z else None,
                            z["embedding"] if "embedding" in z else None)
    except (OSError, ValueError, KeyError):
        return None     # absent or damaged: measured again


def _write_cache(path: Path, m: Measured) -> None:
    arrays = {"spectrum": m.spectrum, "bandwidth_hz": m.bandwidth_hz, "lossy": m.lossy, "seconds": m.seconds}
    if m.cnn_logit is not None:
        arrays.update(cnn_logit=m.cnn_logit, images_score=m.images_score, embedding=m.embedding)
    with replaced(path) as tmp, tmp.open("wb") as f:
        np.savez(f, **arrays)


_cnn = None   # one CNN per worker process


def _measure_file(path: Path, conditions: list[str], cnn_weights: str | None) -> dict[str, dict] | str:
    """Worker: every excerpt of one file under each condition, or why the file cannot be read (as
    text: AudioError does not survive pickling back)."""
    try:
        return _measure(path, conditions, cnn_weights)
    except AudioError as exc:
        return str(exc)


def delivered(samples: np.ndarray, rate: int, spec: CodecSpec) -> np.ndarray:
    """A new array: the excerpt as `spec` delivers it (as given: untouched, overs and all, as the
    daemon reads a file; a codec condition clips first, as an encoder must)."""
    return samples.copy() if spec == NONE else apply_codec(samples, rate, spec)


def _measure(path: Path, conditions: list[str], cnn_weights: str | None) -> dict[str, dict]:
    global _cnn
    import torch

    torch.set_num_threads(1)     # one process per core already
    audio = load_audio(path)
    rate = audio.sample_rate
    spans = excerpt_spans(audio.duration_s)
    if cnn_weights and _cnn is None:
        from ..engines.cnn import CnnEngine

        _cnn = CnnEngine(Path(cnn_weights))
    out: dict[str, dict] = {}
    for name in conditions:
        spec = CONDITIONS[name]
        rows: dict[str, list] = {"spectrum": [], "bandwidth_hz": [], "lossy": [], "seconds": [],
                                 "cnn_logit": [], "images_score": [], "embedding": []}
        for start, length in spans:
            a, b = int(start * rate), int((start + length) * rate)
            x = delivered(audio.samples[:, a:b], rate, spec)
            x = normalise_level(np.ascontiguousarray(x, dtype=np.float32))
            mono = x.mean(axis=0)
            lossy_container = spec.lossy or audio.info.lossy
            info = AudioInfo(str(path), audio.info.container, spec.codec if spec.lossy else audio.info.codec,
                             lossy_container, audio.info.sample_rate if spec == NONE else rate,
                             2, length, 0)
            codec = codec_history(mono, rate, info)
            rows["spectrum"].append(long_term_spectrum(mono, rate, codec.bandwidth_hz).residual_db)
            rows["bandwidth_hz"].append(codec.bandwidth_hz)
            rows["lossy"].append(codec.lossy)
            rows["seconds"].append(length)
            if cnn_weights:
                from ..engines.images import measure_images

                cnn = _cnn.score_track(mono)
                rows["cnn_logit"].append(cnn.logit)
                rows["embedding"].append(cnn.embedding.astype(np.float32))
                rows["images_score"].append(measure_images(mono, rate).score)
        out[name] = {k: np.asarray(v) for k, v in rows.items() if v}
    return out


def measure(sources: list[Source], conditions: list[str], cache: Path, cnn_weights: Path | None = None,
            cnn_sha256: str = "", workers: int = 0, log: Callable[[str], None] = print
            ) -> tuple[list[Measured], list[tuple[Path, str]]]:
    """Every source's excerpts under every condition, from the cache where it has them. Returns
    the measurements and the files that could not be read (each with its reason)."""
    kind = f"cnn{cnn_sha256[:16]}" if cnn_weights else "spectrum"
    done: list[Measured] = []
    todo: list[int] = []
    for i, s in enumerate(sources):
        cached = [_read_cache(_cache_file(cache, s.sha256, c, kind), i, c) for c in conditions]
        if all(m is not None for m in cached):
            done += cached
        else:
            todo.append(i)
    log(f"{len(sources)} files, {len(sources) - len(todo)} already measured (cache {cache}); "
        f"measuring {len(todo)} under {len(conditions)} conditions")
    failed: list[tuple[Path, str]] = []
    if todo:
        workers = workers or min(len(todo), os.cpu_count() or 1)
        weights = str(cnn_weights) if cnn_weights else None
        for i, per_condition in _in_workers(_measure_file, [(sources[i].path, conditions, weights) for i in todo],
                                            todo, workers):
            if isinstance(per_condition, str):
                failed.append((sources[i].path, per_condition))
                continue
            for c, arrays in per_condition.items():
                m = Measured(i, c, arrays["spectrum"].astype(np.float32), arrays["bandwidth_hz"],
                             arrays["lossy"], arrays["seconds"], arrays.get("cnn_logit"),
                             arrays.get("images_score"), arrays.get("embedding"))
                _write_cache(_cache_file(cache, sources[i].sha256, c, kind), m)
                done.append(m)
    done.sort(key=lambda m: (m.source, conditions.index(m.condition)))
    return done, failed


def _in_workers(fn: Callable, jobs: list[tuple], keys: list[int], workers: int) -> Iterator[tuple[int, Any]]:
    """(key, fn(*job)) for each job, as worker processes finish them, under a progress bar.

    Workers are fresh interpreters (spawn): decoding runs torch, whose OpenMP threads do not
    survive a fork of a parent that has used them (the forked child waits on them forever). If the
    caller stops early (an error, a timeout, Ctrl-C) the workers are killed, not waited for."""
    from tqdm import tqdm

    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    finished = False
    try:
        with tqdm(total=len(jobs), unit="file", file=sys.stderr, leave=False, disable=None) as bar:
            futures = {pool.submit(fn, *job): key for key, job in zip(keys, jobs)}
            for future in as_completed(futures):
                bar.update()
                yield futures[future], future.result()
        finished = True
    finally:
        if not finished:
            for process in list((pool._processes or {}).values()):   # no public call for this before 3.14
                process.kill()
        pool.shutdown(wait=finished, cancel_futures=True)


_separator = None   # one HTDemucs per worker process


def _measure_demucs_file(path: Path, conditions: list[str], weights: str, excerpts: int,
                         device: str) -> dict[str, np.ndarray] | str:
    """Worker: the file's Demucs features under each condition, or why it cannot be read."""
    global _separator
    from ..engines.demucs.engine import choose_excerpts
    from ..engines.demucs.features import FEATURE_NAMES, aggregate, excerpt_features

    try:
        audio = load_audio(path)
    except AudioError as exc:
        return str(exc)
    if _separator is None:
        from ..engines.demucs.separation import Separator, load_htdemucs

        _separator = Separator(load_htdemucs(Path(weights)), device)
    rate = audio.sample_rate
    samples = normalise_level(audio.samples)      # in place: the codecs below see the normalised track
    spans = choose_excerpts(samples.mean(axis=0), _separator.segment_samples, excerpts)
    out = {}
    for name in conditions:
        spec = CONDITIONS[name]
        per_excerpt = []
        for a, b in spans:
            x = delivered(audio.samples[:, a:b], rate, spec)
            mix = normalise_level(np.ascontiguousarray(x, dtype=np.float32))
            stems = _separator.separate(mix[None])[0]
            per_excerpt.append(excerpt_features(mix, stems, rate))
        features = aggregate(per_excerpt)
        out[name] = np.array([features[n] for n in FEATURE_NAMES], np.float64)
    return out


def measure_demucs(sources: list[Source], measured: list[Measured], conditions: list[str], cache: Path,
                   weights: Path, weights_sha256: str, excerpts: int, device: str = "auto",
                   workers: int = 1, log: Callable[[str], None] = print) -> list[tuple[Path, str]]:
    """Add each file's Demucs features (per condition, repeated on each of its excerpts) to
    `measured`, from the cache where it has them; returns the files that could not be read."""
    kind = f"demucs{weights_sha256[:16]}x{excerpts}"
    wanted = sorted({m.source for m in measured})
    found: dict[tuple[int, str], np.ndarray] = {}
    todo = []
    for i in wanted:
        rows = {}
        for c in conditions:
            try:
                with np.load(_cache_file(cache, sources[i].sha256, c, kind)) as z:
                    rows[c] = z["demucs"]
            except (OSError, ValueError, KeyError):
                break
        if len(rows) == len(conditions):
            found.update({(i, c): v for c, v in rows.items()})
        else:
            todo.append(i)
    log(f"Demucs features: {len(wanted) - len(todo)} files already measured; separating {excerpts} "
        f"excerpts of {len(todo)} files under {len(conditions)} conditions (slow on a CPU)")
    failed: list[tuple[Path, str]] = []
    if todo:
        jobs = [(sources[i].path, conditions, str(weights), excerpts, device) for i in todo]
        for i, result in _in_workers(_measure_demucs_file, jobs, todo, max(1, workers)):
            if isinstance(result, str):
                failed.append((sources[i].path, result))
                continue
            for c, v in result.items():
                with replaced(_cache_file(cache, sources[i].sha256, c, kind)) as tmp, tmp.open("wb") as f:
                    np.savez(f, demucs=v)
                found[(i, c)] = v
    for m in measured:
        v = found.get((m.source, m.condition))
        m.demucs = None if v is None else np.repeat(v[None], len(m.seconds), axis=0)
    return failed
