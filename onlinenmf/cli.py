"""The ``onlinenmf`` command: a thin dispatcher over subcommand modules.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; the module's docstring first line is its help. Kafka commands live
in ``consumers`` (the engine never imports them); they are imported only here.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# Before numpy is imported: one BLAS thread. The engine's matrices are small and OpenBLAS
# threads spin-wait on a busy machine (10x slower measured on a loaded 2-core VM).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

SUBCOMMANDS: dict[str, str] = {
    "demo": "onlinenmf.demo",
    "broker": "consumers.broker",
    "produce": "consumers.produce",
    "consume": "consumers.consume",
    "inspect": "consumers.inspect",
    "report": "onlinenmf.report",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="onlinenmf",
        description="Streaming non-negative matrix factorization: run the demo, the embedded "
        "broker, replay a table into Kafka, consume it with the engine, inspect a checkpoint, "
        "write the HTML report.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module_name in SUBCOMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:  # a subcommand not built yet in this checkout
            if err.name != module_name:
                raise
            continue
        doc = (module.__doc__ or name).strip().splitlines()[0]
        command = sub.add_parser(name, help=doc, description=module.__doc__)
        module.add_arguments(command)
        command.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
