"""The online model: per-sample NMF with a dictionary refreshed from forgetful statistics.

:class:`OnlineNMF` holds the parameters, answers the public calls and conducts the stream
(learn, refresh when :mod:`onlinenmf.schedule` says so, re-estimate, turn detected drifts into
events); each job is done by one of its parts (see the class notes).
"""

from __future__ import annotations

import math
import os
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from onlinenmf import dictionary, hyper, snapshot
from onlinenmf.components import Components
from onlinenmf.divergences import for_beta
from onlinenmf.events import EventLog
from onlinenmf.features import FeatureIndex, initial_rows, name_digest
from onlinenmf.learner import Learner
from onlinenmf.memories import CANDIDATES, Memories
from onlinenmf.monitor import ALARM_SAMPLES, Detection, Monitor
from onlinenmf.parameters import ENGINE as PARAMETERS_TABLE
from onlinenmf.schedule import RefreshSchedule
from onlinenmf.sharing import Peers
from onlinenmf.statistics import BatchSums, Statistics
from onlinenmf.validation import check_feature_name

#: The default threshold of the drift detector (:class:`onlinenmf.monitor.DriftDetector`).
DRIFT_THRESHOLD = PARAMETERS_TABLE["drift_threshold"].default


class OnlineNMF:
    """Streaming non-negative matrix factorization, ``v ~ W h``, one sample at a time.

    Each sample ``v`` (a mapping feature -> non-negative value) gets its activations ``h``
    solved to the optimum against the current dictionary ``W``; the sample's sufficient
    statistics are added with exponential forgetting; from time to time (:mod:`onlinenmf.schedule`)
    ``W`` is recomputed from them and its columns normalised to sum 1 (each column a
    distribution over features: a "community" of taxa, a "taste" over items).

    Parameters
    ----------
    n_components
        Number of components k (the starting rank). Like every parameter it is stored as given
        (:mod:`onlinenmf.parameters`); under ``adapt_rank`` the rank in force is
        :attr:`n_components_`.
    beta
        The beta-divergence, any number >= 0 (:mod:`onlinenmf.divergences`): 2 (Frobenius),
        1 (generalized KL, the Poisson likelihood of counts; Lee & Seung's objective) and 0
        (Itakura-Saito, scored on the non-zero entries only) have exact solvers of their own;
        any other beta is fitted by multiplicative updates, at O(m k) per sample (its zero
        entries have no k-sized summary).
    forget_factor
        rho, per sample: a sample's statistics weigh ``rho**age``. The memory length is
        ``1 / (1 - rho)`` samples, whatever the caller's batch sizes. None (the default):
        chosen by the data (:mod:`onlinenmf.memories`): a short memory (0.97, 33 samples) and
        a long one (0.998, 500 samples) learn side by side, and W is served from the one whose
        recent prequential loss is lower (each switch is a ``forget_factor`` event); at about
        twice the per-sample cost.
    refresh_every
        Samples between two dictionary refreshes. None (the default): the automatic schedule of
        :mod:`onlinenmf.schedule`: the first dictionary after 2k samples (fitted again at 4k,
        8k, 16k), then refreshes every 5 % of the samples seen since (or since the last drift
        event), at most a quarter of the memory length apart, and never more often than the
        cost of a refresh allows (its amortised cost stays about that of the samples' solves).
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
    drift_threshold
        Threshold of the drift detector on the prequential loss (a one-sided CUSUM of the
        standardised log loss and log number of non-zero entries per sample and, with two
        memories, of how much better the long memory explains it than the short one,
        :class:`onlinenmf.monitor.DriftDetector`): each
        detection is an event of kind ``"drift"`` in :attr:`events` that gives the loss, its
        recent level and the z-score, and the schedule refreshes often again. None: no drift
        detection (nor drift events from ``adapt_forgetting``'s detector).
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
    Cost per sample is O(nnz(v) k + sweeps k^2) for the exact divergences (beta 0, 1, 2): the
    zeros of v enter the loss only through the cached Gram matrix ``W^T W`` (beta = 2) or the
    column sums of W (beta = 1), forgetting is lazy (one running scale instead of a pass over
    the statistics), and a sample reads and writes only the rows of its non-zero features. A
    refresh costs O(m k) (O(m k^2) for beta = 2); the automatic schedule spaces refreshes so
    that their amortised cost is bounded by the samples' (:mod:`onlinenmf.schedule`).

    The model is a conductor over its parts, one job each: the divergence
    (:mod:`onlinenmf.divergences`), the feature index (:mod:`onlinenmf.features`), W and its
    statistics (:mod:`onlinenmf.statistics`), the learner (:mod:`onlinenmf.learner`), the
    loss monitor (:mod:`onlinenmf.monitor`), the components (:mod:`onlinenmf.components`), the
    peers (:mod:`onlinenmf.sharing`), the events (:mod:`onlinenmf.events`), the re-estimator
    (:mod:`onlinenmf.hyper`) and the snapshot format (:mod:`onlinenmf.snapshot`).

    Features are keyed by name: a feature seen for the first time gets a row whose values
    depend on (seed, name) and on the columns' mean entry before the sample, never on the order
    of the sample's keys. :meth:`learn_many` registers every named column up front, as
    :meth:`learn_one` registers every key of its dict (zeros included).

    Dead components: a component whose share of the remembered activation falls under 0.1 %,
    or, when the recent loss (windows of at least 20 samples) stays above 1.5 times its
    long-run level, the least used one, is replaced by the normalised positive residual of the
    worst recent samples. It is a new
    component with a new id; the old id is retired. Both are recorded in :attr:`events`.
    """

    def __init__(
        self,
        n_components: int = 10,
        beta: float = 1,
        *,
        forget_factor: float | None = None,
        refresh_every: int | None = None,
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
        drift_threshold: float | None = DRIFT_THRESHOLD,
    ):
        PARAMETERS_TABLE.store(self, locals())  # checked, then stored verbatim
        self._check_params()
        self._init_state()

    # ------------------------------------------------------------------ parameters and state
    @property
    def n_components_(self) -> int:
        """The rank in force: ``n_components`` (the starting rank, as given) until
        ``adapt_rank`` retires or adds components (scikit-learn's fitted-attribute spelling)."""
        return len(self._components)

    def _params(self) -> dict[str, Any]:
        return PARAMETERS_TABLE.read(self)

    def _check_params(self) -> None:
        """What one parameter's entry cannot say: the checks that involve two of them."""
        divergence = for_beta(self.beta)
        if self.k_max is not None and self.k_max < self.k_min:
            raise ValueError(f"k_max must be an integer >= k_min={self.k_min}, got {self.k_max!r}")
        if self.adapt_rank and divergence.no_rank_adaptation:
            raise ValueError(divergence.no_rank_adaptation)
        if self.adapt_rank and not self.k_min <= self.n_components <= self.rank_bounds[1]:
            raise ValueError(f"n_components={self.n_components} must be in k_min..k_max = "
                             f"{self.k_min}..{self.rank_bounds[1]}")
        if not divergence.penalises_w and (self.l1_w or self.l2_w):
            raise ValueError(
                "l1_w and l2_w apply to beta=2 only: with columns normalised to sum 1 a penalty "
                "in the multiplicative update would only rescale W"
            )

    @property
    def rank_bounds(self) -> tuple[int, int]:
        """``(k_min, k_max)`` in force: ``k_max`` (None) defaults to twice the starting rank."""
        k_max = self.k_max
        if k_max is None:
            k_max = max(2 * int(self.n_components), int(self.k_min))
        return int(self.k_min), int(k_max)

    def _init_state(self) -> None:
        k = int(self.n_components)
        self._divergence = for_beta(self.beta)
        self._rows_start_at_zero = self._divergence.rows_start_at_zero
        self._statistics = Statistics(self._divergence.layout, k)
        self._feature_index = FeatureIndex()
        self._events = EventLog()
        self._components = Components(k, self.l1_h, self._statistics, self._divergence,
                                      self._events)
        self._monitor = Monitor(self.buffer_size, self.drift_threshold)
        self._schedule = RefreshSchedule(self.refresh_every, k, self.buffer_size)
        self._learner = Learner(self._divergence, self._statistics, self._monitor,
                                self._components, self, self._base_forget_factor)
        if self.forget_factor is None and not self.adapt_forgetting:  # chosen by the data
            memories = self._learner.memories = Memories(self._divergence, self._statistics)
            self._learner.rho = memories.rho(memories.served)
        self._peers = Peers()  # see set_peer_statistics; not in snapshots
        adaptive = self.adapt_rank or self.adapt_sparsity or self.adapt_forgetting
        self._hyper = (hyper.Reestimator(self, self._learner, self._components, self._events)
                       if adaptive else None)
        self.samples_learned = 0
        self.model_version = 0
        self._since_refresh = 0
        self._initialised = False  # the data-driven first dictionary is in place
        self.last_losses = np.zeros(0)
        self._drift_scores: np.ndarray | None = np.zeros(0)  # None: learn_one's, in the monitor

    # ------------------------------------------------------------------ public views
    @property
    def W(self) -> np.ndarray:
        """The dictionary, n_features x n_components (a read-only view)."""
        view = self._statistics.W[: self._statistics.m]
        view.flags.writeable = False
        return view

    @property
    def features(self) -> list:
        """Row names of W, in order of first appearance."""
        return list(self._feature_index.names)

    @property
    def component_ids(self) -> list[int]:
        """Stable ids of the columns of W; an id is never reused."""
        return list(self._components.ids)

    @property
    def n_features(self) -> int:
        return self._statistics.m

    @property
    def events(self) -> EventLog:
        """What happened while learning, oldest first (:class:`onlinenmf.events.Event`):
        re-seeded, merged, pruned and born components, re-estimated hyperparameters."""
        return self._events

    @property
    def memory_length(self) -> float:
        """``1 / (1 - rho)``: how many recent samples the statistics remember, for the
        forgetting factor rho in force (``forget_factor`` unless ``adapt_forgetting``)."""
        rho = self._learner.rho
        return float("inf") if rho == 1 else 1.0 / (1.0 - rho)

    @property
    def base_memory_length(self) -> float:
        """``1 / (1 - forget_factor)``, the user's memory length (with ``forget_factor=None``,
        the long one of :mod:`onlinenmf.memories`)."""
        rho = self._base_forget_factor
        return float("inf") if rho == 1 else 1.0 / (1.0 - rho)

    @property
    def _base_forget_factor(self) -> float:
        return CANDIDATES[-1][0] if self.forget_factor is None else float(self.forget_factor)

    @property
    def current_forget_factor(self) -> float:
        """The forgetting factor in force (re-estimated under ``adapt_forgetting``)."""
        return self._learner.rho

    @property
    def hyperparameters(self) -> dict[str, Any]:
        """The values in force: rank, L1 weight on h, forgetting factor, and the relevance
        of each component (``{id: lambda}``, under ``adapt_rank`` only, else empty).

        >>> OnlineNMF(n_components=2, l1_h=0.5).hyperparameters["l1_h"]
        0.5
        """
        relevance = {}
        if self._hyper is not None and self.adapt_rank:
            relevance = dict(zip(self._components.ids, map(float, self._hyper.relevance())))
        l1 = self._hyper.l1_base if self._hyper is not None else float(self.l1_h)
        return {"n_components": self.n_components_, "l1_h": l1,
                "forget_factor": self._learner.rho, "relevance": relevance}

    def components(self, top: int = 10) -> dict[int, list[tuple[Hashable, float]]]:
        """Each component's ``top`` features with their share, largest first.

        >>> model = OnlineNMF(n_components=1, beta=2, refresh_every=1)
        >>> _ = model.learn_one({"x": 3.0, "y": 1.0})
        >>> [name for name, share in model.components(top=2)[0]]
        ['x', 'y']
        """
        result = {}
        W, names = self.W, self._feature_index.names
        for j, component in enumerate(self._components.ids):
            order = np.argsort(-W[:, j], kind="stable")[:top]
            result[component] = [(names[i], float(W[i, j])) for i in order]
        return result

    @property
    def _index(self) -> dict[Hashable, int]:
        """Feature name -> row of W (kept for ``benchmarks/bench_engine.py``)."""
        return self._feature_index.index

    # ------------------------------------------------------------------ features
    def _add_features(self, names: Sequence) -> None:
        """Rows for the names not seen before (names already validated)."""
        new = self._feature_index.new_names(names)
        if not new:
            return
        self._feature_index.add(new)
        stats = self._statistics
        seed = self.seed
        # the per-sample path: one compiled call (when the divergence has no start_rows)
        if self._rows_start_at_zero and stats.add_initial_rows(
                b"".join([name_digest(seed, name) for name in new])):
            return
        rows = initial_rows(seed, new, stats.colsum, stats.m)
        start = stats.m
        # one new name (a stream's usual case): its row is the rows' sum, no reduction
        stats.add_rows(rows, rows[0] if len(new) == 1 else None)
        self._divergence.start_rows(stats, start)
        if stats.twin is not None:
            self._divergence.start_rows(stats.twin, start)

    def add_features(self, names: Sequence) -> None:
        """Give rows to the named features not seen yet, without learning; each row is the one
        a learning call would give it (it depends on the seed and the name). For data whose
        features are known up front, e.g. the union over the files of a history.

        >>> model = OnlineNMF(n_components=2)
        >>> model.add_features(["b", "a", "b"])
        >>> model.features, model.samples_learned
        (['a', 'b'], 0)
        """
        self._add_features([check_feature_name(name) for name in names])

    def remove_features(self, names: Sequence) -> None:
        """Forget the named features: their rows of W and of every per-feature statistic go
        (memory stays bounded on a stream whose features churn: a vocabulary that prunes its
        rare words), the other rows close up in order, and W's columns are normalised again
        over the features that remain, their statistics rescaled as a refresh does.

        What remains is the model with the same statistics minus those rows: the rows of
        ``B`` (and ``D``) of the other features, ``A`` and the usage are sums over samples
        whose terms do not involve a removed row, so they are what a model that learned the
        same activations without the removed features would hold. A refresh updates every
        row from its own statistics, so removing then refreshing gives the W that refreshing
        then removing gives (exactly but for rounding and the multiplicative updates' floor,
        at ``l1_w = 0``; not at beta = 1, whose refresh re-solves the latest samples against
        every row and spreads the prior of the memories chosen by the data over all rows;
        tests/test_text_pruning.py). What cannot be undone is the removed features' part in
        the activations already solved (a sample's h saw its words, and W's Gram matrix or
        column sums saw every row): a model that never saw them differs by that much. A name
        seen again later is a new feature (its initial row). The recent samples kept for
        re-seeding lose their entries on the removed features. A model sharing its
        dictionary with peers is refused.

        >>> model = OnlineNMF(n_components=2, refresh_every=2, seed=0)
        >>> for x in [{"a": 5, "b": 1}, {"c": 4}, {"a": 6}, {"c": 5, "d": 1}]:
        ...     _ = model.learn_one(x)
        >>> model.remove_features(["b"])
        >>> model.features, model.W.shape, bool(np.allclose(model.W.sum(axis=0), 1.0))
        (['a', 'c', 'd'], (3, 2), True)
        """
        names = list(dict.fromkeys(names))
        index = self._feature_index.index
        unknown = [name for name in names if name not in index]
        if unknown:
            raise ValueError(f"remove_features: {unknown[0]!r} is not a feature of this model "
                             "(model.features lists them)")
        if self._peers:
            raise ValueError("remove_features: this model shares its dictionary with peers "
                             "(set_peer_statistics([]) first)")
        if not names:
            return
        keep = self._feature_index.remove(names)
        stats = self._statistics
        stats.remove_rows(keep)  # and the twin's
        self._monitor.remove_rows(keep)
        for held in (stats, *([stats.twin] if stats.twin is not None else [])):
            if self._initialised:  # columns sum to 1 since the first dictionary: again
                sums = dictionary.normalise_columns(held.W[: held.m])
                held.rescale_columns(np.where(sums > 0, sums, 1.0))
            held.recompute_caches()

    def _sample_rows(self, x: Mapping, register: bool) -> tuple[np.ndarray, np.ndarray]:
        return self._feature_index.sample_rows(x, self._add_features if register else None)

    def _matrix_rows(self, X, features, register: bool) -> sp.csr_matrix:
        return self._feature_index.matrix_rows(X, features,
                                               self._add_features if register else None)

    def _warm_vector(self, warm_start: Mapping | None, values: np.ndarray) -> np.ndarray | None:
        if warm_start is None:
            return None
        ids = self._components.ids
        if list(warm_start) == ids:  # the usual case: the previous h
            h = np.array(list(warm_start.values()), dtype=np.float64)
            h[~(np.isfinite(h) & (h > 0))] = 0.0
        else:
            h = np.zeros(len(ids))
            position = {c: j for j, c in enumerate(ids)}
            for component, value in warm_start.items():
                if component in position and np.isfinite(value) and value > 0:
                    h[position[component]] = float(value)
        return self._learner.warm_start(h, values)

    # ------------------------------------------------------------------ learning
    def learn_one(self, x: Mapping, warm_start: Mapping | None = None) -> dict[int, float]:
        """Solve h for one sample, learn from it, and return h as ``{component id: weight}``.

        ``warm_start`` (e.g. the subject's previous h) starts the solver there; the optimum
        reached is the same, only faster. Invalid samples raise ``ValueError`` and change
        nothing.
        """
        # the per-sample path: every call here is paid by every sample (and, on a machine
        # busy with other work, paid again for its code and data gone cold in between)
        rows, values = self._feature_index.sample_rows(x, self._add_features)
        ids = self._components.ids  # h belongs to these, even if a refresh changes the rank
        if warm_start is None:
            h = np.zeros(len(ids))
            loss = self._learner.learn_one(rows, values, h, False)
        else:
            h = self._warm_vector(warm_start, values)
            loss = self._learner.learn_one(rows, values, h, True)
        self.samples_learned += 1
        self._since_refresh += 1
        self._schedule.learned(rows.size)
        self._last_losses = None  # an array when asked (last_losses): none per sample
        self._last_loss = loss
        self._drift_scores = None  # read from the monitor when asked: no array per sample
        if self._monitor.detections:
            self._drift_events(self.samples_learned - 1)
        if self._refresh_due():
            self.refresh()
        return dict(zip(ids, h.tolist()))  # Python floats, as float() of each entry gives

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
        pieces = []
        start = 0
        self.last_losses = np.zeros(0)
        drift_scores = []
        while start < n:  # one piece per stretch between refreshes: each sees one W
            stop = self._schedule.stop(start, indptr, self.samples_learned, self._since_refresh,
                                       self._initialised, self.memory_length, self.n_features)
            ids = self._components.ids
            piece = np.zeros((stop - start, len(ids)))
            losses = self._learner.learn_segment(indptr[start : stop + 1], indices, matrix.data,
                                                 piece, warm[start:stop])
            before = self.samples_learned
            self.samples_learned += stop - start
            self._since_refresh += stop - start
            self._schedule.learned(indptr[stop] - indptr[start])
            self.last_losses = np.concatenate([self.last_losses, losses])
            drift_scores.append(self._monitor.last_scores)
            pieces.append((start, stop, ids, piece))
            start = stop
            self._drift_events(before)
            if self._refresh_due():
                self.refresh()
        self._drift_scores = np.concatenate([np.zeros(0), *drift_scores])
        return self._gather(n, pieces)

    def _gather(self, n: int, pieces: list) -> np.ndarray:
        """The pieces' H: by column at a fixed rank (a re-seeded column changes id inside it),
        else in the columns of the components now (see :meth:`learn_many`)."""
        ids = self._components.ids
        if not self.adapt_rank:
            return np.vstack([np.zeros((0, len(ids)))] + [piece for *_, piece in pieces])
        position = {c: j for j, c in enumerate(ids)}
        H = np.zeros((n, len(position)))
        for start, stop, piece_ids, piece in pieces:
            for column, component in enumerate(piece_ids):
                if component in position:
                    H[start:stop, position[component]] = piece[:, column]
        return H

    @property
    def last_losses(self) -> np.ndarray:
        """Prequential loss of the latest learned samples: D_beta(v | W h) with h solved
        against the dictionary *before* the sample was learned."""
        if self._last_losses is None:  # learn_one's, kept as a float
            self._last_losses = np.array([self._last_loss])
        return self._last_losses

    @last_losses.setter
    def last_losses(self, losses: np.ndarray) -> None:
        self._last_losses = losses

    @property
    def last_drift_scores(self) -> np.ndarray:
        """The drift detector's score of each of the latest learned samples, aligned with
        :attr:`last_losses`: how unusual its loss, its number of features and (with two
        memories) its loss in the short memory over the long one are against the stream's
        recent level (:attr:`onlinenmf.monitor.DriftDetector.score`; NaN without
        ``drift_threshold`` or before the detector's first reference)."""
        if self._drift_scores is not None:
            return self._drift_scores
        drift = self._monitor.drift
        return np.array([math.nan if drift is None else drift.score])

    @property
    def last_loss(self) -> float:
        """Prequential loss of the latest learned sample (see :attr:`last_losses`)."""
        return float(self.last_losses[-1]) if self.last_losses.size else float("nan")

    # ------------------------------------------------------------------ drift
    def _drift_events(self, before: int) -> None:
        """Each drift the monitor detected in the samples just learned (``before``: samples
        learned before them) is an event, and the schedule refreshes often again. (Under
        ``adapt_forgetting`` the memory follows a detector of its own on the loss windows,
        :mod:`onlinenmf.hyper`, whose detections are drift events too.)"""
        if not self._monitor.detections:
            return
        for detection in self._monitor.take_detections():
            sample = before + detection.offset + 1
            # 6 digits: learn_one and learn_many differ in the last bits of the losses
            self._events.emit("drift", sample, old=float(f"{detection.level:.6g}"),
                              new=float(f"{detection.loss:.6g}"),
                              reason=drift_reason(detection, self.drift_threshold))
            self._schedule.drifted(sample)

    # ------------------------------------------------------------------ the refresh
    def _refresh_due(self) -> bool:
        return self._schedule.due(self.samples_learned, self._since_refresh, self._initialised,
                                  self.memory_length, self._statistics.m)  # m: n_features

    @property
    def alarm_window(self) -> int:
        """The samples a loss window usually holds: the refresh interval, or ALARM_SAMPLES
        (:mod:`onlinenmf.monitor`) when refreshes come more often."""
        return max(int(self.refresh_every or 0), ALARM_SAMPLES)

    def refresh(self) -> None:
        """Recompute W from the statistics now, normalise it, re-seed dead components.

        Under the automatic schedule (``refresh_every=None``) the first refresh fits the first
        dictionary from the recent samples, and the refreshes at 4k, 8k and 16k samples fit it
        again (:mod:`onlinenmf.schedule`)."""
        refit = self._initialised and self._schedule.refit_due(self.samples_learned)
        if (not self._initialised or refit) and self._learner.can_initialise():
            # the first W, from the data (again, while young: components merged by a first
            # dictionary from few samples separate); columns keep the ids of their nearest
            self._learner.initialise(self.init, keep_order=refit)
            if not self._initialised:
                self._schedule.restart(self.samples_learned)
            self._initialised = True
            self._since_refresh = 0
            self._schedule.refreshed()
            if self._monitor.drift is not None:
                self._monitor.drift.restart()  # the loss level of a new dictionary
            self.model_version += 1
            return
        stats = self._statistics
        memories = self._learner.memories
        before = self._learner.dictionary_before()
        self._update_dictionary()
        # the latest samples re-solved against the new W, then W again from the statistics
        # that now hold their new h (beta = 1; a peer's statistics are not restated)
        if not self._peers and self._learner.restate(self._since_refresh, before):
            self._update_dictionary()
        if memories is not None:
            if memories.better() and not self._peers:  # serve the other memory
                old, new = memories.swap()
                self._learner.rho = new
                self._events.emit("forget_factor", self.samples_learned, old=old, new=new,
                                  reason=memories.reason())
        self._since_refresh = 0
        self._schedule.refreshed()
        self.model_version += 1
        self._after_refresh()
        stats.recompute_caches()

    def _update_dictionary(self) -> None:
        """The M-step: W from the statistics (own, or own plus the peers'), its columns
        normalised; the shadow memory's W from its own."""
        stats = self._statistics
        W = stats.W[: stats.m]
        stats.unscale()
        # own statistics, or own plus the peers' (whose columns are matched to ours first)
        self._peers.shared_usage = None
        totals = (self._peers.totals(stats, self._components, self.samples_learned)
                  if self._peers else stats.totals())
        self._divergence.update_dictionary(W, totals, self.l1_w * totals.n_eff,
                                           self.l2_w * totals.n_eff, int(self.refresh_sweeps))
        sums = dictionary.normalise_columns(W)
        stats.rescale_columns(np.where(sums > 0, sums, 1.0))
        if self._learner.memories is not None:
            self._learner.memories.refresh_shadow(self.l1_w, self.l2_w,
                                                  int(self.refresh_sweeps))

    def _after_refresh(self) -> None:
        """Close the loss window; re-estimate (:mod:`onlinenmf.hyper`, which under
        ``adapt_rank`` owns births and deaths) and re-seed dead components."""
        stats = self._statistics
        window = self._monitor.close_window(stats.window_usage, self.samples_learned,
                                            self.memory_length, self.alarm_window)
        if window is None:
            return  # too few samples since the last window to judge the loss: later
        stats.window_usage = np.zeros(len(self._components))
        self._components.observe(window)
        if self._hyper is not None:
            self._hyper.on_refresh(window.loss, window.abs, window.count, window.usage)
            if self.adapt_rank:
                return
        if not self.reseed or not self._monitor.recent:
            return
        shared = self._peers.shared_usage
        choice = self._components.to_reseed(
            window, stats.usage if shared is None else shared, shared is not None,
            self._monitor.baseline, self.samples_learned >= self.memory_length)
        if choice is not None:
            self._reseed(*choice)

    def _reseed(self, j: int, reason: str) -> None:
        """Replace column j by the positive residual of the worst recent samples."""
        seed = self._learner.residual_seed()
        if seed is None:
            return
        self._components.replace(j, seed[0], reason, self.samples_learned)
        if self._hyper is not None:
            self._hyper.on_replace(j)
        self._statistics.recompute_caches()

    # ------------------------------------------------------------------ batch steps
    def batch_statistics(self, X, features: Sequence | None = None) -> BatchSums:
        """The statistics of a batch (rows = samples) under the current W, without learning.

        Each row's h is solved against W from a cold start (as :meth:`transform_many`) and
        its sufficient statistics are summed, each sample weighing 1 (no forgetting), with
        its losses. Features the model does not know are ignored (:meth:`add_features` them
        first). The sums of two batches add up (``a + b``) to those of both, so a data set's
        partitions can be summed anywhere (:mod:`onlinenmf.distributed` does it on Dask);
        :meth:`refresh_from` then refreshes W from the total: one step of batch NMF.

        >>> import numpy as np
        >>> model = OnlineNMF(n_components=2, beta=1, refresh_every=2, seed=0)
        >>> X = np.array([[5.0, 1, 0, 0], [0, 0, 4, 2], [6, 2, 0, 0], [0, 0, 5, 1]])
        >>> _ = model.learn_many(X, features=["a", "b", "c", "d"])
        >>> halves = (model.batch_statistics(X[:2], features=["a", "b", "c", "d"])
        ...           + model.batch_statistics(X[2:], features=["a", "b", "c", "d"]))
        >>> whole = model.batch_statistics(X, features=["a", "b", "c", "d"])
        >>> halves.count, bool(np.allclose(halves.B, whole.B))
        (4, True)
        """
        matrix = self._matrix_rows(X, features, register=False)
        return self._learner.batch_sums(matrix.indptr.astype(np.int64),
                                        matrix.indices.astype(np.int64), matrix.data)

    def refresh_from(self, sums: BatchSums, n_eff: float | None = None) -> None:
        """Replace the statistics by a batch's (:meth:`batch_statistics`, possibly summed over
        partitions) and refresh W from them, as :meth:`refresh` does from the model's own.

        One call after :meth:`batch_statistics` over a data set is one pass of batch NMF: h
        solved exactly against W, then the divergence's own refresh of W. ``n_eff`` is the
        forgetful count the statistics enter with; by default the one a stream of
        ``sums.count`` samples leaves, ``(1 - rho**n) / (1 - rho)`` (at most the memory
        length), so that samples learned afterwards move W at the model's own pace. W does not
        depend on it. The batch's losses close the refresh window (re-estimation under
        ``adapt_rank`` or ``adapt_sparsity`` sees them, re-seeding acts as after any
        refresh) and ``samples_learned`` grows by ``sums.count``. Statistics learned since the
        last refresh are replaced. A model sharing its dictionary with peers is refused.
        """
        if self._peers:
            raise ValueError("refresh_from: this model shares its dictionary with peers "
                             "(set_peer_statistics([]) first)")
        if n_eff is None:
            rho = self._learner.rho
            n_eff = float(sums.count) if rho == 1 else (1.0 - rho**sums.count) / (1.0 - rho)
        self._statistics.install(sums, n_eff)
        if self._learner.memories is not None:  # the other memory starts from the same sums
            self._learner.memories.installed(sums)
        self._monitor.record_totals(sums.relative_loss, sums.loss, sums.count)
        self.samples_learned += int(sums.count)
        self._initialised = True  # W is the data's: no first dictionary from the buffer
        self.refresh()

    # ------------------------------------------------------------------ shared dictionaries
    def export_statistics(self) -> dict[str, Any]:
        """This model's own forgetful statistics, for peers that share its dictionary.

        A dict of copies, rows keyed by feature name: ``features``, ``W``, ``B`` (the
        statistic of the rows at its true scale), ``usage`` (the forgetful sum of h),
        ``A`` (beta = 2, k x k) or ``D`` (the MU denominator per row: beta not in 1, 2),
        ``n_eff``, ``samples_learned``, ``beta`` and ``component_ids``. Peer statistics this
        model holds are not included, so a peer that adds them counts each sample once. See
        :meth:`set_peer_statistics`.

        >>> model = OnlineNMF(n_components=2, refresh_every=2, seed=0)
        >>> for x in [{"a": 5, "b": 1}, {"c": 4}, {"a": 6}, {"c": 5, "d": 1}]:
        ...     _ = model.learn_one(x)
        >>> stats = model.export_statistics()
        >>> stats["features"], stats["B"].shape, stats["samples_learned"]
        (['a', 'b', 'c', 'd'], (4, 2), 4)
        """
        return {
            "features": self.features, "beta": self.beta, **self._statistics.export(),
            "n_eff": float(self._statistics.n_eff), "samples_learned": int(self.samples_learned),
            "component_ids": self.component_ids,
        }

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
        index = self._feature_index.index
        checked = [Peers.check(peer, n, index, self.beta, self._statistics.layout)
                   for n, peer in enumerate(peers)]
        self._add_features([name for features, _ in checked for name in features])
        self._peers.set(checked, index)

    # ------------------------------------------------------------------ read-only transforms
    def transform_one(self, x: Mapping, warm_start: Mapping | None = None) -> dict[int, float]:
        """h for one sample against the current W, without learning. Unknown features are
        ignored; before any learning every weight is 0."""
        rows, values = self._sample_rows(x, register=False)
        H = np.zeros((1, len(self._components)))
        warm = self._warm_vector(warm_start, values)
        if warm is not None:
            H[0] = warm
        self._learner.solve(np.array([0, rows.size], dtype=np.int64), rows, values, H)
        return dict(zip(self._components.ids, map(float, H[0])))

    def transform_many(self, X, features: Sequence | None = None) -> np.ndarray:
        """H for a batch against the current W, without learning (n_samples x n_components)."""
        matrix = self._matrix_rows(X, features, register=False)
        H = np.zeros((matrix.shape[0], len(self._components)))
        self._learner.solve(matrix.indptr.astype(np.int64), matrix.indices.astype(np.int64),
                            matrix.data, H)
        return H

    def loss_one(self, x: Mapping) -> float:
        """The beta-divergence of a sample from its best reconstruction ``W h`` (read-only)."""
        rows, values = self._sample_rows(x, register=False)
        H = np.zeros((1, len(self._components)))
        return float(self._learner.solve(np.array([0, rows.size], np.int64), rows, values, H)[0])

    # ------------------------------------------------------------------ persistence
    def __eq__(self, other: object) -> bool:  # used by tests of bit-exact round trips
        if type(other) is not type(self):
            return NotImplemented
        return snapshot.same_state(self, other)

    __hash__ = None  # type: ignore[assignment]

    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The snapshot's arrays and JSON metadata: each part's own state."""
        arrays, statistics = self._statistics.state()
        component_arrays, components = self._components.state()
        recent, monitor = self._monitor.state()
        arrays.update(component_arrays)
        arrays.update(recent)
        meta = {
            "class": type(self).__name__,
            "params": self._params(),
            "features": self._feature_index.names,
            "statistics": statistics,
            "components": components,
            "monitor": monitor,
            "stream": {"samples_learned": self.samples_learned,
                       "model_version": self.model_version,
                       "since_refresh": self._since_refresh, "initialised": self._initialised,
                       "schedule": self._schedule.state(),
                       "forget_factor": self._learner.rho},
            "events": self._events.state(),
        }
        if self._learner.memories is not None:
            memory_arrays, meta["memories"] = self._learner.memories.state()
            arrays.update(memory_arrays)
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
        """A model from a verified snapshot (older formats upgraded first)."""
        arrays, meta = snapshot.upgrade(arrays, meta)
        if meta.get("class") != cls.__name__:
            raise snapshot.SnapshotError(
                f"{source}: holds a {meta.get('class')}, not {cls.__name__}"
            )
        # a parameter the snapshot's version did not have keeps the behaviour it had then
        model = cls(**{**LEGACY_PARAMETERS, **meta["params"]})
        model._feature_index.restore(meta["features"])
        model._statistics.restore(arrays, meta["statistics"])
        model._components.restore(arrays, meta["components"])
        model._monitor.restore(arrays, meta["monitor"])
        stream = meta["stream"]
        model.samples_learned = int(stream["samples_learned"])
        model.model_version = int(stream["model_version"])
        model._since_refresh = int(stream["since_refresh"])
        model._initialised = bool(stream["initialised"])
        if "schedule" in stream:
            model._schedule.restore(stream["schedule"])
        model._learner.rho = float(stream["forget_factor"])
        if model._learner.memories is not None:
            model._learner.memories.restore(arrays, meta["memories"])
        model._events[:] = EventLog.restore(meta["events"])
        if model._hyper is not None and "hyper" in meta:
            model._hyper.restore(arrays, meta["hyper"])
        return model

    @classmethod
    def from_dictionary(cls, W, features: Sequence, **params: Any) -> OnlineNMF:
        """A model whose dictionary is ``W`` (features x components), its rows named by
        ``features``: to solve h with the model's own solver against a dictionary put together
        elsewhere (the columns of several models side by side, one model's rows minus a few).

        ``W`` is used as given (non-negative and finite; columns not normalised), its rows in
        the order given; the other parameters are the constructor's (``n_components`` is W's
        column count). :meth:`transform_one` answers against ``W``. The model has learned
        nothing: it can learn, but without statistics its first refresh rests on the samples
        learned after it was built (W is updated from them, not replaced by a first dictionary
        from the data).

        >>> a = OnlineNMF(n_components=2, refresh_every=2, seed=0)
        >>> for x in [{"a": 5, "b": 1}, {"c": 4}, {"a": 6}, {"c": 5, "d": 1}]:
        ...     _ = a.learn_one(x)
        >>> copy = OnlineNMF.from_dictionary(a.W, a.features)
        >>> copy.transform_one({"a": 3, "c": 1}) == a.transform_one({"a": 3, "c": 1})
        True
        """
        if "n_components" in params:
            raise ValueError("from_dictionary: n_components is W's number of columns; "
                             "do not pass it")
        W = np.asarray(W, dtype=np.float64)
        names = [check_feature_name(name) for name in features]
        if W.ndim != 2 or W.shape[0] != len(names) or W.shape[1] < 1:
            raise ValueError(f"from_dictionary: W must be features x components with one row "
                             f"per feature name ({len(names)}), got shape {W.shape}")
        if not np.isfinite(W).all() or (W < 0).any():
            raise ValueError("from_dictionary: W must be finite and non-negative")
        if len(set(names)) != len(names):
            raise ValueError("from_dictionary: feature names must be distinct")
        model = cls(n_components=W.shape[1], **params)
        model._feature_index.add(names)  # the rows in the order given
        model._statistics.add_rows(W)
        model._initialised = True  # a refresh updates W from the statistics, never replaces it
        return model

    def __repr__(self) -> str:
        return (f"OnlineNMF(n_components={len(self._components)}, beta={self.beta}, "
                f"n_features={self._statistics.m}, samples_learned={self.samples_learned})")


#: The constructor's parameter names (their types, defaults and checks:
#: :data:`onlinenmf.parameters.ENGINE`).
PARAMETERS = PARAMETERS_TABLE.names
#: Parameters added after snapshots were first written, with the value that gives the
#: behaviour before they existed (a snapshot without them continues as it learned).
LEGACY_PARAMETERS = {"drift_threshold": None}


def drift_reason(detection: Detection, threshold: float) -> str:
    """Why a drift event fired: the sample's z-score and loss ratio, and the statistic."""
    return (f"prequential loss up: {detection.loss / detection.level:.3g} x its recent level "
            f"(z = {detection.z:.3g}); CUSUM {detection.statistic:.3g} >= {threshold:g}")
