"""Run a batch in this process: the stages one file after another, on one shared Analyzer."""

from __future__ import annotations

from collections.abc import Iterator

from ..analysis import Analyzer
from ..config import Config
from ..errors import AudioError
from .sources import content_hash
from .stages import AnalyzerFactory, DemucsStage, FastStage, Outcome


class LocalExecutor:
    shows_progress = False      # the caller draws `scan`'s progress bar
    def __init__(self, cfg: Config, mode: str, make_analyzer: AnalyzerFactory = Analyzer):
        self.analyzer = make_analyzer(cfg)
        self.mode = mode
        self._demucs: DemucsStage | None = None

    def hash(self, files: list[str]) -> Iterator[tuple[str, str, str]]:
        """(file, sha256, "") or (file, "", one-line error) for each file."""
        for file in files:
            try:
                yield file, content_hash(file), ""
            except AudioError as exc:
                yield file, "", str(exc)

    def analyse(self, todo: list[tuple[str, str]]) -> Iterator[Outcome]:
        fast = FastStage(self.analyzer, self.mode)
        for file, sha256 in todo:
            outcome, first = fast.run(file, sha256)
            if outcome.demucs_reason:
                if self._demucs is None:      # the HTDemucs weights load only once a file needs them
                    self._demucs = DemucsStage(self.analyzer)
                outcome = self._demucs.run(outcome, first)
            yield outcome

    def close(self) -> None:
        pass
