"""The first dictionary of a cluster fit: scikit-learn's NNDSVDa start, computed by partition.

A fresh fit's first W decides how many passes it needs. Measured on ECAM (699 x 3,347,
k = 10, KL): from the dictionary a stream builds out of 128 seeding rows, 30 batch passes end
at 1.053 x the loss of scikit-learn's NMF (MU, 500 iterations); from scikit-learn's own NNDSVDa
start the same passes end at 1.013 x, below scikit-learn's MU after the same 30 iterations
(1.018 x). The passes were not slow, the start was poor.

NNDSVDa (Boutsidis & Gallopoulos 2008; the "a" fills zeros with the data's mean, as
scikit-learn does) needs the top k singular triplets of X (samples x features), whose
sample side is as long as the data set. So the triplets are found from the feature side only,
by map-reduce passes that each partition answers with sums (never its rows):

1. a randomized range finder on X^T X (Halko, Martinsson & Tropp 2011): Q (features x l,
   l = k + ``OVERSAMPLE``) from a seeded Gaussian matrix, then ``POWER_ITERATIONS`` times
   Z = sum_p X_p^T (X_p Q), C = Q^T Z (Rayleigh-Ritz on the same pass), Q = qr(Z);
2. the right singular vectors V = Q E and singular values sqrt(eig(C)) from the last C;
3. one more pass for what NNDSVD needs of the left vectors u_j = X v_j / s_j: the norms of
   their positive and negative parts (sums of squares per partition), and the total of X
   (for the mean that fills zeros).

Each pass costs two sparse products per partition (O(nnz l)), far less than a pass of the fit
(which solves every row's h). The sums are taken in partition order, like the fit's, so the
start is the same on any number of workers, and the same on any partitioning up to rounding.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp

#: Columns of the range finder beyond k, and its power iterations (scikit-learn's
#: ``randomized_svd`` uses 10 and 7 for k below a tenth of the smaller side).
OVERSAMPLE = 10
POWER_ITERATIONS = 7
#: Entries below this are zeros of the NNDSVD factors (scikit-learn's ``eps``).
ZERO = 1e-6


def nndsvda(total: Callable[[Callable, Any], Any], k: int, m: int, seed: int) -> np.ndarray:
    """The NNDSVDa dictionary (features x k, columns summing to 1).

    ``total(function, argument)`` applies ``function(X_p, argument)`` to every partition's
    matrix X_p (samples x the model's m features, CSR) on the cluster and returns the sum of
    the results (taken in partition order).
    """
    rng = np.random.default_rng([int(seed), 0x5D])
    Q = np.linalg.qr(rng.standard_normal((m, min(k + OVERSAMPLE, m))))[0]
    for iteration in range(POWER_ITERATIONS):
        Z = total(gram_times, Q)
        if iteration == POWER_ITERATIONS - 1:
            break
        Q = np.linalg.qr(Z)[0]
    # Rayleigh-Ritz on the last product: the Ritz vectors of X^T X in the span of Q
    C = Q.T @ Z
    values, vectors = np.linalg.eigh((C + C.T) / 2)
    order = np.argsort(values)[::-1][:k]
    singular = np.sqrt(np.maximum(values[order], 0.0))
    V = Q @ vectors[:, order]  # features x k, orthonormal columns
    parts = total(left_parts, V)
    positive, negative, reads, count = parts[:k], parts[k : 2 * k], parts[-2], parts[-1]
    with np.errstate(divide="ignore"):
        scale = np.where(singular > 0, 1.0 / singular, 0.0)
    return columns(V, singular, np.sqrt(positive) * scale, np.sqrt(negative) * scale,
                   reads / (count * m))


def columns(V: np.ndarray, singular: np.ndarray, u_positive: np.ndarray,
            u_negative: np.ndarray, mean: float) -> np.ndarray:
    """NNDSVDa's H (scikit-learn's ``_initialize_nmf``) transposed, from the right singular
    vectors ``V`` (features x k), the singular values, and the norms of the positive and
    negative parts of each unit left singular vector; zeros filled with ``mean``; columns
    scaled to sum 1."""
    m, k = V.shape
    W = np.zeros((m, k))
    W[:, 0] = np.sqrt(singular[0]) * np.abs(V[:, 0])
    for j in range(1, k):
        v_positive, v_negative = np.maximum(V[:, j], 0.0), np.maximum(-V[:, j], 0.0)
        norms = (np.linalg.norm(v_positive), np.linalg.norm(v_negative))
        sides = (u_positive[j] * norms[0], u_negative[j] * norms[1])
        side = 0 if sides[0] > sides[1] else 1
        v = (v_positive, v_negative)[side]
        if norms[side] > 0:
            W[:, j] = np.sqrt(singular[j] * sides[side]) * v / norms[side]
    W[W < ZERO] = 0.0
    W[W == 0.0] = mean
    return W / W.sum(axis=0)


# ---------------------------------------------------------------------- on the workers
def gram_times(X: sp.csr_matrix, Q: np.ndarray) -> np.ndarray:
    """X_p^T (X_p Q): a partition's share of X^T X Q."""
    return np.asarray(X.T @ (X @ Q))


def left_parts(X: sp.csr_matrix, V: np.ndarray) -> np.ndarray:
    """A partition's share of what NNDSVD reads of the left singular vectors, as one vector
    (so that shares add up): the squared norms of the positive and of the negative parts of
    the columns of X_p V, X_p's total and its number of rows."""
    U = np.asarray(X @ V)
    return np.concatenate([(np.maximum(U, 0.0) ** 2).sum(axis=0),
                           (np.minimum(U, 0.0) ** 2).sum(axis=0), [X.sum(), X.shape[0]]])
