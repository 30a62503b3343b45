"""The online model: per-sample NMF with a dictionary refreshed from forgetful statistics."""

from __future__ import annotations

import hashlib
import os
from collections import deque
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from onlinenmf import dictionary, hyper, sharing, snapshot
from onlinenmf.divergences import Solver, Totals, for_beta
from onlinenmf.statistics import Statistics
from onlinenmf.validation import check_feature_name, parse_matrix, parse_sample

#: Monitoring of the prequential loss (see ``OnlineNMF`` notes, "Dead components").
ALARM_RATIO = 1.5
ALARM_PATIENCE = 2
RESEED_COOLDOWN = 2
DEAD_SHARE = 1e-3
WORST_SAMPLES = 10


class OnlineNMF:
    """Streaming non-negative matrix factorization, ``v ~ W h``, one sample at a time.

    Each sample ``v`` (a mapping feature -> non-negative value) gets its activations ``h``
    solved to the optimum against the current dictionary ``W``; the sample's sufficient
    statistics are added with exponential forgetting; every ``refresh_every`` samples ``W`` is
    recomputed from them and its columns normalised to sum 1 (each column a distribution over
    features: a "community" of taxa, a "taste" over items).

    Parameters
    ----------
    n_components
        Number of components k (the starting rank).
    beta
        The beta-divergence, any number >= 0 (:mod:`onlinenmf.divergences`): 2 (Frobenius),
        1 (generalized KL, the Poisson likelihood of counts; Lee & Seung's objective) and 0
        (Itakura-Saito, scored on the non-zero entries only) have exact solvers of their own;
        any other beta is fitted by multiplicative updates, at O(m k) per sample (its zero
        entries have no k-sized summary).
    forget_factor
        rho, per sample: a sample's statistics weigh ``rho**age``. The memory length is
        ``1 / (1 - rho)`` samples (500 for the default), whatever the caller's batch sizes.
    refresh_every
        Samples between two dictionary refreshes.
    l1_h, l2_h
        L1 and L2 penalties on h: ``D(v | W h) + l1_h |h|_1 + l2_h / 2 |h|^2`` per sample.
    l1_w, l2_w
        L1 and L2 penalties on W per remembered sample (beta = 2 only: with columns normalised
        to sum 1 they would only rescale a multiplicative update).
    refresh_sweeps
        Block-coordinate sweeps over W per refresh (beta = 2).
    max_iter, tol
        Inner solver: at most ``max_iter`` sweeps, stopping when no entry of h moves by more
        than ``tol`` times the largest.
    reseed
        Re-seed dead components (and, after a loss alarm, the least used one) from the residuals
        of the worst recent samples.
    buffer_size
        Recent samples kept for re-seeding.
    seed
        Seeds the initial rows of new features: a row depends only on (seed, feature name).
    adapt_rank, adapt_sparsity, adapt_forgetting
        Re-estimate the rank (relevance pruning and residual births), the L1 weight on h
        (empirical Bayes) and the forgetting factor (drift detection) while streaming; see
        :mod:`onlinenmf.hyper`. All off by default: the fixed values above are then used as
        given. ``forget_factor`` and ``l1_h`` stay the user's values; the values in force are
        in :attr:`hyperparameters`, each change is an event in :attr:`events`.
    reestimate_every
        Refreshes between two re-estimations.
    k_min, k_max
        Bounds of the rank under ``adapt_rank`` (``k_max`` defaults to twice the starting rank).
    prune_patience
        Consecutive re-estimations a component's relevance must stay at its bound before it
        is retired.
    ard_strength
        Weight of the relevance (ARD) penalty on h, relative to the loss's gradient scale.
    init
        The first dictionary, fitted at the first refresh on the recent samples: ``"samples"``
        starts from k diverse samples; ``"core"`` from their mean profile plus the residuals of
        k-1 diverse samples, for data whose samples share a common part (a core community, the
        torso of every Swimmer image) that should be a component of its own rather than spread
        over all of them. ``"core"`` finds Swimmer's torso and 16 limbs; on streams without a
        shared part it can leave a blended column (measured: one extra component under
        ``adapt_rank``), so it is not the default.

    Examples
    --------
    >>> from onlinenmf import OnlineNMF
    >>> model = OnlineNMF(n_components=2, beta=1, refresh_every=2, seed=0)
    >>> for x in [{"a": 5, "b": 1}, {"c": 4, "d": 2}, {"a": 6, "b": 2}, {"c": 5, "d": 1}]:
    ...     h = model.learn_one(x)
    >>> model.features
    ['a', 'b', 'c', 'd']
    >>> model.W.shape, model.samples_learned, model.model_version
    ((4, 2), 4, 2)
    >>> bool(np.allclose(model.W.sum(axis=0), 1.0))
    True
    >>> sorted(model.transform_one({"a": 5, "b": 1}))
    [0, 1]

    Notes
    -----
    Cost per sample is O(nnz(v) k + sweeps k^2): the zeros of v enter the loss only through the
    cached Gram matrix ``W^T W`` (beta = 2) or the column sums of W (beta = 1), forgetting is
    lazy (one running scale instead of a pass over the statistics), and a sample reads and
    writes only the rows of its non-zero features. A refresh costs O(m k^2).

    Features are keyed by name: a feature seen for the first time gets a row whose values
    depend on (seed, name) and on the columns' mean entry before the sample, never on the order
    of the sample's keys. :meth:`learn_many` registers every named column up front, as
    :meth:`learn_one` registers every key of its dict (zeros included).

    Dead components: a component whose share of the remembered activation falls under 0.1 %,
    or, when the recent loss stays above 1.5 times its long-run level, the least used one, is
    replaced by the normalised positive residual of the worst recent samples. It is a new
    component with a new id; the old id is retired. Both are recorded in :attr:`events`.
    """

    def __init__(
        self,
        n_components: int = 10,
        beta: float = 1,
        *,
        forget_factor: float = 0.998,
        refresh_every: int = 100,
        l1_h: float = 0.0,
        l2_h: float = 0.0,
        l1_w: float = 0.0,
        l2_w: float = 0.0,
        refresh_sweeps: int = 1,
        max_iter: int = 200,
        tol: float = 1e-6,
        reseed: bool = True,
        buffer_size: int = 128,
        seed: int = 0,
        adapt_rank: bool = False,
        adapt_sparsity: bool = False,
        adapt_forgetting: bool = False,
        reestimate_every: int = 1,
        k_min: int = 1,
        k_max: int | None = None,
        prune_patience: int = 3,
        ard_strength: float = 1e-2,
        init: str = "samples",
    ):
        self.n_components = n_components
        self.beta = beta
        self.forget_factor = forget_factor
        self.refresh_every = refresh_every
        self.l1_h = l1_h
        self.l2_h = l2_h
        self.l1_w = l1_w
        self.l2_w = l2_w
        self.refresh_sweeps = refresh_sweeps
        self.max_iter = max_iter
        self.tol = tol
        self.reseed = reseed
        self.buffer_size = buffer_size
        self.seed = seed
        self.adapt_rank = adapt_rank
        self.adapt_sparsity = adapt_sparsity
        self.adapt_forgetting = adapt_forgetting
        self.reestimate_every = reestimate_every
        self.k_min = k_min
        self.k_max = k_max
        self.prune_patience = prune_patience
        self.ard_strength = ard_strength
        self.init = init
        self._check_params()
        self._init_state()

    # ------------------------------------------------------------------ parameters and state
    @property
    def n_components(self) -> int:
        """The current rank. With ``adapt_rank`` it changes while streaming; the constructor's
        value (the starting rank) is what :meth:`_params` and snapshots record."""
        ids = self.__dict__.get("_component_ids")
        return self._initial_rank if ids is None else len(ids)

    @n_components.setter
    def n_components(self, value: int) -> None:
        self._initial_rank = value

    def _params(self) -> dict[str, Any]:
        params = {name: getattr(self, name) for name in PARAMETERS}
        params["n_components"] = self._initial_rank
        return params

    def _check_params(self) -> None:
        if not isinstance(self.n_components, int | np.integer) or self.n_components < 1:
            raise ValueError(f"n_components must be a positive integer, got {self.n_components!r}")
        if (not isinstance(self.beta, int | float | np.integer | np.floating)
                or not np.isfinite(self.beta) or self.beta < 0):
            raise ValueError(f"beta must be a finite number >= 0, got {self.beta!r}")
        divergence = for_beta(self.beta)
        if self.init not in ("samples", "core"):
            raise ValueError(f"init must be 'samples' or 'core', got {self.init!r}")
        if not 0.0 < self.forget_factor <= 1.0:
            raise ValueError(f"forget_factor must be in (0, 1], got {self.forget_factor!r}")
        for name in ("refresh_every", "refresh_sweeps", "max_iter", "buffer_size",
                     "reestimate_every", "prune_patience", "k_min"):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("l1_h", "l2_h", "l1_w", "l2_w", "tol", "ard_strength"):
            value = getattr(self, name)
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite non-negative number, got {value!r}")
        if self.k_max is not None and (not isinstance(self.k_max, int | np.integer)
                                       or self.k_max < self.k_min):
            raise ValueError(f"k_max must be an integer >= k_min={self.k_min}, got {self.k_max!r}")
        if self.adapt_rank and divergence.no_rank_adaptation:
            raise ValueError(divergence.no_rank_adaptation)
        if self.adapt_rank and not self.k_min <= self.n_components <= self.rank_bounds[1]:
            raise ValueError(f"n_components={self.n_components} must be in k_min..k_max = "
                             f"{self.k_min}..{self.rank_bounds[1]}")
        for name in ("adapt_rank", "adapt_sparsity", "adapt_forgetting"):
            if not isinstance(getattr(self, name), bool | np.bool_):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if not divergence.penalises_w and (self.l1_w or self.l2_w):
            raise ValueError(
                "l1_w and l2_w apply to beta=2 only: with columns normalised to sum 1 a penalty "
                "in the multiplicative update would only rescale W"
            )

    @property
    def rank_bounds(self) -> tuple[int, int]:
        """``(k_min, k_max)`` in force: ``k_max`` defaults to twice the starting rank."""
        k_max = self.k_max
        if k_max is None:
            k_max = max(2 * int(self._initial_rank), int(self.k_min))
        return int(self.k_min), int(k_max)

    def _init_state(self) -> None:
        k = int(self._initial_rank)
        self._divergence = for_beta(self.beta)
        self._stats = Statistics(self._divergence.layout, k)
        self._features: list[str | int] = []
        self._index: dict[Hashable, int] = {}
        self._rho = float(self.forget_factor)  # the forgetting in force (adapt_forgetting)
        self._l1 = np.full(k, float(self.l1_h))
        self.samples_learned = 0
        self.model_version = 0
        self._initialised = False  # the data-driven first dictionary is in place
        #: Prequential loss of the latest learned samples: D_beta(v | W h) with h solved
        #: against the dictionary *before* the sample was learned.
        self.last_losses = np.zeros(0)
        self._since_refresh = 0
        self._component_ids = list(range(k))
        self._next_id = k
        self.events: list[dict[str, Any]] = []
        self._window_loss = 0.0
        self._window_abs = 0.0  # sum of the absolute losses (empirical-Bayes noise level)
        self._window_count = 0
        self._baseline = -1.0  # long-run relative loss; < 0 until the first memory length
        self._alarm_count = 0
        self._cooldown = 0
        self._recent: deque = deque(maxlen=self.buffer_size)
        adaptive = self.adapt_rank or self.adapt_sparsity or self.adapt_forgetting
        self._hyper = hyper.Reestimator(self) if adaptive else None
        self._peers: list[dict[str, Any]] = []  # see set_peer_statistics; not in snapshots
        self._shared_usage: np.ndarray | None = None  # own + peers' usage at the last refresh

    # ------------------------------------------------------------------ public views
    @property
    def W(self) -> np.ndarray:
        """The dictionary, n_features x n_components (a read-only view)."""
        view = self._stats.W[: self._stats.m]
        view.flags.writeable = False
        return view

    @property
    def features(self) -> list:
        """Row names of W, in order of first appearance."""
        return list(self._features)

    @property
    def component_ids(self) -> list[int]:
        """Stable ids of the columns of W; an id is never reused."""
        return list(self._component_ids)

    @property
    def n_features(self) -> int:
        return self._stats.m

    @property
    def memory_length(self) -> float:
        """``1 / (1 - rho)``: how many recent samples the statistics remember, for the
        forgetting factor rho in force (``forget_factor`` unless ``adapt_forgetting``)."""
        return float("inf") if self._rho == 1 else 1.0 / (1.0 - self._rho)

    @property
    def base_memory_length(self) -> float:
        """``1 / (1 - forget_factor)``, the user's memory length."""
        return float("inf") if self.forget_factor == 1 else 1.0 / (1.0 - self.forget_factor)

    @property
    def current_forget_factor(self) -> float:
        """The forgetting factor in force (re-estimated under ``adapt_forgetting``)."""
        return self._rho

    @property
    def hyperparameters(self) -> dict[str, Any]:
        """The values in force: rank, L1 weight on h, forgetting factor, and the relevance
        of each component (``{id: lambda}``, under ``adapt_rank`` only, else empty).

        >>> OnlineNMF(n_components=2, l1_h=0.5).hyperparameters["l1_h"]
        0.5
        """
        relevance = {}
        if self._hyper is not None and self.adapt_rank:
            lam = self._hyper.relevance(self)
            relevance = {c: float(v) for c, v in zip(self._component_ids, lam)}
        l1 = self._hyper.l1_base if self._hyper is not None else float(self.l1_h)
        return {"n_components": self.n_components, "l1_h": l1,
                "forget_factor": self._rho, "relevance": relevance}

    def components(self, top: int = 10) -> dict[int, list[tuple[Hashable, float]]]:
        """Each component's ``top`` features with their share, largest first.

        >>> model = OnlineNMF(n_components=1, beta=2, refresh_every=1)
        >>> _ = model.learn_one({"x": 3.0, "y": 1.0})
        >>> [name for name, share in model.components(top=2)[0]]
        ['x', 'y']
        """
        result = {}
        W = self.W
        for j, component in enumerate(self._component_ids):
            order = np.argsort(-W[:, j], kind="stable")[:top]
            result[component] = [(self._features[i], float(W[i, j])) for i in order]
        return result

    # ------------------------------------------------------------------ features
    def _new_rows(self, names: Sequence) -> np.ndarray:
        """Initial rows for new features: U(0.5, 1.5) from (seed, name), times the mean entry."""
        k = len(self._component_ids)
        level = self._stats.colsum / self._stats.m if self._stats.m else np.ones(k)
        level = np.where(level > 0, level, 1.0 / max(self._stats.m, 1))
        rows = np.empty((len(names), k))
        for i, name in enumerate(names):
            key = f"{self.seed}|{type(name).__name__}|{name}".encode()
            entropy = int.from_bytes(hashlib.blake2b(key, digest_size=16).digest(), "little")
            rows[i] = np.random.default_rng(entropy).uniform(0.5, 1.5, k)
        return rows * level

    def _register(self, names: Sequence) -> None:
        """Append rows for the names not seen before (names already validated)."""
        new = [name for name in dict.fromkeys(names) if name not in self._index]
        if not new:
            return
        # A canonical order (by type, then value), so that the rows, and every sum over them,
        # do not depend on the order of a sample's keys or a matrix's columns.
        new.sort(key=lambda name: (type(name).__name__, name))
        rows = self._new_rows(new)
        start = self._stats.m
        for offset, name in enumerate(new):
            self._index[name] = start + offset
            self._features.append(name)
        self._stats.add_rows(rows)

    def _sample_rows(self, x: Mapping, register: bool) -> tuple[np.ndarray, np.ndarray]:
        """Validate a sample and return (dictionary rows, values) of its non-zero entries."""
        names, values = parse_sample(x)
        found = list(map(self._index.get, names))  # the hot path: one C-level pass
        if None in found:
            unknown = [name for name, row in zip(names, found) if row is None]
            checked = [check_feature_name(name) for name in unknown]
            if register:
                self._register(checked)
            found = [self._index.get(name, -1) for name in names]
        rows = np.array(found, dtype=np.int64)
        keep = (values > 0) & (rows >= 0)
        rows, values = rows[keep], values[keep]
        order = np.argsort(rows)  # sums over the sample in row order: key order cannot matter
        return rows[order], values[order]

    def _matrix_rows(self, X, features, register: bool) -> sp.csr_matrix:
        """Validate a matrix; return it as CSR whose column indices are dictionary rows."""
        matrix, names = parse_matrix(X, features)
        if register:
            self._register(names)
        mapping = np.fromiter((self._index.get(n, -1) for n in names), np.int64, len(names))
        columns = mapping[matrix.indices]
        keep = columns >= 0
        shape = (matrix.shape[0], max(self._stats.m, 1))
        if keep.all():
            mapped = sp.csr_matrix((matrix.data, columns, matrix.indptr), shape=shape)
        else:  # unknown features (transform only) are ignored
            row_of = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
            counts = np.bincount(row_of[keep], minlength=matrix.shape[0])
            indptr = np.concatenate([[0], np.cumsum(counts)])
            mapped = sp.csr_matrix((matrix.data[keep], columns[keep], indptr), shape=shape)
        mapped.has_sorted_indices = False
        mapped.sort_indices()  # each row in dictionary-row order, as _sample_rows gives it
        return mapped

    def _warm_vector(self, warm_start: Mapping | None, values: np.ndarray) -> np.ndarray | None:
        if warm_start is None:
            return None
        if list(warm_start) == self._component_ids:  # the usual case: the previous h
            h = np.array(list(warm_start.values()), dtype=np.float64)
            h[~(np.isfinite(h) & (h > 0))] = 0.0
        else:
            h = np.zeros(len(self._component_ids))
            position = {c: j for j, c in enumerate(self._component_ids)}
            for component, value in warm_start.items():
                if component in position and np.isfinite(value) and value > 0:
                    h[position[component]] = float(value)
        if self._divergence.positive_h:  # multiplicative and Newton steps need h > 0
            cold = np.empty_like(h)
            self._divergence.initial_h(values, self._stats.colsum, cold)
            h = np.maximum(h, 1e-3 * cold)
        return h

    # ------------------------------------------------------------------ learning
    def learn_one(self, x: Mapping, warm_start: Mapping | None = None) -> dict[int, float]:
        """Solve h for one sample, learn from it, and return h as ``{component id: weight}``.

        ``warm_start`` (e.g. the subject's previous h) starts the solver there; the optimum
        reached is the same, only faster. Invalid samples raise ``ValueError`` and change
        nothing.
        """
        rows, values = self._sample_rows(x, register=True)
        H = np.zeros((1, len(self._component_ids)))
        warm = self._warm_vector(warm_start, values)
        if warm is not None:
            H[0] = warm
        ids = self._component_ids  # h belongs to these, even if a refresh now changes the rank
        self._learn_single(rows, values, H[0], warm is not None)
        return {component: float(value) for component, value in zip(ids, H[0])}

    def _solver(self) -> Solver:
        """The per-sample solve as the parameters set it now (tests may change them)."""
        return Solver(self._l1, float(self.l2_h), int(self.max_iter), float(self.tol))

    def _learn_single(self, rows: np.ndarray, values: np.ndarray, h: np.ndarray,
                      warm: bool) -> None:
        """:meth:`_learn_segment` for one sample in one compiled call (the per-sample hot path:
        a few numpy calls of overhead would cost more than the solve itself)."""
        stats = self._stats
        rho = self._rho
        scale = stats.scale * rho
        loss, norm = self._divergence.learn_sample(stats, rows, values, h, self._solver(),
                                                   1.0 / scale, rho, warm)
        stats.scale = scale
        stats.n_eff = rho * stats.n_eff + 1.0
        self.samples_learned += 1
        self._since_refresh += 1
        self.last_losses = np.array([loss])
        relative = loss / norm if norm > 0 else 0.0
        self._window_loss += relative
        self._window_abs += loss
        self._window_count += 1
        self._recent.append((rows, values, relative))  # fresh arrays from _sample_rows
        if self._since_refresh >= self.refresh_every:
            self.refresh()

    def learn_many(self, X, features: Sequence | None = None) -> np.ndarray:
        """Learn a mini-batch (rows = samples) and return H (n_samples x n_components).

        Same schedule, same result as :meth:`learn_one` over the rows in order (up to
        floating-point rounding): the batch is cut at refresh boundaries and each piece is solved
        against the same W.

        >>> import numpy as np
        >>> model = OnlineNMF(n_components=2, beta=2, refresh_every=3, seed=1)
        >>> H = model.learn_many(np.array([[1.0, 0, 2], [0, 3, 1], [2, 0, 4], [0, 1, 0]]),
        ...                      features=["a", "b", "c"])
        >>> H.shape, model.samples_learned, model.model_version
        ((4, 2), 4, 1)

        With ``adapt_rank`` the rank may change inside the batch: the columns of H are then the
        :attr:`component_ids` at the end of the call; a component retired during the call is
        dropped, one born during it reads 0 for the rows learned before its birth.
        """
        matrix = self._matrix_rows(X, features, register=True)
        indptr = matrix.indptr.astype(np.int64)
        indices = matrix.indices.astype(np.int64)
        n = matrix.shape[0]
        warm = np.zeros(n, dtype=np.bool_)
        if not self.adapt_rank:
            H = np.zeros((n, len(self._component_ids)))
            self._learn_csr(indptr, indices, matrix.data, H, warm)
            return H
        pieces = []
        start = 0
        self.last_losses = np.zeros(0)
        while start < n:  # the schedule of _learn_csr, one H per stretch of constant rank
            stop = min(n, start + self.refresh_every - self._since_refresh)
            ids = self._component_ids
            piece = np.zeros((stop - start, len(ids)))
            self._learn_segment(indptr[start : stop + 1], indices, matrix.data, piece,
                                warm[start:stop])
            pieces.append((start, stop, ids, piece))
            start = stop
            if self._since_refresh >= self.refresh_every:
                self.refresh()
        position = {c: j for j, c in enumerate(self._component_ids)}
        H = np.zeros((n, len(position)))
        for start, stop, ids, piece in pieces:
            for column, component in enumerate(ids):
                if component in position:
                    H[start:stop, position[component]] = piece[:, column]
        return H

    def _learn_csr(self, indptr, indices, data, H, warm) -> None:
        n = indptr.size - 1
        start = 0
        self.last_losses = np.zeros(0)
        while start < n:
            stop = min(n, start + self.refresh_every - self._since_refresh)
            self._learn_segment(indptr[start : stop + 1], indices, data, H[start:stop],
                                warm[start:stop])
            start = stop
            if self._since_refresh >= self.refresh_every:
                self.refresh()

    def _learn_segment(self, indptr, indices, data, H, warm) -> None:
        """Learn samples that all see the same W (no refresh inside)."""
        count = indptr.size - 1
        base = indptr[0]
        local_indptr = indptr - base
        rows = indices[base : indptr[-1]]
        values = data[base : indptr[-1]]
        rho = self._rho
        scales = self._stats.scale * rho ** np.arange(1, count + 1)
        losses = self._divergence.learn_batch(self._stats, local_indptr, rows, values, H,
                                              self._solver(), 1.0 / scales, warm)
        self._stats.add_batch(H, rho, scales)
        self.samples_learned += count
        self._since_refresh += count
        self.last_losses = np.concatenate([self.last_losses, losses])
        self._monitor(local_indptr, rows, values, losses)

    def _monitor(self, indptr, rows, values, losses) -> None:
        """Track the relative prequential loss and keep recent samples for re-seeding."""
        count = indptr.size - 1
        norms = self._divergence.normalisers(indptr, values)
        relative = np.divide(losses, norms, out=np.zeros(count), where=norms > 0)
        self._window_loss += float(relative.sum())
        self._window_abs += float(losses.sum())
        self._window_count += count
        for s in range(max(0, count - self.buffer_size), count):
            sample = slice(indptr[s], indptr[s + 1])
            self._recent.append((rows[sample].copy(), values[sample].copy(), relative[s]))

    @property
    def last_loss(self) -> float:
        """Prequential loss of the latest learned sample (see :attr:`last_losses`)."""
        return float(self.last_losses[-1]) if self.last_losses.size else float("nan")

    def refresh(self) -> None:
        """Recompute W from the statistics now, normalise it, re-seed dead components."""
        if not self._initialised and sum(
            rows.size > 0 for rows, _, _ in self._recent
        ) >= len(self._component_ids):  # enough non-empty samples to start from the data
            self._initialise_from_recent()
            return
        stats = self._stats
        W = stats.W[: stats.m]
        stats.unscale()
        # own statistics, or own plus the peers' (whose columns are matched to ours first)
        totals = stats.totals()
        self._shared_usage = None
        if self._peers:
            totals = self._add_peer_statistics()
        self._divergence.update_dictionary(W, totals, self.l1_w * totals.n_eff,
                                           self.l2_w * totals.n_eff, int(self.refresh_sweeps))
        sums = dictionary.normalise_columns(W)
        stats.rescale_columns(np.where(sums > 0, sums, 1.0))
        self._since_refresh = 0
        self.model_version += 1
        self._check_components()
        stats.recompute_caches()

    def _initialise_from_recent(self) -> None:
        """The first refresh: a data-driven dictionary instead of the random initial rows.

        The random rows are only there so that the first samples get an h at all; EM-like
        updates started from them can settle in poor local optima (components that blend
        communities). So the first refresh starts from k diverse recent samples (``init=
        "samples"``) or from their mean profile and the residuals of k-1 of them (``init=
        "core"``), refines them by batch NMF on the buffer, then re-learns the buffered samples
        against that dictionary, replacing the statistics gathered under the random one.
        """
        samples, used, V = self._recent_matrix()
        k = len(self._component_ids)
        start = (dictionary.core_columns(V, k) if self.init == "core"
                 else dictionary.sample_columns(V, k))
        refined = dictionary.batch_fit(V, start + 1e-3 * start.mean(), self._divergence)
        m = self._stats.m
        self._stats.W[:m] = self._divergence.w_floor
        self._stats.W[used] = refined
        dictionary.normalise_columns(self._stats.W[:m])
        self._stats.recompute_caches()
        self._relearn_recent(samples)
        self._since_refresh = 0
        self.model_version += 1
        self._initialised = True
        self._stats.recompute_caches()

    def _refit_recent(self) -> None:
        """After a detected drift (:mod:`onlinenmf.hyper`): refine W by batch NMF on the recent
        buffer, starting from the current W, and re-learn the buffer's statistics under it.

        Online EM takes one step per refresh from statistics gathered under older
        dictionaries, so components that overlap unmix slowly after a drift; a hundred
        multiplicative steps on the recent samples do it at once. Ids stay as they are.
        """
        if len(self._recent) < len(self._component_ids):
            return
        samples, used, V = self._recent_matrix()
        refined = dictionary.batch_fit(V, self._stats.W[used], self._divergence)
        old = self._stats.W[used].sum(axis=0)
        new = refined.sum(axis=0)
        # keep each column's mass on the rows the buffer does not cover
        self._stats.W[used] = refined * np.where(new > 0, old / np.maximum(new, 1e-300), 0.0)
        dictionary.normalise_columns(self._stats.W[: self._stats.m])
        self._stats.recompute_caches()
        self._relearn_recent(samples)
        self._stats.recompute_caches()

    def _recent_matrix(self) -> tuple[list, np.ndarray, np.ndarray]:
        """The recent buffer as a dense matrix over the dictionary rows it uses."""
        samples = list(self._recent)
        used = np.unique(np.concatenate([rows for rows, _, _ in samples]))
        position = {int(r): i for i, r in enumerate(used)}
        V = np.zeros((len(samples), used.size))
        for i, (rows, values, _) in enumerate(samples):
            V[i, [position[int(r)] for r in rows]] = values
        return samples, used, V

    def _relearn_recent(self, samples: list) -> None:
        """Forget the statistics and re-learn the buffered samples against the current W."""
        self._stats.reset()
        count = len(samples)
        lengths = np.array([len(rows) for rows, _, _ in samples], dtype=np.int64)
        indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        rows = np.concatenate([rows for rows, _, _ in samples]).astype(np.int64)
        values = np.concatenate([values for _, values, _ in samples])
        H = np.zeros((count, len(self._component_ids)))
        weights = self._rho ** np.arange(count - 1, -1, -1, dtype=np.float64)
        self._divergence.learn_batch(self._stats, indptr, rows, values, H, self._solver(),
                                     weights, np.zeros(count, dtype=np.bool_))
        self._stats.set_learned(H, weights)

    # ------------------------------------------------------------------ dead components
    def _check_components(self) -> None:
        window = self._window_loss / max(self._window_count, 1)
        window_usage, window_abs = self._stats.window_usage, self._window_abs
        count = self._window_count
        recent = self._stats.window_usage / max(float(self._stats.window_usage.sum()), 1e-300)
        self._window_loss, self._window_abs, self._window_count = 0.0, 0.0, 0
        self._stats.window_usage = np.zeros(len(self._component_ids))
        if self._baseline < 0:
            if self.samples_learned >= min(self.memory_length, 10 * self.refresh_every):
                self._baseline = window
            alarm = False
        else:
            alarm = window > ALARM_RATIO * self._baseline
            self._alarm_count = self._alarm_count + 1 if alarm else 0
            weight = min(1.0, self.refresh_every / (4.0 * self.memory_length))
            self._baseline += weight * (window - self._baseline)
        if self._cooldown > 0:
            self._cooldown -= 1
        if self._hyper is not None:  # re-estimation; under adapt_rank it owns births and deaths
            self._hyper.on_refresh(self, window, window_abs, count, window_usage)
            if self.adapt_rank:
                return
        if not self.reseed or not self._recent:
            return
        # with peers, a component is alive if anyone uses it: this worker may never see it
        usage = self._stats.usage if self._shared_usage is None else self._shared_usage
        share = usage / max(float(usage.sum()), 1e-300)
        if self.samples_learned >= self.memory_length and share.min() < DEAD_SHARE:
            self._reseed(int(np.argmin(share)), "dead: its share of the activations vanished")
        elif self._alarm_count >= ALARM_PATIENCE and self._cooldown == 0:
            self._reseed(  # the component the recent samples used least
                int(np.argmin(recent if self._shared_usage is None else share)),
                f"loss alarm: recent loss {window:.4g} > {ALARM_RATIO} x long-run "
                f"{self._baseline:.4g}",
            )
            self._alarm_count = 0
            self._cooldown = RESEED_COOLDOWN

    def _residual_seed(self) -> tuple[np.ndarray, int] | None:
        """A new column from the positive residuals of the worst recent samples, and how many
        of those residuals point the same way as the worst one (cosine >= 0.5)."""
        if not self._recent:
            return None
        m, k = self._stats.m, len(self._component_ids)
        worst = sorted(self._recent, key=lambda item: -item[2])[:WORST_SAMPLES]
        self._stats.recompute_caches()
        h = np.empty(k)
        wh = np.empty(max(max(len(rows) for rows, _, _ in worst), 1))
        residuals = []
        solver = self._solver()
        for rows, values, _ in worst:
            self._divergence.solve_one(self._stats, rows, values, h, solver, wh[: rows.size])
            positive = np.maximum(values - wh[: rows.size], 0.0)
            if positive.sum() > 0:
                dense = np.zeros(m)
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
        if self._divergence.w_floor:
            column = np.maximum(column, self._divergence.w_floor)
            column /= column.sum()
        return column, int(alike.sum())

    def _reseed(self, j: int, reason: str) -> None:
        """Replace column j by the positive residual of the worst recent samples."""
        seed = self._residual_seed()
        if seed is None:
            return
        self._divergence.seed(self._stats, j, seed[0], *self._divergence.seed_weights(self._stats))
        old = self._component_ids[j]
        new = self._next_id
        self._next_id += 1
        # a new list, never an in-place change: learn_one holds on to the ids h was solved for
        self._component_ids = [*self._component_ids[:j], new, *self._component_ids[j + 1 :]]
        for kind, component in (("retire", old), ("birth", new)):
            self.events.append({"kind": kind, "sample": self.samples_learned,
                                "component": component, "old": old, "new": new,
                                "reason": reason})
        if self._hyper is not None:
            self._hyper.on_replace(j)
        self._stats.recompute_caches()

    # ------------------------------------------------------------------ rank changes
    def _resize_columns(self, keep: np.ndarray, add: int) -> None:
        """Keep the columns ``keep`` (in order) of every k-sized array and append ``add`` zero
        columns: W, the statistics, the caches, the windows and the L1 vector."""
        self._stats.resize_columns(keep, add)
        l1 = np.take(self._l1, keep)
        self._l1 = np.concatenate([l1, np.zeros(add)]) if add else l1

    def _add_component(self, column: np.ndarray, reason: str) -> int:
        """Append a new component (a new id) seeded with ``column``; return its id."""
        usage, weight = self._divergence.seed_weights(self._stats)
        k = len(self._component_ids)
        self._resize_columns(np.arange(k), 1)
        self._divergence.seed(self._stats, k, column, usage, weight)
        new = self._next_id
        self._next_id += 1
        self._component_ids = [*self._component_ids, new]
        if self._hyper is not None:
            self._hyper.on_add()
            hyper.emit(self, "grow", k, k + 1, reason, component=new)
            self._hyper.update_penalties(self)
        self._stats.recompute_caches()
        return new

    def _remove_component(self, j: int, reason: str) -> None:
        """Retire column j: its id is never reused; the other columns keep theirs."""
        k = len(self._component_ids)
        old = self._component_ids[j]
        self._resize_columns(np.delete(np.arange(k), j), 0)
        self._component_ids = [c for c in self._component_ids if c != old]
        if self._hyper is not None:
            self._hyper.on_remove(j)
            hyper.emit(self, "prune", k, k - 1, reason, component=old)
            self._hyper.update_penalties(self)
        self._stats.recompute_caches()

    # ------------------------------------------------------------------ shared dictionaries
    def export_statistics(self) -> dict[str, Any]:
        """This model's own forgetful statistics, for peers that share its dictionary.

        A dict of copies, rows keyed by feature name: ``features``, ``W``, ``B`` (the
        statistic of the rows at its true scale), ``usage`` (the forgetful sum of h),
        ``A`` (beta = 2, k x k) or ``D`` (beta = 0, rows), ``n_eff``, ``samples_learned``,
        ``beta`` and ``component_ids``. Peer statistics this model holds are not included,
        so a peer that adds them counts each sample once. See :meth:`set_peer_statistics`.

        >>> model = OnlineNMF(n_components=2, refresh_every=2, seed=0)
        >>> for x in [{"a": 5, "b": 1}, {"c": 4}, {"a": 6}, {"c": 5, "d": 1}]:
        ...     _ = model.learn_one(x)
        >>> stats = model.export_statistics()
        >>> stats["features"], stats["B"].shape, stats["samples_learned"]
        (['a', 'b', 'c', 'd'], (4, 2), 4)
        """
        stats: dict[str, Any] = {
            "features": list(self._features), "beta": self.beta, **self._stats.export(),
            "n_eff": float(self._stats.n_eff), "samples_learned": int(self.samples_learned),
            "component_ids": list(self._component_ids),
        }
        return stats

    def set_peer_statistics(self, peers: Sequence[Mapping[str, Any]]) -> None:
        """Share the dictionary with peers: from the next refresh on, W is computed from this
        model's statistics plus the peers' (each as :meth:`export_statistics` gives it).

        Each call replaces the previous peers (pass each peer's latest statistics: they are
        forgetful sums, so an older and a newer export of one peer must never both be
        given). Peer features this model has not seen get rows. The peers' columns are matched
        to this model's before each refresh (:mod:`onlinenmf.sharing`); when a peer brings a
        component this model lacks, the model merges two of its columns that are one
        component and takes the peer's in the freed column, under a new id (a ``retire`` and
        a ``birth`` event). Peers are not part of snapshots: the caller keeps them. With no
        peers (the default, or ``[]``), nothing changes.

        >>> a, b = (OnlineNMF(n_components=2, refresh_every=4, seed=0) for _ in range(2))
        >>> for _ in range(3):
        ...     for x in [{"a": 5, "b": 1}, {"c": 4, "d": 2}, {"a": 6, "b": 2}, {"c": 5}]:
        ...         _ = a.learn_one(x)
        ...     for x in [{"e": 5, "f": 1}, {"g": 4, "h": 2}, {"e": 6, "f": 2}, {"g": 5}]:
        ...         _ = b.learn_one(x)
        >>> a.set_peer_statistics([b.export_statistics()])
        >>> a.features
        ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h']
        """
        if peers and self._hyper is not None:
            raise ValueError("set_peer_statistics: the adaptive options (adapt_rank, "
                             "adapt_sparsity, adapt_forgetting) do not support peers")
        checked = [self._check_peer(p, n) for n, p in enumerate(peers)]
        self._register([name for features, _ in checked for name in features])
        self._peers = []
        for features, arrays in checked:
            arrays["rows"] = np.array([self._index[name] for name in features], dtype=np.int64)
            self._peers.append(arrays)

    def _check_peer(self, peer: Mapping[str, Any], n: int) -> tuple[list, dict[str, Any]]:
        """Validate one peer's statistics (nothing is changed before all are valid)."""
        try:
            known = self._index  # names already in the model were checked when they came
            features = [f if type(f) is str and f in known else check_feature_name(f)
                        for f in peer["features"]]
            if len(set(features)) != len(features):
                raise ValueError("duplicate feature names")
            if float(peer["beta"]) != float(self.beta):
                raise ValueError(f"beta={peer['beta']}, this model has beta={self.beta}")
            usage = np.asarray(peer["usage"], dtype=np.float64)
            k_p, m_p = usage.size, len(features)
            shapes = {"W": (m_p, k_p), "usage": (k_p,)}
            shapes.update({name: (m_p, k_p) for name in self._stats.layout.rows})
            if self._stats.layout.gram:
                shapes["A"] = (k_p, k_p)
            arrays = {name: np.array(peer[name], dtype=np.float64) for name in shapes}
            arrays["n_eff"] = float(peer["n_eff"])
            for name, shape in shapes.items():
                if arrays[name].shape != shape:
                    raise ValueError(f"{name} has shape {arrays[name].shape}, expected {shape}")
                if not np.all(np.isfinite(arrays[name])) or (
                        name != "A" and np.any(arrays[name] < 0)):
                    raise ValueError(f"{name} holds negative or non-finite values")
            if not np.isfinite(arrays["n_eff"]) or arrays["n_eff"] < 0:
                raise ValueError(f"n_eff={arrays['n_eff']!r}")
        except (KeyError, TypeError, ValueError) as err:
            detail = f"missing {err}" if isinstance(err, KeyError) else str(err)
            raise ValueError(f"peer statistics #{n}: {detail}") from None
        return features, arrays

    def _add_peer_statistics(self) -> Totals:
        """The statistics of this model plus its peers, in this model's columns, after
        matching the peers' columns to ours (and merging ours where a peer brings a component
        we lack; see :mod:`onlinenmf.sharing`)."""
        stats = self._stats
        m, k = stats.m, len(self._component_ids)

        def full(peer: dict[str, Any], name: str) -> np.ndarray:
            out = np.zeros((m, peer[name].shape[1]))
            out[peer["rows"]] = peer[name]
            return out

        plan = sharing.plan_merge(stats.W[:m], stats.usage, [full(p, "W") for p in self._peers],
                                  [p["usage"] for p in self._peers])
        if not plan.identity:
            self._merge_columns(plan)
        own = stats.totals()
        A, usage, n_eff = own.A.copy(), own.usage.copy(), own.n_eff
        rows = {name: getattr(own, name).copy() for name in stats.layout.rows}
        W_peers = np.zeros((m, k))
        for peer, target in zip(self._peers, plan.peers):
            M = np.zeros((target.size, k))
            M[np.arange(target.size), target] = 1.0  # peer column -> our column
            for name in rows:
                rows[name][peer["rows"]] += peer[name] @ M
            W_peers[peer["rows"]] += peer["W"] @ (M * peer["usage"][:, None])
            usage += peer["usage"] @ M
            n_eff += peer["n_eff"]
            if stats.layout.gram:
                A += M.T @ peer["A"] @ M
        for j in plan.born:  # start a column new to us from the peers' profile
            total = W_peers[:, j].sum()
            if total > 0:
                stats.W[:m, j] = W_peers[:, j] / total
        self._shared_usage = usage
        return Totals(A, rows["B"], rows.get("D", own.D), usage, n_eff)

    def _merge_columns(self, plan: sharing.MergePlan) -> None:
        """Move our statistics as the plan says (merged columns add up); the freed columns
        get new ids, for components learned from peers."""
        k = len(self._component_ids)
        M = np.zeros((k, k))
        M[np.arange(k), plan.own] = 1.0
        self._stats.move_columns(M)
        ids = list(self._component_ids)
        for j, into in plan.merged:
            old, new = ids[j], self._next_id
            self._next_id += 1
            ids[j] = new
            for kind, component, reason in (
                ("retire", old, f"merged into component {ids[into]} (shared dictionary)"),
                ("birth", new, "learned from peers' statistics (shared dictionary)"),
            ):
                self.events.append({"kind": kind, "sample": self.samples_learned,
                                    "component": component, "old": old, "new": new,
                                    "reason": reason})
        self._component_ids = ids

    # ------------------------------------------------------------------ read-only transforms
    def _solve_readonly(self, indptr, indices, data, H) -> np.ndarray:
        if self._stats.m == 0:
            H[:] = 0.0
            return np.zeros(indptr.size - 1)
        for s in range(indptr.size - 1):
            start, stop = indptr[s], indptr[s + 1]
            if not H[s].any():
                self._divergence.initial_h(data[start:stop], self._stats.colsum, H[s])
        losses = self._divergence.solve_batch(self._stats, indptr, indices, data, H,
                                              self._solver())
        empty = np.diff(indptr) == 0
        H[empty] = 0.0
        return losses

    def transform_one(self, x: Mapping, warm_start: Mapping | None = None) -> dict[int, float]:
        """h for one sample against the current W, without learning. Unknown features are
        ignored; before any learning every weight is 0."""
        rows, values = self._sample_rows(x, register=False)
        H = np.zeros((1, len(self._component_ids)))
        warm = self._warm_vector(warm_start, values)
        if warm is not None:
            H[0] = warm
        self._solve_readonly(np.array([0, rows.size], dtype=np.int64), rows, values, H)
        return self._as_dict(H[0])

    def transform_many(self, X, features: Sequence | None = None) -> np.ndarray:
        """H for a batch against the current W, without learning (n_samples x n_components)."""
        matrix = self._matrix_rows(X, features, register=False)
        H = np.zeros((matrix.shape[0], len(self._component_ids)))
        self._solve_readonly(matrix.indptr.astype(np.int64), matrix.indices.astype(np.int64),
                             matrix.data, H)
        return H

    def loss_one(self, x: Mapping) -> float:
        """The beta-divergence of a sample from its best reconstruction ``W h`` (read-only)."""
        rows, values = self._sample_rows(x, register=False)
        H = np.zeros((1, len(self._component_ids)))
        return float(self._solve_readonly(np.array([0, rows.size], np.int64), rows, values, H)[0])

    def _as_dict(self, h: np.ndarray) -> dict[int, float]:
        return {component: float(value) for component, value in zip(self._component_ids, h)}

    # ------------------------------------------------------------------ persistence
    def __eq__(self, other: object) -> bool:  # used by tests of bit-exact round trips
        if type(other) is not type(self):
            return NotImplemented
        return snapshot.same_state(self, other)

    __hash__ = None  # type: ignore[assignment]

    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays, statistics = self._stats.state()
        recent_rows = [r for r, _, _ in self._recent]
        arrays.update({
            "l1": self._l1,
            "recent_lengths": np.array([len(r) for r in recent_rows], dtype=np.int64),
            "recent_rows": np.concatenate(recent_rows) if recent_rows else np.zeros(0, np.int64),
            "recent_values": (np.concatenate([v for _, v, _ in self._recent])
                              if self._recent else np.zeros(0)),
            "recent_losses": np.array([loss for _, _, loss in self._recent], dtype=np.float64),
        })
        meta = {
            "class": type(self).__name__,
            "params": self._params(),
            "features": self._features,
            "statistics": statistics,
            "components": {"ids": self._component_ids, "next_id": self._next_id,
                           "cooldown": self._cooldown},
            "monitor": {"window_loss": self._window_loss, "window_abs": self._window_abs,
                        "window_count": self._window_count, "baseline": self._baseline,
                        "alarm_count": self._alarm_count},
            "stream": {"samples_learned": self.samples_learned,
                       "model_version": self.model_version,
                       "since_refresh": self._since_refresh, "initialised": self._initialised,
                       "forget_factor": self._rho},
            "events": self.events,
        }
        if self._hyper is not None:
            hyper_arrays, meta["hyper"] = self._hyper.state()
            arrays.update(hyper_arrays)
        return arrays, meta

    def to_bytes(self) -> bytes:
        """The snapshot (see :mod:`onlinenmf.snapshot`) as bytes."""
        arrays, meta = self._state()
        return snapshot.dumps(arrays, meta)

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "<bytes>") -> OnlineNMF:
        arrays, meta = snapshot.loads(data, source)
        return cls._from_state(arrays, meta, source)

    def save(self, path: str | os.PathLike) -> None:
        """Write a snapshot file atomically (``.npz``: arrays + JSON metadata + checksum).

        >>> import tempfile, pathlib
        >>> model = OnlineNMF(n_components=2, seed=3)
        >>> _ = model.learn_one({"a": 1, "b": 2})
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "model.npz"
        >>> model.save(path)
        >>> OnlineNMF.load(path) == model
        True
        """
        snapshot.write_atomic(path, self.to_bytes())

    @classmethod
    def load(cls, path: str | os.PathLike) -> OnlineNMF:
        """Read a snapshot file; raise :class:`onlinenmf.snapshot.SnapshotError` if unusable."""
        arrays, meta = snapshot.read(path)
        return cls._from_state(arrays, meta, str(path))

    @classmethod
    def _from_state(cls, arrays, meta, source: str) -> OnlineNMF:
        arrays, meta = snapshot.upgrade(arrays, meta)
        if meta.get("class") != cls.__name__:
            raise snapshot.SnapshotError(
                f"{source}: holds a {meta.get('class')}, not {cls.__name__}"
            )
        model = cls(**meta["params"])
        features = [check_feature_name(f) for f in meta["features"]]
        model._features = features
        model._index = {name: i for i, name in enumerate(features)}
        model._stats.restore(arrays, meta["statistics"])
        model._l1 = arrays["l1"].copy()
        components = meta["components"]
        model._component_ids = [int(c) for c in components["ids"]]
        model._next_id = int(components["next_id"])
        model._cooldown = int(components["cooldown"])
        monitor = meta["monitor"]
        model._window_loss = float(monitor["window_loss"])
        model._window_abs = float(monitor["window_abs"])
        model._window_count = int(monitor["window_count"])
        model._baseline = float(monitor["baseline"])
        model._alarm_count = int(monitor["alarm_count"])
        stream = meta["stream"]
        model.samples_learned = int(stream["samples_learned"])
        model.model_version = int(stream["model_version"])
        model._since_refresh = int(stream["since_refresh"])
        model._initialised = bool(stream["initialised"])
        model._rho = float(stream["forget_factor"])
        model.events = list(meta["events"])
        if model._hyper is not None and "hyper" in meta:
            model._hyper.restore(arrays, meta["hyper"])
        model._recent = deque(maxlen=model.buffer_size)
        ends = np.cumsum(arrays["recent_lengths"])
        for end, length, loss in zip(ends, arrays["recent_lengths"], arrays["recent_losses"]):
            model._recent.append((arrays["recent_rows"][end - length : end].copy(),
                                  arrays["recent_values"][end - length : end].copy(), float(loss)))
        return model

    def __repr__(self) -> str:
        return (f"OnlineNMF(n_components={len(self._component_ids)}, beta={self.beta}, "
                f"n_features={self._stats.m}, samples_learned={self.samples_learned})")


PARAMETERS = (
    "n_components", "beta", "forget_factor", "refresh_every", "l1_h", "l2_h", "l1_w", "l2_w",
    "refresh_sweeps", "max_iter", "tol", "reseed", "buffer_size", "seed",
    "adapt_rank", "adapt_sparsity", "adapt_forgetting", "reestimate_every", "k_min", "k_max",
    "prune_patience", "ard_strength", "init",
)
