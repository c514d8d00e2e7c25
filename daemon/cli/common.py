"""Arguments and set-up shared by several subcommands."""

from __future__ import annotations

import logging

from ..config import Config


def add_preset_argument(parser) -> None:
    parser.add_argument(
        "--preset", "-p", metavar="NAME|PATH",
        help="preset name (see `aimusicd config list`) or TOML file merged over the defaults",
    )


def apply_threads(cfg: Config) -> None:
    if cfg.engines.threads:
        import torch  # here, not at the top: light commands (send, status) must start fast

        torch.set_num_threads(cfg.engines.threads)


def set_log_level(cfg: Config) -> None:
    logging.getLogger().setLevel(cfg.daemon.log_level.upper())
    logging.getLogger("watchdog").setLevel(logging.WARNING)   # its debug lines are per inotify event
