"""The fast pass: the codec check and every engine that reads the whole track in well under a
second (the CNN, the image score, the generator fingerprints).

The CNN runs in the caller's thread on torch's thread team; meanwhile one helper thread does the
numpy work (the codec check, the image score), which releases the GIL in its FFTs and reductions.
The fingerprints come last: the user's packs read the CNN's embedding and the image score too.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ..audio import Audio
from ..audio.codec import CodecHistory, codec_history
from .cnn import CnnEngine
from .cnn.engine import CnnEvidence
from .fingerprint import FingerprintEngine, FingerprintEvidence
from .images import ImageEvidence, measure_images

_helper: ThreadPoolExecutor


def _new_helper() -> None:
    global _helper
    _helper = ThreadPoolExecutor(max_workers=2, thread_name_prefix="fast-pass")   # two callers may overlap


_new_helper()
os.register_at_fork(after_in_child=_new_helper)   # a forked worker has none of the parent's threads


@dataclass
class FastEvidence:
    codec: CodecHistory
    cnn: CnnEvidence | None = None
    images: ImageEvidence | None = None
    fingerprint: FingerprintEvidence | None = None
    timings: dict[str, float] = field(default_factory=dict)


def measure_fast(audio: Audio, cnn: CnnEngine | None, fingerprints: FingerprintEngine | None) -> FastEvidence:
    """The codec history, and the engines' evidence unless `cnn` is None (Demucs-only mode)."""
    mono, rate = audio.mono, audio.sample_rate
    if cnn is None:
        return FastEvidence(codec_history(mono, rate, audio.info))

    def numpy_side() -> tuple[CodecHistory, ImageEvidence]:
        return codec_history(mono, rate, audio.info), measure_images(mono, rate)

    side = _helper.submit(numpy_side)
    evidence = cnn.score_track(mono)
    codec, images = side.result()
    fingerprint = fingerprints.measure(mono, rate, codec.bandwidth_hz, evidence.embedding, images.score)
    return FastEvidence(codec, evidence, images, fingerprint,
                        {"cnn_s": evidence.seconds, "images_s": images.seconds,
                         "fingerprint_s": fingerprint.seconds})
