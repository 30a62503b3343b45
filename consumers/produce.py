"""Replay a table into a Kafka topic, in time order, with a progress bar.

``onlinenmf produce microbiome --bootstrap-servers H:P --topic T [--table TSV|BIOM
--metadata TSV]`` sends one message per sample (key = subject id, value = the input
format of :mod:`consumers.messages`). Without ``--table`` it replays a bundled cohort
(``--dataset``, default ECAM). A table is either a TSV (samples as rows or, BIOM-style
with a ``#OTU ID`` header, features as rows; orientation is found from the metadata's
sample ids), a BIOM 1.0 JSON file, or a BIOM 2.x HDF5 file (needs ``h5py``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from consumers.messages import encode_sample
from consumers.options import (
    add_kafka_options,
    add_option,
    parse_kafka_settings,
    setup_logging,
)

__all__ = ["add_arguments", "run", "microbiome_messages", "read_table", "STREAMS"]

_SUBJECT_COLUMNS = ("subject", "subject_id", "host_subject_id", "host", "Subject")
_TIME_COLUMNS = ("time", "day_of_life", "days_since_experiment_start",
                 "DaysSinceExperimentStart", "timepoint", "collection_timestamp")
_SAMPLE_COLUMNS = ("sample_id", "#SampleID", "sample_name", "SampleID", "#Sample ID")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``onlinenmf produce``."""
    parser.add_argument("kind", choices=sorted(STREAMS), help="which stream to produce")
    add_kafka_options(parser)
    add_option(parser, "--topic", default=None,
               help="topic to write to (default: microbiome.samples, or reco.ratings)")
    add_option(parser, "--dataset", default="ecam",
               help="bundled cohort when no --table: ecam, artificial_gut, moving_pictures")
    add_option(parser, "--table", type=Path, help="counts table: TSV, BIOM JSON or BIOM HDF5")
    add_option(parser, "--metadata", type=Path, help="sample metadata TSV (with --table)")
    add_option(parser, "--subject-column", help="metadata column of the subject id")
    add_option(parser, "--time-column", help="metadata column of the time (days or ISO)")
    add_option(parser, "--limit", type=int, help="send at most this many samples")
    add_option(parser, "--rate", type=float, help="at most this many messages per second")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_option(parser, "--log-level", default="WARNING", help="logging level")


# ---------------------------------------------------------------------------- tables
def _first(columns: list[str], wanted: str | None, candidates: tuple[str, ...], what: str) -> str:
    if wanted:
        if wanted not in columns:
            raise ValueError(f"metadata has no column {wanted!r} ({what}); it has {columns}")
        return wanted
    for name in candidates:
        if name in columns:
            return name
    raise ValueError(f"cannot tell which metadata column is the {what}: none of "
                     f"{list(candidates)} in {columns}; name it with --{what}-column")


def read_table(path: Path) -> tuple[sp.csr_matrix, list[str], list[str]]:
    """Read a counts table; return (samples x features CSR, sample ids, feature ids).

    TSVs are returned with rows as in the file: :func:`microbiome_messages` transposes
    when the sample ids turn out to be the columns.
    """
    head = path.read_bytes()[:8]
    if head.startswith(b"\x89HDF"):
        return _read_biom_hdf5(path)
    if head.lstrip().startswith(b"{"):
        return _read_biom_json(path)
    with open(path, errors="replace") as fh:
        first, second = fh.readline(), fh.readline()
    skip = 1 if first.startswith("# Constructed") else 0  # `biom convert --to-tsv` output
    frame = pd.read_csv(path, sep="\t", skiprows=skip, index_col=0, dtype={0: str})
    frame.index = frame.index.astype(str)
    values = frame.to_numpy(dtype=np.float64)
    if (second if skip else first).startswith("#OTU"):  # features as rows
        return sp.csr_matrix(values.T), [str(c) for c in frame.columns], list(frame.index)
    return sp.csr_matrix(values), list(frame.index), [str(c) for c in frame.columns]


def _read_biom_json(path: Path) -> tuple[sp.csr_matrix, list[str], list[str]]:
    doc = json.loads(path.read_text())
    rows, cols = doc["shape"]
    if doc.get("matrix_type") == "sparse":
        data = np.array(doc["data"], dtype=np.float64).reshape(-1, 3)
        m = sp.coo_matrix((data[:, 2], (data[:, 0].astype(int), data[:, 1].astype(int))),
                          shape=(rows, cols))
    else:
        m = sp.coo_matrix(np.array(doc["data"], dtype=np.float64))
    features = [r["id"] for r in doc["rows"]]
    samples = [c["id"] for c in doc["columns"]]
    return m.T.tocsr(), samples, features


def _read_biom_hdf5(path: Path) -> tuple[sp.csr_matrix, list[str], list[str]]:
    try:
        import h5py
    except ImportError:
        raise SystemExit("reading BIOM HDF5 needs h5py (pip install h5py), or convert the "
                         "table: biom convert -i table.biom -o table.tsv --to-tsv") from None
    with h5py.File(path, "r") as f:
        samples = [s.decode() if isinstance(s, bytes) else str(s) for s in f["sample/ids"][:]]
        features = [s.decode() if isinstance(s, bytes) else str(s)
                    for s in f["observation/ids"][:]]
        g = f["sample/matrix"]
        m = sp.csr_matrix((g["data"][:], g["indices"][:], g["indptr"][:]),
                          shape=(len(samples), len(features)))
    return m, samples, features


