"""What a batch leaves in its output folder, and what a rerun reads back:

    reports/<sha256>.aimusic.json   one report per analysed content (the `scan` schema)
    results.jsonl                   the journal: one line per finished file, appended and flushed as
                                    each file finishes, so a killed run loses nothing it finished
    results.parquet (+ .csv)        the results table, rewritten from the journal at the end of a run

A file's row is the last journal line naming it. A content hash is done once a row with that hash
holds a verdict or an error caused by the input itself; other errors are tried again on a rerun.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from ..files import replaced
from ..report import Report, write_report

REPORTS = "reports"
JOURNAL = "results.jsonl"
TABLE = "results.parquet"
CSV = "results.csv"

INPUT_ERROR = "input"          # the file itself is bad (corrupt, too short, not audio): final
INTERNAL_ERROR = "internal"    # anything else (a bug, a lost worker): tried again on a rerun


@dataclass
class ResultRow:
    file: str
    sha256: str = ""
    verdict: str = ""                       # ai | human | uncertain; "" on error
    probability_ai: float | None = None
    decided_by: str = ""
    evidence: str = ""                      # each engine's probability or score, e.g. "cnn 0.12, images 3.10"
    cnn_probability: float | None = None
    images_score: float | None = None
    demucs_probability: float | None = None
    demucs_reason: str = ""
    mode: str = ""
    report: str = ""                        # relative to the output folder
    duplicate_of: str = ""                  # the file whose analysis this row shares
    error: str = ""
    error_kind: str = ""                    # "" | input | internal
    decode_s: float | None = None
    fast_s: float | None = None             # the fast pass after decoding (CNN, image score, ...)
    demucs_s: float | None = None
    total_s: float | None = None
    finished: str = ""

    @property
    def final(self) -> bool:
        return bool(self.verdict) or self.error_kind == INPUT_ERROR

    @classmethod
    def of_report(cls, file: str, report: Report, report_path: str, seconds: dict[str, float]) -> ResultRow:
        doc = report.to_dict()
        engines = doc["engines"]
        demucs = engines["demucs"]
        return cls(
            file=file, sha256=report.sha256, verdict=report.verdict, probability_ai=doc["probability_ai"],
            decided_by=report.decided_by, evidence=evidence_summary(engines),
            cnn_probability=(engines["cnn"] or {}).get("probability_ai"),
            images_score=(engines["images"] or {}).get("score"),
            demucs_probability=demucs["probability_ai"], demucs_reason=demucs["reason"],
            mode=report.mode, report=report_path, **{k: round(v, 4) for k, v in seconds.items()},
            finished=_now(),
        )

    @classmethod
    def of_error(cls, file: str, message: str, kind: str, sha256: str = "") -> ResultRow:
        return cls(file=file, sha256=sha256, error=message, error_kind=kind, finished=_now())

    def copied_to(self, file: str) -> ResultRow:
        """The row of another file with the same content: the same result, no time spent."""
        return replace(self, file=file, duplicate_of=self.duplicate_of or self.file, decode_s=None,
                       fast_s=None, demucs_s=None, total_s=None, finished=_now())


def evidence_summary(engines: dict) -> str:
    """Each engine that ran, by its probability (or its score where it has no probability)."""
    parts = []
    for name, doc in engines.items():
        if not doc:
            continue
        if doc.get("probability_ai") is not None:
            parts.append(f"{name} {doc['probability_ai']:.3f}")
        elif doc.get("score") is not None:
            parts.append(f"{name} {doc['score']:.2f}")
    return ", ".join(parts)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


class ResultStore:
    """The output folder. Only the driver writes it, so it needs no locking."""

    def __init__(self, out: Path):
        self.out = out
        self.rows: dict[str, ResultRow] = {}
        out.mkdir(parents=True, exist_ok=True)
        journal = out / JOURNAL
        if journal.exists():
            for line in journal.read_text(encoding="utf-8").splitlines():
                try:
                    row = ResultRow(**json.loads(line))
                except (ValueError, TypeError):
                    continue        # a line cut short by a killed run: that file is simply not done
                self.rows[row.file] = row
        self._journal = open(journal, "a", encoding="utf-8")

    def done_by_hash(self) -> dict[str, ResultRow]:
        done: dict[str, ResultRow] = {}
        for row in self.rows.values():
            if row.final and row.sha256 and (not row.report or (self.out / row.report).exists()):
                done.setdefault(row.sha256, row)
        return done

    def write_report(self, report: Report) -> str:
        rel = f"{REPORTS}/{report.sha256}.aimusic.json"
        write_report(report, self.out / rel)
        return rel

    def add(self, row: ResultRow) -> None:
        self.rows[row.file] = row
        self._journal.write(json.dumps(asdict(row)) + "\n")
        self._journal.flush()
        os.fsync(self._journal.fileno())

    def write_tables(self, csv: bool) -> list[Path]:
        """The results table, one row per file the folder has seen, sorted by file."""
        import pyarrow as pa
        import pyarrow.csv
        import pyarrow.parquet

        types = {"float | None": pa.float64(), "str": pa.string()}
        schema = pa.schema([(f.name, types[f.type]) for f in fields(ResultRow)])
        rows = [asdict(self.rows[name]) for name in sorted(self.rows)]
        table = pa.Table.from_pylist(rows, schema=schema)
        written = [self.out / TABLE]
        with replaced(written[0]) as tmp:
            pa.parquet.write_table(table, str(tmp))
        if csv:
            written.append(self.out / CSV)
            with replaced(written[1]) as tmp:
                pa.csv.write_csv(table, str(tmp))
        return written

    def close(self) -> None:
        self._journal.close()

