"""Run the benchmarks: ``python -m benchmarks [name ...] [--option ...]``.

Names pick the bench_*.py modules whose name contains one of them (default: all). Options
after the names go to the one benchmark chosen (``python -m benchmarks reco --movielens
PATH``); a benchmark that takes none, or options with several benchmarks, is an error.
"""

from __future__ import annotations

import importlib
import inspect
import itertools
import pkgutil
import sys
import time

import benchmarks


def main(argv: list[str]) -> int:
    names = sorted(
        info.name for info in pkgutil.iter_modules(benchmarks.__path__)
        if info.name.startswith("bench_")
    )
    wanted = list(itertools.takewhile(lambda a: not a.startswith("-"), argv))
    options = argv[len(wanted):]
    chosen = [n for n in names if not wanted or any(a in n for a in wanted)]
    modules = [importlib.import_module(f"benchmarks.{name}") for name in chosen]
    if options and (len(modules) != 1 or not inspect.signature(modules[0].main).parameters):
        print(f"python -m benchmarks: options {' '.join(options)} go to one benchmark that "
              f"takes options; chosen: {', '.join(chosen) or 'none'}", file=sys.stderr)
        return 2
    for name, module in zip(chosen, modules):
        print(f"\n=== {name} ===", flush=True)
        start = time.perf_counter()
        status = module.main(options) if options else module.main()
        if status:
            return int(status)
        print(f"({name}: {time.perf_counter() - start:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
