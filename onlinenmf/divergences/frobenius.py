"""beta = 2, the Frobenius loss ``1/2 |v - W h|^2``: HALS per sample, Mairal's statistics.

Per sample: coordinate descent (HALS) on the cached Gram matrix ``G = W^T W`` and ``W^T v``;
the zero entries of v enter only through G. Statistics (Mairal et al. 2010):
``A <- rho A + h h^T`` and ``B <- rho B + v h^T``; the refresh is block-coordinate descent on
the surrogate ``1/2 tr(W^T W A) - tr(W^T B)`` with optional L1/L2 penalties on W.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from onlinenmf import dictionary, solve
from onlinenmf.divergences.base import NO_SCRATCH, SEED_SHARE, Divergence, Layout, Totals


class Frobenius(Divergence):
    """``D_2(v | x) = 1/2 (v - x)^2``.

    >>> import numpy as np
    >>> d = Frobenius()
    >>> d.loss(np.array([[3.0, 0.0]]), np.array([[1.0, 1.0]]))
    2.5
    """

    kernel = solve.HALS
    w_floor = 0.0
    positive_h = False
    penalises_w = True

    def __init__(self, beta: float = 2.0):
        super().__init__(beta)
        self.layout = Layout({"B": 1.0}, gram=True)

    def gradient(self, W: np.ndarray, v: np.ndarray, h: np.ndarray) -> np.ndarray:
        return W.T @ (W @ h - v)

    def normalisers(self, indptr: np.ndarray, values: np.ndarray) -> np.ndarray:
        owner = np.repeat(np.arange(indptr.size - 1), np.diff(indptr))
        return 0.5 * np.bincount(owner, weights=values * values, minlength=indptr.size - 1)

    def scratch(self, m: int) -> np.ndarray:
        return NO_SCRATCH

    def update_dictionary(self, W: np.ndarray, totals: Totals, l1: float, l2: float,
                          sweeps: int) -> None:
        dictionary.refresh_frobenius(W, totals.A, totals.B, l1, l2, sweeps)

    def seed_weights(self, stats: Any) -> tuple[float, float]:
        usage = SEED_SHARE * float(np.mean(stats.usage)) if stats.usage.size else 0.0
        return usage, SEED_SHARE * float(np.mean(np.diag(stats.A))) if stats.A.size else 0.0

    def seed(self, stats: Any, j: int, column: np.ndarray, usage: float, weight: float) -> None:
        m = stats.m
        stats.W[:m, j] = column
        stats.usage[j] = usage
        stats.A[j, :] = 0.0
        stats.A[:, j] = 0.0
        stats.A[j, j] = weight
        stats.B[:m, j] = column * weight

    def batch_terms(self, V: np.ndarray, WH: np.ndarray, context: Any):
        return V, WH

    def ard_scale(self, stats: Any, relevance: np.ndarray) -> float:
        return float(np.mean(np.diag(stats.G))) * float(relevance.mean())
