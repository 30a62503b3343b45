"""Compile the engine's kernels into numba's cache, ahead of the first sample.

A process that finds a kernel missing from the cache compiles it: its first record comes
about 15 s later and it keeps some 170 MB more memory (benchmarks/output/start.md). Run
this once after installing (``make`` does; so does the Docker image's build) and every
later process, each consumer of a group included, loads the compiled kernels instead.
The cache is numba's: ``NUMBA_CACHE_DIR`` when it is set (give this command and the
consumers the same one), else ``__pycache__`` beside the installed package when that is
writable, else numba's directory in the user's cache.
"""

from __future__ import annotations

import argparse

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``onlinenmf compile`` takes no options."""


def run(args: argparse.Namespace) -> int:
    from onlinenmf.compiled import compile_kernels

    print(compile_kernels())
    return 0
