"""The compiled path: numba when it is installed, plain Python otherwise.

The per-sample solvers are written as explicit loops over k and over the sample's non-zero
entries, so that one code runs compiled (numba) or interpreted (``NUMBA_DISABLE_JIT=1`` or no
numba): same algorithm, same results, only the speed differs. ``COMPILED`` says which runs.
"""

from __future__ import annotations

import os

import numpy as np

#: Every compiled kernel (numba dispatchers), in definition order: what
#: :func:`onlinenmf.compiled.compile_kernels` reports on (each one's signatures, and whether
#: they came from numba's on-disk cache).
KERNELS: list = []

try:  # numba is a declared dependency; the fallback keeps the engine importable without it
    import numba

    def _kept(decorator):
        """``decorator``, with each dispatcher it makes added to :data:`KERNELS`."""
        def compile_later(function):
            kernel = decorator(function)
            KERNELS.append(kernel)
            return kernel
        return compile_later

    njit = _kept(numba.njit(cache=True, nogil=True))
    # fastmath lets the inner reductions vectorise; inputs are validated finite beforehand.
    njit_fast = _kept(numba.njit(cache=True, nogil=True, fastmath=True))
    # IEEE division (x / 0 is inf or nan, as numpy's, instead of raising ZeroDivisionError)
    njit_ieee = _kept(numba.njit(cache=True, nogil=True, error_model="numpy"))
    COMPILED = os.environ.get("NUMBA_DISABLE_JIT", "0") in ("", "0")
except ImportError:  # pragma: no cover - exercised only where numba is missing

    def njit(function):  # type: ignore[no-redef]
        return function

    njit_fast = njit
    njit_ieee = njit

    COMPILED = False


@njit
def _add_rows(W, out):
    """``out`` = the column sums of W (C order, k > 1), from zero, its rows added in order:
    numpy's ``W.sum(axis=0)`` sums the same way, to the bit (a sum of -0.0 is 0.0 in both),
    in a sixth of the time."""
    out[:] = 0.0
    for f in range(W.shape[0]):
        for j in range(W.shape[1]):
            out[j] += W[f, j]


def column_sums(W: np.ndarray) -> np.ndarray:
    """``W.sum(axis=0)``, to the bit; compiled where it sums in row order (a C-ordered W of
    more than one column: one column is summed pairwise). A refresh with restating takes
    eight (issue 13): the caches' and the normalisation's, of both memories, before and after
    the restatement.

    >>> import numpy as np
    >>> column_sums(np.array([[1.0, 2.0], [3.0, 4.0]])).tolist()
    [4.0, 6.0]
    """
    if W.ndim != 2 or W.shape[1] < 2 or not W.flags.c_contiguous:
        return W.sum(axis=0)
    out = np.empty(W.shape[1])
    _add_rows(W, out)
    return out
