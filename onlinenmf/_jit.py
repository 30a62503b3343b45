"""The compiled path: numba when it is installed, plain Python otherwise.

The per-sample solvers are written as explicit loops over k and over the sample's non-zero
entries, so that one code runs compiled (numba) or interpreted (``NUMBA_DISABLE_JIT=1`` or no
numba): same algorithm, same results, only the speed differs. ``COMPILED`` says which runs.
"""

from __future__ import annotations

import os

try:  # numba is a declared dependency; the fallback keeps the engine importable without it
    import numba

    njit = numba.njit(cache=True, nogil=True)
    # fastmath lets the inner reductions vectorise; inputs are validated finite beforehand.
    njit_fast = numba.njit(cache=True, nogil=True, fastmath=True)
    # IEEE division (x / 0 is inf or nan, as numpy's, instead of raising ZeroDivisionError)
    njit_ieee = numba.njit(cache=True, nogil=True, error_model="numpy")
    COMPILED = os.environ.get("NUMBA_DISABLE_JIT", "0") in ("", "0")
except ImportError:  # pragma: no cover - exercised only where numba is missing

    def njit(function):  # type: ignore[no-redef]
        return function

    njit_fast = njit
    njit_ieee = njit

    COMPILED = False
