"""Learning from samples: h solved against W, statistics added with forgetting, the loss
monitored; and W rebuilt from the recent samples (the first dictionary, refits after a drift).

:class:`Learner` puts the model's parts to work for one sample or a mini-batch that all see the
same W (the engine cuts batches at refresh boundaries): the divergence's compiled solver, the
statistics (lazy forgetting: a sample writes only its own rows), the monitor (relative loss,
recent samples). It holds the forgetting factor in force (re-estimated by
:mod:`onlinenmf.hyper`).
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np

from onlinenmf import dictionary, solve
from onlinenmf.components import Components
from onlinenmf.divergences import Divergence, Solver
from onlinenmf.monitor import Monitor
from onlinenmf.statistics import BatchSums, Statistics

#: Restating's budget: at most this many re-solved samples per sample learned, amortised (a
#: sample stays open, re-solved at each refresh, for up to this many times the interval, and
#: at most while ``buffer_size`` holds it). On ECAM (k = 10, a refresh every ~14 samples)
#: the buffer binds: ~10 per sample and memory, -3.494 nats per held-out read (real.md); smaller
#: budgets moved the score by a few thousandths either way (5: -3.497, 6: -3.500, 8: -3.504,
#: measured before 239bb23 fixed samples counted twice, when the same budget gave -3.499); below
#: 7 the drift score's AUC on the reversed splices fell under Bray-Curtis' (0.78-0.80 < 0.80;
#: tests/test_monitor_drift.py; 0.83 at 16), before the score had the memories' part.
RESTATED_PER_SAMPLE = 16
#: How far W must move at a refresh (mean over its columns of the total variation distance
#: between a column before and after the M-step) for the whole budget; the budget shrinks in
#: proportion below it. ECAM (k = 10) moves 0.06-0.12 per refresh throughout, a dense
#: stationary stream (bench_engine's) 1e-4 once settled: re-solving it gives the same h.
MOVED_FULLY = 0.02
#: Solver sweeps of a re-solved sample, from its previous h (warm): W moved by one M-step, so
#: a couple of Newton sweeps are enough (ECAM: 1, 2, 3 or 200 sweeps score alike, 200 take
#: 1.6 times as long; with 1 the overshoot of adapt_rank's births on a planted stream is
#: pruned two re-estimations later than with 2 or more).
RESTATE_SWEEPS = 2
#: Recent samples whose residuals seed a new column.
WORST_SAMPLES = 10


class SolverSettings(Protocol):
    """The parameters the per-sample solve reads (at every call: they may be changed)."""

    l2_h: float
    max_iter: int
    tol: float


class Learner:
    """Solve, accumulate, monitor; rebuild W from the recent samples."""

    #: (A learner pickled before it was set takes the path it had then.)
    _opens = False

    def __init__(self, divergence: Divergence, statistics: Statistics, monitor: Monitor,
                 components: Components, settings: SolverSettings, forget_factor: float):
        self.divergence = divergence
        self.statistics = statistics
        self.monitor = monitor
        self.components = components
        self.settings = settings
        #: The forgetting factor in force (the user's, unless re-estimated or chosen by the
        #: memories).
        self.rho = float(forget_factor)
        #: The second memory (:mod:`onlinenmf.memories`; None: one forgetting factor).
        self.memories = None
        #: The last :class:`Solver` built (see :meth:`solver`).
        self._solver: Solver | None = None
        #: Whether the divergence opens both memories' samples in its compiled call
        #: (:meth:`_learn_and_open`).
        self._opens = hasattr(divergence, "learn_twice_open")
        if divergence.beta == 1:  # the statistics whose contributions restate knows
            statistics.keep_recent(monitor.recent.maxlen)

    def solver(self) -> Solver:
        """The solve's settings now. Built again only when one of its inputs changed: the L1
        weights are replaced (hyperparameter re-estimation, a rank change, a restore) or the
        user set ``l2_h``, ``max_iter`` or ``tol`` (compared with the solver's own: building
        a tuple of them per call cost the per-sample path about 1 us of a 100 us sample).
        (An in-place change to the L1 weights is seen anyway: the solver holds the array
        itself.)"""
        settings = self.settings
        l1 = self.components.l1
        solver = self._solver
        if (solver is None or solver.l1 is not l1 or settings.l2_h != solver.l2
                or settings.max_iter != solver.max_iter or settings.tol != solver.tol):
            solver = Solver(l1, float(settings.l2_h), int(settings.max_iter),
                            float(settings.tol))
            self._solver = solver
        return solver

    # -------------------------------------------------------------- learning
    def learn_one(self, rows: np.ndarray, values: np.ndarray, h: np.ndarray,
                  warm: bool) -> float:
        """One sample in one compiled call (the per-sample hot path: a few numpy calls of
        overhead would cost more than the solve itself); h is solved in place."""
        stats = self.statistics
        rho = self.rho
        scale = stats.scale * rho
        solver = self.solver()
        memories = self.memories
        if memories is not None and stats.recent is not None and self._opens:
            loss, norm, gap = self._learn_and_open(rows, values, h, solver, scale, warm)
            self.monitor.record_one(rows, values, loss, norm, gap)
            return loss
        if memories is None:
            loss, norm = self.divergence.learn_sample(stats, rows, values, h, solver,
                                                      1.0 / scale, rho, warm)
        else:  # both memories in one compiled call
            mine = np.empty_like(h)
            loss, norm, shadow_loss, shadow_norm = self._learn_twice(rows, values, h, mine,
                                                                     solver, scale, warm)
        stats.scale = scale
        stats.n_eff = rho * stats.n_eff + 1.0
        stats.remember(rows, values, h)
        gap = math.nan
        if memories is not None:
            gap = memories.learned_one(rows, values, mine, loss / norm if norm > 0 else 0.0,
                                       shadow_loss, shadow_norm)
        self.monitor.record_one(rows, values, loss, norm, gap)
        return loss

    def _learn_and_open(self, rows, values, h, solver, scale,
                        warm) -> tuple[float, float, float]:
        """What :meth:`learn_one` does with both memories (:meth:`_learn_twice`, each memory's
        scale and open samples, :meth:`Memories.learned_one`), the two open samples' appends
        inside the compiled call (:meth:`KullbackLeibler.learn_twice_open`): a dozen numpy
        calls fewer per sample. Returns the served (loss, normaliser) and the memories' log
        loss ratio (:meth:`Memories.scored_one`)."""
        stats, memories = self.statistics, self.memories
        shadow, shadow_rho = memories.shadow, memories.shadow_rho
        shadow_scale = shadow.scale * shadow_rho
        stats.scale, shadow.scale = scale, shadow_scale  # the open samples' lazy scales
        rho = self.rho
        mine = np.empty_like(h)
        loss, norm, shadow_loss, shadow_norm, opened, shadow_opened = (
            self.divergence.learn_twice_open(stats, shadow, rows, values, h, mine, solver,
                                             1.0 / scale, rho, warm, 1.0 / shadow_scale,
                                             shadow_rho))
        stats.n_eff = rho * stats.n_eff + 1.0
        shadow.n_eff = shadow_rho * shadow.n_eff + 1.0
        _opened(stats, opened, rows, values, h)
        _opened(shadow, shadow_opened, rows, values, mine)
        gap = memories.scored_one(loss / norm if norm > 0 else 0.0,
                                  shadow_loss / shadow_norm if shadow_norm > 0 else 0.0)
        return loss, norm, gap

    def _learn_twice(self, rows, values, h, mine, solver, scale, warm) -> tuple:
        """Both memories in one compiled call (:meth:`Divergence.learn_twice`): the served
        statistics (their lazy scale after this sample: ``scale``) and the shadow memory's;
        ``mine`` receives the shadow's h."""
        stats = self.statistics
        shadow, shadow_rho = self.memories.shadow, self.memories.shadow_rho
        return self.divergence.learn_twice(stats, shadow, rows, values, h, mine, solver,
                                           1.0 / scale, self.rho, warm,
                                           1.0 / (shadow.scale * shadow_rho), shadow_rho)

    def learn_segment(self, indptr, indices, data, H, warm) -> np.ndarray:
        """Samples that all see the same W (no refresh inside); return their losses."""
        count = indptr.size - 1
        base = indptr[0]
        local_indptr = indptr - base
        rows = indices[base : indptr[-1]]
        values = data[base : indptr[-1]]
        rho = self.rho
        scales = self.statistics.scale * rho ** np.arange(1, count + 1)
        losses = self.divergence.learn_batch(self.statistics, local_indptr, rows, values, H,
                                             self.solver(), 1.0 / scales, warm)
        self.statistics.add_batch(H, rho, scales)
        self.statistics.remember_batch(local_indptr, rows, values, H, np.log(scales))
        norms = self.divergence.normalisers(local_indptr, values)
        gaps = None
        if self.memories is not None:
            relative = np.divide(losses, norms, out=np.zeros(count), where=norms > 0)
            gaps = self.memories.learned_batch(local_indptr, rows, values, H, relative,
                                               self.solver())
        self.monitor.record_many(local_indptr, rows, values, losses, norms, gaps)
        return losses

    def solve(self, indptr, indices, data, H) -> np.ndarray:
        """H for a CSR batch against the current W, read-only; rows of H that are zero get a
        cold start, the others are warm starts. Returns the losses."""
        stats = self.statistics
        if stats.m == 0:
            H[:] = 0.0
            return np.zeros(indptr.size - 1)
        empty = []  # a list, not a mask: transform_one's hot path pays per numpy call
        for s in range(indptr.size - 1):
            start, stop = indptr[s], indptr[s + 1]
            if start == stop:
                empty.append(s)
            if not np.count_nonzero(H[s]):
                self.divergence.initial_h(data[start:stop], stats.colsum, H[s])
        losses = self.divergence.solve_batch(stats, indptr, indices, data, H, self.solver())
        if empty:
            H[empty] = 0.0
        return losses

    def batch_sums(self, indptr, indices, data, per_row: bool = False):
        """The statistics of a CSR batch under the current W, read-only: each row solved from
        a cold start against W (as :meth:`solve`), its statistics added with weight 1.
        ``per_row``: return ``(sums, relative)``, each row's loss relative to its scale too
        (the unit of the monitor's recent samples: a batch pass picks its worst rows by it)."""
        scratch = self.statistics.batch_scratch()
        count = indptr.size - 1
        H = np.zeros((count, len(self.components)))
        losses = self.divergence.learn_batch(scratch, indptr, indices, data, H, self.solver(),
                                             np.ones(count), np.zeros(count, dtype=np.bool_))
        norms = self.divergence.normalisers(indptr, data)
        relative = np.divide(losses, norms, out=np.zeros(count), where=norms > 0)
        A = H.T @ H if scratch.layout.gram else scratch.A
        sums = BatchSums(scratch.B, scratch.D, A, H.sum(axis=0), count, float(losses.sum()),
                         float(relative.sum()))
        return (sums, relative) if per_row else sums

    def warm_start(self, h: np.ndarray, values: np.ndarray) -> np.ndarray:
        """A caller's h made a usable start: positive where the solver needs it."""
        if not self.divergence.positive_h:
            return h
        cold = np.empty_like(h)
        self.divergence.initial_h(values, self.statistics.colsum, cold)
        return np.maximum(h, 1e-3 * cold)

    def dictionary_before(self) -> np.ndarray | None:
        """W before a refresh's M-step (beta = 1: :meth:`restate` reads how far it moved)."""
        stats = self.statistics
        return stats.W[: stats.m].copy() if stats.recent is not None else None

    def restate(self, since_refresh: int, before: np.ndarray | None = None) -> bool:
        """After a refresh's M-step (``before``: W before it; None: moved fully): the open
        samples re-solved against the new W and the statistics rebuilt from them
        (:meth:`onlinenmf.statistics.Statistics.restate`), in both memories, the latest
        :func:`kept_open` of them staying open; or, when W barely moved, all closed as they
        are. Whether any sample was re-solved."""
        stats = self.statistics
        recent = stats.recent
        if recent is None:
            return False
        share = budget_share(before, stats.W[: stats.m])
        memories = [stats, *([self.memories.shadow] if self.memories is not None else [])]
        if share * RESTATED_PER_SAMPLE < 1.0:  # not one re-solve per sample: none
            for memory in memories:
                memory.close_all()
            return False
        keep = kept_open(since_refresh, recent.maxlen, share)
        solver = self.solver()._replace(max_iter=RESTATE_SWEEPS)
        stats.recompute_caches()
        done = [memory.restate(self.divergence, solver, keep) for memory in memories]
        return done[0] > 0

    # -------------------------------------------------------------- W from the recent samples
    def can_initialise(self) -> bool:
        """Enough non-empty recent samples to start W from the data (one per component)."""
        return self.monitor.non_empty() >= len(self.components)

    def initialise(self, init: str, keep_order: bool = False) -> None:
        """The first dictionary, from the recent samples instead of the random initial rows.

        The random rows are only there so that the first samples get an h at all; EM-like
        updates started from them can settle in poor local optima (components that blend
        communities). So W starts from k diverse recent samples (``init="samples"``) or from
        their mean profile and the residuals of k-1 of them (``init="core"``), is refined by
        batch NMF on the buffer, and the buffered samples are re-learned against it, replacing
        the statistics gathered under the random one. ``keep_order``: the new columns take the
        places (so the ids) of the current columns they are most alike (cosine over the rows
        the buffer uses; an optimal one-to-one matching).
        """
        samples, used, V = self.monitor.matrix()
        k = len(self.components)
        start = (dictionary.core_columns(V, k) if init == "core"
                 else dictionary.sample_columns(V, k))
        refined = dictionary.batch_fit(V, start + 1e-3 * start.mean(), self.divergence)
        stats = self.statistics
        if keep_order:
            refined = refined[:, matching(stats.W[used], refined)]
        stats.W[: stats.m] = self.divergence.w_floor
        stats.W[used] = refined
        dictionary.normalise_columns(stats.W[: stats.m])
        stats.recompute_caches()
        self.relearn(samples)
        stats.recompute_caches()

    def refit_recent(self) -> None:
        """Refine W by batch NMF on the recent samples, starting from the current W, and
        re-learn their statistics under it (after a drift, see :mod:`onlinenmf.hyper`).

        Online EM takes one step per refresh from statistics gathered under older
        dictionaries, so components that overlap unmix slowly after a drift; a hundred
        multiplicative steps on the recent samples do it at once. Ids stay as they are.
        """
        if len(self.monitor.recent) < len(self.components):
            return
        samples, used, V = self.monitor.matrix()
        stats = self.statistics
        refined = dictionary.batch_fit(V, stats.W[used], self.divergence)
        old = stats.W[used].sum(axis=0)
        new = refined.sum(axis=0)
        # keep each column's mass on the rows the buffer does not cover
        stats.W[used] = refined * np.where(new > 0, old / np.maximum(new, 1e-300), 0.0)
        dictionary.normalise_columns(stats.W[: stats.m])
        stats.recompute_caches()
        self.relearn(samples)
        stats.recompute_caches()

    def relearn(self, samples: list) -> None:
        """Forget the statistics and re-learn the samples against the current W, weighted by
        the forgetting in force as if they had just streamed by."""
        self.statistics.reset()
        count = len(samples)
        lengths = np.array([len(rows) for rows, _, _ in samples], dtype=np.int64)
        indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        rows = np.concatenate([rows for rows, _, _ in samples]).astype(np.int64)
        values = np.concatenate([values for _, values, _ in samples])
        H = np.zeros((count, len(self.components)))
        weights = self.rho ** np.arange(count - 1, -1, -1, dtype=np.float64)
        self.divergence.learn_batch(self.statistics, indptr, rows, values, H, self.solver(),
                                    weights, np.zeros(count, dtype=np.bool_))
        self.statistics.set_learned(H, weights)
        self.statistics.remember_batch(indptr, rows, values, H, -np.log(weights))
        if self.memories is not None:
            self.memories.relearned(indptr, rows, values, self.solver())

    def residual_seed(self, worst: list | None = None) -> tuple[np.ndarray, int] | None:
        """A new column from the positive residuals of the worst recent samples (or of
        ``worst``: (rows, values, relative loss) triples, worst first, as a batch pass finds
        them), and how many of those residuals point the same way as the worst one (cosine
        >= 0.5)."""
        if worst is None:
            worst = self.monitor.worst(WORST_SAMPLES)
        if not worst:
            return None
        stats = self.statistics
        stats.recompute_caches()
        h = np.empty(len(self.components))
        wh = np.empty(max(max(len(rows) for rows, _, _ in worst), 1))
        solver = self.solver()
        residuals = []
        for rows, values, _ in worst:
            self.divergence.solve_one(stats, rows, values, h, solver, wh[: rows.size])
            positive = np.maximum(values - wh[: rows.size], 0.0)
            if positive.sum() > 0:
                dense = np.zeros(stats.m)
                dense[rows] = positive / positive.sum()
                residuals.append(dense)
        if not residuals:
            return None
        # Average the worst sample's residual with those that look like it (cosine >= 0.5), so
        # that two different new communities are not blended into one seed.
        stacked = np.array(residuals)
        unit = stacked / np.linalg.norm(stacked, axis=1, keepdims=True)
        alike = unit @ unit[0] >= 0.5
        residual = stacked[alike].sum(axis=0)
        column = residual / residual.sum()
        if self.divergence.w_floor:
            column = np.maximum(column, self.divergence.w_floor)
            column /= column.sum()
        return column, int(alike.sum())


