"""What every divergence provides to the engine: :class:`Divergence` and its statistics layout.

The engine holds one divergence object and never asks which one it is: the loss, the per-sample
solver (a compiled kernel of :mod:`onlinenmf.solve`), the statistics a sample adds, the refresh
of W from them, the pseudo-statistics of a re-seeded column, the scales the hyperparameter
adapters need, and the gradient that checks an optimum all live here, one subclass per family.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from onlinenmf import dictionary, solve
from onlinenmf.divergence import beta_divergence

#: The scratch of the kernels that need none (never written: it is empty).
NO_SCRATCH = np.zeros(0)
#: Share of the mean statistics given to a re-seeded column (its pseudo-statistics).
SEED_SHARE = 0.01


def mu_exponent(beta: float) -> float:
    """The exponent gamma of the MM update (Fevotte & Idier 2011): 1/(2-beta), 1, or 1/(beta-1)."""
    if beta < 1:
        return 1.0 / (2.0 - beta)
    if beta > 2:
        return 1.0 / (beta - 1.0)
    return 1.0


class Layout(NamedTuple):
    """The statistics a divergence accumulates.

    ``rows``: name -> exponent of the statistics with one row per feature (``B``: Mairal's
    ``sum v h^T`` or the MU numerator; ``D``: the MU denominator per feature). They are stored
    divided by the running scale of the lazy forgetting; when W's columns are divided by ``c``
    (so h is multiplied by ``c``) each is multiplied column-wise by ``c**exponent``.
    ``gram``: keeps ``A = sum h h^T`` (k x k, scaled by ``c c^T``) and the cache ``G = W^T W``.
    """

    rows: dict[str, float]
    gram: bool


class Totals(NamedTuple):
    """What a refresh reads: this model's statistics at their true scale (plus its peers'),
    and the pseudo-count prior on W in samples (beta = 1: :mod:`onlinenmf.memories`)."""

    A: np.ndarray
    B: np.ndarray
    D: np.ndarray
    usage: np.ndarray
    n_eff: float
    prior: float = 0.0


class Solver(NamedTuple):
    """Settings of the per-sample solve: per-component L1, L2, sweeps, tolerance."""

    l1: np.ndarray
    l2: float
    max_iter: int
    tol: float


class Divergence:
    """One beta-divergence and everything the engine does that depends on it.

    Subclasses set :attr:`kernel` (a kernel number of :mod:`onlinenmf.solve`) and
    :attr:`layout`, and override what differs from the multiplicative-update family.
    """

    #: Kernel number of :mod:`onlinenmf.solve`.
    kernel: int = solve.BETA_MU
    #: Smallest dictionary entry: multiplicative updates cannot leave an exact zero.
    w_floor: float = dictionary.W_FLOOR
    #: The solver needs every entry of h positive (multiplicative and Newton steps).
    positive_h: bool = True
    #: L1/L2 penalties on W are meaningful (with columns normalised to sum 1 they are not, for
    #: a multiplicative update: they would only rescale W).
    penalises_w: bool = False
    #: Why rank adaptation is refused (None: supported).
    no_rank_adaptation: str | None = None

    def __init__(self, beta: float):
        self.beta = float(beta)
        self.gamma = mu_exponent(self.beta)
        self.layout = Layout({"B": 1.0 - 1.0 / self.gamma, "D": 1.0}, gram=False)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(beta={self.beta:g})"

    # -------------------------------------------------------------- the loss
    def loss(self, V, WH) -> float:
        """``D_beta(V | WH)`` (:func:`onlinenmf.divergence.beta_divergence`)."""
        return beta_divergence(V, WH, self.beta)

    def observed(self, v: np.ndarray) -> np.ndarray:
        """Which entries of a sample count in the loss (all of them, but for Itakura-Saito)."""
        return np.ones(v.shape, dtype=bool)

    def gradient(self, W: np.ndarray, v: np.ndarray, h: np.ndarray) -> np.ndarray:
        """Gradient in h of ``D_beta(v | W h)`` (v dense over W's rows): zero on the support
        of an unpenalised optimum and non-negative off it (the KKT conditions)."""
        x = np.maximum(W @ h, solve.TINY)
        seen = self.observed(v)
        return W[seen].T @ (x[seen] ** (self.beta - 1.0) - v[seen] * x[seen] ** (self.beta - 2.0))

    def normalisers(self, indptr: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Per sample of a CSR batch, the scale of its relative loss (degree beta in v)."""
        owner = np.repeat(np.arange(indptr.size - 1), np.diff(indptr))
        return np.bincount(owner, weights=values**self.beta, minlength=indptr.size - 1)

    # -------------------------------------------------------------- the compiled solves
    def scratch(self, m: int) -> np.ndarray:
        """Scratch the kernel needs over all m rows (``BETA_MU`` only)."""
        return np.empty(m)

    def initial_h(self, values: np.ndarray, colsum: np.ndarray, h: np.ndarray) -> None:
        """A cold start for h, in place."""
        solve.initial_h(self.kernel, values, colsum, h)

    def warm_h(self, h: np.ndarray, values: np.ndarray, colsum: np.ndarray) -> np.ndarray:
        """A new h to start a solve from another h: positive where the solver needs it (a
        thousandth of the cold start's level at least)."""
        if not self.positive_h:
            return h.copy()
        cold = np.empty_like(h)
        self.initial_h(values, colsum, cold)
        return np.maximum(h, 1e-3 * cold)

    def learn_sample(self, stats: Any, rows, values, h, solver: Solver, weight: float,
                     rho: float, warm: bool) -> tuple[float, float]:
        """Solve h for one sample, add its statistics with ``weight``, decay-and-add the
        k-sized ones with ``rho``; return (loss, normaliser of the relative loss)."""
        k = h.size
        return solve.learn_sample(
            self.kernel, self.beta, self.gamma, stats.W, stats.m, rows, values, stats.G,
            stats.colsum, h, *solver, weight, stats.B, stats.D, stats.A, stats.usage,
            stats.window_usage, rho, warm, np.empty(rows.size), np.empty(k), np.empty(k),
            self.scratch(stats.m),
        )

    def learn_twice(self, stats: Any, shadow: Any, rows, values, h, mine, solver: Solver,
                    weight: float, rho: float, warm: bool, shadow_weight: float,
                    shadow_rho: float) -> tuple[float, float, float, float]:
        """:meth:`learn_sample` into ``stats``, then into ``shadow`` (the second memory's
        statistics) with ``mine`` solved from h as :meth:`warm_h` starts it, in one compiled
        call (:func:`onlinenmf.solve.learn_sample_twice`); return both (loss, normaliser)."""
        return solve.learn_sample_twice(
            self.kernel, self.beta, self.gamma, stats.W, stats.m, rows, values, stats.G,
            stats.colsum, h, *solver, weight, stats.B, stats.D, stats.A, stats.usage,
            stats.window_usage, rho, warm, shadow.W, shadow.G, shadow.colsum, mine,
            shadow_weight, shadow.B, shadow.D, shadow.A, shadow.usage, shadow.window_usage,
            shadow_rho, self.positive_h)

    def learn_batch(self, stats: Any, indptr, indices, data, H, solver: Solver, weights,
                    warm, B: np.ndarray | None = None) -> np.ndarray:
        """Solve every row of a CSR batch against the same W and add its row statistics with
        its weight (``B``: into that array instead of ``stats.B``, as restating adds its
        closing samples to the closed part); return the losses (the k-sized statistics are
        the caller's)."""
        losses = np.empty(indptr.size - 1)
        solve.learn_batch(self.kernel, self.beta, self.gamma, stats.W, stats.m, indptr, indices,
                          data, stats.G, stats.colsum, H, *solver, losses, weights,
                          stats.B if B is None else B, stats.D, warm, self.scratch(stats.m))
        return losses

    def solve_batch(self, stats: Any, indptr, indices, data, H, solver: Solver) -> np.ndarray:
        """Solve every row of a CSR batch, read-only; H holds warm starts (or zeros)."""
        losses = np.empty(indptr.size - 1)
        solve.solve_batch(self.kernel, self.beta, self.gamma, stats.W, stats.m, indptr, indices,
                          data, stats.G, stats.colsum, H, *solver, losses, self.scratch(stats.m))
        return losses

    def solve_one(self, stats: Any, rows, values, h, solver: Solver, wh) -> float:
        """Solve h for one sample from a cold start; ``wh`` receives (W h) on ``rows``."""
        k = h.size
        self.initial_h(values, stats.colsum, h)
        return solve.solve_sample(self.kernel, self.beta, self.gamma, stats.W, stats.m, rows,
                                  values, stats.G, stats.colsum, h, *solver, wh, np.empty(k),
                                  np.empty(k), self.scratch(stats.m))

    # -------------------------------------------------------------- the dictionary
    def update_dictionary(self, W: np.ndarray, totals: Totals, l1: float, l2: float,
                          sweeps: int) -> None:
        """The refresh step: W from the statistics, in place (before normalisation).
        MU: ``W = (N / D)^gamma`` where ``D > 0``; rows with no denominator keep their W."""
        updated = dictionary.refresh_multiplicative(totals.B, self.denominator(totals),
                                                    self.gamma)
        W[:] = np.where(np.isnan(updated), W, updated)

    def denominator(self, totals: Totals) -> np.ndarray:
        return totals.D

    def start_rows(self, stats: Any, start: int) -> None:
        """Statistics of the rows ``start:`` just added for new features (zeros by default):
        the divergences whose refresh denominator is shared by the rows (beta = 1: the usage;
        beta = 2: A) or whose rows are solved apart (beta = 0) keep them at zero."""

    @property
    def rows_start_at_zero(self) -> bool:
        """Whether :meth:`start_rows` leaves new rows' statistics at zero (not overridden):
        the engine then adds a new feature without calling it."""
        return type(self).start_rows is Divergence.start_rows

    def seed_weights(self, stats: Any) -> tuple[float, float]:
        """Pseudo-statistics of a seeded column: a share of the mean usage (and of D or A)."""
        usage = SEED_SHARE * float(np.mean(stats.usage)) if stats.usage.size else 0.0
        D = stats.D[: stats.m]
        return usage, SEED_SHARE * float(np.mean(D)) if D.size else 0.0

    def seed(self, stats: Any, j: int, column: np.ndarray, usage: float, weight: float) -> None:
        """Put ``column`` in column j of W with fresh pseudo-statistics."""
        m = stats.m
        stats.W[:m, j] = column
        stats.usage[j] = usage
        stats.D[:m, j] = weight
        stats.B[:m, j] = column ** (1.0 / self.gamma) * weight

    # -------------------------------------------------------------- first dictionaries
    def batch_context(self, V: np.ndarray) -> Any:
        """What :meth:`batch_terms` needs of a batch, computed once."""
        return None

    def batch_terms(self, V: np.ndarray, WH: np.ndarray, context: Any):
        """(numerator, weight) of a batch MU step: ``H *= (numerator W / weight W)^gamma``."""
        return V * WH ** (self.beta - 2.0), WH ** (self.beta - 1.0)

    def mu_step(self, ratio: np.ndarray) -> np.ndarray:
        """``ratio ** gamma``."""
        return ratio if self.gamma == 1.0 else ratio**self.gamma

    # -------------------------------------------------------------- hyperparameter scales
    def ard_scale(self, stats: Any, relevance: np.ndarray) -> float:
        """Gradient scale of the loss in h for activations of size ``relevance``:
        ``mean_k sum_f W_fk (W lambda)_f^(beta-1)``."""
        W = stats.W[: stats.m]
        return float(np.mean(W.T @ np.maximum(W @ relevance, solve.TINY) ** (self.beta - 1.0)))

    def noise_scale(self, mean_loss: float, n_features: int) -> float:
        """The dispersion that turns a prior rate on h into an L1 weight in loss units: the
        mean deviance ``2 D_beta`` per entry (the Tweedie dispersion's moment estimate)."""
        return 2.0 * mean_loss / max(n_features, 1)
