"""Dictionary refresh: W recomputed from the accumulated sufficient statistics.

* beta = 2: block coordinate descent on the surrogate ``1/2 tr(W^T W A) - tr(W^T B)``
  (Mairal et al. 2010, Algorithm 2), with optional L1/L2 penalties on W;
* beta != 2: the majorization-minimization (MU) step of Lefevre, Bach & Fevotte (2011),
  ``W = (N / D)^gamma``. For beta = 1 this is the M-step of online EM for Poisson NMF: ``N``
  holds the reads each component explains per feature, ``D`` its total activation.

After either, :func:`normalise_columns` scales every column of W to sum 1 (each community a
distribution over features); the engine moves that scale into the statistics.
"""

from __future__ import annotations

import numpy as np

#: Smallest dictionary entry kept for beta != 2: multiplicative updates cannot leave an exact
#: zero, and a taxon that returns after a long absence must not meet a zero row (infinite KL).
W_FLOOR = 1e-12


def mu_exponent(beta: float) -> float:
    """The exponent gamma of the MM update (Fevotte & Idier 2011): 1/(2-beta), 1, or 1/(beta-1)."""
    if beta < 1:
        return 1.0 / (2.0 - beta)
    if beta > 2:
        return 1.0 / (beta - 1.0)
    return 1.0


def refresh_frobenius(
    W: np.ndarray, A: np.ndarray, B: np.ndarray, l1: float, l2: float, sweeps: int
) -> None:
    """Block coordinate descent on the columns of W, in place (Mairal et al. 2010).

    Columns whose statistics vanished (``A_jj`` ~ 0) are left as they are: the engine re-seeds
    them.
    """
    k = W.shape[1]
    scale = max(float(np.max(np.diag(A))) if k else 0.0, 1e-300)
    for _ in range(sweeps):
        for j in range(k):
            if A[j, j] <= 1e-12 * scale:
                continue
            column = W[:, j] + (B[:, j] - W @ A[:, j] - l1) / (A[j, j] + l2)
            np.maximum(column, 0.0, out=column)
            W[:, j] = column


def refresh_multiplicative(N: np.ndarray, D: np.ndarray, beta: float) -> np.ndarray:
    """``W = (N / D)^gamma`` where ``D > 0``, floored at :data:`W_FLOOR`.

    ``D`` is either a k-vector (beta = 1: the same denominator for every feature) or m x k.
    Rows whose denominator is zero (a feature never observed since the last refresh, beta = 0)
    get NaN here and are kept by the caller.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = N / D
    gamma = mu_exponent(beta)
    if gamma != 1.0:
        ratio = ratio**gamma
    return np.maximum(ratio, W_FLOOR, where=np.isfinite(ratio), out=ratio)


def normalise_columns(W: np.ndarray) -> np.ndarray:
    """Scale the columns of W to sum 1 in place; return the previous sums (0 for dead columns)."""
    sums = W.sum(axis=0)
    alive = sums > 0
    W[:, alive] /= sums[alive]
    return sums
