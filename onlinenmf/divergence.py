"""The beta-divergence, one definition shared by the solvers, the engine and the tests.

``D_beta(v | x) = sum_f d_beta(v_f | x_f)`` with

* beta = 2 (Frobenius): ``d(v|x) = (v - x)**2 / 2``
* beta = 1 (generalized Kullback-Leibler, the Poisson likelihood): ``d(v|x) = v log(v/x) - v + x``
* beta = 0 (Itakura-Saito): ``d(v|x) = v/x - log(v/x) - 1``
* other beta: ``d(v|x) = (v**beta + (beta-1) x**beta - beta v x**(beta-1)) / (beta (beta-1))``

These are scikit-learn's conventions (``sklearn.decomposition._nmf._beta_divergence``), so a
batch NMF fitted there is scored on the same scale.

Itakura-Saito is undefined at v = 0 (d(0|x) is infinite for every x): the engine scores it on
the non-zero entries of each sample only, i.e. a zero is treated as unobserved.

The per-entry terms below are compiled functions: the per-sample losses of the solvers
(:mod:`onlinenmf.solve`) are written with them, so that the model's loss is this definition;
they only add the zero entries of a sample in closed form (through ``W^T W`` for beta = 2, the
column sums of W for beta = 1).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from onlinenmf._jit import njit

EPSILON = float(np.finfo(np.float64).eps)


@njit
def kl_nonzero(v, x):
    """``d_1(v|x) - x`` for v > 0: the part of the KL term that the zero entries lack."""
    return v * np.log(v / x) - v


@njit
def itakura_saito(v, x):
    """``d_0(v|x)`` for v > 0."""
    ratio = v / x
    return ratio - np.log(ratio) - 1.0


@njit
def general(v, x, beta):
    """``d_beta(v|x)`` for beta not in (0, 1); v = 0 gives ``x**beta / beta``."""
    return (v**beta + (beta - 1.0) * x**beta - beta * v * x ** (beta - 1.0)) / (
        beta * (beta - 1.0)
    )


@njit
def entry(v, x, beta):
    """``d_beta(v|x)`` for one entry (Itakura-Saito: 0 at v = 0, an unobserved entry)."""
    if beta == 2.0:
        return 0.5 * (v - x) ** 2
    if beta == 1.0:
        return kl_nonzero(v, x) + x if v > 0.0 else x
    if beta == 0.0:
        return itakura_saito(v, x) if v > 0.0 else 0.0
    return general(v, x, beta)


@njit
def elementwise_sum(v, x, beta):
    """Sum of d_beta(v_i | x_i) over paired entries; x is floored at machine epsilon."""
    total = 0.0
    for i in range(v.shape[0]):
        total += entry(v[i], max(x[i], 2.220446049250313e-16), beta)
    return total


def beta_divergence(V, WH, beta: float) -> float:
    """Total beta-divergence ``D_beta(V | WH)`` of a data matrix and its reconstruction.

    Dense or sparse ``V``; ``WH`` dense of the same shape. For beta = 0 only the non-zero entries
    of ``V`` count (Itakura-Saito is undefined at zero).

    >>> import numpy as np
    >>> V = np.array([[1.0, 0.0], [2.0, 3.0]])
    >>> round(beta_divergence(V, V + 1.0, 2), 6)
    2.0
    >>> round(beta_divergence(V, V, 1), 12)
    0.0
    >>> round(beta_divergence(V, V, 1.5), 12)
    0.0
    """
    dense = V.toarray() if sp.issparse(V) else np.asarray(V, dtype=np.float64)
    v = np.ascontiguousarray(dense, dtype=np.float64).ravel()
    x = np.ascontiguousarray(WH, dtype=np.float64).ravel()
    if v.shape != x.shape:
        raise ValueError(f"V has {v.size} entries but WH has {x.size}")
    return float(elementwise_sum(v, x, float(beta)))
