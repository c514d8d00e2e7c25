"""Training and evaluation examples: a piece of a human track, maybe turned into a fake, then put
through the delivery chain a real file goes through (gain, a 48 kHz detour, a lossy codec).

Order matters: the fake is made first and the codec applied after, to both classes alike, with
fresh random settings per example, so codec history can never stand in for the label.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..audio import ENGINE_RATE, resample
from ..evaluation.codecs import AAC_BITRATES, MP3_BITRATES, NONE, OPUS_BITRATES, PCM16, CodecSpec, apply_codec
from .corpora import Track
from .fakes import make_fake

HUMAN = "human"
MONO_RATES = (32000, 24000, 22050, 16000)
SILENT_RMS = 10 ** (-45 / 20)
TRACK_WEIGHT_CAP_S = 300.0   # long tracks are not allowed to dominate the sample


@dataclass(frozen=True)
class Item:
    track: Track
    start_s: float
    seconds: float
    family: str          # "human" or a fake family
    codec: CodecSpec
    via_48k: bool        # delivered as a 48 kHz file (resampled there and back)
    gain_db: float
    seed: int
    mono_rate: int = 0   # delivered as a mono file at this rate (a low-rate generator's, or a round
                         # trip much real music has been through); 0: not

    @property
    def label(self) -> int:
        return 0 if self.family == HUMAN else 1


def random_codec(rng: np.random.Generator, lossless_share: float = 0.35,
                 favour_low_bitrates: bool = False) -> CodecSpec:
    """Fresh settings per example: lossless with p=lossless_share (half of it as 16-bit PCM, whose
    quantisation floor must not read as a fingerprint), otherwise MP3 / AAC / Opus
    about 40 / 30 / 30 with a bitrate drawn uniformly from that codec's range, or, with
    favour_low_bitrates, with p proportional to 1/kbps^2 (MP3 64 kbps about a third of MP3 draws,
    320 kbps about 1 %): training spends its examples where the fingerprint is hardest to keep,
    while lossless examples still stand for the top of the range."""
    if rng.random() < lossless_share:
        return PCM16 if rng.random() < 0.5 else NONE
    codec = str(rng.choice(("mp3", "aac", "opus"), p=(0.4, 0.3, 0.3)))
    rates = np.array({"mp3": MP3_BITRATES, "aac": AAC_BITRATES, "opus": OPUS_BITRATES}[codec])
    if favour_low_bitrates:
        weights = 1.0 / rates.astype(np.float64) ** 2
        return CodecSpec(codec, int(rng.choice(rates, p=weights / weights.sum())))
    return CodecSpec(codec, int(rates[rng.integers(len(rates))]))


def pick_positions(tracks: list[Track], count: int, seconds: float, rng: np.random.Generator
                   ) -> list[tuple[Track, float]]:
    usable = [t for t in tracks if t.duration_s > seconds + 1]
    weights = np.array([min(t.duration_s, TRACK_WEIGHT_CAP_S) for t in usable])
    picks = rng.choice(len(usable), size=count, p=weights / weights.sum())
    return [(usable[i], float(rng.uniform(0.0, usable[i].duration_s - seconds))) for i in picks]


def plan(tracks: list[Track], count: int, seconds: float, families: list[str],
         rng: np.random.Generator, favour_low_bitrates: bool = False, mono_share: float = 0.0) -> list[Item]:
    """`count` positions, each as a human item and a fake item of the same music (paired, so the
    difference the model can learn is the fingerprint, not the content). With mono_share, that
    share of items is delivered as low-rate mono files."""
    items = []
    for i, (track, start) in enumerate(pick_positions(tracks, count, seconds, rng)):
        for family in (HUMAN, families[i % len(families)]):
            items.append(Item(
                track, start, seconds, family, random_codec(rng, favour_low_bitrates=favour_low_bitrates),
                via_48k=bool(rng.random() < 0.3), gain_db=float(rng.uniform(-9.0, 3.0)),
                seed=int(rng.integers(2**31)), mono_rate=_mono_rate(rng, mono_share),
            ))
    return items


def _mono_rate(rng: np.random.Generator, share: float) -> int:
    """Drawn only where asked for: plans without it keep their random streams (and examples)."""
    if share <= 0.0 or rng.random() >= share:
        return 0
    return int(MONO_RATES[rng.integers(len(MONO_RATES))])


def plan_real(tracks: list[Track], variants: int, seconds: float | None, rng: np.random.Generator,
              mono_share: float = 0.0) -> list[Item]:
    """Real generator output: `variants` items per track, each a piece of `seconds` (None: the
    whole track) through its own random delivery chain, as human items get; variant-major, so the
    first k * len(tracks) items hold k variants of every track."""
    items = []
    for _ in range(variants):
        for track in tracks:
            length = track.duration_s if seconds is None else min(seconds, track.duration_s)
            start = float(rng.uniform(0.0, track.duration_s - length)) if seconds else 0.0
            items.append(Item(track, start, length, track.generator, random_codec(rng),
                              via_48k=bool(rng.random() < 0.3), gain_db=float(rng.uniform(-9.0, 3.0)),
                              seed=int(rng.integers(2**31)), mono_rate=_mono_rate(rng, mono_share)))
    return items


def render(item: Item) -> np.ndarray | None:
    """(2, n) float32 at the engines' rate, or None when the piece is nearly silent."""
    x = source(item)
    return None if x is None else deliver(x, item, item.codec)


def render_conditions(item: Item, codecs: tuple[CodecSpec, ...]) -> list[np.ndarray] | None:
    """The item delivered through each of `codecs` in turn, its music (and fake) made once: the
    codec round trips are the cost, so evaluation conditions share everything before them."""
    x = source(item)
    return None if x is None else [deliver(x, item, codec) for codec in codecs]


def source(item: Item) -> np.ndarray | None:
    """The piece as mastered, before delivery: maybe a fake, gain, a limiter; None when silent."""
    x = item.track.load(item.start_s, item.seconds)
    if x.shape[1] < int(item.seconds * ENGINE_RATE * 0.9) or np.sqrt(np.mean(x ** 2)) < SILENT_RMS:
        return None
    rng = np.random.default_rng(item.seed)
    if item.family != HUMAN and item.track.generator is None:
        x = make_fake(item.family, x, ENGINE_RATE, rng)
    x = x * np.float32(10 ** (item.gain_db / 20))
    peak = float(np.abs(x).max())
    if peak > 0.999:                       # a limiter, as a mastered bounce would have
        x = x * np.float32(0.999 / peak)
    return x


def deliver(x: np.ndarray, item: Item, codec: CodecSpec) -> np.ndarray:
    """x as the delivered file holds it (maybe via 48 kHz, through `codec`), back at the engines' rate."""
    if item.mono_rate:
        low = resample(x.mean(axis=0, keepdims=True), ENGINE_RATE, item.mono_rate)
        x = np.repeat(resample(low, item.mono_rate, ENGINE_RATE), 2, axis=0)[:, :x.shape[1]]
    rate = 48000 if item.via_48k else ENGINE_RATE
    y = apply_codec(resample(x, ENGINE_RATE, rate), rate, codec)
    return resample(y, rate, ENGINE_RATE)
