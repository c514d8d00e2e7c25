"""Model packs: what `aimusicd learn` fitted for one generator, stored under the user's data dir.

A pack is a folder `<data dir>/packs/<name>/` holding
  pack.json         schema, name, date, aimusicd version, threshold, metrics, examples;
  model.json        the pack's model (a PackModel: logistic heads as JSON, no pickle);
  MODEL_CARD.md     the same for people;
  SHA256SUMS        the sha256 of every other file (`sha256sum -c SHA256SUMS` checks it too).
A pack of format 1 (`fingerprint.json`: the spectral fingerprint alone) still loads, as a model
over that one piece of evidence.

A pack reads the fast pass's evidence (PIECES): the long-term peak spectrum, the CNN's track
embedding (its penultimate layer, from the forward pass that gives its logit), the image score,
and, for a pack learned with `--demucs`, the Demucs engine's stem features (it then scores only
the files Demucs ran on). It fires at or above its own threshold.

One loader reads them all: a pack that fails its checksums, or that a newer aimusicd wrote, is
refused with one line and the rest load. Packs are written to a temporary folder beside their
place and renamed into it, so a pack is never half there.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import __version__
from ..config.paths import data_dir
from ..errors import ModelError, UsageError
from ..hashing import sha256_file
from .fingerprint import GeneratorFingerprint, feature_names
from .logistic import LogisticModel, sigmoid

SCHEMA_NAME = "aimusicd.pack"
SCHEMA_VERSION = 2          # 2: model.json over several pieces of evidence; 1: fingerprint.json alone
SCHEMA = f"{SCHEMA_NAME}/{SCHEMA_VERSION}"
PACK_FILE, MODEL_FILE, CARD_FILE, SUMS_FILE = "pack.json", "model.json", "MODEL_CARD.md", "SHA256SUMS"
FINGERPRINT_FILE = "fingerprint.json"     # format 1's model
PIECES = ("spectrum", "embedding", "images", "demucs")
COMBINES = ("joint", "max")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PackInputs:
    """What a pack reads of one file (None: not measured)."""
    spectrum: np.ndarray | None = None      # the pooled peak spectrum (FingerprintEvidence.residual_db)
    embedding: np.ndarray | None = None     # the CNN's track embedding (CnnEvidence.embedding)
    images_score: float | None = None
    demucs: dict[str, float] | None = None  # the Demucs engine's features (DemucsEvidence.features)


def piece_names(piece: str, width: int) -> list[str]:
    """The feature names of one piece of evidence, `width` values wide."""
    if piece == "spectrum":
        return feature_names(width)
    if piece == "embedding":
        return [f"emb{i}" for i in range(width)]
    if piece == "images":
        return ["images_score"]
    if piece == "demucs":
        from .demucs.features import FEATURE_NAMES

        return [f"demucs.{n}" for n in FEATURE_NAMES]
    raise ValueError(f"unknown piece of evidence {piece!r}")


def piece_vector(piece: str, inputs: PackInputs) -> np.ndarray | None:
    """One piece of evidence of a file as a row of features (None: not measured)."""
    if piece == "spectrum":
        value = inputs.spectrum
    elif piece == "embedding":
        value = inputs.embedding
    elif piece == "images":
        value = None if inputs.images_score is None else [inputs.images_score]
    elif piece == "demucs":
        from .demucs.features import FEATURE_NAMES

        value = None if not inputs.demucs else [inputs.demucs[n] for n in FEATURE_NAMES]
    else:
        raise ValueError(f"unknown piece of evidence {piece!r}")
    return None if value is None else np.asarray(value, np.float64).reshape(-1)


@dataclass(frozen=True)
class PackModel:
    """One generator's model over some pieces of the fast pass's evidence, calibrated, and the
    probability above which it fires. "joint": one logistic model over the pieces' features side by
    side (each standardised); "max": one calibrated head per piece, the largest probability wins."""
    name: str
    pieces: tuple[str, ...]
    combine: str
    heads: dict[str, LogisticModel]     # "joint" -> its model; "max" -> one per piece
    threshold: float
    description: str = ""
    metrics: dict = field(default_factory=dict)

    def __post_init__(self):
        if not self.pieces or any(p not in PIECES for p in self.pieces) or self.combine not in COMBINES:
            raise ValueError(f"pieces {self.pieces} / combine {self.combine!r}")
        wanted = {"joint"} if self.combine == "joint" else set(self.pieces)
        if set(self.heads) != wanted:
            raise ValueError(f"heads {sorted(self.heads)}, expected {sorted(wanted)}")

    @property
    def needs_demucs(self) -> bool:
        return "demucs" in self.pieces

    def logits(self, x: dict[str, np.ndarray]) -> np.ndarray:
        """Calibrated logits of rows, from each piece's (rows, features) matrix."""
        if self.combine == "joint":
            return self.heads["joint"].logit(np.hstack([np.atleast_2d(x[p]) for p in self.pieces]))
        return np.max([self.heads[p].logit(np.atleast_2d(x[p])) for p in self.pieces], axis=0)

    def logit(self, inputs: PackInputs) -> float | None:
        """The calibrated logit of one file, or None where a piece it reads was not measured."""
        x = {p: piece_vector(p, inputs) for p in self.pieces}
        if any(v is None for v in x.values()):
            return None
        return float(self.logits(x)[0])

    def probability(self, inputs: PackInputs) -> float | None:
        z = self.logit(inputs)
        return None if z is None else float(sigmoid(z))

    def to_dict(self) -> dict:
        return {"name": self.name, "description": self.description, "pieces": list(self.pieces),
                "combine": self.combine, "threshold": self.threshold, "metrics": self.metrics,
                "heads": {k: m.to_dict() for k, m in self.heads.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> "PackModel":
        return cls(d["name"], tuple(d["pieces"]), d["combine"],
                   {k: LogisticModel.from_dict(m) for k, m in d["heads"].items()}, float(d["threshold"]),
                   d.get("description", ""), d.get("metrics", {}))

    @classmethod
    def of_fingerprint(cls, fp: GeneratorFingerprint) -> "PackModel":
        """A format-1 pack: the spectral fingerprint alone."""
        return cls(fp.name, ("spectrum",), "joint", {"joint": fp.model}, fp.threshold, fp.description,
                   fp.metrics)


@dataclass(frozen=True)
class ModelPack:
    name: str
    path: Path
    meta: dict
    model: PackModel
    sha256: dict[str, str]      # file name -> sha256, as verified

    @property
    def threshold(self) -> float:
        return self.model.threshold

    @property
    def model_file(self) -> str:
        return MODEL_FILE if MODEL_FILE in self.sha256 else FINGERPRINT_FILE


def packs_root() -> Path:
    return data_dir() / "packs"


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise UsageError(f"pack name {name!r}: use letters, digits, '.', '_' and '-' (at most 64, "
                         "starting with a letter or digit)")
    return name


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3])


