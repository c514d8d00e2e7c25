#!/usr/bin/env python3
"""Build aimusicd.tosc (TouchOSC mk2: zlib-compressed XML) from aimusicd_layout.xml.

    python3 build_tosc.py            # write aimusicd.tosc next to this file
    python3 build_tosc.py --check    # exit 1 if aimusicd.tosc is missing or out of date
    python3 build_tosc.py --dump FILE.tosc   # print the XML inside any .tosc file

The source is indented and commented for reading; the .tosc gets what the TouchOSC editor itself
writes: no comments and no whitespace between tags (Lua scripts in CDATA are kept byte for byte).
Standard library only.
"""

from __future__ import annotations

import re
import sys
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "aimusicd_layout.xml"
TARGET = HERE / "aimusicd.tosc"
CDATA = re.compile(r"(<!\[CDATA\[.*?\]\]>)", re.S)


def compact(xml: str) -> str:
    """Drop comments and the whitespace around tags, outside CDATA sections."""
    parts = CDATA.split(xml)
    for i in range(0, len(parts), 2):           # even indices: outside CDATA
        text = re.sub(r"<!--.*?-->", "", parts[i], flags=re.S)
        text = re.sub(r">\s+", ">", text)
        parts[i] = re.sub(r"\s+<", "<", text)
    return "".join(parts).strip()


def build(source: Path = SOURCE) -> bytes:
    xml = compact(source.read_text(encoding="utf-8"))
    root = ET.fromstring(xml.encode("utf-8"))        # refuse to build a layout that does not parse
    if root.tag != "lexml" or root.find("node") is None:
        raise SystemExit(f"{source}: expected <lexml> with a root <node>")
    return zlib.compress(xml.encode("utf-8"), 9)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--dump"] and len(argv) == 2:
        sys.stdout.write(zlib.decompress(Path(argv[1]).read_bytes()).decode("utf-8") + "\n")
        return 0
    data = build()
    if argv == ["--check"]:
        if not TARGET.exists() or TARGET.read_bytes() != data:
            print(f"{TARGET.name} is out of date: run python3 build_tosc.py", file=sys.stderr)
            return 1
        return 0
    if argv:
        print(__doc__, file=sys.stderr)
        return 2
    TARGET.write_bytes(data)
    print(f"wrote {TARGET} ({len(data)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
