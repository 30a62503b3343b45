"""The microbiome stream's producer: a counts table and its metadata (or a bundled cohort)
as input messages in time order (``onlinenmf produce microbiome``).

Tables are read by :func:`onlinenmf.datasets.load_table` (TSV with samples or features as
rows, BIOM JSON, BIOM HDF5 with ``h5py``; the metadata's sample id, subject and time columns
found by their usual names).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from consumers.microbiome.schema import encode_sample

__all__ = ["microbiome_messages", "read_table"]


def read_table(path: Path) -> tuple[Any, list[str], list[str]]:
    """A counts table as (CSR matrix, row ids, column ids): see
    :func:`onlinenmf.datasets.files.read_table`."""
    from onlinenmf.datasets.files import read_table as read  # the engine, only when needed

    return read(path)


def _records_from_files(args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    """The table's records; every file is read (and refused) before the first is sent."""
    from onlinenmf.datasets import TableError, load_table

    if args.metadata is None:
        raise TableError("--table needs --metadata: a TSV with the sample id, subject and "
                         "time of every sample")
    return load_table(args.table, args.metadata, subject_column=args.subject_column,
                      time_column=args.time_column,
                      sample_column=getattr(args, "sample_column", None)).records()


def _records_bundled(name: str) -> Iterator[dict[str, Any]]:
    from onlinenmf import datasets

    loaders = {"ecam": datasets.load_ecam, "artificial_gut": datasets.load_artificial_gut,
               "moving_pictures": datasets.load_moving_pictures}
    if name not in loaders:
        raise ValueError(f"unknown --dataset {name!r}: one of {', '.join(sorted(loaders))}, "
                         "or give your own with --table and --metadata")
    return loaders[name]().records()


def microbiome_messages(args: argparse.Namespace) -> Iterator[tuple[bytes, bytes]]:
    """``(key, value)`` messages of the microbiome stream the arguments describe.

    The table is read here, not when the first message is asked for: a file that cannot be
    used raises at once (:class:`onlinenmf.datasets.TableError`, a ValueError).
    """
    records = _records_from_files(args) if args.table else _records_bundled(args.dataset)
    return _encoded(records, args.limit)


def _encoded(records: Iterator[dict[str, Any]], limit: int | None
             ) -> Iterator[tuple[bytes, bytes]]:
    for i, rec in enumerate(records):
        if limit is not None and i >= limit:
            return
        yield rec["subject"].encode(), encode_sample(
            rec["subject"], rec["time"], rec["sample_id"], rec["counts"], rec.get("meta"))