def _sums(folder: Path) -> dict[str, str]:
    path = folder / SUMS_FILE
    if not path.is_file():
        raise ModelError(f"pack {folder.name}: no {SUMS_FILE} (not a pack, or written half: remove it)")
    sums = {}
    for line in path.read_text().splitlines():
        digest, _, name = line.partition("  ")
        if len(digest) != 64 or not name or "/" in name:
            raise ModelError(f"pack {folder.name}: {SUMS_FILE} is damaged")
        sums[name] = digest
    return sums


def load_pack(folder: Path) -> ModelPack:
    """Verify every file's sha256, the schema and the version, then load the pack."""
    sums = _sums(folder)
    model_file = MODEL_FILE if MODEL_FILE in sums else FINGERPRINT_FILE
    for required in (PACK_FILE, model_file):
        if required not in sums:
            raise ModelError(f"pack {folder.name}: {SUMS_FILE} does not cover {required}")
    for name, digest in sorted(sums.items()):
        path = folder / name
        if not path.is_file():
            raise ModelError(f"pack {folder.name}: {name} is missing")
        if sha256_file(path) != digest:
            raise ModelError(f"pack {folder.name}: {name} fails its sha256 check (damaged or edited)")
    try:
        meta = json.loads((folder / PACK_FILE).read_text())
        schema, _, number = str(meta["schema"]).partition("/")
        written_by = str(meta["aimusicd_version"])
        if schema != SCHEMA_NAME:
            raise ModelError(f"pack {folder.name}: {PACK_FILE} is not an aimusicd pack ({schema})")
        if int(number) > SCHEMA_VERSION or _version(written_by) > _version(__version__):
            raise ModelError(f"pack {folder.name}: written by aimusicd {written_by} ({meta['schema']}); "
                             f"this is aimusicd {__version__} ({SCHEMA}): upgrade to use it")
        if int(number) >= 2:
            model = PackModel.from_dict(json.loads((folder / MODEL_FILE).read_text()))
        else:
            model = PackModel.of_fingerprint(GeneratorFingerprint.load(folder / FINGERPRINT_FILE))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"pack {folder.name}: cannot read it ({exc})") from None
    if model.name != meta["name"] or meta["name"] != folder.name:
        raise ModelError(f"pack {folder.name}: its files name another pack ({meta['name']})")
    return ModelPack(meta["name"], folder, meta, model, sums)


def installed(root: Path) -> list[Path]:
    """Pack folders under root, by name (temporary folders of a write in progress excluded)."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def load_packs(root: Path, wanted: list[str]) -> list[ModelPack]:
    """Every installed pack whose name matches one of `wanted` (names or patterns); a pack that
    cannot be loaded is logged in one line and left out."""
    packs = []
    for folder in installed(root):
        if not any(fnmatch.fnmatchcase(folder.name, w) for w in wanted):
            continue
        try:
            packs.append(load_pack(folder))
        except ModelError as exc:
            log.warning("%s; refused, running without it", exc)
    return packs


def write_pack(root: Path, name: str, files: dict[str, bytes], force: bool) -> Path:
    """Write the pack's files and their SHA256SUMS to a temporary folder, then rename it into place
    (replacing an existing pack only with force)."""
    check_name(name)
    target = root / name
    if target.exists() and not force:
        raise UsageError(f"pack {name} exists at {target}; pass --force to replace it")
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
    try:
        for file, data in files.items():
            (tmp / file).write_bytes(data)
        sums = "".join(f"{hashlib.sha256(data).hexdigest()}  {file}\n" for file, data in sorted(files.items()))
        (tmp / SUMS_FILE).write_text(sums)
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{name}-old-", dir=root))
            target.rename(old / name)
            tmp.rename(target)
            shutil.rmtree(old)
        else:
            tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def remove_pack(root: Path, name: str) -> Path:
    target = root / check_name(name)
    if not target.is_dir():
        names = ", ".join(p.name for p in installed(root)) or "none installed"
        raise UsageError(f"no pack named {name} (installed: {names})")
    shutil.rmtree(target)
    return target
