"""Every error aimusicd raises on purpose derives from `AimusicError`.

Callers at the edges (CLI, watcher, OSC server) catch `AimusicError` and print its one-line message;
anything else is a bug and keeps its traceback. The CLI exits with the error's `exit_code`: 2 when
the command was given something it cannot use (arguments, preset, configuration), 1 for a failure
while it ran (a model, a file, the state database, a device).
"""

from __future__ import annotations

from pathlib import Path


EXIT_FAILURE, EXIT_USAGE = 1, 2


class AimusicError(Exception):
    """Root of aimusicd's own errors; `str(err)` is a complete one-line message for the user."""

    exit_code = EXIT_FAILURE


class UsageError(AimusicError):
    """A command was given arguments or input it cannot use: the message says what to give instead."""

    exit_code = EXIT_USAGE


class ConfigError(AimusicError):
    """A config or preset file is unreadable, or a key is unknown or has a bad value."""

    exit_code = EXIT_USAGE


class AudioError(AimusicError):
    """An input file cannot be analysed: the message names the file and the reason."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class ModelError(AimusicError):
    """A model is missing, fails its checksum, or cannot be loaded."""


class PathNotAllowedError(AimusicError):
    """A path given over the network resolves outside the configured allowed roots."""


class QueueFullError(AimusicError):
    """The job queue holds its configured maximum; the request was not accepted."""


class DeviceError(AimusicError):
    """An audio input device cannot be found or opened."""


class StoreError(AimusicError):
    """The state database (queue and history) cannot be read or written: full disk, read-only."""


class BatchError(AimusicError):
    """A batch cannot run: Ray missing or unreachable, the cluster lacks what the run asks for."""
