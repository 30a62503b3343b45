"""Dictionary refresh: W recomputed from the accumulated sufficient statistics.

* beta = 2: block coordinate descent on the surrogate ``1/2 tr(W^T W A) - tr(W^T B)``
  (Mairal et al. 2010, Algorithm 2), with optional L1/L2 penalties on W;
* beta != 2: the majorization-minimization (MU) step of Lefevre, Bach & Fevotte (2011),
  ``W = (N / D)^gamma``. For beta = 1 this is the M-step of online EM for Poisson NMF: ``N``
  holds the reads each component explains per feature, ``D`` its total activation.

Which one a model uses is its divergence's choice (:mod:`onlinenmf.divergences`).

After either, :func:`normalise_columns` scales every column of W to sum 1 (each community a
distribution over features); the engine moves that scale into the statistics.
"""

from __future__ import annotations

import numpy as np

from onlinenmf._jit import column_sums

#: Smallest dictionary entry kept for beta != 2: multiplicative updates cannot leave an exact
#: zero, and a taxon that returns after a long absence must not meet a zero row (infinite KL).
W_FLOOR = 1e-12


def refresh_frobenius(
    W: np.ndarray, A: np.ndarray, B: np.ndarray, l1: float, l2: float, sweeps: int
) -> None:
    """Block coordinate descent on the columns of W, in place (Mairal et al. 2010).

    Minimises ``1/2 tr(W^T W A) - tr(W^T B) + l1 |W|_1 + l2 / 2 |W|^2`` over W >= 0 (the
    caller scales ``l1`` and ``l2`` by the number of samples remembered). Each column step is
    the exact minimiser in ``W_j``, the others fixed: its gradient is
    ``W A_j - B_j + l1 + l2 W_j`` and its curvature ``A_jj + l2``, so
    ``W_j <- max(0, W_j + (B_j - W A_j - l1 - l2 W_j) / (A_jj + l2))``.

    Columns whose statistics vanished (``A_jj`` ~ 0) are left as they are: the engine re-seeds
    them.

    >>> A, B = np.array([[2.0]]), np.array([[4.0], [1.0]])
    >>> W = np.ones((2, 1))
    >>> refresh_frobenius(W, A, B, l1=0.5, l2=1.0, sweeps=1)  # (B - l1) / (A + l2)
    >>> W.ravel().round(6).tolist()
    [1.166667, 0.166667]
    """
    k = W.shape[1]
    scale = max(float(np.max(np.diag(A))) if k else 0.0, 1e-300)
    for _ in range(sweeps):
        for j in range(k):
            if A[j, j] <= 1e-12 * scale:
                continue
            column = W[:, j] + (B[:, j] - W @ A[:, j] - l1 - l2 * W[:, j]) / (A[j, j] + l2)
            np.maximum(column, 0.0, out=column)
            W[:, j] = column


