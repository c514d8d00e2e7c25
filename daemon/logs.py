"""Log set-up: one record is one line, whatever a client puts in a path or an OSC address.

Control characters in a message (a newline in an OSC path could otherwise forge a whole log line)
are written as escapes: \\n, \\r, \\t, \\xNN, \\u2028. Tracebacks keep their lines.
"""

from __future__ import annotations

import logging
import sys

_ESCAPES = {**{c: f"\\x{c:02x}" for c in range(0x20)}, 0x7F: "\\x7f", 0x85: "\\x85",
            0x2028: "\\u2028", 0x2029: "\\u2029",
            ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"}

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


def one_line(text: str) -> str:
    return text.translate(_ESCAPES)


class OneLineFormatter(logging.Formatter):
    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = one_line(record.message)
        return super().formatMessage(record)


def setup_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLineFormatter(FORMAT, DATE_FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
