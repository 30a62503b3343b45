"""The rating stream's producer: a ratings table (or a bundled stream) as input messages in
time order (``onlinenmf produce reco``)."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from consumers.reco.schema import encode_rating

__all__ = ["reco_messages", "read_ratings", "COLUMNS"]


#: the columns of a ratings table (``timestamp`` is read as ``time``)
COLUMNS = ("user", "item", "value", "time")


def reco_messages(args: argparse.Namespace) -> Iterator[tuple[bytes, bytes]]:
    """``(key, value)`` messages of a ratings table in time order: ``--table`` (TSV with
    columns user, item, value and time or timestamp; .gz read too) or a bundled stream
    (``--dataset movietweetings`` or ``online_retail``).

    The table is read here, not when the first message is asked for: a file that cannot be
    used raises at once (:class:`onlinenmf.datasets.TableError`, a ValueError, one line).
    """
    frame = read_ratings(args.table) if args.table else _bundled(args.dataset)
    return _encoded(frame, args.limit)


def read_ratings(path: Path) -> Any:
    """A ratings table as a DataFrame with the :data:`COLUMNS`, sorted by time; anything
    that makes it unusable is a one-line TableError naming the file and the fix."""
    import pandas as pd

    from onlinenmf.datasets import TableError

    path = Path(path)
    if not path.is_file():
        raise TableError(f"ratings table {path}: " + ("is a directory, not a file"
                                                      if path.is_dir() else "no such file"))
    try:
        frame = pd.read_csv(path, sep="\t", dtype={"user": str, "item": str})
        if len(frame.columns) == 1 and "," in str(frame.columns[0]):  # comma-separated
            frame = pd.read_csv(path, sep=",", dtype={"user": str, "item": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError,
            ValueError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise TableError(f"ratings table {path}: not a readable tab-separated table ({first})"
                         "; write a header line user, item, value, time and one rating per "
                         "line") from None
    if "time" not in frame.columns and "timestamp" in frame.columns:
        frame = frame.rename(columns={"timestamp": "time"})
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise TableError(f"ratings table {path}: no column {', '.join(missing)}; it has "
                         f"{', '.join(map(str, frame.columns))}, and needs user, item, value "
                         "and time (or timestamp)")
    values = pd.to_numeric(frame["value"], errors="coerce")
    bad = (values.isna() | frame["time"].isna() | frame["user"].isna()
           | frame["item"].isna()).to_numpy()
    if bad.any():
        row = int(bad.argmax())
        raise TableError(f"ratings table {path}: line {row + 2} has no number as value or "
                         f"an empty user, item or time ({frame.iloc[row].to_dict()}); fix or "
                         "remove it")
    frame = frame.assign(value=values)
    return frame.sort_values("time", kind="stable")


def _bundled(name: str | None) -> Any:
    from onlinenmf import datasets

    name = "movietweetings" if name in (None, "ecam") else name
    loaders = {"movietweetings": datasets.load_movietweetings,
               "online_retail": datasets.load_online_retail}
    if name not in loaders:
        raise ValueError(f"unknown ratings --dataset {name!r}: one of "
                         f"{', '.join(sorted(loaders))}, or give your own with --table")
    return loaders[name]()


def _encoded(frame: Any, limit: int | None) -> Iterator[tuple[bytes, bytes]]:
    columns = [frame[c].tolist() for c in COLUMNS]
    for i, (user, item, value, time) in enumerate(zip(*columns)):
        if limit is not None and i >= limit:
            return
        yield str(user).encode(), encode_rating(user, item, float(value), time)
