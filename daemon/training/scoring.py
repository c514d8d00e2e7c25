"""Run the engines on rendered examples the way the daemon runs them on files: the CNN over the
whole example (mean of its window logits), the image score, the codec-history check, and HTDemucs
on one excerpt."""

from __future__ import annotations

import multiprocessing as mp
import time
from dataclasses import asdict, dataclass, replace
from typing import Callable

import numpy as np
import torch

from ..audio import ENGINE_RATE, AudioInfo
from ..audio.codec import codec_history
from ..engines.cnn import CnnEngine
from ..engines.demucs.engine import DemucsEngine
from ..engines.fusion import Delivery
from ..engines.images import measure_images
from .codecs import CodecSpec
from .examples import Item, render_conditions


@dataclass
class Scored:
    package: str
    track: str
    family: str
    label: int
    codec: str
    lossy: bool
    bandwidth_hz: float
    cnn_raw: float                         # mean window logit before Platt scaling
    features: dict[str, float] | None      # Demucs features (one excerpt), if measured
    images: float | None = None            # image score

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def delivery(self) -> Delivery:
        return Delivery.of_band(self.lossy, self.bandwidth_hz)


def _info(item: Item, samples: int) -> AudioInfo:
    """What the loader would report for the delivered file."""
    lossy = item.codec.codec != "none"
    return AudioInfo(path=item.track.name, container=item.codec.codec.upper() if lossy else "WAV",
                     codec=item.codec.label(), lossy=lossy,
                     sample_rate=48000 if item.via_48k else ENGINE_RATE, channels=2,
                     duration_s=samples / ENGINE_RATE, size_bytes=0)


def _init_worker() -> None:
    torch.set_num_threads(1)


def item_key(item: Item) -> str:
    return (f"{item.track.package}|{item.track.name}|{item.start_s:.3f}|{item.seconds:g}|"
            f"{item.family}|{item.codec.label()}|{int(item.via_48k)}|{item.gain_db:.3f}|{item.seed}")


def score_items(items: list[Item], cnn: CnnEngine | None, demucs: DemucsEngine | None,
                with_demucs: Callable[[int], bool], workers: int, log: Callable[[str], None],
                what: str, feature_cache: dict[str, dict] | None = None) -> list[Scored]:
    """Render in worker processes, score here. `with_demucs(i)` says whether item i also gets
    Demucs features; those already in `feature_cache` (keyed by `item_key`) are reused, new ones
    are added to it."""
    return _score_pool([[item] for item in items], 1, cnn, demucs, with_demucs, workers, log, what,
                       feature_cache)[0]


def score_conditions(items: list[Item], conditions: tuple[CodecSpec, ...], cnn: CnnEngine | None,
                     demucs: DemucsEngine | None, with_demucs: Callable[[int], bool], workers: int,
                     log: Callable[[str], None], what: str,
                     feature_cache: dict[str, dict] | None = None) -> dict[str, list[Scored]]:
    """score_items for every item delivered through each condition, keyed by the condition's label;
    each item's music is rendered once for all of them."""
    per_item = [[replace(item, codec=c) for c in conditions] for item in items]
    scored = _score_pool(per_item, len(conditions), cnn, demucs, with_demucs, workers, log, what,
                         feature_cache)
    return {c.label(): s for c, s in zip(conditions, scored)}


def _render(variants: list[Item]) -> list[tuple[np.ndarray, float]] | None:
    """Each variant's samples and image score (measured here, in the worker, as it is all signal
    processing); the variants of one item differ only in their codec."""
    xs = render_conditions(variants[0], tuple(v.codec for v in variants))
    return None if xs is None else [(x, measure_images(x.mean(axis=0), ENGINE_RATE).score) for x in xs]


def _score_pool(per_item: list[list[Item]], width: int, cnn: CnnEngine | None,
                demucs: DemucsEngine | None, with_demucs: Callable[[int], bool], workers: int,
                log: Callable[[str], None], what: str,
                feature_cache: dict[str, dict] | None) -> list[list[Scored]]:
    """`width` lists of Scored, one per variant position, in item order (silent items left out)."""
    cache = {} if feature_cache is None else feature_cache
    started = time.perf_counter()
    out: list[list[Scored]] = [[] for _ in range(width)]
    ctx = mp.get_context("fork")
    with ctx.Pool(workers, initializer=_init_worker) as pool:
        for n, (variants, xs) in enumerate(zip(per_item, pool.imap(_render, per_item, chunksize=2))):
            for column, variant, (x, images) in zip(out, variants, xs or []):
                column.append(_score(variant, x, images, cnn, demucs, with_demucs(n), cache))
            if (n + 1) % 100 == 0:
                log(f"  {what}: {n + 1}/{len(per_item)} scored ({time.perf_counter() - started:.0f} s)")
    log(f"  {what}: {len(out[0])} examples{f' x {width} conditions' if width > 1 else ''} "
        f"in {time.perf_counter() - started:.0f} s")
    return out


def _score(item: Item, x: np.ndarray, images: float, cnn: CnnEngine | None,
           demucs: DemucsEngine | None, measure: bool, cache: dict[str, dict]) -> Scored:
    mono = x.mean(axis=0)
    history = codec_history(mono, ENGINE_RATE, _info(item, x.shape[1]))
    cnn_raw = float("nan")
    if cnn is not None:
        ev = cnn.score_track(mono)
        cnn_raw = (ev.logit - cnn.meta.calib_b) / cnn.meta.calib_a
    features = None
    if measure and demucs is not None:
        key = item_key(item)
        if key not in cache:
            cache[key] = {"features": demucs.measure(x)[1]}
        features = cache[key]["features"]
    return Scored(item.track.package, item.track.name, item.family, item.label,
                  item.codec.label(), history.lossy, history.bandwidth_hz, cnn_raw, features, images)
