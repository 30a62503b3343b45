"""Feature names -> rows of W: samples and matrices as dictionary rows, and the initial row of
a feature seen for the first time.

Features are keyed by name, so a taxon first seen on day 300 just appears. A new feature's row
depends only on (seed, name) and on the columns' mean entry before the sample, never on the
order of the sample's keys: new names are added in a canonical order (by type, then value).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable, Mapping, Sequence

import numpy as np
import scipy.sparse as sp

from onlinenmf.validation import check_feature_name, parse_matrix, parse_sample

#: Called with the validated names a learning call meets for the first time.
OnNew = Callable[[Sequence], None]


def initial_rows(seed: int, names: Sequence, colsum: np.ndarray, m: int) -> np.ndarray:
    """Initial rows for new features: U(0.5, 1.5) from (seed, name), times the mean entry of
    the columns (``colsum / m``; 1 before any feature)."""
    k = colsum.size
    level = colsum / m if m else np.ones(k)
    level = np.where(level > 0, level, 1.0 / max(m, 1))
    rows = np.empty((len(names), k))
    for i, name in enumerate(names):
        key = f"{seed}|{type(name).__name__}|{name}".encode()
        entropy = int.from_bytes(hashlib.blake2b(key, digest_size=16).digest(), "little")
        rows[i] = np.random.default_rng(entropy).uniform(0.5, 1.5, k)
    return rows * level


class FeatureIndex:
    """The row of W of every feature name, in order of first appearance.

    >>> index = FeatureIndex()
    >>> index.add(index.new_names(["b", "a", "b"]))
    >>> index.names, index.index
    (['a', 'b'], {'a': 0, 'b': 1})
    >>> rows, values = index.sample_rows({"b": 2.0, "zz": 1.0, "a": 0.0}, on_new=None)
    >>> rows.tolist(), values.tolist()  # non-zero entries of known features, in row order
    ([1], [2.0])
    """

    def __init__(self) -> None:
        self.names: list[Hashable] = []
        self.index: dict[Hashable, int] = {}

    def __len__(self) -> int:
        return len(self.names)

    def new_names(self, names: Sequence) -> list:
        """The names not seen before (validated), once each, in the canonical order."""
        new = [name for name in dict.fromkeys(names) if name not in self.index]
        new.sort(key=lambda name: (type(name).__name__, name))
        return new

    def add(self, names: Sequence) -> None:
        """Append rows for names given by :meth:`new_names`."""
        start = len(self.names)
        for offset, name in enumerate(names):
            self.index[name] = start + offset
            self.names.append(name)

    def remove(self, names: Sequence) -> np.ndarray:
        """Forget known names; return which of the previous rows are kept (one boolean per
        row): the other names' rows close up in order.

        >>> index = FeatureIndex()
        >>> index.add(["a", "b", "c"])
        >>> index.remove(["b"]).tolist(), index.index
        ([True, False, True], {'a': 0, 'c': 1})
        """
        keep = np.ones(len(self.names), dtype=np.bool_)
        keep[[self.index[name] for name in names]] = False
        self.names = [name for name, kept in zip(self.names, keep) if kept]
        self.index = {name: i for i, name in enumerate(self.names)}
        return keep

    def sample_rows(self, x: Mapping, on_new: OnNew | None) -> tuple[np.ndarray, np.ndarray]:
        """Validate a sample and return (dictionary rows, values) of its non-zero entries.
        Unknown features go to ``on_new`` (which adds them) or, without it, are ignored."""
        names, values = parse_sample(x)
        found = list(map(self.index.get, names))  # the hot path: one C-level pass
        if None in found:
            unknown = [name for name, row in zip(names, found) if row is None]
            checked = [check_feature_name(name) for name in unknown]
            if on_new is not None:
                on_new(checked)
            found = [self.index.get(name, -1) for name in names]
            rows = np.array(found, dtype=np.int64)
            keep = (values > 0) & (rows >= 0)
            rows, values = rows[keep], values[keep]
        else:  # the hot path: every feature known; values are validated (>= 0)
            rows = np.array(found, dtype=np.int64)
            if not np.logical_and.reduce(values):  # a zero (the method adds a Python layer)
                keep = values > 0
                rows, values = rows[keep], values[keep]
        order = rows.argsort()  # sums over the sample in row order: key order cannot matter
        return rows[order], values[order]

    def matrix_rows(self, X, features: Sequence | None, on_new: OnNew | None) -> sp.csr_matrix:
        """Validate a matrix; return it as CSR whose column indices are dictionary rows (each
        row's entries in row order, as :meth:`sample_rows` gives them)."""
        matrix, names = parse_matrix(X, features)
        if on_new is not None:
            on_new(names)
        mapping = np.fromiter((self.index.get(n, -1) for n in names), np.int64, len(names))
        columns = mapping[matrix.indices]
        keep = columns >= 0
        shape = (matrix.shape[0], max(len(self.names), 1))
        if keep.all():
            mapped = sp.csr_matrix((matrix.data, columns, matrix.indptr), shape=shape)
        else:  # unknown features (transform only) are ignored
            row_of = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
            counts = np.bincount(row_of[keep], minlength=matrix.shape[0])
            indptr = np.concatenate([[0], np.cumsum(counts)])
            mapped = sp.csr_matrix((matrix.data[keep], columns[keep], indptr), shape=shape)
        mapped.has_sorted_indices = False
        # sorted into a copy: in place would permute the data of the caller's CSR matrix,
        # which ``mapped`` shares when every feature is known
        return mapped.sorted_indices()

    def restore(self, names: Sequence) -> None:
        """The index of a snapshot's feature names (validated again)."""
        self.names = [check_feature_name(name) for name in names]
        self.index = {name: i for i, name in enumerate(self.names)}
