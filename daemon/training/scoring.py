"""Run the engines on rendered examples the way the daemon runs them on files: the CNN over the
whole example (mean of its window logits), the image score, the codec-history check, and HTDemucs
on one excerpt."""

from __future__ import annotations

import multiprocessing as mp
import time
from collections import deque
from dataclasses import asdict, dataclass, field, replace
from typing import Callable

import numpy as np
import torch

from ..audio import ENGINE_RATE, AudioInfo, normalise_level
from ..audio.codec import codec_history
from ..engines.cnn import CnnEngine
from ..engines.demucs.engine import DemucsEngine
from ..engines.fusion import Delivery
from ..engines.fingerprint import long_term_spectrum
from ..engines.images import measure_images
from ..evaluation.codecs import CodecSpec
from .examples import Item, render_conditions

# Rendered examples waiting for the main process, per worker. The main process scores (HTDemucs,
# about 7 s an example) slower than the workers render, so an unbounded queue would hold every
# rendered example of a stage in memory (seven conditions of each on the test stage).
RENDER_AHEAD = 2


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
    spectrum: np.ndarray | None = field(default=None, repr=False)   # fingerprint peak spectrum
    fingerprint: float | None = None       # the best known generator's logit, once they are fitted
    matched_p: float | None = None         # the probability of a generator that fired (None: none)

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "spectrum"}

    @property
    def delivery(self) -> Delivery:
        return Delivery.of_band(self.lossy, self.bandwidth_hz)


def _info(item: Item, samples: int) -> AudioInfo:
    """What the loader would report for the delivered file."""
    lossy = item.codec.lossy
    return AudioInfo(path=item.track.name, container=item.codec.codec.upper() if lossy else "WAV",
                     codec=item.codec.label(), lossy=lossy,
                     sample_rate=48000 if item.via_48k else ENGINE_RATE, channels=2,
                     duration_s=samples / ENGINE_RATE, size_bytes=0)


def _init_worker() -> None:
    torch.set_num_threads(1)


def item_key(item: Item) -> str:
    return (f"{item.track.package}|{item.track.name}|{item.start_s:.3f}|{item.seconds:g}|"
            f"{item.family}|{item.codec.label()}|{int(item.via_48k)}|{item.gain_db:.3f}|{item.seed}"
            + (f"|mono{item.mono_rate}" if item.mono_rate else ""))


def score_items(items: list[Item], cnn: CnnEngine | None, demucs: DemucsEngine | None,
                with_demucs: Callable[[int], bool], workers: int, log: Callable[[str], None],
                what: str, feature_cache: dict[str, dict] | None = None) -> list[Scored]:
    """Render in worker processes, score here. `with_demucs(i)` says whether item i also gets
    Demucs features. Every example's evidence is kept in `feature_cache` (keyed by `item_key`):
    what is there already is reused, what is new is added to it."""
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
    if xs is None:
        return None
    xs = [normalise_level(x) for x in xs]   # as the analyser reads every file
    return [(x, measure_images(x.mean(axis=0), ENGINE_RATE).score) for x in xs]


def _score_pool(per_item: list[list[Item]], width: int, cnn: CnnEngine | None,
                demucs: DemucsEngine | None, with_demucs: Callable[[int], bool], workers: int,
                log: Callable[[str], None], what: str,
                feature_cache: dict[str, dict] | None) -> list[list[Scored]]:
    """`width` lists of Scored, one per variant position, in item order (silent items left out).
    Items whose every variant is in the cache are not rendered again."""
    cache = {} if feature_cache is None else feature_cache
    started = time.perf_counter()
    out: list[list[Scored]] = [[] for _ in range(width)]
    measure = [with_demucs(n) and demucs is not None for n in range(len(per_item))]
    known = [all(_cached(cache, v, cnn is not None, m) for v in variants)
             for variants, m in zip(per_item, measure)]
    todo = [variants for variants, k in zip(per_item, known) if not k]
    ctx = mp.get_context("fork")
    with ctx.Pool(workers, initializer=_init_worker) as pool:
        waiting = iter(todo)
        rendering: deque = deque()

        def render_next() -> None:
            variants = next(waiting, None)
            if variants is not None:
                rendering.append(pool.apply_async(_render, (variants,)))

        for _ in range(RENDER_AHEAD * workers):
            render_next()
        for n, variants in enumerate(per_item):
            if known[n]:
                scored = [_from_cache(v, cache[item_key(v)], measure[n]) for v in variants]
            else:
                xs = rendering.popleft().get()
                render_next()
                scored = ([None] * len(variants) if xs is None else
                          [_score(v, x, images, cnn, demucs, measure[n], cache) for v, (x, images) in zip(variants, xs)])
                if xs is None:
                    for v in variants:
                        cache[item_key(v)] = {"silent": True}
            for column, one in zip(out, scored):
                if one is not None:
                    column.append(one)
            if (n + 1) % 100 == 0:
                log(f"  {what}: {n + 1}/{len(per_item)} scored ({time.perf_counter() - started:.0f} s)")
    log(f"  {what}: {len(out[0])} examples{f' x {width} conditions' if width > 1 else ''} "
        f"in {time.perf_counter() - started:.0f} s ({len(per_item) - len(todo)} of {len(per_item)} cached)")
    return out


def _cached(cache: dict[str, dict], item: Item, with_cnn: bool, with_features: bool) -> bool:
    entry = cache.get(item_key(item))
    if entry is None:
        return False
    if entry.get("silent"):
        return True
    ev = entry.get("evidence")
    return (ev is not None and (not with_cnn or ev["cnn_raw"] is not None)
            and (not with_features or "features" in entry))


def _from_cache(item: Item, entry: dict, measure: bool) -> Scored | None:
    if entry.get("silent"):
        return None
    ev = entry["evidence"]
    return Scored(item.track.package, item.track.name, item.family, item.label, item.codec.label(),
                  ev["lossy"], ev["bandwidth_hz"], float("nan") if ev["cnn_raw"] is None else ev["cnn_raw"],
                  entry["features"] if measure else None, ev["images"], np.array(ev["spectrum"], np.float32))


def _score(item: Item, x: np.ndarray, images: float, cnn: CnnEngine | None,
           demucs: DemucsEngine | None, measure: bool, cache: dict[str, dict]) -> Scored:
    """Every engine's evidence on one rendered example; kept in the cache (keyed by `item_key`)."""
    mono = x.mean(axis=0)
    history = codec_history(mono, ENGINE_RATE, _info(item, x.shape[1]))
    cnn_raw = None
    if cnn is not None:
        ev = cnn.score_track(mono)
        cnn_raw = (ev.logit - cnn.meta.calib_b) / cnn.meta.calib_a
    entry = cache.setdefault(item_key(item), {})
    if measure and "features" not in entry:
        entry["features"] = demucs.measure(x)[1]
    spectrum = long_term_spectrum(mono, ENGINE_RATE, history.bandwidth_hz).residual_db
    entry["evidence"] = {"cnn_raw": cnn_raw, "images": images, "lossy": history.lossy,
                         "bandwidth_hz": history.bandwidth_hz,
                         "spectrum": [round(float(v), 2) for v in spectrum]}
    return _from_cache(item, entry, measure)
