"""`aimusicd batch`: the analyser over whole folders, list files and object stores, in this
process or as a Ray Data pipeline, with one result row per file and resumable by content hash."""

from .runner import BatchOptions, BatchResult, run_batch

__all__ = ["BatchOptions", "BatchResult", "run_batch"]
