"""The text stream's producer: a documents table as input messages in time order
(``onlinenmf produce text --table docs.tsv``)."""

from __future__ import annotations

import argparse
import csv
from collections.abc import Iterator

from consumers.text.schema import encode_document

__all__ = ["text_messages", "TIME_COLUMNS"]

#: Accepted names of the time column, in order of preference.
TIME_COLUMNS = ("time", "date")


def text_messages(args: argparse.Namespace) -> Iterator[tuple[bytes, bytes]]:
    """``(key, value)`` messages of ``--table``: TSV (``.gz``/``.xz`` read too) with columns
    ``doc_id``, ``text`` and ``time`` or ``date`` (numbers of days or ISO dates); any other
    column goes into ``meta``. Sorted by time (stably: ties keep the file's order)."""
    import pandas as pd

    if not args.table:
        raise ValueError("produce text needs --table: a TSV with columns doc_id, text and "
                         "time (or date)")
    frame = pd.read_csv(args.table, sep="\t", quoting=csv.QUOTE_NONE, dtype=str,
                        keep_default_na=False)
    time = next((c for c in TIME_COLUMNS if c in frame.columns), None)
    missing = {"doc_id", "text"} - set(frame.columns)
    if missing or time is None:
        needed = sorted(missing) + ([] if time else ["time or date"])
        raise ValueError(f"{args.table}: no column(s) {needed}; it has {list(frame.columns)}")
    times = pd.to_numeric(frame[time], errors="coerce")
    if times.notna().all():  # numbers of days are sent as numbers, dates as given
        frame[time] = times
    frame = frame.sort_values(time, kind="stable")
    extra = [c for c in frame.columns if c not in ("doc_id", "text", time)]
    return _messages(frame, time, extra, args.limit)


def _messages(frame, time: str, extra: list[str],
              limit: int | None) -> Iterator[tuple[bytes, bytes]]:
    rows = zip(frame["doc_id"], frame[time], frame["text"],
               *(frame[c] for c in extra))
    for i, (doc_id, when, text, *rest) in enumerate(rows):
        if limit is not None and i >= limit:
            return
        meta = dict(zip(extra, rest)) if extra else None
        when = when if isinstance(when, str) else float(when)
        yield str(doc_id).encode(), encode_document(str(doc_id), when, text, meta)
