"""Analyzer: decode a file, run the engines its mode asks for, fuse, and build the report.

Models load once, on first use, and are reused for every file (the daemon keeps one Analyzer).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .audio import Audio, Limits, load_audio
from .config import Config, cache_dir
from .engines.cnn import CnnEngine
from .engines.demucs.engine import DemucsEngine, DemucsEvidence, DemucsHead
from .engines.demucs.separation import Separator, load_htdemucs
from .engines.demucs.weights import WeightStore
from .engines.fastpass import measure_fast
from .engines.fingerprint import FingerprintEngine
from .engines.fusion import Delivery, Evidence, Fusion
from .engines.packs import load_packs, packs_root
from .errors import AudioError
from .hashing import sha256_file
from .report import Report


@dataclass
class Decoded:
    """A file read for the engines, or why it cannot be."""

    path: Path
    audio: Audio | None = None
    sha256: str = ""
    seconds: float = 0.0
    error: AudioError | None = None


@dataclass
class Pass:
    """The result of the CNN pass: a report, and why Demucs still has to run (None: it need not)."""

    report: Report
    demucs_reason: str | None
    audio: Audio


class Analyzer:
    def __init__(self, cfg: Config, cnn: CnnEngine | None = None, demucs: DemucsEngine | None = None,
                 fusion: Fusion | None = None, fingerprints: FingerprintEngine | None = None):
        self.cfg = cfg
        self._cnn, self._demucs, self._fusion, self._fingerprints = cnn, demucs, fusion, fingerprints
        self._load_lock = threading.Lock()
        self.limits = Limits(cfg.engines.min_duration_s, cfg.engines.max_duration_s, cfg.engines.max_file_mb)

    # -- models, loaded on first use ------------------------------------------------------------
    @property
    def cnn(self) -> CnnEngine:
        with self._load_lock:
            if self._cnn is None:
                self._cnn = CnnEngine()
            return self._cnn

    @property
    def demucs(self) -> DemucsEngine:
        with self._load_lock:
            if self._demucs is None:
                store = WeightStore(cache_dir(self.cfg))
                weights = store.require()
                self._demucs = DemucsEngine(
                    Separator(load_htdemucs(weights), self.cfg.engines.demucs_device), DemucsHead.load(),
                    self.cfg.models.demucs,
                    store.status().manifest.sha256, excerpts=self.cfg.engines.demucs_excerpts,
                )
            return self._demucs

    @property
    def fusion(self) -> Fusion:
        with self._load_lock:
            if self._fusion is None:
                self._fusion = Fusion.load(ai_threshold=self.cfg.engines.ai_threshold,
                                           human_threshold=self.cfg.engines.human_threshold)
            return self._fusion

    @property
    def fingerprints(self) -> FingerprintEngine:
        with self._load_lock:
            if self._fingerprints is None:
                packs = [p.model for p in load_packs(packs_root(), self.cfg.models.packs)]
                # each generator's and pack's threshold as `aimusicd calibrate` set it, if it did
                self._fingerprints = FingerprintEngine.load(packs=packs).with_thresholds(
                    self.cfg.fingerprint_thresholds)
            return self._fingerprints

    def loaded_models(self) -> list[str]:
        return [name for name, m in (("cnn", self._cnn), ("demucs", self._demucs)) if m is not None]

    def preload(self, demucs: bool) -> None:
        """Load models now (the daemon does this at start so the first bounce is not slow)."""
        _ = self.cnn, self.fusion, self.fingerprints
        if demucs:
            _ = self.demucs

    # -- analysis --------------------------------------------------------------------------------
    def read(self, path: Path) -> Audio:
        """The file decoded; each engine reads it level-normalised (`Audio.mono`, `Audio.normalised`)."""
        return load_audio(path, self.limits)

    def read_ahead(self, paths: Iterable[Path]) -> Iterator[Decoded]:
        """Each file hashed and decoded (its mid made) in a helper thread while the caller
        analyses the one before: `scan` overlaps reading with the engines."""
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-ahead") as pool:
            pending: deque[Future[Decoded]] = deque()
            for path in paths:
                pending.append(pool.submit(self._decode, Path(path)))
                if len(pending) > 1:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()

    def _decode(self, path: Path, sha256: str | None = None) -> Decoded:
        t0 = time.perf_counter()
        try:
            audio = self.read(path)
            _ = audio.mono
            return Decoded(path, audio, sha256 or sha256_file(path), time.perf_counter() - t0)
        except AudioError as exc:
            return Decoded(path, error=exc)
        except OSError as exc:
            return Decoded(path, error=AudioError(path, f"cannot read ({exc.strerror})"))

    def first_pass(self, path: str | Path, mode: str, decoded: Decoded | None = None,
                   sha256: str | None = None) -> Pass:
        """Decode, measure the codec history and run the fast pass: the CNN, the image score and
        the generator fingerprints (unless mode is "demucs"). `decoded`: the file already read;
        `sha256`: its digest where the caller has just taken it (the watcher, a batch), so it is
        not read twice."""
        path = Path(path)
        decoded = decoded or self._decode(path, sha256)
        if decoded.error:
            raise decoded.error
        audio = decoded.audio
        started = time.perf_counter()
        fast = measure_fast(audio, self.cnn if mode != "demucs" else None,
                            self.fingerprints if mode != "demucs" else None)
        # the engines overlap, so the pass's own wall time, not the sum of theirs
        timings = {"decode_s": decoded.seconds, **fast.timings,
                   "fast_s": decoded.seconds + time.perf_counter() - started}
        codec, cnn, images, fingerprint = fast.codec, fast.cnn, fast.images, fast.fingerprint
        delivery = Delivery.of(codec)
        fusion = self.fusion
        evidence = Evidence(cnn.logit, images.score, None, fingerprint) if cnn else None
        if mode == "cnn":
            reason = None
        elif mode in ("full", "demucs"):
            reason = f"mode {mode}"
        else:
            reason = fusion.demucs_wanted(fusion.cnn_probability(cnn.logit, delivery, images.score), delivery)
            if reason and fingerprint.matched:
                reason = None      # a known generator matched: Demucs cannot overturn an "ai"
        verdict = fusion.combine(evidence, delivery) if evidence else None
        skipped = "pending: " + reason if reason else ("mode cnn" if mode == "cnn" else "cnn confident")
        report = Report(
            file=str(path.resolve()), sha256=decoded.sha256, mode=mode,
            duration_s=audio.duration_s, sample_rate=audio.info.sample_rate,
            channels=audio.info.channels, codec=codec,
            verdict=verdict.label if verdict else "uncertain",
            probability_ai=verdict.probability_ai if verdict else 0.5,
            decided_by=verdict.decided_by if verdict else "none",
            cnn=cnn, images=images, fingerprint=fingerprint,
            demucs=DemucsEvidence(ran=False, reason=skipped),
            matched=verdict.matched if verdict else None,
            atypical=list(verdict.atypical) if verdict else [],
            thresholds={"ai": fusion.ai_threshold, "human": fusion.human_threshold},
            fusion_model=fusion.params.name, timings=timings,
        )
        return Pass(report, reason, audio)

    def second_pass(self, first: Pass) -> Report:
        """Run the Demucs engine on the file of `first` and fuse both engines' evidence."""
        report = first.report
        demucs = self.demucs.analyze(first.audio, reason=first.demucs_reason or "")
        if report.fingerprint is not None:      # packs learned with --demucs score now
            report.fingerprint = self.fingerprints.with_demucs(report.fingerprint, demucs.features)
        evidence = Evidence(report.cnn.logit if report.cnn else None,
                            report.images.score if report.images else None, demucs.logit, report.fingerprint)
        verdict = self.fusion.combine(evidence, Delivery.of(report.codec))
        report.demucs = demucs
        report.verdict, report.probability_ai, report.decided_by = (
            verdict.label, verdict.probability_ai, verdict.decided_by)
        report.matched, report.atypical = verdict.matched, list(verdict.atypical)
        report.timings["demucs_s"] = demucs.seconds
        return report

    def analyze(self, path: str | Path, mode: str, decoded: Decoded | None = None) -> Report:
        t0 = time.perf_counter()
        first = self.first_pass(path, mode, decoded)
        report = self.second_pass(first) if first.demucs_reason else first.report
        report.timings["total_s"] = time.perf_counter() - t0 + (decoded.seconds if decoded else 0.0)
        return report
