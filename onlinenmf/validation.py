"""Validation at the boundary: samples and matrices are checked once, before any state changes.

Every error is a ``ValueError`` that names the offending feature (and row) and value, so a
caller (or a Kafka dead-letter header) can tell what was wrong without a debugger.
"""

from __future__ import annotations

import numbers
from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import scipy.sparse as sp

from onlinenmf._jit import njit

#: Largest sum of one sample's values. The engine squares what scales with a sample (the
#: activations h in the statistics A += h h^T, the Frobenius loss 1/2 |v|^2 for beta = 2)
#: and adds such terms over many samples, in float64, which ends at 1.8e308. A sample's sum
#: must therefore stay well inside the square root of that range (1.3e154): 1e150 leaves
#: squares a factor 1e8 for the sums over samples. Beyond about 1e154 (beta = 2) or
#: 1e308 (beta = 0, 1) a sample would turn the statistics into inf/NaN or stop the solver;
#: no count or intensity comes near either, so a larger sample is a scaling mistake.
MAX_SAMPLE_SUM = 1e150
#: A bound on a sum of non-negative float64 values (size times the largest) below which the sum
#: cannot overflow: far under 1.8e308, so rounding in the sum cannot cross it either.
OVERFLOW_FREE = 1e300
#: A sample whose values, summed in order, stay under this is accepted at once: the sum NumPy
#: takes (pairwise) differs from it by at most about n x 1.1e-16 of it, far under this margin
#: for any sample that fits in memory. Nearer the limit the sum is taken as NumPy takes it.
SURELY_UNDER = MAX_SAMPLE_SUM * (1.0 - 1e-6)


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
    except OverflowError:  # a Python int beyond float64 (printing its digits would not help)
        return (f"feature {name!r}: value is an integer of {len(str(abs(value)))} digits, "
                "beyond float64's range (about 1.8e308); rescale the data")
    if np.isnan(number):
        return f"feature {name!r}: value is NaN"
    if np.isinf(number):
        return f"feature {name!r}: value {number} is infinite"
    return f"feature {name!r}: value {number!r} is negative; NMF needs non-negative data"


def _describe_sum(total: float) -> str:
    size = "overflows float64" if np.isinf(total) else f"is {total:.3g}"
    return (f"the sum of the sample's values {size}, above the {MAX_SAMPLE_SUM:.0e} the "
            "engine's float64 arithmetic allows; rescale the data (divide every value by one "
            "constant, or use relative abundances)")


def parse_sample(x: Mapping) -> tuple[list, np.ndarray]:
    """Split a sample ``{feature: value}`` into its names and a float64 array of values.

    Raises ``ValueError`` for a non-mapping, an empty sample, a non-numeric, NaN, infinite or
    negative value (naming the feature and value), or values summing above
    :data:`MAX_SAMPLE_SUM`.

    >>> names, values = parse_sample({"a": 3, "b": 0.5})
    >>> names, values.tolist()
    (['a', 'b'], [3.0, 0.5])
    >>> parse_sample({"a": -1})
    Traceback (most recent call last):
    ...
    ValueError: feature 'a': value -1.0 is negative; NMF needs non-negative data
    >>> parse_sample({"a": 1e308, "b": 1e308})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: the sum of the sample's values overflows float64, above the 1e+150 ...
    """
    if type(x) is not dict and not isinstance(x, Mapping):  # isinstance of an ABC is slow
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
        if surely_valid(values):  # the per-sample path: one compiled pass
            return names, values
    else:
        values = None
    # The per-sample path: ufunc reductions (the methods add a Python layer each); min and
    # max propagate NaN, so a NaN, infinite or negative value fails one of the two tests.
    largest = float(np.maximum.reduce(values)) if values is not None else np.nan
    if not (largest < np.inf and np.minimum.reduce(values) >= 0):
        for name, value in x.items():
            try:
                number = float(value)
                ok = np.isfinite(number) and number >= 0 and not isinstance(value, str | bytes)
            except (TypeError, ValueError, OverflowError):  # OverflowError: an int > 1e308
                ok = False
            if not ok:
                raise ValueError(_describe_bad_value(name, value))
        if values is None:  # every value is a number numpy kept as an object (an int >= 2**64)
            values = np.array([float(value) for value in x.values()])
            largest = float(np.maximum.reduce(values))
    if largest * values.size < OVERFLOW_FREE:  # errstate costs as much as the sum
        total = float(np.add.reduce(values))
    else:
        with np.errstate(over="ignore"):
            total = float(np.add.reduce(values))
    if total > MAX_SAMPLE_SUM:
        raise ValueError(_describe_sum(total))
    return names, values


@njit
def surely_valid(values) -> bool:
    """Whether every value is finite and >= 0 and their sum, taken in order, is under
    :data:`SURELY_UNDER` (False: :func:`parse_sample`'s full check decides and names the
    culprit). Compiled: a sum that overflows is inf, without a warning."""
    total = 0.0
    for i in range(values.size):
        value = float(values[i])
        if not (value >= 0.0 and value < np.inf):  # NaN fails both
            return False
        total += value
    return total <= SURELY_UNDER


def parse_matrix(X, features: Sequence | None) -> tuple[sp.csr_matrix, list]:
    """Check a 2-D array or sparse matrix of samples (rows) and return it as CSR float64.

    ``features`` names the columns (default: their integer positions); names must be unique.
    Every row is checked as :func:`parse_sample` checks a sample.
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
    with np.errstate(over="ignore"):
        totals = np.asarray(where.sum(axis=1)).ravel()
    too_large = np.flatnonzero(totals > MAX_SAMPLE_SUM)
    if too_large.size:
        raise ValueError(f"row {int(too_large[0])}: " + _describe_sum(totals[too_large[0]]))
    if matrix is None:
        matrix = sp.csr_matrix(values)
    matrix.eliminate_zeros()
    return matrix, names
