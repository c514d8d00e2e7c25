"""Analyzer: decode a file, run the engines its mode asks for, fuse, and build the report.

Models load once, on first use, and are reused for every file (the daemon keeps one Analyzer).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .audio import Audio, Limits, load_audio, normalise_level
from .audio.codec import codec_history
from .config import Config, cache_dir
from .engines.cnn import CnnEngine
from .engines.demucs.engine import DemucsEngine, DemucsEvidence, DemucsHead
from .engines.demucs.separation import Separator, load_htdemucs
from .engines.demucs.weights import WeightStore
from .engines.fingerprint import FingerprintEngine
from .engines.fusion import Delivery, Evidence, Fusion
from .engines.images import measure_images
from .engines.packs import load_packs, packs_root
from .hashing import sha256_file
from .report import Report


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
                packs = [p.fingerprint for p in load_packs(packs_root(), self.cfg.models.packs)]
                self._fingerprints = self._calibrated(FingerprintEngine.load(packs=packs))
            return self._fingerprints

    def _calibrated(self, engine: FingerprintEngine) -> FingerprintEngine:
        """Each generator's threshold as `aimusicd calibrate` set it on the user's music, if it did."""
        own = self.cfg.fingerprint_thresholds
        engine.generators = [dataclasses.replace(g, threshold=own.get(g.name, g.threshold))
                             for g in engine.generators]
        return engine

    def loaded_models(self) -> list[str]:
        return [name for name, m in (("cnn", self._cnn), ("demucs", self._demucs)) if m is not None]

    def preload(self, demucs: bool) -> None:
        """Load models now (the daemon does this at start so the first bounce is not slow)."""
        _ = self.cnn, self.fusion, self.fingerprints
        if demucs:
            _ = self.demucs

    # -- analysis --------------------------------------------------------------------------------
    def read(self, path: Path) -> Audio:
        """The file decoded and level-normalised, as every engine reads it."""
        audio = load_audio(path, self.limits)
        audio.samples = normalise_level(audio.samples)
        return audio

    def first_pass(self, path: str | Path, mode: str, sha256: str | None = None) -> Pass:
        """Decode, measure the codec history and run the fast pass: the CNN, the image score and
        the generator fingerprints (unless mode is "demucs"). `sha256`: the file's digest where
        the caller has just taken it (the watcher does, to de-duplicate), so it is not read twice."""
        path = Path(path)
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        audio = self.read(path)
        codec = codec_history(audio.mono, audio.sample_rate, audio.info)
        delivery = Delivery.of(codec)
        timings["decode_s"] = time.perf_counter() - t0
        fusion = self.fusion
        cnn = images = fingerprint = None
        if mode != "demucs":
            cnn = self.cnn.score_track(audio.mono)
            images = measure_images(audio.mono, audio.sample_rate)
            fingerprint = self.fingerprints.measure(audio.mono, audio.sample_rate, codec.bandwidth_hz)
            timings["cnn_s"], timings["images_s"] = cnn.seconds, images.seconds
            timings["fingerprint_s"] = fingerprint.seconds
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
            file=str(path.resolve()), sha256=sha256 or sha256_file(path), mode=mode,
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
        demucs = self.demucs.analyze(first.audio.samples, reason=first.demucs_reason or "")
        evidence = Evidence(report.cnn.logit if report.cnn else None,
                            report.images.score if report.images else None, demucs.logit, report.fingerprint)
        verdict = self.fusion.combine(evidence, Delivery.of(report.codec))
        report.demucs = demucs
        report.verdict, report.probability_ai, report.decided_by = (
            verdict.label, verdict.probability_ai, verdict.decided_by)
        report.matched, report.atypical = verdict.matched, list(verdict.atypical)
        report.timings["demucs_s"] = demucs.seconds
        return report

    def analyze(self, path: str | Path, mode: str) -> Report:
        t0 = time.perf_counter()
        first = self.first_pass(path, mode)
        report = self.second_pass(first) if first.demucs_reason else first.report
        report.timings["total_s"] = time.perf_counter() - t0
        return report
