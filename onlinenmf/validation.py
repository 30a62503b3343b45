"""Validation at the boundary: samples and matrices are checked once, before any state changes.

Every error is a ``ValueError`` that names the offending feature (and row) and value, so a
caller (or a Kafka dead-letter header) can tell what was wrong without a debugger.
"""

from __future__ import annotations

import numbers
from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import scipy.sparse as sp


def check_feature_name(name: Hashable) -> str | int:
    """Feature names are ``str`` or ``int`` (not ``bool``); NumPy integers become ``int``."""
    if isinstance(name, str):
        return name
    if isinstance(name, numbers.Integral) and not isinstance(name, bool | np.bool_):
        return int(name)
    raise ValueError(
        f"feature name {name!r} has type {type(name).__name__}; feature names must be str or int"
    )


def _describe_bad_value(name: object, value: object) -> str:
    if isinstance(value, str | bytes):
        return f"feature {name!r}: value {value!r} is a string, not a number"
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return f"feature {name!r}: value {value!r} is not a number"
    if np.isnan(number):
        return f"feature {name!r}: value is NaN"
    if np.isinf(number):
        return f"feature {name!r}: value {number} is infinite"
    return f"feature {name!r}: value {number!r} is negative; NMF needs non-negative data"


def parse_sample(x: Mapping) -> tuple[list, np.ndarray]:
    """Split a sample ``{feature: value}`` into its names and a float64 array of values.

    Raises ``ValueError`` for a non-mapping, an empty sample, a non-numeric, NaN, infinite or
    negative value (naming the feature and value).

    >>> names, values = parse_sample({"a": 3, "b": 0.5})
    >>> names, values.tolist()
    (['a', 'b'], [3.0, 0.5])
    >>> parse_sample({"a": -1})
    Traceback (most recent call last):
    ...
    ValueError: feature 'a': value -1.0 is negative; NMF needs non-negative data
    """
    if not isinstance(x, Mapping):
        raise ValueError(f"a sample must be a mapping feature -> value, got {type(x).__name__}")
    if not x:
        raise ValueError("empty sample: it has no features")
    names = list(x.keys())
    try:
        # np.array infers a non-numeric dtype for strings, None or lists: rejected below
        values = np.array(list(x.values()))
    except (TypeError, ValueError):
        values = None
    if values is not None and values.dtype.kind in "biuf" and values.ndim == 1:
        values = values.astype(np.float64, copy=False)
    else:
        values = None
    if values is None or not np.all(np.isfinite(values)) or np.any(values < 0):
        for name, value in x.items():
            try:
                number = float(value)
                ok = np.isfinite(number) and number >= 0 and not isinstance(value, str | bytes)
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise ValueError(_describe_bad_value(name, value))
    return names, values


def parse_matrix(X, features: Sequence | None) -> tuple[sp.csr_matrix, list]:
    """Check a 2-D array or sparse matrix of samples (rows) and return it as CSR float64.

    ``features`` names the columns (default: their integer positions); names must be unique.
    """
    if sp.issparse(X):
        matrix = sp.csr_matrix(X, dtype=np.float64)
        matrix.sum_duplicates()
        values, where = matrix.data, matrix
    else:
        try:
            dense = np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise ValueError(f"X is not a numeric matrix: {err}") from None
        if dense.ndim != 2:
            raise ValueError(f"X must be 2-D (samples x features), got {dense.ndim}-D")
        matrix, values, where = None, dense, dense
    n_columns = (matrix if matrix is not None else values).shape[1]
    if features is None:
        names = list(range(n_columns))
    else:
        names = [check_feature_name(f) for f in features]
    if len(names) != n_columns:
        raise ValueError(f"X has {n_columns} columns but {len(names)} feature names were given")
    if len(set(names)) != len(names):
        seen: set = set()
        duplicate = next(n for n in names if n in seen or seen.add(n))
        raise ValueError(f"feature name {duplicate!r} appears twice in features")
    bad = ~np.isfinite(values) | (values < 0)
    if bad.any():
        if matrix is not None:
            position = int(np.flatnonzero(bad)[0])
            row = int(np.searchsorted(where.indptr, position, side="right") - 1)
            column, value = int(where.indices[position]), values[position]
        else:
            row, column = (int(i) for i in np.argwhere(bad)[0])
            value = values[row, column]
        raise ValueError(f"row {row}, " + _describe_bad_value(names[column], value))
    if matrix is None:
        matrix = sp.csr_matrix(values)
    matrix.eliminate_zeros()
    return matrix, names
