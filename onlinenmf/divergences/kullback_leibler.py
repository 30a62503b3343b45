"""beta = 1, the generalized Kullback-Leibler divergence (the Poisson likelihood of counts).

Per sample: coordinate descent with one Newton step per coordinate on the sample's non-zero
entries; the zeros enter only through the column sums of W. Statistics (online EM for Poisson
NMF, Lefevre, Bach & Fevotte 2011): the numerator ``N = sum W * (v / W h) h^T`` (the reads each
component explains per feature); the denominator is the same for every feature, the forgetful
sum of h (the usage), so the refresh ``W = N / usage`` is the M-step.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from onlinenmf import solve
from onlinenmf._jit import njit_ieee
from onlinenmf.dictionary import W_FLOOR
from onlinenmf.divergences.base import NO_SCRATCH, Divergence, Layout, Totals


@njit_ieee
def _m_step(W, B, added, usage, floor):
    """``W = max((B + added) / usage, floor)`` in place, one column's ``added`` and usage per
    column; where that is NaN (0 / 0: nothing learned into the column) W is kept, and an
    infinite ratio is not floored. Element for element the numpy expression
    (:meth:`Divergence.update_dictionary` on ``B + added``), in one pass with no temporaries:
    four M-steps a refresh with restating, each some ten O(m k) numpy passes."""
    m, k = B.shape
    for f in range(m):
        for j in range(k):
            ratio = (B[f, j] + added[j]) / usage[j]
            if ratio != ratio:
                continue
            if ratio < floor and ratio > -np.inf:
                ratio = floor
            W[f, j] = ratio


class KullbackLeibler(Divergence):
    """``D_1(v | x) = v log(v/x) - v + x``.

    >>> import numpy as np
    >>> KullbackLeibler().loss(np.array([[2.0, 0.0]]), np.array([[2.0, 1.0]]))
    1.0
    """

    kernel = solve.KL_NEWTON

    def __init__(self, beta: float = 1.0):
        super().__init__(beta)
        self.layout = Layout({"B": 0.0}, gram=False)

    def gradient(self, W: np.ndarray, v: np.ndarray, h: np.ndarray) -> np.ndarray:
        return W.sum(axis=0) - W.T @ (v / np.maximum(W @ h, solve.TINY))

    def learn_twice(self, stats: Any, shadow: Any, rows, values, h, mine, solver,
                    weight: float, rho: float, warm: bool, shadow_weight: float,
                    shadow_rho: float) -> tuple[float, float, float, float]:
        """As the base's, by :func:`onlinenmf.solve.learn_kl_twice`: eleven arguments fewer
        to dispatch on the per-sample path (no G, D or A; h positive)."""
        return solve.learn_kl_twice(stats.W, rows, values, stats.colsum, h, *solver, weight,
                                    stats.B, stats.usage, stats.window_usage, rho, warm,
                                    shadow.W, shadow.colsum, mine, shadow_weight, shadow.B,
                                    shadow.usage, shadow.window_usage, shadow_rho)

    def learn_twice_open(self, stats: Any, shadow: Any, rows, values, h, mine, solver,
                         weight: float, rho: float, warm: bool, shadow_weight: float,
                         shadow_rho: float) -> tuple[float, float, float, float, int, int]:
        """:meth:`learn_twice`, then the sample opened in both memories' open samples at
        their lazy scales now (``stats.scale``, ``shadow.scale``: already this sample's), by
        :func:`onlinenmf.solve.learn_kl_twice_open`; returns its six results (both (loss,
        normaliser), then whether each memory opened the sample)."""
        recent, recent2 = stats.recent, shadow.recent
        return solve.learn_kl_twice_open(
            stats.W, rows, values, stats.colsum, h, *solver, weight, stats.B, stats.usage,
            stats.window_usage, rho, warm, shadow.W, shadow.colsum, mine, shadow_weight,
            shadow.B, shadow.usage, shadow.window_usage, shadow_rho, recent.rows,
            recent.values, recent.H, recent.logs, recent.indptr, recent.count,
            stats._log_scale(), recent2.rows, recent2.values, recent2.H, recent2.logs,
            recent2.indptr, recent2.count, shadow._log_scale())

    def normalisers(self, indptr: np.ndarray, values: np.ndarray) -> np.ndarray:
        owner = np.repeat(np.arange(indptr.size - 1), np.diff(indptr))
        return np.bincount(owner, weights=values, minlength=indptr.size - 1)

    def scratch(self, m: int) -> np.ndarray:
        return NO_SCRATCH

    def denominator(self, totals: Totals) -> np.ndarray:
        return totals.usage

    def update_dictionary(self, W: np.ndarray, totals: Totals, l1: float, l2: float,
                          sweeps: int) -> None:
        """The M-step ``W = N / usage``, with the prior (``totals.prior`` samples' worth of
        reads, the mean reads per sample ``sum N / n_eff`` split evenly over the k columns and
        spread evenly over the m features) added to N: a Dirichlet pseudo-count that keeps
        mass on features a column has not seen lately."""
        B = totals.B
        if not B.size:
            return
        added = np.zeros(B.shape[1])
        if totals.prior > 0 and totals.n_eff > 0:
            m, k = B.shape
            pseudo = totals.prior * float(B.sum()) / (totals.n_eff * k * m)
            # a column nothing was learned into keeps its W (no denominator, no prior)
            added = pseudo * (totals.usage > 0)
        with np.errstate(divide="ignore", invalid="ignore"):  # interpreted: numpy scalars
            _m_step(W, B, added, totals.usage, W_FLOOR)

    def seed_weights(self, stats: Any) -> tuple[float, float]:
        usage = super().seed_weights(stats)[0]
        return usage, usage

    def seed(self, stats: Any, j: int, column: np.ndarray, usage: float, weight: float) -> None:
        m = stats.m
        stats.W[:m, j] = column
        stats.usage[j] = usage
        stats.B[:m, j] = column * usage

    def batch_context(self, V: np.ndarray) -> Any:
        return np.ones_like(V)

    def batch_terms(self, V: np.ndarray, WH: np.ndarray, context: Any):
        return V / WH, context  # no powers on the common path: they dominate the cost

    def ard_scale(self, stats: Any, relevance: np.ndarray) -> float:
        return 1.0  # the columns of W sum to 1: so does the zero-entry part of the gradient

    def noise_scale(self, mean_loss: float, n_features: int) -> float:
        return 1.0  # Poisson counts: the dispersion is 1 by the model
