"""Demo: the ECAM infant cohort streamed through Kafka (embedded broker) into the consumer.

``make demo`` / ``onlinenmf demo [--out FOLDER]``. The work is done by
:mod:`consumers.demo` (the Kafka side lives in ``consumers``; the engine package imports it
only here, when the command runs): start the broker, replay ECAM, consume until drained,
print the communities with their top taxa and a few infants' trajectories, leave the
outputs in FOLDER (default ``demo-output``), stop the broker.
"""

from __future__ import annotations

import argparse

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``onlinenmf demo``."""
    from consumers.demo import add_arguments as add

    add(parser)


def run(args: argparse.Namespace) -> int:
    """Run the Kafka demo."""
    from consumers.demo import run as run_demo

    return run_demo(args)
