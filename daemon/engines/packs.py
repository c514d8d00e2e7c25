"""Model packs: what `aimusicd learn` fitted for one generator, stored under the user's data dir.

A pack is a folder `<data dir>/packs/<name>/` holding
  pack.json         schema, name, date, aimusicd version, threshold, metrics, examples;
  fingerprint.json  the generator's fingerprint model (a GeneratorFingerprint: JSON, no pickle);
  MODEL_CARD.md     the same for people;
  SHA256SUMS        the sha256 of every other file (`sha256sum -c SHA256SUMS` checks it too).
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
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..config.paths import data_dir
from ..errors import ModelError, UsageError
from ..hashing import sha256_file
from .fingerprint import GeneratorFingerprint

SCHEMA_NAME = "aimusicd.pack"
SCHEMA_VERSION = 1
SCHEMA = f"{SCHEMA_NAME}/{SCHEMA_VERSION}"
PACK_FILE, FINGERPRINT_FILE, CARD_FILE, SUMS_FILE = "pack.json", "fingerprint.json", "MODEL_CARD.md", "SHA256SUMS"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelPack:
    name: str
    path: Path
    meta: dict
    fingerprint: GeneratorFingerprint
    sha256: dict[str, str]      # file name -> sha256, as verified

    @property
    def threshold(self) -> float:
        return self.fingerprint.threshold


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
    for required in (PACK_FILE, FINGERPRINT_FILE):
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
        fingerprint = GeneratorFingerprint.load(folder / FINGERPRINT_FILE)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"pack {folder.name}: cannot read {PACK_FILE} ({exc})") from None
    if fingerprint.name != meta["name"] or meta["name"] != folder.name:
        raise ModelError(f"pack {folder.name}: its files name another pack ({meta['name']})")
    return ModelPack(meta["name"], folder, meta, fingerprint, sums)


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
