"""`aimusicd` command line: one module per subcommand, each with `add_parser` and `run`."""

from __future__ import annotations

import argparse
import logging
import sys

from .. import __version__
from ..errors import AimusicError
from ..logs import setup_logging
from . import (batch, calibrate, config_cmd, devices, eval_cmd, history, learn, models, report_cmd, run, scan, send,
               status, train)

COMMANDS = (scan, batch, report_cmd, run, send, status, history, devices, models, config_cmd, train, eval_cmd,
            learn, calibrate)

EXIT_OK = 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aimusicd",
        description="Flag AI-generated music in DAW exports, over OSC and on live input.",
    )
    parser.add_argument("--version", action="version", version=f"aimusicd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(logging.INFO)
    try:
        return int(args.func(args) or EXIT_OK)
    except AimusicError as exc:
        print(f"aimusicd: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
