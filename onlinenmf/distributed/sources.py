"""The partitions of a data set, read where they are computed: Dask arrays, Dask DataFrames,
table files.

:func:`partitions` turns what the user passes to :func:`onlinenmf.distributed.fit` into a
:class:`Source`: one ``dask.delayed`` per partition, each computing a :class:`Block` on a
worker (a samples x features CSR matrix, the names of its columns, the ids of its rows and
where it came from, for error messages). Nothing is read on the client: a file is opened by
the task that needs it, and read again at each pass (memory per worker is bounded by its
partitions, not by the data set).

- a Dask array (samples x features; numpy, scipy.sparse or ``sparse`` chunks): a partition
  per block of rows; features named by ``features`` (default: the column numbers); a row's id
  is its row number;
- a Dask DataFrame: a partition per partition; features are its columns (all numeric), ids
  its index;
- a list of files: a TSV/CSV or BIOM table is one partition (read by
  :func:`onlinenmf.datasets.files.read_table`: BIOM and ``#OTU ID`` tables are features as
  rows, other TSVs samples as rows), a Parquet file one partition per row group (samples as
  rows, a column per feature; the sample ids are the stored index or the one non-numeric
  column). Features are the table's columns or observation ids; files may have different
  ones (the union is taken up front by :func:`survey`).

:func:`survey` reads each partition once, on the workers, for what the client needs before
the first pass: the feature names (files only), the number of rows, and the rows that seed
the first dictionary, chosen by a hash of (seed, row id), so the same rows whatever the
partitioning or the number of workers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

#: File suffixes read as Parquet (one partition per row group); any other file is a table.
PARQUET_SUFFIXES = (".parquet", ".pq")


@dataclass
class Block:
    """One partition as a worker sees it."""

    matrix: sp.csr_matrix  # samples x features
    features: list  # the names of the columns
    ids: np.ndarray  # the ids of the rows
    origin: str  # where it came from, for messages: "counts.tsv", "rows 0-999 of the array"


@dataclass
class Source:
    """The partitions of a data set and, when known without reading them, its features."""

    partitions: list  # dask.delayed, each computing a Block
    features: list | None  # None: the union over the partitions (files), found by survey


@dataclass
class Survey:
    """What :func:`survey` learns of one partition: its features (files only), its row
    count, and its candidate rows for the first dictionary (the ones with the smallest keys)."""

    features: list | None
    count: int
    keys: np.ndarray
    sample: sp.csr_matrix
    sample_features: list


# ---------------------------------------------------------------------- sources
def partitions(data: Any, features: Sequence | None = None) -> Source:
    """The :class:`Source` of ``data``: a Dask array, a Dask DataFrame, or a list of paths.

    Raises ValueError (one line) for anything else, and a TableError for a missing file.
    """
    import dask.array as da
    import dask.dataframe as dd

    if isinstance(data, str | Path):
        data = [data]
    if isinstance(data, da.Array):
        return _from_array(data, features)
    if isinstance(data, dd.DataFrame):
        if features is not None:
            raise ValueError("features: a DataFrame's features are its columns; leave it out")
        return _from_frame(data)
    if isinstance(data, list | tuple) and data and all(isinstance(p, str | Path) for p in data):
        if features is not None:
            raise ValueError("features: a table's features are its own; leave it out")
        return _from_files([Path(p) for p in data])
    raise ValueError(f"data must be a Dask array, a Dask DataFrame or a list of table files, "
                     f"got {type(data).__name__}")


def _from_array(X, features: Sequence | None) -> Source:
    from dask import delayed

    if X.ndim != 2:
        raise ValueError(f"the array must be 2-D (samples x features), got {X.ndim}-D")
    if any(np.isnan(c) for c in X.chunks[0]):
        X = X.compute_chunk_sizes()  # row offsets name the rows
    names = list(range(X.shape[1])) if features is None else list(features)
    if len(names) != X.shape[1]:
        raise ValueError(f"the array has {X.shape[1]} columns but {len(names)} feature names "
                         "were given")
    X = X.rechunk({1: -1})  # a partition holds whole rows
    shared = delayed(names, traverse=False)  # in the graph once, not once per partition
    offsets = np.concatenate([[0], np.cumsum(X.chunks[0])]).astype(np.int64)
    blocks = X.to_delayed()[:, 0]
    return Source([delayed(_array_block)(chunk, shared, int(start), int(stop))
                   for chunk, start, stop in zip(blocks, offsets[:-1], offsets[1:])], names)


def _from_frame(frame) -> Source:
    from dask import delayed

    words = [str(c) for c, kind in frame.dtypes.items()
             if not pd.api.types.is_numeric_dtype(kind)]
    if words:
        raise ValueError(f"the DataFrame's columns are its features and must be numeric: "
                         f"{', '.join(words[:3])}{', ...' if len(words) > 3 else ''} are not "
                         "(move ids and metadata to the index, or drop them)")
    names = list(frame.columns)
    shared = delayed(names, traverse=False)
    return Source([delayed(_frame_block)(part, shared, n)
                   for n, part in enumerate(frame.to_delayed())], names)


def _from_files(paths: list[Path]) -> Source:
    from dask import delayed

    from onlinenmf.datasets.files import TableError

    parts = []
    for path in paths:
        if not path.is_file():
            raise TableError(f"table {path}: no such file")
        if path.suffix.lower() in PARQUET_SUFFIXES:
            parts.extend(delayed(_parquet_block)(str(path), group)
                         for group in range(_row_groups(path)))
        else:
            parts.append(delayed(_table_block)(str(path)))
    return Source(parts, None)


def _row_groups(path: Path) -> int:
    """The row groups of a Parquet file, from its footer (no data is read)."""
    import pyarrow.parquet as pq

    from onlinenmf.datasets.files import TableError

    try:
        return pq.ParquetFile(path).metadata.num_row_groups
    except Exception as err:  # pyarrow raises several kinds for a file that is not Parquet
        raise TableError(f"table {path}: not a readable Parquet file ({err})") from None


# ---------------------------------------------------------------------- blocks (on workers)
def as_csr(chunk: Any) -> sp.csr_matrix:
    """A chunk (numpy, scipy.sparse, pydata ``sparse``) as a CSR matrix: float32 or float64
    as it comes (float32 counts are exact, and a float64 copy of a persisted partition
    would live as long as its task: the fit converts a few rows at a time), else float64."""
    if sp.issparse(chunk):
        dtype = chunk.dtype if chunk.dtype in (np.float32, np.float64) else np.float64
        return sp.csr_matrix(chunk, dtype=dtype)
    if hasattr(chunk, "tocsr"):  # pydata sparse
        return sp.csr_matrix(chunk.tocsr(), dtype=np.float64)
    return sp.csr_matrix(np.asarray(chunk, dtype=np.float64))


def _array_block(chunk: Any, names: list, start: int, stop: int) -> Block:
    return Block(as_csr(chunk), names, np.arange(start, stop),
                 f"rows {start}-{stop - 1} of the array")


def _frame_block(frame: pd.DataFrame, names: list, n: int) -> Block:
    return Block(sp.csr_matrix(frame.to_numpy(dtype=np.float64)), names,
                 np.asarray(frame.index), f"partition {n} of the DataFrame")


def _table_block(path: str) -> Block:
    from onlinenmf.datasets.files import read_table

    matrix, samples, features = read_table(path)
    return Block(sp.csr_matrix(matrix, dtype=np.float64), list(features), np.asarray(samples),
                 path)


def _parquet_block(path: str, group: int) -> Block:
    import pyarrow.parquet as pq

    from onlinenmf.datasets.files import TableError

    frame = pq.ParquetFile(path).read_row_group(group).to_pandas()
    words = [c for c, kind in frame.dtypes.items() if not pd.api.types.is_numeric_dtype(kind)]
    if len(words) > 1:
        raise TableError(f"table {path}: columns {', '.join(map(str, words[:3]))} are not "
                         "numeric; a Parquet table holds one column per feature, plus at most "
                         "one column of sample ids")
    if words:
        frame = frame.set_index(words[0])
    return Block(sp.csr_matrix(frame.to_numpy(dtype=np.float64)),
                 [str(c) for c in frame.columns], np.asarray(frame.index),
                 f"{path} (row group {group})")


# ---------------------------------------------------------------------- the survey
def row_keys(ids: np.ndarray, seed: int) -> np.ndarray:
    """A 64-bit key per row id, fixed by (seed, id): the rows with the smallest keys seed the
    first dictionary, whichever partition holds them."""
    salt = hashlib.blake2b(str(seed).encode(), digest_size=8).hexdigest()  # 16 characters
    return pd.util.hash_array(np.asarray(ids).astype(str).astype(object), hash_key=salt)


def survey(block: Block, seed: int, n_sample: int, names: bool) -> Survey:
    """A partition's features (when ``names``), row count and its ``n_sample`` rows with the
    smallest keys. Its values are checked here, before any pass (a ValueError naming it)."""
    from onlinenmf.validation import parse_matrix

    try:
        parse_matrix(block.matrix, block.features)
    except ValueError as err:
        raise ValueError(f"{block.origin}: {err}") from None
    keys = row_keys(block.ids, seed)
    chosen = np.argsort(keys, kind="stable")[:n_sample]
    return Survey(list(block.features) if names else None, block.matrix.shape[0], keys[chosen],
                  block.matrix[chosen], list(block.features))


def first_rows(surveys: list[Survey], features: list, n_sample: int) -> sp.csr_matrix:
    """The ``n_sample`` rows with the smallest keys over all partitions, as a CSR matrix over
    ``features`` (the union), in the order of their keys."""
    position = {name: j for j, name in enumerate(features)}
    rows, keys = [], []
    for s in surveys:
        columns = np.array([position[name] for name in s.sample_features], dtype=np.int64)
        sample = s.sample.tocsr()
        rows.append(sp.csr_matrix((sample.data, columns[sample.indices], sample.indptr),
                                  shape=(sample.shape[0], len(features))))
        keys.append(s.keys)
    if not rows:
        return sp.csr_matrix((0, len(features)))
    order = np.argsort(np.concatenate(keys), kind="stable")[:n_sample]
    return sp.vstack(rows).tocsr()[order]