def refresh_multiplicative(N: np.ndarray, D: np.ndarray, gamma: float) -> np.ndarray:
    """``W = (N / D)^gamma`` where ``D > 0``, floored at :data:`W_FLOOR`.

    ``D`` is either a k-vector (Kullback-Leibler: the same denominator for every feature) or
    m x k. Rows whose denominator is zero (a feature never observed since the last refresh,
    Itakura-Saito) get NaN here and are kept by the caller.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = N / D
    if gamma != 1.0:
        ratio = ratio**gamma
    return np.maximum(ratio, W_FLOOR, where=np.isfinite(ratio), out=ratio)


def normalise_columns(W: np.ndarray) -> np.ndarray:
    """Scale the columns of W to sum 1 in place; return the previous sums (0 for dead columns)."""
    sums = column_sums(W)
    alive = sums > 0
    if alive.all():  # the same divisions without the fancy-index copy (4 a refresh on beta = 1)
        W /= sums
    else:
        W[:, alive] /= sums[alive]
    return sums


def farthest_first(profiles: np.ndarray, k: int) -> np.ndarray:
    """Indices of k rows chosen by farthest-first traversal on cosine similarity.

    Starts from the row with the largest total and adds, each time, the row least similar to
    all chosen so far (k-means++ without the randomness): diverse samples as initial columns.
    An empty row has no direction (its cosine with any row would read 0, the least alike): it
    is never chosen, unless every row is empty.
    """
    norms = np.linalg.norm(profiles, axis=1, keepdims=True)
    unit = profiles / np.maximum(norms, 1e-300)
    chosen = [int(np.argmax(profiles.sum(axis=1)))]
    closest = unit @ unit[chosen[0]]
    closest[norms[:, 0] == 0.0] = np.inf  # np.maximum below keeps it there
    for _ in range(1, min(k, len(profiles))):
        candidate = int(np.argmin(closest))
        chosen.append(candidate)
        closest = np.maximum(closest, unit @ unit[candidate])
    return np.array(chosen)


def core_columns(V: np.ndarray, k: int) -> np.ndarray:
    """k starting columns (features x k, each summing to 1) for a batch V (samples x features)
    whose samples share a common part (``OnlineNMF(init="core")``).

    The first column is the mean profile: what every sample shares (a core community, the
    torso of every Swimmer image). The others are the positive residuals ``(v - mean)_+`` of k-1
    diverse samples, chosen farthest-first among the residuals: the parts that set samples
    apart. Starting from whole samples instead lets the shared part be absorbed into every
    column (Swimmer: each limb carries a quarter of the torso and ARD settles at 16 blended
    components; from residuals it finds the torso and the 16 limbs).

    >>> V = np.array([[5.0, 1.0, 0.0], [5.0, 0.0, 1.0], [5.0, 1.0, 0.0]])
    >>> core_columns(V, 2).round(2).T.tolist()
    [[0.83, 0.11, 0.06], [0.0, 0.0, 1.0]]
    """
    mean = V.mean(axis=0)
    residual = np.maximum(V - mean, 0.0)
    if k > 1 and residual.any():
        chosen = residual[farthest_first(residual, k - 1)]
        columns = np.vstack([mean, chosen]).T
    else:  # nothing sets the samples apart: start from diverse samples themselves
        columns = V[farthest_first(V, k)].T
    return columns / np.maximum(columns.sum(axis=0), 1e-300)


def sample_columns(V: np.ndarray, k: int) -> np.ndarray:
    """k diverse samples (farthest-first), each scaled to sum 1, as starting columns."""
    columns = V[farthest_first(V, k)].T
    return columns / np.maximum(columns.sum(axis=0), 1e-300)


def batch_fit(V: np.ndarray, W: np.ndarray, divergence, n_iter: int = 100) -> np.ndarray:
    """Refine W (features x k) on a small dense batch V (samples x features) by alternating
    multiplicative updates of H and W (Lee & Seung 2001; Fevotte & Idier 2011) for the
    divergence (an :class:`onlinenmf.divergences.Divergence`); return W.

    >>> from onlinenmf.divergences import for_beta
    >>> V = np.array([[4.0, 4.0, 0.0, 0.0], [0.0, 0.0, 3.0, 3.0], [2.0, 2.0, 1.0, 1.0]])
    >>> W = batch_fit(V, V[:2].T + 0.1, for_beta(1))
    >>> bool(np.allclose(W / W.sum(axis=0), [[.5, 0], [.5, 0], [0, .5], [0, .5]], atol=1e-3))
    True
    """
    W = np.maximum(W, W_FLOOR)
    context = divergence.batch_context(V)
    H = np.full((V.shape[0], W.shape[1]), V.sum(axis=1, keepdims=True).mean() / W.shape[1])
    for _ in range(n_iter):
        for update_h in (True, False):
            WH = np.maximum(H @ W.T, W_FLOOR)
            numerator, weight = divergence.batch_terms(V, WH, context)
            if update_h:
                ratio = np.maximum(numerator @ W, 0.0) / np.maximum(weight @ W, 1e-300)
                H *= divergence.mu_step(ratio)
            else:
                ratio = np.maximum(numerator.T @ H, 0.0) / np.maximum(weight.T @ H, 1e-300)
                W *= divergence.mu_step(ratio)
                W = np.maximum(W, W_FLOOR)
    return W
