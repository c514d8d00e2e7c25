"""The dashboard of a test daemon over real HTTP (urllib): a free TCP port and plain requests."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from dataclasses import dataclass


def free_tcp_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class Reply:
    status: int
    body: str
    headers: dict[str, str]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def request(url: str, headers: dict[str, str] | None = None, data: bytes | None = None,
            follow: bool = True) -> Reply:
    opener = urllib.request.build_opener(*([] if follow else [_NoRedirect()]))
    req = urllib.request.Request(url, headers=headers or {}, data=data)
    try:
        with opener.open(req, timeout=30) as r:
            return Reply(r.status, r.read().decode("utf-8", "replace"), dict(r.headers))
    except urllib.error.HTTPError as e:
        return Reply(e.code, e.read().decode("utf-8", "replace"), dict(e.headers))


TEST_NET_ADDRESS = "198.51.100.21"      # TEST-NET-2 (RFC 5737): never routed anywhere


def add_off_loopback_address() -> str | None:
    """As root, give the loopback interface a real non-loopback address (removed again with
    remove_off_loopback_address); None where that cannot be done."""
    import os
    import shutil
    import subprocess

    ip = shutil.which("ip")
    if ip is None or os.geteuid() != 0:
        return None
    done = subprocess.run([ip, "addr", "add", f"{TEST_NET_ADDRESS}/32", "dev", "lo"], capture_output=True)
    return TEST_NET_ADDRESS if done.returncode == 0 else None


def remove_off_loopback_address(address: str) -> None:
    import shutil
    import subprocess

    subprocess.run([shutil.which("ip") or "ip", "addr", "del", f"{address}/32", "dev", "lo"], capture_output=True)
