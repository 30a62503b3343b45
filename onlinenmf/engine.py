"""The online model: per-sample NMF with a dictionary refreshed from forgetful statistics."""

from __future__ import annotations

import hashlib
import os
from collections import deque
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from onlinenmf import dictionary, hyper, sharing, snapshot, solve
from onlinenmf.divergence import SUPPORTED_BETAS
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
        The beta-divergence: 2 (Frobenius), 1 (generalized KL, the Poisson likelihood of counts;
        Lee & Seung's objective), 0 (Itakura-Saito, scored on the non-zero entries only).
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
        if self.beta not in SUPPORTED_BETAS:
            raise ValueError(f"beta must be one of {SUPPORTED_BETAS}, got {self.beta!r}")
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
        if self.k_max is None:
            self.k_max = max(2 * int(self.n_components), int(self.k_min))
        if not isinstance(self.k_max, int | np.integer) or self.k_max < self.k_min:
            raise ValueError(f"k_max must be an integer >= k_min={self.k_min}, got {self.k_max!r}")
        if self.adapt_rank and self.beta == 0:
            raise ValueError(
                "adapt_rank supports beta=1 and beta=2: Itakura-Saito is scored on the non-zero "
                "entries only, so the scale of h (hence a component's relevance) is not tied "
                "to the data"
            )
        if self.adapt_rank and self.beta == 0:
            raise ValueError(
                "adapt_rank supports beta=1 and beta=2: Itakura-Saito is scored on the non-zero "
                "entries only, so the scale of h (hence a component's relevance) is not tied "
                "to the data"
            )
        if self.adapt_rank and not self.k_min <= self.n_components <= self.k_max:
            raise ValueError(f"n_components={self.n_components} must be in k_min..k_max = "
                             f"{self.k_min}..{self.k_max}")
        for name in ("adapt_rank", "adapt_sparsity", "adapt_forgetting"):
            if not isinstance(getattr(self, name), bool | np.bool_):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.beta != 2 and (self.l1_w or self.l2_w):
            raise ValueError(
                "l1_w and l2_w apply to beta=2 only: with columns normalised to sum 1 a penalty "
                "in the multiplicative update would only rescale W"
            )

    def _init_state(self) -> None:
        k = int(self._initial_rank)
        self.beta = int(self.beta)
        self._features: list[str | int] = []
        self._index: dict[Hashable, int] = {}
        self._m = 0
        self._W = np.zeros((16, k))
        self._B = np.zeros((16, k))  # beta=2: Mairal's B; else the MU numerator N
        self._D = np.zeros((16 if self.beta == 0 else 1, k))  # beta=0 denominator per row
        self._A = np.zeros((k, k))
        self._G = np.zeros((k, k))
        self._colsum = np.zeros(k)
        self._usage = np.zeros(k)  # forgetful sum of h (the beta=1 MU denominator)
        self._scale = 1.0  # the statistics of rows are stored divided by this running scale
        self._n_eff = 0.0  # forgetful count of samples
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
        self._window_usage = np.zeros(k)  # sum of h since the last refresh
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
        view = self._W[: self._m]
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
        return self._m

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
        level = self._colsum / self._m if self._m else np.ones(k)
        level = np.where(level > 0, level, 1.0 / max(self._m, 1))
        rows = np.empty((len(names), k))
        for i, name in enumerate(names):
            key = f"{self.seed}|{type(name).__name__}|{name}".encode()
            entropy = int.from_bytes(hashlib.blake2b(key, digest_size=16).digest(), "little")
            rows[i] = np.random.default_rng(entropy).uniform(0.5, 1.5, k)
        return rows * level

    def _grow(self, n_new: int) -> None:
        needed = self._m + n_new
        capacity = self._W.shape[0]
        if needed <= capacity:
            return
        capacity = max(needed, 2 * capacity)
        for name in ("_W", "_B") + (("_D",) if self.beta == 0 else ()):
            old = getattr(self, name)
            grown = np.zeros((capacity, old.shape[1]))
            grown[: self._m] = old[: self._m]
            setattr(self, name, grown)

    def _register(self, names: Sequence) -> None:
        """Append rows for the names not seen before (names already validated)."""
        new = [name for name in dict.fromkeys(names) if name not in self._index]
        if not new:
            return
        # A canonical order (by type, then value), so that the rows, and every sum over them,
        # do not depend on the order of a sample's keys or a matrix's columns.
        new.sort(key=lambda name: (type(name).__name__, name))
        rows = self._new_rows(new)
        self._grow(len(new))
        start = self._m
        self._W[start : start + len(new)] = rows
        for offset, name in enumerate(new):
            self._index[name] = start + offset
            self._features.append(name)
        self._m += len(new)
        self._colsum += rows.sum(axis=0)
        if self.beta == 2:
            self._G += rows.T @ rows

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
        shape = (matrix.shape[0], max(self._m, 1))
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
        if self.beta != 2:  # keep every entry positive: multiplicative and Newton steps need it
            cold = np.empty_like(h)
            solve.initial_h(self.beta, values, self._colsum, cold)
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

    def _learn_single(self, rows: np.ndarray, values: np.ndarray, h: np.ndarray,
                      warm: bool) -> None:
        """:meth:`_learn_segment` for one sample in one compiled call (the per-sample hot path:
        a few numpy calls of overhead would cost more than the solve itself)."""
        rho = self._rho
        scale = self._scale * rho
        k = h.size
        loss, norm = solve.learn_sample(
            self.beta, self._W, rows, values, self._G, self._colsum, h, self._l1,
            float(self.l2_h), int(self.max_iter), float(self.tol), 1.0 / scale, self._B,
            self._D, self._A, self._usage, self._window_usage, rho, warm,
            np.empty(rows.size), np.empty(k), np.empty(k),
        )
        self._scale = scale
        self._n_eff = rho * self._n_eff + 1.0
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
        scales = self._scale * rho ** np.arange(1, count + 1)
        losses = np.empty(count)
        solve.learn_batch(
            self.beta, self._W, local_indptr, rows, values, self._G, self._colsum, H,
            self._l1, float(self.l2_h), int(self.max_iter), float(self.tol), losses,
            1.0 / scales, self._B, self._D, warm,
        )
        self._scale = float(scales[-1])
        decay = rho ** np.arange(count - 1, -1, -1)
        carry = rho**count
        self._usage = carry * self._usage + decay @ H
        self._window_usage += H.sum(axis=0)
        if self.beta == 2:
            self._A = carry * self._A + (H * decay[:, None]).T @ H
        self._n_eff = carry * self._n_eff + decay.sum()
        self.samples_learned += count
        self._since_refresh += count
        self.last_losses = np.concatenate([self.last_losses, losses])
        self._monitor(local_indptr, rows, values, losses)

    def _monitor(self, indptr, rows, values, losses) -> None:
        """Track the relative prequential loss and keep recent samples for re-seeding."""
        count = indptr.size - 1
        owner = np.repeat(np.arange(count), np.diff(indptr))
        if self.beta == 1:
            norms = np.bincount(owner, weights=values, minlength=count)
        elif self.beta == 2:
            norms = 0.5 * np.bincount(owner, weights=values * values, minlength=count)
        else:
            norms = np.diff(indptr).astype(np.float64)
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
        m = self._m
        W = self._W[:m]
        B = self._B[:m]
        B *= self._scale
        if self.beta == 0:
            self._D[:m] *= self._scale
        self._scale = 1.0
        # own statistics, or own plus the peers' (whose columns are matched to ours first)
        A, N, D, n_eff = self._A, B, self._D[:m] if self.beta == 0 else self._usage, self._n_eff
        self._shared_usage = None
        if self._peers:
            A, N, D, n_eff = self._add_peer_statistics()
        if self.beta == 2:
            dictionary.refresh_frobenius(
                W, A, N, self.l1_w * n_eff, self.l2_w * n_eff, int(self.refresh_sweeps),
            )
        else:
            updated = dictionary.refresh_multiplicative(N, D, self.beta)
            W[:] = np.where(np.isnan(updated), W, updated)
        sums = dictionary.normalise_columns(W)
        self._rescale_statistics(np.where(sums > 0, sums, 1.0))
        self._since_refresh = 0
        self.model_version += 1
        self._check_components()
        self._recompute_caches()

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
        refined = dictionary.batch_fit(V, start + 1e-3 * start.mean(), self.beta)
        m = self._m
        self._W[:m] = 0.0 if self.beta == 2 else dictionary.W_FLOOR
        self._W[used] = refined
        dictionary.normalise_columns(self._W[:m])
        self._recompute_caches()
        self._relearn_recent(samples)
        self._since_refresh = 0
        self.model_version += 1
        self._initialised = True
        self._recompute_caches()

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
        refined = dictionary.batch_fit(V, self._W[used], self.beta)
        old = self._W[used].sum(axis=0)
        new = refined.sum(axis=0)
        # keep each column's mass on the rows the buffer does not cover
        self._W[used] = refined * np.where(new > 0, old / np.maximum(new, 1e-300), 0.0)
        dictionary.normalise_columns(self._W[: self._m])
        self._recompute_caches()
        self._relearn_recent(samples)
        self._recompute_caches()

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
        m = self._m
        self._A[:] = 0.0
        self._B[:m] = 0.0
        self._D[:] = 0.0
        self._usage[:] = 0.0
        self._n_eff, self._scale = 0.0, 1.0
        count = len(samples)
        lengths = np.array([len(rows) for rows, _, _ in samples], dtype=np.int64)
        indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        rows = np.concatenate([rows for rows, _, _ in samples]).astype(np.int64)
        values = np.concatenate([values for _, values, _ in samples])
        H = np.zeros((count, len(self._component_ids)))
        weights = self._rho ** np.arange(count - 1, -1, -1, dtype=np.float64)
        solve.learn_batch(
            self.beta, self._W, indptr, rows, values, self._G, self._colsum, H, self._l1,
            float(self.l2_h), int(self.max_iter), float(self.tol), np.empty(count), weights,
            self._B, self._D, np.zeros(count, dtype=np.bool_),
        )
        self._usage = weights @ H
        if self.beta == 2:
            self._A = (H * weights[:, None]).T @ H
        self._n_eff = float(weights.sum())

    def _rescale_statistics(self, c: np.ndarray) -> None:
        """W <- W / c means h <- c h: carry that into every statistic."""
        m = self._m
        self._usage *= c
        if self.beta == 2:
            self._A *= np.outer(c, c)
            self._B[:m] *= c
        else:
            exponent = 1.0 - 1.0 / dictionary.mu_exponent(self.beta)
            if exponent:
                self._B[:m] *= c**exponent
            if self.beta == 0:
                self._D[:m] *= c

    def _recompute_caches(self) -> None:
        W = self._W[: self._m]
        self._colsum = W.sum(axis=0)
        if self.beta == 2:
            self._G = W.T @ W

    # ------------------------------------------------------------------ dead components
    def _check_components(self) -> None:
        window = self._window_loss / max(self._window_count, 1)
        window_usage, window_abs, count = self._window_usage, self._window_abs, self._window_count
        recent = self._window_usage / max(float(self._window_usage.sum()), 1e-300)
        self._window_loss, self._window_abs, self._window_count = 0.0, 0.0, 0
        self._window_usage = np.zeros(len(self._component_ids))
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
        usage = self._usage if self._shared_usage is None else self._shared_usage
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
        m, k = self._m, len(self._component_ids)
        worst = sorted(self._recent, key=lambda item: -item[2])[:WORST_SAMPLES]
        self._recompute_caches()
        h = np.empty(k)
        wh = np.empty(max(max(len(rows) for rows, _, _ in worst), 1))
        work_a, work_b = np.empty(k), np.empty(k)
        residuals = []
        for rows, values, _ in worst:
            solve.initial_h(self.beta, values, self._colsum, h)
            solve.solve_sample(self.beta, self._W, rows, values, self._G, self._colsum, h,
                               self._l1, float(self.l2_h), int(self.max_iter), float(self.tol),
                               wh[: rows.size], work_a, work_b)
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
        if self.beta != 2:
            column = np.maximum(column, dictionary.W_FLOOR)
            column /= column.sum()
        return column, int(alike.sum())

    def _seed_weights(self) -> tuple[float, float]:
        """Pseudo-statistics of a seeded column: 1 % of the mean usage (and of A or D)."""
        pseudo = 0.01
        usage = pseudo * float(np.mean(self._usage)) if self._usage.size else 0.0
        if self.beta == 2:
            weight = pseudo * float(np.mean(np.diag(self._A))) if self._A.size else 0.0
        elif self.beta == 0:
            weight = pseudo * float(np.mean(self._D[: self._m])) if self._D.size else 0.0
        else:
            weight = usage
        return usage, weight

    def _install(self, j: int, column: np.ndarray, usage: float, weight: float) -> None:
        """Put ``column`` in column j with fresh pseudo-statistics."""
        m = self._m
        self._W[:m, j] = column
        self._usage[j] = usage
        if self.beta == 2:
            self._A[j, :] = 0.0
            self._A[:, j] = 0.0
            self._A[j, j] = weight
            self._B[:m, j] = column * weight
        elif self.beta == 1:
            self._B[:m, j] = column * usage
        else:
            self._D[:m, j] = weight
            self._B[:m, j] = column ** (1.0 / dictionary.mu_exponent(self.beta)) * weight

    def _reseed(self, j: int, reason: str) -> None:
        """Replace column j by the positive residual of the worst recent samples."""
        seed = self._residual_seed()
        if seed is None:
            return
        self._install(j, seed[0], *self._seed_weights())
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
        self._recompute_caches()

    # ------------------------------------------------------------------ rank changes
    def _resize_columns(self, keep: np.ndarray, add: int) -> None:
        """Keep the columns ``keep`` (in order) of every k-sized array and append ``add`` zero
        columns: W, the statistics, the caches, the windows and the L1 vector."""
        def cut(a: np.ndarray, axis: int) -> np.ndarray:
            a = np.take(a, keep, axis=axis)
            if add:
                shape = list(a.shape)
                shape[axis] = add
                a = np.concatenate([a, np.zeros(shape)], axis=axis)
            return a

        self._W, self._B, self._D = cut(self._W, 1), cut(self._B, 1), cut(self._D, 1)
        self._A = cut(cut(self._A, 0), 1)
        self._G = cut(cut(self._G, 0), 1)
        for name in ("_colsum", "_usage", "_window_usage", "_l1"):
            setattr(self, name, cut(getattr(self, name), 0))

    def _add_component(self, column: np.ndarray, reason: str) -> int:
        """Append a new component (a new id) seeded with ``column``; return its id."""
        usage, weight = self._seed_weights()
        k = len(self._component_ids)
        self._resize_columns(np.arange(k), 1)
        self._install(k, column, usage, weight)
        new = self._next_id
        self._next_id += 1
        self._component_ids = [*self._component_ids, new]
        if self._hyper is not None:
            self._hyper.on_add()
            hyper.emit(self, "grow", k, k + 1, reason, component=new)
            self._hyper.update_penalties(self)
        self._recompute_caches()
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
        self._recompute_caches()

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
        m = self._m
        stats: dict[str, Any] = {
            "features": list(self._features), "beta": self.beta, "W": self._W[:m].copy(),
            "B": self._B[:m] * self._scale, "usage": self._usage.copy(),
            "n_eff": float(self._n_eff), "samples_learned": int(self.samples_learned),
            "component_ids": list(self._component_ids),
        }
        if self.beta == 2:
            stats["A"] = self._A.copy()
        if self.beta == 0:
            stats["D"] = self._D[:m] * self._scale
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
            if int(peer["beta"]) != self.beta:
                raise ValueError(f"beta={peer['beta']}, this model has beta={self.beta}")
            usage = np.asarray(peer["usage"], dtype=np.float64)
            k_p, m_p = usage.size, len(features)
            shapes = {"W": (m_p, k_p), "B": (m_p, k_p), "usage": (k_p,)}
            if self.beta == 2:
                shapes["A"] = (k_p, k_p)
            if self.beta == 0:
                shapes["D"] = (m_p, k_p)
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

    def _add_peer_statistics(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """(A, B, D, n_eff) of this model plus its peers, in this model's columns, after
        matching the peers' columns to ours (and merging ours where a peer brings a component
        we lack; see :mod:`onlinenmf.sharing`)."""
        m, k = self._m, len(self._component_ids)

        def full(peer: dict[str, Any], name: str) -> np.ndarray:
            out = np.zeros((m, peer[name].shape[1]))
            out[peer["rows"]] = peer[name]
            return out

        plan = sharing.plan_merge(self._W[:m], self._usage, [full(p, "W") for p in self._peers],
                                  [p["usage"] for p in self._peers])
        if not plan.identity:
            self._merge_columns(plan)
        A, B, usage, n_eff = self._A.copy(), self._B[:m].copy(), self._usage.copy(), self._n_eff
        D = self._D[:m].copy() if self.beta == 0 else usage
        W_peers = np.zeros((m, k))
        for peer, target in zip(self._peers, plan.peers):
            M = np.zeros((target.size, k))
            M[np.arange(target.size), target] = 1.0  # peer column -> our column
            rows = peer["rows"]
            B[rows] += peer["B"] @ M
            W_peers[rows] += peer["W"] @ (M * peer["usage"][:, None])
            usage += peer["usage"] @ M
            n_eff += peer["n_eff"]
            if self.beta == 2:
                A += M.T @ peer["A"] @ M
            if self.beta == 0:
                D[rows] += peer["D"] @ M
        for j in plan.born:  # start a column new to us from the peers' profile
            total = W_peers[:, j].sum()
            if total > 0:
                self._W[:m, j] = W_peers[:, j] / total
        self._shared_usage = usage
        return A, B, D if self.beta == 0 else usage, n_eff

    def _merge_columns(self, plan: sharing.MergePlan) -> None:
        """Move our statistics as the plan says (merged columns add up); the freed columns
        get new ids, for components learned from peers."""
        k = len(self._component_ids)
        M = np.zeros((k, k))
        M[np.arange(k), plan.own] = 1.0
        m = self._m
        self._B[:m] = self._B[:m] @ M
        if self.beta == 0:
            self._D[:m] = self._D[:m] @ M
        self._usage = self._usage @ M
        self._window_usage = self._window_usage @ M
        if self.beta == 2:
            self._A = M.T @ self._A @ M
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
        losses = np.empty(indptr.size - 1)
        if self._m == 0:
            H[:] = 0.0
            losses[:] = 0.0
            return losses
        for s in range(indptr.size - 1):
            start, stop = indptr[s], indptr[s + 1]
            if not H[s].any():
                solve.initial_h(self.beta, data[start:stop], self._colsum, H[s])
        solve.solve_batch(self.beta, self._W, indptr, indices, data, self._G, self._colsum, H,
                          self._l1, float(self.l2_h), int(self.max_iter), float(self.tol), losses)
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
        m = self._m
        recent_rows = [r for r, _, _ in self._recent]
        arrays = {
            "W": self._W[:m].copy(), "B": self._B[:m].copy(),
            "D": self._D[:m].copy() if self.beta == 0 else self._D.copy(),
            "A": self._A, "G": self._G, "colsum": self._colsum, "usage": self._usage,
            "window_usage": self._window_usage,
            "l1": self._l1,
            "recent_lengths": np.array([len(r) for r in recent_rows], dtype=np.int64),
            "recent_rows": np.concatenate(recent_rows) if recent_rows else np.zeros(0, np.int64),
            "recent_values": (np.concatenate([v for _, v, _ in self._recent])
                              if self._recent else np.zeros(0)),
            "recent_losses": np.array([loss for _, _, loss in self._recent], dtype=np.float64),
        }
        meta = {
            "class": type(self).__name__,
            "params": self._params(),
            "features": self._features,
            "component_ids": self._component_ids,
            "next_id": self._next_id,
            "scalars": {name: getattr(self, name) for name in SCALAR_STATE},
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
        if meta.get("class") != cls.__name__:
            raise snapshot.SnapshotError(
                f"{source}: holds a {meta.get('class')}, not {cls.__name__}"
            )
        model = cls(**meta["params"])
        k = len(meta["component_ids"])
        if k != len(model._component_ids):  # the rank moved since the start (adapt_rank)
            model._resize_columns(np.arange(0), k)
        features = [check_feature_name(f) for f in meta["features"]]
        m = len(features)
        model._grow(m)
        model._m = m
        model._features = features
        model._index = {name: i for i, name in enumerate(features)}
        model._W[:m] = arrays["W"]
        model._B[:m] = arrays["B"]
        if model.beta == 0:
            model._D[:m] = arrays["D"]
        else:
            model._D = arrays["D"].copy()
        for name in ("A", "G", "colsum", "usage", "window_usage", "l1"):
            setattr(model, "_" + name, arrays[name].copy())
        model._component_ids = [int(c) for c in meta["component_ids"]]
        model._next_id = int(meta["next_id"])
        for name, value in meta["scalars"].items():
            setattr(model, name, value)
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
                f"n_features={self._m}, samples_learned={self.samples_learned})")


PARAMETERS = (
    "n_components", "beta", "forget_factor", "refresh_every", "l1_h", "l2_h", "l1_w", "l2_w",
    "refresh_sweeps", "max_iter", "tol", "reseed", "buffer_size", "seed",
    "adapt_rank", "adapt_sparsity", "adapt_forgetting", "reestimate_every", "k_min", "k_max",
    "prune_patience", "ard_strength", "init",
)
SCALAR_STATE = (
    "_m", "_scale", "_n_eff", "samples_learned", "model_version", "_since_refresh",
    "_window_loss", "_window_count", "_baseline", "_alarm_count", "_cooldown",
    "_rho", "_window_abs", "_initialised",
)