def _opened(stats: Statistics, status: int, rows, values, h) -> None:
    """Count a sample the compiled call opened (``status``: :data:`onlinenmf.solve.OPENED`),
    else do what :meth:`Statistics.remember` does: append it, its arrays grown (no room was
    left for its entries), or mark the open samples incomplete (``maxlen`` open already)."""
    if status == solve.OPENED:
        stats.recent.count += 1
    elif status == solve.OPEN_NO_ROOM:
        stats.remember(rows, values, h)
    else:
        stats.lost = True


def budget_share(before: np.ndarray | None, after: np.ndarray) -> float:
    """The share of restating's budget a refresh spends: how far W moved (the mean over
    columns of the total variation distance between a column before and after) over
    MOVED_FULLY, at most 1 (and 1 when the columns are not the same ones)."""
    if before is None or before.shape != after.shape or not after.size:
        return 1.0
    moved = 0.5 * float(np.abs(after - before).sum()) / after.shape[1]
    return min(1.0, moved / MOVED_FULLY)


def kept_open(since_refresh: int, room: int, share: float = 1.0) -> int:
    """How many of the samples re-solved at a refresh stay open (re-solved again at the next
    one), ``since_refresh`` samples after the previous refresh, with room for ``room`` open
    samples: ``share * RESTATED_PER_SAMPLE - 1`` times the interval, and room left for the
    next interval's samples (twice this one), so that a refresh re-solves at most
    ``RESTATED_PER_SAMPLE`` samples per sample learned since the previous one, amortised.

    >>> kept_open(15, 128), kept_open(1, 128), kept_open(100, 128), kept_open(15, 128, 0.25)
    (98, 15, 0, 45)
    """
    interval = int(since_refresh)
    wanted = int((share * RESTATED_PER_SAMPLE - 1.0) * interval)
    return max(0, min(wanted, room - 2 * interval))


def matching(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """For each column of ``old``, the column of ``new`` most alike (cosine), one to one."""
    from scipy.optimize import linear_sum_assignment

    a = old / np.maximum(np.linalg.norm(old, axis=0), 1e-300)
    b = new / np.maximum(np.linalg.norm(new, axis=0), 1e-300)
    rows, columns = linear_sum_assignment(-(a.T @ b))
    return columns[np.argsort(rows)]
