"""The rating stream's producer: a ratings table (or a bundled stream) as input messages in
time order (``onlinenmf produce reco``)."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from consumers.reco.schema import encode_rating

__all__ = ["reco_messages"]


def reco_messages(args: argparse.Namespace) -> Iterator[tuple[bytes, bytes]]:
    """``(key, value)`` messages of a ratings table in time order: ``--table`` (TSV with
    columns user, item, value and time or timestamp; .gz read too) or a bundled stream
    (``--dataset movietweetings`` or ``online_retail``)."""
    import pandas as pd

    if args.table:
        frame = pd.read_csv(args.table, sep="\t", dtype={"user": str, "item": str})
        if "time" not in frame.columns and "timestamp" in frame.columns:
            frame = frame.rename(columns={"timestamp": "time"})
        missing = {"user", "item", "value", "time"} - set(frame.columns)
        if missing:
            raise SystemExit(f"{args.table}: no column(s) {sorted(missing)}; it has "
                             f"{list(frame.columns)}")
        frame = frame.sort_values("time", kind="stable")
    else:
        from onlinenmf import datasets

        name = "movietweetings" if args.dataset in (None, "ecam") else args.dataset
        loaders = {"movietweetings": datasets.load_movietweetings,
                   "online_retail": datasets.load_online_retail}
        if name not in loaders:
            raise SystemExit(f"unknown ratings dataset {name!r}: one of {sorted(loaders)}")
        frame = loaders[name]()
    columns = [frame[c].tolist() for c in ("user", "item", "value", "time")]
    for i, (user, item, value, time) in enumerate(zip(*columns)):
        if args.limit is not None and i >= args.limit:
            return
        yield str(user).encode(), encode_rating(user, item, float(value), time)