def _records_from_files(args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    if args.metadata is None:
        raise SystemExit("--table needs --metadata (subject and time of every sample)")
    counts, rows, columns = read_table(args.table)
    meta = pd.read_csv(args.metadata, sep="\t", dtype=str, keep_default_na=False)
    id_col = _first(list(meta.columns), None, _SAMPLE_COLUMNS + (meta.columns[0],), "sample")
    subject_col = _first(list(meta.columns), args.subject_column, _SUBJECT_COLUMNS, "subject")
    time_col = _first(list(meta.columns), args.time_column, _TIME_COLUMNS, "time")
    ids = set(meta[id_col])
    if not ids & set(rows) and ids & set(columns):  # the TSV had samples as columns
        counts, rows, columns = counts.T.tocsr(), columns, rows
    position = {s: i for i, s in enumerate(rows)}
    meta = meta[meta[id_col].isin(position)].copy()
    if meta.empty:
        raise SystemExit("no sample of the metadata appears in the table")
    numeric = pd.to_numeric(meta[time_col], errors="coerce")
    meta["_t"] = numeric if numeric.notna().all() else meta[time_col]
    meta = meta.sort_values(["_t", subject_col], kind="stable")
    others = [c for c in meta.columns if c not in (id_col, subject_col, time_col, "_t")]
    for row in meta.to_dict("records"):
        i = position[row[id_col]]
        lo, hi = counts.indptr[i], counts.indptr[i + 1]
        sample = {columns[c]: float(v) for c, v in zip(counts.indices[lo:hi],
                                                        counts.data[lo:hi]) if v}
        t = row["_t"]
        yield {"subject": str(row[subject_col]),
               "time": float(t) if not isinstance(t, str) else t,
               "sample_id": str(row[id_col]), "counts": sample,
               "meta": {c: row[c] for c in others}}


def _records_bundled(name: str) -> Iterator[dict[str, Any]]:
    from onlinenmf import datasets

    loaders = {"ecam": datasets.load_ecam, "artificial_gut": datasets.load_artificial_gut,
               "moving_pictures": datasets.load_moving_pictures}
    if name not in loaders:
        raise SystemExit(f"unknown dataset {name!r}: one of {sorted(loaders)}")
    return loaders[name]().records()


def microbiome_messages(args: argparse.Namespace) -> Iterator[tuple[bytes, bytes]]:
    """``(key, value)`` messages of the microbiome stream the arguments describe."""
    records = _records_from_files(args) if args.table else _records_bundled(args.dataset)
    for i, rec in enumerate(records):
        if args.limit is not None and i >= args.limit:
            return
        yield rec["subject"].encode(), encode_sample(
            rec["subject"], rec["time"], rec["sample_id"], rec["counts"], rec.get("meta"))


def reco_messages(args: argparse.Namespace) -> Iterator[tuple[bytes, bytes]]:
    """``(key, value)`` rating events in time order (see :func:`consumers.reco.reco_messages`)."""
    from consumers.reco import reco_messages as messages

    return messages(args)


#: stream kind -> message generator
STREAMS: dict[str, Callable[[argparse.Namespace], Iterator[tuple[bytes, bytes]]]] = {
    "microbiome": microbiome_messages,
    "reco": reco_messages,
}
#: stream kind -> default topic
TOPICS = {"microbiome": "microbiome.samples", "reco": "reco.ratings"}


def run(args: argparse.Namespace) -> int:
    """Send the stream, wait for every acknowledgement, report the count."""
    from kafka import KafkaProducer
    from tqdm import tqdm

    setup_logging(args.log_level)
    args.topic = args.topic or TOPICS[args.kind]
    settings = parse_kafka_settings(args.kafka_config)
    producer = KafkaProducer(**{
        "bootstrap_servers": args.bootstrap_servers, "acks": "all", "linger_ms": 5,
        "batch_size": 256 * 1024, "max_request_size": 8 * 1024 * 1024, **settings,
    })
    failures: list[Exception] = []
    sent = 0
    start = time.monotonic()
    try:
        bar = tqdm(STREAMS[args.kind](args), unit="msg", disable=args.no_progress,
                   desc=f"-> {args.topic}", file=sys.stderr)
        for key, value in bar:
            future = producer.send(args.topic, key=key, value=value)
            future.add_errback(failures.append)
            sent += 1
            if args.rate:
                ahead = sent / args.rate - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(ahead)
        producer.flush(timeout=60)
    except (ValueError, KeyError, OSError) as err:  # the table or metadata is unusable
        print(f"onlinenmf produce: {err}", file=sys.stderr)
        return 2
    finally:
        producer.close(timeout=10)
    if failures:
        print(f"onlinenmf produce: {len(failures)} of {sent} messages failed: {failures[0]}",
              file=sys.stderr)
        return 1
    print(f"sent {sent} messages to {args.topic} in {time.monotonic() - start:.1f}s",
          file=sys.stderr)
    return 0
