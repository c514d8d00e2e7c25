"""Helpers for the test suite: real audio fixtures, tiny models, a daemon process and clients."""
