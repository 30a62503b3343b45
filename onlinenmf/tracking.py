"""Follow communities in subjects over time: trajectories, growth rates, events, anomalies.

A :class:`Tracker` drives an :class:`~onlinenmf.OnlineNMF` and keeps, per subject (an infant, a
vessel, a user), a bounded history of ``(time, h, loss)`` in time order. From it come the
subject's composition ``h / sum(h)``, its dominant community, a growth rate per community (the
Theil-Sen slope of log abundance against time, with its number of points and a 95 % interval),
events (a community appears in or vanishes from the subject, with hysteresis, its shares
compared under one dictionary) and anomaly marks (a sample whose prequential loss is unusual for
its subject). The model's own ``retire``/``birth``
events (a re-seeded column is a new community with a new id) are mirrored into the same list.

Component ids are the model's stable ids (never reused), so a trajectory stays true across
refreshes and re-seeds: a retired id simply stops appearing in later samples.

Memory is bounded: at most ``max_history`` samples per subject (the oldest dropped), at most
``max_subjects`` subjects and ``max_history_bytes`` bytes of history (least recently seen
subjects evicted; see *Memory* in :class:`Tracker` for what a sample and a subject cost) and,
with ``ttl``, subjects not seen for ``ttl`` time units are evicted; evictions are counted in
:attr:`Tracker.metrics`. The whole state, the model included, round-trips through
:meth:`Tracker.to_bytes` (the snapshot format of :mod:`onlinenmf.snapshot`: npz + JSON, no
pickle).

Examples
--------
>>> from onlinenmf import OnlineNMF, Tracker
>>> t = Tracker(OnlineNMF(n_components=2, beta=1, refresh_every=4, seed=0))
>>> for day in range(6):
...     rec = t.learn_one({"a": 10 * 2**day, "b": 50}, subject="C001", time=day)
>>> sorted(rec)[:5]
['anomaly', 'composition', 'dominant', 'events', 'growth']
>>> t.trajectory("C001").shape
(6, 2)
>>> t2 = Tracker.from_bytes(t.to_bytes())
>>> t2.trajectory("C001").equals(t.trajectory("C001"))
True
"""

from __future__ import annotations

import datetime as _dt
import math
import operator
import os
import sys
from collections import OrderedDict, deque
from collections.abc import Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from scipy.special import ndtri

from onlinenmf import snapshot
from onlinenmf._growth import growth_fits
from onlinenmf.divergences import for_beta
from onlinenmf.engine import OnlineNMF
from onlinenmf.parameters import TRACKER

__all__ = ["ANOMALY_LOOKBACK", "ANOMALY_MIN_HISTORY", "ANOMALY_SCALE_FLOOR", "GrowthEstimate",
           "RECENT_OVERHEAD", "REPROJECT_OVERHEAD", "SUBJECT_OVERHEAD", "Tracker",
           "record_fields", "theil_sen"]

_TIMESTAMP_TYPES = (_dt.datetime, _dt.date, np.datetime64, pd.Timestamp, str)
_Z95 = float(ndtri((1.0 - 0.95) / 2.0))  # normal quantile of the 95 % growth interval

#: Bytes a subject costs beyond its arrays and its key (its object, the arrays' headers, its
#: entry in the store), as ``max_history_bytes`` counts them: tracemalloc measured 720-730
#: bytes (1,000 and 20,000 subjects; 1,170-1,180 with ``reproject``, which holds four more
#: arrays: :data:`REPROJECT_OVERHEAD`). tests/test_tracking.py checks that they still cover it.
SUBJECT_OVERHEAD = 832
REPROJECT_OVERHEAD = 512
#: Bytes each of a subject's last ``hold`` samples costs beyond its arrays, kept for the
#: appear/vanish events (:class:`_Solved`: its tuple and four array headers, and the list that
#: holds them): tracemalloc measured 610 for a learned sample, 380 for one given to
#: ``observe`` (two arrays fewer).
RECENT_OVERHEAD = 640


class _Solved(NamedTuple):
    """One of a subject's latest samples as the appear/vanish events compare it: its non-zero
    entries (dictionary rows, values; None for weights given to ``observe``) and its weights
    (component ids, h) under dictionary ``version``."""

    rows: np.ndarray | None
    values: np.ndarray | None
    version: int
    ids: np.ndarray
    h: np.ndarray

    def shares(self) -> dict[int, float]:
        total = float(self.h.sum())
        return dict(zip(self.ids.tolist(), (self.h / (total if total > 0 else 1.0)).tolist()))

    def nbytes(self) -> int:
        data = 0 if self.rows is None else self.rows.nbytes + self.values.nbytes
        return data + self.ids.nbytes + self.h.nbytes

#: Anomaly marks (``anomaly_z``): a sample's log loss is judged against those of the subject's
#: previous ANOMALY_LOOKBACK held samples, once it has ANOMALY_MIN_HISTORY of them; their spread
#: (1.4826 x the median absolute deviation) counts as at least ANOMALY_SCALE_FLOOR, so that a
#: subject of near-identical samples is not marked for a loss 10 % above its usual.
ANOMALY_LOOKBACK = 32
ANOMALY_MIN_HISTORY = 5
ANOMALY_SCALE_FLOOR = 0.1


@dataclass(frozen=True)
class GrowthEstimate:
    """A growth rate (per time unit) of one community in one subject.

    ``rate`` is the Theil-Sen slope of log abundance against time; ``low``/``high`` its
    confidence interval (Sen 1968, normal approximation of Kendall's tau); ``n`` the points used.
    """

    rate: float
    low: float
    high: float
    n: int

    def as_dict(self) -> dict[str, float | int]:
        return {"rate": self.rate, "low": self.low, "high": self.high, "n": self.n}


def theil_sen(
    t: np.ndarray, Y: np.ndarray, alpha: float = 0.95
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Theil-Sen slopes of several series sharing one time axis, with confidence intervals.

    Vectorised over the columns of ``Y`` (n points x p series); the same estimate and interval
    as :func:`scipy.stats.theilslopes` (``method="separate"`` interval) column by column. The
    tracker's per-sample fits use a compiled equivalent (:mod:`onlinenmf._growth`, the same
    bits, ~4x less time); this one is the plain reference.

    >>> t = np.array([0.0, 1, 2, 3, 4])
    >>> Y = np.column_stack([2 * t, -t + np.array([0, 0, 9, 0, 0])])
    >>> slope, low, high = theil_sen(t, Y)
    >>> slope.tolist()
    [2.0, -1.0]
    """
    t = np.asarray(t, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64).reshape(len(t), -1)
    i, j = np.triu_indices(len(t), k=1)
    dt = t[j] - t[i]
    keep = dt != 0  # equal times give no slope
    i, j, dt = i[keep], j[keep], dt[keep]
    p = Y.shape[1]
    if dt.size == 0:
        nan = np.full(p, np.nan)
        return nan, nan.copy(), nan.copy()
    slopes = np.sort((Y[j] - Y[i]) / dt[:, None], axis=0)
    slope = np.median(slopes, axis=0)
    # Interval of Sen (1968), as scipy.stats.theilslopes: ranks around the median slope.
    # Sen's (1968, eq. 2.6) variance less the ties in time and in each series' values (at
    # the floor values tie often); at 0 when the ties take it all (scipy gives NaN there)
    n = len(t)
    ties = _tie_term(t) + np.array([_tie_term(Y[:, c]) for c in range(p)])
    sigma = np.sqrt(np.maximum(n * (n - 1) * (2 * n + 5) - ties, 0.0) / 18.0)
    z = ndtri((1.0 - alpha) / 2.0)
    total = slopes.shape[0]
    # round() per column, as scipy's np.round (half to even)
    upper = np.minimum(np.rint((total - z * sigma) / 2.0).astype(np.int64), total - 1)
    lower = np.maximum(np.rint((total + z * sigma) / 2.0).astype(np.int64) - 1, 0)
    columns = np.arange(p)
    return slope, slopes[lower, columns], slopes[upper, columns]


def _tie_term(x: np.ndarray) -> float:
    """Sum over runs of equal values of r (r - 1) (2r + 5): what ties take from the
    variance of Kendall's S (Sen 1968)."""
    _, counts = np.unique(x, return_counts=True)
    return float(np.sum(counts * (counts - 1) * (2 * counts + 5)))


class _Subject:
    """One subject's bounded, time-ordered history, held as a few arrays.

    ``weights`` has one row per sample (in step with ``times``) and one column per id of
    ``ids`` (sorted): the communities the held samples carry, NaN where a community did not
    exist when the sample was solved; ``losses`` the samples' relative prequential losses (NaN:
    none given). No Python object per sample: a sample costs ``8 * (2 + len(ids))`` bytes
    (see :data:`SUBJECT_OVERHEAD` for the fixed part).

    With ``reproject``, each sample's non-zero entries are kept too, as rows of the model's
    dictionary (``sample_rows``, ``sample_values``; ``sample_nnz`` entries per sample, -1 for
    weights given to ``observe``) with the model version its weights were solved under.
    """

    __slots__ = ("times", "weights", "losses", "ids", "present", "recent", "last_time",
                 "versions", "sample_nnz", "sample_rows", "sample_values", "nbytes")

    def __init__(self, reproject: bool) -> None:
        self.times = np.empty(0)
        self.weights = np.empty((0, 0))
        self.losses = np.empty(0)
        self.ids = np.empty(0, dtype=np.int64)
        self.present: tuple[int, ...] = ()  # communities present (for appear/vanish events)
        self.recent: list[_Solved] = []  # the latest `hold` samples in time (appear/vanish)
        self.last_time = -math.inf  # latest time seen (for TTL and the in-order test)
        self.versions = self.sample_nnz = self.sample_rows = self.sample_values = None
        if reproject:
            self.versions, self.sample_nnz = _ints(), _ints()
            self.sample_rows, self.sample_values = _ints(), np.empty(0)
        self.nbytes = 0  # what the tracker's budget counts for this subject (set by it)

    def __len__(self) -> int:
        return len(self.times)

    def size(self) -> int:
        """Bytes of the arrays held (the part of :attr:`nbytes` that grows with history)."""
        size = (self.times.nbytes + self.weights.nbytes + self.losses.nbytes + self.ids.nbytes
                + 8 * len(self.present))
        size += sum(entry.nbytes() + RECENT_OVERHEAD for entry in self.recent)
        if self.versions is not None:
            size += (self.versions.nbytes + self.sample_nnz.nbytes + self.sample_rows.nbytes
                     + self.sample_values.nbytes)
        return size

    def row(self, i: int) -> dict[int, float]:
        """Sample ``i``'s weights as ``{component id: weight}`` (ids sorted)."""
        return {c: w for c, w in zip(self.ids.tolist(), self.weights[i].tolist()) if w == w}

    def _columns(self, keys: np.ndarray) -> np.ndarray | slice:
        """The columns of component ids ``keys``, adding NaN columns for ids new here."""
        if keys.shape == self.ids.shape and (keys == self.ids).all():
            return slice(None)  # the usual case: the same communities as before, in order
        columns = np.searchsorted(self.ids, keys)
        inside = columns < len(self.ids)
        if not (inside.all() and (self.ids[columns] == keys).all()):
            ids = np.union1d(self.ids, keys)
            wider = np.full((len(self.times), len(ids)), np.nan)
            wider[:, np.searchsorted(ids, self.ids)] = self.weights
            self.ids, self.weights = ids, wider
            columns = np.searchsorted(ids, keys)
        return columns

    def insert(self, position: int, time: float, h: Mapping[int, float], loss: float,
               sample: tuple[np.ndarray, np.ndarray] | None, version: int) -> None:
        """Insert a sample at ``position`` (``sample``: its rows and values, reproject)."""
        keys = np.fromiter(h, np.int64, len(h))
        columns = self._columns(keys)
        values = np.fromiter(h.values(), np.float64, len(h))
        if isinstance(columns, slice):
            row = values.reshape(1, -1)
        else:
            row = np.full((1, len(self.ids)), np.nan)
            row[0, columns] = values
        self.times = _insert(self.times, position, np.array([time]))
        self.weights = _insert(self.weights, position, row)
        self.losses = _insert(self.losses, position, np.array([loss]))
        if self.versions is None:
            return
        start = int(np.maximum(self.sample_nnz[:position], 0).sum())
        rows, values = sample if sample is not None else (_ints(), np.empty(0))
        self.versions = _insert(self.versions, position, np.array([version]))
        self.sample_nnz = _insert(self.sample_nnz, position,
                                  np.array([-1 if sample is None else len(rows)]))
        self.sample_rows = _insert(self.sample_rows, start, rows)
        self.sample_values = _insert(self.sample_values, start, values)

    def set_row(self, i: int, h: Mapping[int, float], version: int) -> None:
        """Replace sample ``i``'s weights (a re-projection under model ``version``)."""
        keys = np.fromiter(h, np.int64, len(h))
        columns = self._columns(keys)
        self.weights[i] = np.nan
        self.weights[i, columns] = np.fromiter(h.values(), np.float64, len(h))
        self.versions[i] = version

    def drop_oldest(self, count: int) -> None:
        """Forget the ``count`` oldest samples (copies: a view would pin the old buffer)."""
        self.times = self.times[count:].copy()
        self.weights = self.weights[count:].copy()
        self.losses = self.losses[count:].copy()
        self.compact()
        if self.versions is not None:
            start = int(np.maximum(self.sample_nnz[:count], 0).sum())
            self.versions = self.versions[count:].copy()
            self.sample_nnz = self.sample_nnz[count:].copy()
            self.sample_rows = self.sample_rows[start:].copy()
            self.sample_values = self.sample_values[start:].copy()

    def compact(self) -> None:
        """Drop the columns of communities no held sample carries any more."""
        held = ~np.isnan(self.weights).all(axis=0)
        if not held.all():
            self.ids, self.weights = self.ids[held], self.weights[:, held]

    def sample(self, i: int, names: list) -> dict | None:
        """Sample ``i`` as ``{feature: value}`` (None: its weights came from ``observe``)."""
        nnz = int(self.sample_nnz[i])
        if nnz < 0:
            return None
        start = int(np.maximum(self.sample_nnz[:i], 0).sum())
        return {names[r]: v for r, v in zip(self.sample_rows[start:start + nnz].tolist(),
                                            self.sample_values[start:start + nnz].tolist())}


def _ints() -> np.ndarray:
    return np.empty(0, dtype=np.int64)


def _arrays(h: Mapping[int, float]) -> tuple[np.ndarray, np.ndarray]:
    """``{component id: weight}`` as (ids, weights) arrays."""
    return (np.fromiter(h, np.int64, len(h)), np.fromiter(h.values(), np.float64, len(h)))


def _insert(array: np.ndarray, position: int, rows: np.ndarray) -> np.ndarray:
    """``array`` with ``rows`` inserted before index ``position`` (a new array)."""
    if position == len(array):
        return np.concatenate((array, rows))
    return np.concatenate((array[:position], rows, array[position:]))


class Tracker:
    """Per-subject trajectories, growth rates and events on top of an :class:`OnlineNMF`.

    Parameters
    ----------
    model
        The model to drive (a fresh or trained :class:`~onlinenmf.OnlineNMF`).
    window
        Growth rates use the samples of the last ``window`` time units of a subject's history
        (None: all it holds).
    min_points
        Fewest samples with a positive abundance needed to report a growth rate.
    growth_of
        ``"weights"``: log of the absolute activations h (they scale with sequencing depth);
        ``"composition"``: log of the share ``h / sum h`` (insensitive to depth).
    detection
        Abundances below ``detection`` x (the subject's mean total in the window) for weights,
        or below ``detection`` for shares, are floored there before the log (absent taxa
        have no finite log).
    presence, absence, hold
        Appear/vanish events, with hysteresis: a community appears in a subject when its share
        is at least ``presence`` in each of the subject's last ``hold`` samples, and vanishes
        when it is under ``absence`` (< ``presence``) in each of them (at once when the model
        retires it). A community flickering around one threshold, or present in one sample
        out of two, makes no event; a lasting change makes one, ``hold - 1`` samples after
        it began. The shares are compared under one dictionary: the subject's latest ``hold``
        samples are kept (their entries, see *Memory*) and, when the dictionary changed since
        they were solved, solved again under the current one; the change must also show
        against the sample before the last ``hold`` (or the subject's first, while it has no
        more), under the same dictionary: a community
        at ``presence`` there too is then taken as present without an event, one under
        ``absence`` there too as gone (its share crossed because W moved, not because the
        subject did). (A subject that has fewer samples is judged on those it has.)
    anomaly_z
        Mark a sample whose prequential loss is unusual for its subject (None: no marks). The
        loss is the model's ``last_loss`` per unit of the sample's scale (its reads, for
        beta = 1), under the dictionary the sample met; its logarithm is compared with those
        of the subject's :data:`ANOMALY_LOOKBACK` previous held samples: a robust z-score
        (distance to their median over 1.4826 x their median absolute deviation, the latter
        at least :data:`ANOMALY_SCALE_FLOOR`) of at least ``anomaly_z`` marks the sample:
        ``"anomaly"`` in its record and an event of kind ``"anomaly"``. A subject needs
        :data:`ANOMALY_MIN_HISTORY` previous samples with a loss first (weights given to
        :meth:`observe` have none). Judged against the subject itself, not the stream: a
        subject whose samples are always poorly explained is not marked for that.
    max_history, max_subjects, ttl
        Bounds: samples kept per subject (oldest dropped), subjects kept (least recently used
        evicted), and time units after its latest sample that a subject is kept (None: no TTL).
    max_history_bytes
        Memory budget of the subjects' histories, in bytes (see *Memory* below): past it, the
        least recently seen subjects are evicted; a single subject larger than the budget
        loses its oldest samples.
    max_events
        Events kept (oldest dropped; the count dropped is in :attr:`metrics`).
    bin_width
        Default time-bin width of :meth:`population` (None: 10 bins over the range seen).
    time_unit
        Seconds per time unit when times are timestamps (default: days).
    warm_start
        Start each subject's solve at its previous h (faster; same optimum).
    reproject
        Keep the held samples and, before a subject's growth or trajectory is read, re-solve
        its history against the current dictionary when that changed. Early samples of a
        stream are solved against an immature W; re-projecting makes a trajectory one
        consistent view of the subject under today's communities (it mattered on planted
        growth before the engine initialised W from data: Spearman 0.86 -> 0.98). Costs the
        samples' memory and a re-solve of the history per dictionary refresh.
    labels
        Readable names of features (e.g. ASV id -> genus), kept with the state for reports.

    Notes
    -----
    A late (out-of-order) sample is inserted at its place in time; it gets no appear/vanish
    events (those describe the subject as the stream unfolds), and its record says
    ``"late": True``.

    **Memory.** A subject's history is held as arrays, not Python objects per sample: a sample
    costs ``8 * (2 + c)`` bytes, ``c`` the communities the subject's held samples carry
    (its time, weights and loss; c = k = 10: 96 bytes), plus, with ``reproject``,
    ``8 * (2 + 2 * nnz)`` for the sample itself. Each subject costs :data:`SUBJECT_OVERHEAD`
    bytes more (its Python objects and store entry, measured with tracemalloc;
    :data:`REPROJECT_OVERHEAD` more with ``reproject``), its key and ``8 * c`` for its ids, and
    its latest ``hold`` samples for the appear/vanish events: ``8 * nnz + 16 * c`` each (entries
    as 32-bit rows and values) and :data:`RECENT_OVERHEAD`.
    :attr:`history_bytes`, the sum of these, never exceeds ``max_history_bytes`` once a
    sample has been recorded: the default 64 MiB holds, at k = 10, 33,513 subjects of one
    sample, 22,422 of two or 4,445 of 128 (benchmarks/output/memory.md). The snapshot
    holds the same arrays (no per-subject overhead), so the budget bounds it too. Beyond
    the histories: events (``max_events`` dicts) and the model.
    """

    #: The parameters that bound its memory; :meth:`set_bounds` changes them while running.
    BOUNDS = ("max_history", "max_subjects", "max_history_bytes", "ttl", "max_events")

    def __init__(
        self,
        model: OnlineNMF,
        *,
        window: float | None = None,
        min_points: int = 3,
        growth_of: str = "weights",
        detection: float = 1e-3,
        presence: float = 0.05,
        absence: float = 0.025,
        hold: int = 2,
        anomaly_z: float | None = 3.5,
        max_history: int = 128,
        max_subjects: int = 100_000,
        max_history_bytes: int = 64 * 2**20,
        ttl: float | None = None,
        max_events: int = 10_000,
        bin_width: float | None = None,
        time_unit: float = 86400.0,
        warm_start: bool = True,
        reproject: bool = False,
        labels: Mapping[Hashable, str] | None = None,
    ):
        if not isinstance(model, OnlineNMF):
            raise TypeError(f"model must be an OnlineNMF, got {type(model).__name__}")
        self.model = model
        TRACKER.store(self, locals())  # checked, then stored verbatim
        self._check_params()
        self.labels: dict[Hashable, str] = dict(labels or {})
        self._subjects: OrderedDict[Hashable, _Subject] = OrderedDict()
        self._history_bytes = 0  # sum of the subjects' ``nbytes``
        self._feature_rows: dict[Hashable, int] = {}  # model feature -> row (reproject)
        self._divergence = for_beta(model.beta)  # the scale of a sample's relative loss
        self._events: deque[dict[str, Any]] = deque(maxlen=max_events)
        self._model_events_seen = len(model.events)
        self._now = -math.inf  # latest time in the stream
        self._timestamps: bool | None = None  # are times timestamps (set by the first one)
        self.metrics: dict[str, int] = {
            "samples": 0, "late_samples": 0, "evicted_lru": 0, "evicted_ttl": 0,
            "evicted_budget": 0, "history_dropped": 0, "events_dropped": 0,
        }

    def _params(self) -> dict[str, Any]:
        return TRACKER.read(self)

    def _check_params(self) -> None:
        """Each parameter against its entry in the table, then what involves two of them."""
        TRACKER.check(self._params())
        if not self.absence < self.presence:
            raise ValueError(f"absence ({self.absence!r}) must be below presence "
                             f"({self.presence!r}): a community vanishes under a lower share "
                             "than it appears at")

    # ------------------------------------------------------------------ inputs
    def _time(self, time: Any) -> float:
        """A sample's time as a float: a number, or a timestamp in ``time_unit`` since 1970."""
        if isinstance(time, _TIMESTAMP_TYPES):
            try:
                stamp = pd.Timestamp(time)
            except (ValueError, TypeError):
                raise ValueError(f"time {time!r} is neither a number nor a timestamp") from None
            if stamp is pd.NaT:
                raise ValueError(f"time {time!r} is not a valid timestamp")
            if stamp.tzinfo is not None:
                stamp = stamp.tz_convert("UTC").tz_localize(None)
            kind, value = True, stamp.value / 1e9 / self.time_unit
        elif isinstance(time, int | float | np.integer | np.floating) and not isinstance(
            time, bool
        ):
            kind, value = False, float(time)
            if not math.isfinite(value):
                raise ValueError(f"time must be finite, got {time!r}")
        else:
            raise ValueError(f"time {time!r} ({type(time).__name__}) is neither a number nor "
                             "a timestamp")
        if self._timestamps is not None and kind != self._timestamps:
            raise ValueError(
                f"time {time!r}: this tracker's times are "
                f"{'timestamps' if self._timestamps else 'numbers'}; do not mix the two"
            )
        return value

    @staticmethod
    def _check_subject(subject: Any) -> Hashable:
        if isinstance(subject, bool) or not isinstance(subject, str | int | np.integer):
            raise ValueError(f"subject must be a str or an int, got {subject!r}")
        # plain str and int, as a restored tracker has them (np.str_ is another size in memory)
        return str(subject) if isinstance(subject, str) else int(subject)

    # ------------------------------------------------------------------ learning
    def learn_one(self, x: Mapping, subject: Any, time: Any) -> dict[str, Any]:
        """Learn one sample of ``subject`` taken at ``time`` and return its record.

        The record holds ``subject``, ``time``, ``weights`` and ``composition``
        (``{component id: value}``), ``dominant`` (id or None), ``growth`` (``{id: rate per
        time unit}`` for the communities with enough points), ``growth_interval``
        (``{id: [low, high]}``), ``growth_points`` (``{id: n}``), ``events`` (those this sample
        caused: appear/vanish in the subject, birth/retire in the model, ``anomaly``),
        ``anomaly`` (None, or ``{"z": ..., "ratio": ...}`` when the sample's loss is unusual for
        the subject, see ``anomaly_z``), ``late`` (an out-of-order sample) and
        ``model_version``. Invalid input raises ``ValueError`` and
        leaves both the tracker and the model unchanged.
        """
        subject = self._check_subject(subject)
        value = self._time(time)
        state = self._subjects.get(subject)
        warm = None
        if self.warm_start and state is not None and len(state):
            before = int(np.searchsorted(state.times, value, side="right"))
            warm = state.row(before - 1 if before else 0)
        version = int(self.model.model_version)  # the dictionary h is solved under
        h = self.model.learn_one(x, warm_start=warm)  # raises before any change on bad input
        rows, values = self._sample_arrays(x)
        solved = _Solved(rows.astype(np.int32), values.astype(np.float32), version,
                         *_arrays(h))
        return self._observe(subject, value, time, h, self._relative_loss(x),
                             (rows, values) if self.reproject else None, solved)

    def _relative_loss(self, x: Mapping) -> float:
        """The model's loss on the sample just learned over the sample's scale (as its drift
        detector sees it: comparable between samples of different depths); NaN if none."""
        values = np.fromiter((v for v in x.values() if v > 0), np.float64)
        scale = float(self._divergence.normalisers(np.array([0, values.size]), values)[0])
        return self.model.last_loss / scale if scale > 0 else math.nan

    def _sample_arrays(self, x: Mapping) -> tuple[np.ndarray, np.ndarray]:
        """A learned sample's non-zero entries as (dictionary rows, values), for reproject."""
        rows = self._feature_rows
        if len(rows) < self.model.n_features:  # features are only ever appended
            rows.update((name, i) for i, name in
                        enumerate(self.model.features[len(rows):], start=len(rows)))
        pairs = [(rows[name], float(v)) for name, v in x.items() if v > 0 and name in rows]
        return (np.array([r for r, _ in pairs], dtype=np.int64),
                np.array([v for _, v in pairs], dtype=np.float64))

    def observe(self, subject: Any, time: Any, h: Mapping[int, float]) -> dict[str, Any]:
        """Record activations ``h`` computed elsewhere (e.g. by a consumer driving the model).

        Same record as :meth:`learn_one` (but no loss is known, so no anomaly mark); the model
        is not touched except for reading its new events.
        """
        subject = self._check_subject(subject)
        value = self._time(time)
        clean = {}
        for component, weight in h.items():
            weight = float(weight)
            if not (math.isfinite(weight) and weight >= 0):
                raise ValueError(f"weight of component {component!r} is {weight!r}; "
                                 "weights must be finite and non-negative")
            clean[int(component)] = weight
        solved = _Solved(None, None, int(self.model.model_version), *_arrays(clean))
        return self._observe(subject, value, time, clean, math.nan, None, solved)

    def _observe(self, subject: Hashable, value: float, raw_time: Any, h: dict[int, float],
                 loss: float, sample: tuple | None, solved: _Solved) -> dict[str, Any]:
        if self._timestamps is None:
            self._timestamps = isinstance(raw_time, _TIMESTAMP_TYPES)
        self.metrics["samples"] += 1
        new_events = self._model_events(value)
        state = self._subjects.get(subject)
        if state is None:
            state = self._subjects[subject] = _Subject(self.reproject)
        self._subjects.move_to_end(subject)
        late = value < state.last_time
        position = int(np.searchsorted(state.times, value, side="right"))
        state.insert(position, value, h, loss, sample, int(self.model.model_version))
        anomaly = self._anomaly(state, position)
        total = sum(h.values())
        composition = {c: (w / total if total > 0 else 0.0) for c, w in h.items()}
        if late:
            self.metrics["late_samples"] += 1
        else:
            new_events += self._presence_events(subject, state, value, solved)
            state.last_time = value
        if anomaly is not None:
            new_events.append(self._add_event({
                "kind": "anomaly", "component": None, "subject": subject, "time": value,
                "detail": f"loss {anomaly['ratio']:.3g} x the subject's median "
                          f"(z {anomaly['z']:.2f} >= {self.anomaly_z:g})"}))
        if len(state) > self.max_history:
            self._drop_oldest(state, len(state) - self.max_history)
        self._account(subject, state)
        self._now = max(self._now, value)
        self._evict(keep=subject)
        ids, rate, low, high, points = self._growth_fit(subject)
        return {
            "subject": subject,
            "time": value,
            "weights": dict(h),
            "composition": composition,
            "dominant": max(h, key=h.__getitem__) if total > 0 else None,
            "growth": dict(zip(ids, rate)),
            "growth_interval": {c: [a, b] for c, a, b in zip(ids, low, high)},
            "growth_points": dict(zip(ids, points)),
            "events": new_events,
            "anomaly": anomaly,
            "late": late,
            "model_version": int(self.model.model_version),
        }

    def _add_event(self, event: dict[str, Any]) -> dict[str, Any]:
        if len(self._events) == self._events.maxlen:
            self.metrics["events_dropped"] += 1
        self._events.append(event)
        return event

    def _model_events(self, time: float) -> list[dict[str, Any]]:
        """Mirror the model's retire/birth events that happened since the last sample."""
        out = []
        for event in self.model.events[self._model_events_seen:]:
            if event.get("component") is None:  # hyperparameter events (onlinenmf.hyper)
                continue
            out.append(self._add_event({
                "kind": event["kind"], "component": int(event["component"]), "subject": None,
                "time": time, "detail": event.get("reason", ""),
                "old": event.get("old"), "new": event.get("new"),
                "sample": event.get("sample"),
            }))
        self._model_events_seen = len(self.model.events)
        return out

    def _presence_events(self, subject: Hashable, state: _Subject, time: float,
                         latest: _Solved) -> list[dict[str, Any]]:
        """Appear/vanish events of the sample just added at the end of ``state`` (``latest``:
        it as solved; see ``presence``, ``absence`` and ``hold`` in the class docstring)."""
        recent = self._under_current(state, latest)
        latest = recent[-1]
        state.recent = recent[-self.hold:]
        composition = latest.shares()
        if len(recent) == 1:  # the first sample sets the baseline (or, restored from a
            if len(state) > 1:  # snapshot that kept no samples, sets it again)
                state.present = self._reread(state.present, composition)
            else:
                state.present = tuple(sorted(c for c, s in composition.items()
                                             if s >= self.presence))
            return []
        present = state.present
        # only a community on the other side of its threshold now can appear or vanish
        candidates = [c for c, share in composition.items()
                      if (share >= self.presence and c not in present)
                      or (share < self.absence and c in present)]
        candidates += [c for c in present if c not in composition]
        if not candidates:
            return []
        window = [entry.shares() for entry in recent[-self.hold:]]
        before = self._before(recent)
        now, out = set(present), []
        for component in sorted(candidates):
            share = composition.get(component, 0.0)
            # its share in each of the last `hold` samples (0 where one does not carry it)
            held = np.array([shares.get(component, 0.0) for shares in window])
            earlier = None if before is None else before.get(component, 0.0)
            if component not in composition:  # retired from the model: gone now
                now.discard(component)
                detail = "retired from the model"
            elif component not in now:
                if not (held >= self.presence).all():
                    continue
                now.add(component)
                if earlier is not None and earlier >= self.presence:
                    continue  # there before too, under this W: the crossing was W's doing
                detail = f"share {share:.3f} >= {self.presence:g} in {held.size} samples"
            else:
                if not (held < self.absence).all():
                    continue
                now.discard(component)
                if earlier is not None and earlier < self.absence:
                    continue  # absent before too, under this W: the crossing was W's doing
                detail = f"share {share:.3f} < {self.absence:g} in {held.size} samples"
            kind = "appear" if component in now else "vanish"
            out.append(self._add_event({"kind": kind, "component": component,
                                        "subject": subject, "time": time, "detail": detail}))
        state.present = tuple(sorted(now))
        return out

    def _before(self, recent: list[_Solved]) -> dict[int, float] | None:
        """The shares of the sample before the last ``hold`` (or the subject's first, which
        set its baseline, while it has no more), under the same dictionary as them: a change
        of presence must show against it. (None: no sample before.)"""
        return recent[0].shares() if len(recent) > 1 else None

    def _under_current(self, state: _Subject, latest: _Solved) -> list[_Solved]:
        """The subject's latest samples, ``latest`` last, under the current dictionary: those
        solved under another one are solved again (not those given to ``observe``: their
        entries are unknown)."""
        version = int(self.model.model_version)
        return [self._solve_again(entry, version) for entry in (*state.recent, latest)]

    def _reread(self, present: tuple[int, ...], shares: Mapping[int, float]) -> tuple[int, ...]:
        """The communities present after one sample's ``shares``, no event: those present
        stay unless under ``absence``, others join at ``presence`` (retired ones stay, for
        their vanish event)."""
        return tuple(sorted(
            c for c in set(present) | set(shares)
            if c not in shares or shares[c] >= (self.absence if c in present else self.presence)))

    def _solve_again(self, entry: _Solved, version: int) -> _Solved:
        """``entry`` solved under the current dictionary (``version``), warm-started at its h;
        itself when it already is, or when its entries are unknown."""
        if entry.version == version or entry.rows is None:
            return entry
        names = self.model.features
        x = dict(zip((names[r] for r in entry.rows.tolist()), entry.values.tolist()))
        h = self.model.transform_one(x, warm_start=dict(zip(entry.ids.tolist(),
                                                             entry.h.tolist())))
        return _Solved(entry.rows, entry.values, version, *_arrays(h))

    def _anomaly(self, state: _Subject, position: int) -> dict[str, float] | None:
        """The mark of the sample at ``position`` if its loss is unusual for the subject
        (``anomaly_z``): ``{"z", "ratio"}`` (ratio: its loss over the subject's median)."""
        loss = state.losses[position]
        if self.anomaly_z is None or not loss > 0 or not math.isfinite(loss):
            return None
        earlier = state.losses[max(0, position - ANOMALY_LOOKBACK):position]
        earlier = earlier[earlier > 0]  # NaN (no loss given) and 0 are left out
        if earlier.size < ANOMALY_MIN_HISTORY:
            return None
        logs = np.log(earlier)
        level = float(np.median(logs))
        spread = max(1.4826 * float(np.median(np.abs(logs - level))), ANOMALY_SCALE_FLOOR)
        z = (math.log(loss) - level) / spread
        if z < self.anomaly_z:
            return None
        return {"z": z, "ratio": math.exp(math.log(loss) - level)}

    def _account(self, subject: Hashable, state: _Subject) -> None:
        """Bring ``state.nbytes`` and :attr:`history_bytes` up to date after a change."""
        size = state.size() + SUBJECT_OVERHEAD + sys.getsizeof(subject)
        if self.reproject:
            size += REPROJECT_OVERHEAD
        self._history_bytes += size - state.nbytes
        state.nbytes = size

    def _drop_oldest(self, state: _Subject, count: int) -> None:
        state.drop_oldest(count)
        self.metrics["history_dropped"] += count

    def _pop_oldest_subject(self, counter: str) -> None:
        _, state = self._subjects.popitem(last=False)
        self._history_bytes -= state.nbytes
        self.metrics[counter] += 1

    def _evict(self, keep: Hashable) -> None:
        """Enforce the bounds: TTL, then ``max_subjects`` and ``max_history_bytes`` (least
        recently seen first; ``keep``, the subject just seen, is the most recent)."""
        if self.ttl is not None:
            horizon = self._now - self.ttl
            while self._subjects:  # least recently used first: usually also the stalest
                subject, state = next(iter(self._subjects.items()))
                if subject == keep or state.last_time >= horizon:
                    break
                self._pop_oldest_subject("evicted_ttl")
        while len(self._subjects) > self.max_subjects:
            self._pop_oldest_subject("evicted_lru")
        while self._history_bytes > self.max_history_bytes and len(self._subjects) > 1:
            self._pop_oldest_subject("evicted_budget")
        state = self._subjects.get(keep)
        while self._history_bytes > self.max_history_bytes and state is not None and len(state) > 1:
            self._drop_oldest(state, 1)  # one subject alone over the budget: its oldest go
            self._account(keep, state)

    def set_bounds(self, **bounds: Any) -> None:
        """Change ``max_history``, ``max_subjects``, ``max_history_bytes``, ``ttl`` or
        ``max_events`` of a running (or restored) tracker, and enforce them now.

        >>> t = Tracker(OnlineNMF(n_components=1, seed=0))
        >>> for s in "abc":
        ...     _ = t.learn_one({"x": 1}, subject=s, time=0)
        >>> t.set_bounds(max_subjects=2)
        >>> t.subjects
        ['b', 'c']
        """
        unknown = sorted(set(bounds) - set(self.BOUNDS))
        if unknown:
            raise ValueError(f"not a bound of the tracker: {', '.join(unknown)} (bounds: "
                             f"{', '.join(self.BOUNDS)})")
        old = {name: getattr(self, name) for name in bounds}
        for name, value in bounds.items():
            setattr(self, name, value)
        try:
            self._check_params()
        except ValueError:
            for name, value in old.items():
                setattr(self, name, value)
            raise
        if self._events.maxlen != self.max_events:
            self.metrics["events_dropped"] += max(0, len(self._events) - self.max_events)
            self._events = deque(self._events, maxlen=self.max_events)
        for subject, state in self._subjects.items():
            if len(state) > self.max_history:
                self._drop_oldest(state, len(state) - self.max_history)
                self._account(subject, state)
        if self._subjects:
            self._evict(keep=next(reversed(self._subjects)))

    @property
    def history_bytes(self) -> int:
        """Bytes the subjects' histories hold, as ``max_history_bytes`` counts them."""
        return self._history_bytes

    # ------------------------------------------------------------------ views
    @property
    def events(self) -> list[dict[str, Any]]:
        """Events, oldest first: dicts with ``kind`` (appear, vanish, birth, retire),
        ``component``, ``subject`` (None for model events), ``time`` and ``detail``."""
        return list(self._events)

    @property
    def subjects(self) -> list[Hashable]:
        """Subjects held, least recently seen first."""
        return list(self._subjects)

    def __contains__(self, subject: Hashable) -> bool:
        return subject in self._subjects

    def __len__(self) -> int:
        return len(self._subjects)

    def _state_of(self, subject: Hashable) -> _Subject:
        try:
            return self._subjects[subject]
        except KeyError:
            raise KeyError(f"unknown subject {subject!r} (never seen, or evicted)") from None

    def _index(self, times: Iterable[float]) -> pd.Index:
        values = list(times)
        if self._timestamps:
            return pd.DatetimeIndex(pd.to_datetime(np.array(values) * self.time_unit, unit="s"),
                                    name="time")
        return pd.Index(values, dtype=np.float64, name="time")

    def _reproject(self, subject: Hashable, state: _Subject) -> None:
        """Re-solve the held samples solved under an older dictionary (``reproject``)."""
        version = int(self.model.model_version)
        if not self.reproject or (state.versions == version).all():
            return
        names = self.model.features
        previous = None
        for i in range(len(state)):
            if state.sample_nnz[i] >= 0 and state.versions[i] != version:
                start = previous if previous is not None else state.row(i)
                previous = self.model.transform_one(state.sample(i, names), warm_start=start)
                state.set_row(i, previous, version)
            else:
                previous = state.row(i)
        state.compact()
        self._account(subject, state)

    def trajectory(self, subject: Hashable, kind: str = "weights") -> pd.DataFrame:
        """The subject's history: rows = samples in time order, columns = component ids.

        ``kind`` is ``"weights"`` (h) or ``"composition"`` (h / sum h). A component absent
        from the model at a sample's time (born later, or retired) is NaN there.
        """
        if kind not in ("weights", "composition"):
            raise ValueError(f"kind must be 'weights' or 'composition', got {kind!r}")
        state = self._state_of(subject)
        self._reproject(subject, state)
        frame = pd.DataFrame(state.weights.copy(), index=self._index(state.times),
                             columns=pd.Index(state.ids.tolist(), name="component"))
        if kind == "composition":
            frame = frame.div(frame.sum(axis=1).where(lambda s: s > 0), axis=0)
        return frame

    def dominant(self, subject: Hashable) -> int | None:
        """The community with the largest weight in the subject's latest sample."""
        h = self._state_of(subject).row(-1)
        return max(h, key=h.__getitem__) if sum(h.values()) > 0 else None

    def growth(self, subject: Hashable) -> dict[int, float]:
        """``{component id: growth rate per time unit}`` for the subject (see
        :meth:`growth_detail`)."""
        return {c: g.rate for c, g in self.growth_detail(subject).items()}

    def growth_detail(self, subject: Hashable) -> dict[int, GrowthEstimate]:
        """Growth of each community in the subject: Theil-Sen slope of log abundance vs time.

        Uses the samples in the last ``window`` time units (all held if None). A community is
        reported when at least ``min_points`` of those samples carry it above the detection
        floor; samples under the floor count at the floor (a vanishing community declines).
        """
        ids, rate, low, high, points = self._growth_fit(subject)
        return {c: GrowthEstimate(*fit) for c, *fit in zip(ids, rate, low, high, points)}

    def _growth_fit(self, subject: Hashable) -> tuple[list[int], list[float], list[float],
                                                      list[float], list[int]]:
        """:meth:`growth_detail` as parallel lists (ids, rate, low, high, n), ids sorted."""
        state = self._state_of(subject)
        self._reproject(subject, state)
        times = state.times
        start = 0 if self.window is None else int(np.searchsorted(
            times, times[-1] - self.window, side="left"))
        if len(times) - start < self.min_points:
            return [], [], [], [], []
        ids = state.ids.tolist()
        values = state.weights[start:]
        absent = np.isnan(values)
        if absent.any():
            gone = absent.all(axis=0)  # communities held but not in the window
            if gone.any():
                values, absent = values[:, ~gone], absent[:, ~gone]
                ids = [c for c, g in zip(ids, gone.tolist()) if not g]
            totals = np.where(absent, 0.0, values).sum(axis=1)  # = np.nansum(values, 1)
        else:
            totals = values.sum(axis=1)
        if self.growth_of == "composition":
            values = values / np.where(totals > 0, totals, 1.0)[:, None]
            floor = self.detection
        else:
            floor = self.detection * float(totals.mean())
        if not floor > 0:
            return [], [], [], [], []
        # NaN (a component not in the model at that time) at the floor; those rows are
        # skipped by the fit, which takes a component's rows where it existed.
        # C order (a column selection or a division can give Fortran order): the growth
        # kernel then has one compiled signature, put in the cache by onlinenmf.compiled
        values = np.ascontiguousarray(values)
        logs = np.log(np.fmax(values, floor))
        slope, low, high, points = growth_fits(times[start:], values, logs, floor,
                                               self.min_points, _Z95)
        keep = np.isfinite(slope)
        if not keep.all():
            slope, low, high, points = slope[keep], low[keep], high[keep], points[keep]
            ids = [c for c, k in zip(ids, keep.tolist()) if k]
        return ids, slope.tolist(), low.tolist(), high.tolist(), points.tolist()

    def growth_table(self) -> pd.DataFrame:
        """Growth of every (subject, community): columns subject, component, rate, low, high,
        n, share (the community's mean share in the window)."""
        rows = []
        for subject in self._subjects:
            detail = self.growth_detail(subject)
            if not detail:
                continue
            share = self.trajectory(subject, "composition").mean()
            for component, g in detail.items():
                rows.append({"subject": subject, "component": component, **g.as_dict(),
                             "share": float(share.get(component, np.nan))})
        return pd.DataFrame(rows, columns=["subject", "component", "rate", "low", "high", "n",
                                           "share"])

    def population(self, bin_width: float | None = None,
                   subjects: Iterable[Hashable] | None = None) -> pd.DataFrame:
        """Per community and time bin, over the subjects held (or those given).

        Columns: ``bin`` (bin start, in time units), ``component``, ``mean_weight`` and
        ``mean_share`` (over the samples in the bin, absent = 0), ``n_samples``, ``n_subjects``
        (subjects sampled in the bin) and ``carriers`` (subjects where the community's share
        reached ``presence`` in the bin).
        """
        chosen = list(self._subjects) if subjects is None else [
            s for s in subjects if s in self._subjects]
        frames = []
        for subject in chosen:
            state = self._subjects[subject]
            self._reproject(subject, state)
            frame = pd.DataFrame(state.weights, columns=state.ids.tolist()).fillna(0.0)
            frame["__time"] = state.times
            frame["__subject"] = subject
            frames.append(frame)
        columns = ["bin", "component", "mean_weight", "mean_share", "n_samples", "n_subjects",
                   "carriers"]
        if not frames:
            return pd.DataFrame(columns=columns)
        data = pd.concat(frames, ignore_index=True).fillna(0.0)
        ids = sorted(c for c in data.columns if not str(c).startswith("__"))
        times = data["__time"].to_numpy()
        width = bin_width or self.bin_width
        if width is None:
            span = float(times.max() - times.min())
            width = span / 10 if span > 0 else 1.0
        bins = np.floor(times / width) * width
        weights = data[ids].to_numpy()
        totals = weights.sum(axis=1, keepdims=True)
        shares = weights / np.where(totals > 0, totals, 1.0)
        long = pd.DataFrame({
            "bin": np.repeat(bins, len(ids)),
            "component": np.tile(ids, len(bins)),
            "weight": weights.ravel(),
            "share": shares.ravel(),
            "subject": np.repeat(data["__subject"].to_numpy(), len(ids)),
        })
        long["carried"] = long["share"] >= self.presence
        grouped = long.groupby(["bin", "component"], sort=True)
        out = grouped.agg(mean_weight=("weight", "mean"), mean_share=("share", "mean"),
                          n_samples=("weight", "size"), n_subjects=("subject", "nunique"))
        carriers = long[long["carried"]].groupby(["bin", "component"])["subject"].nunique()
        out["carriers"] = carriers.reindex(out.index, fill_value=0).astype(int)
        return out.reset_index()[columns]

    # ------------------------------------------------------------------ persistence
    def to_bytes(self) -> bytes:
        """The tracker's state with the model embedded, as snapshot bytes (npz + JSON).

        The histories are written as the arrays they are held in, concatenated over the
        subjects (least recently seen first): no Python object per sample is built, so the
        snapshot is about as large as :attr:`history_bytes` and writing it needs about that
        much memory again, plus the snapshot's own copy.
        """
        states = list(self._subjects.values())
        n = len(states)
        arrays = {
            "model": np.frombuffer(self.model.to_bytes(), dtype=np.uint8),
            "lengths": np.fromiter((s.times.shape[0] for s in states), np.int64, n),
            "widths": np.fromiter((s.ids.shape[0] for s in states), np.int64, n),
            "last_times": np.fromiter((s.last_time for s in states), np.float64, n),
            "present_counts": np.fromiter((len(s.present) for s in states), np.int64, n),
            "present": np.fromiter((c for s in states for c in s.present), np.int64),
            **_recent_arrays(states),
        }
        for name, dtype in _HISTORY_ARRAYS.items():
            if name in _REPROJECT_ARRAYS and not self.reproject:
                continue
            parts = list(map(operator.attrgetter(name), states))
            arrays[name] = (np.concatenate(parts, axis=None, dtype=dtype) if parts
                            else np.empty(0, dtype))
        meta = {
            "class": type(self).__name__,
            "layout": _LAYOUT,
            "params": self._params(),
            "subjects": [_json_key(s) for s in self._subjects],
            "events": [_jsonable(e) for e in self._events],
            "model_events_seen": self._model_events_seen,
            "now": _finite(self._now),
            "timestamps": self._timestamps,
            "metrics": self.metrics,
            "labels": [[_json_key(f), str(name)] for f, name in self.labels.items()],
        }
        return snapshot.dumps(arrays, meta)

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "<bytes>") -> Tracker:
        """Rebuild a tracker (and its model) from :meth:`to_bytes` output."""
        arrays, meta = snapshot.loads(data, source)
        return cls._from_state(arrays, meta, source)

    @classmethod
    def _from_state(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any],
                    source: str) -> Tracker:
        if meta.get("class") != cls.__name__:
            raise snapshot.SnapshotError(f"{source}: holds a {meta.get('class')}, not a Tracker")
        if meta.get("layout", 1) == 1:
            arrays, meta = _upgrade_layout(arrays, meta)
        if "losses" not in arrays:  # written before the losses were kept: none known
            arrays = {**arrays, "losses": np.full(int(arrays["lengths"].sum()), np.nan)}
        model = OnlineNMF.from_bytes(arrays["model"].tobytes(), source=f"{source} (model)")
        params = meta["params"]
        if "hold" not in params:  # written before the hysteresis and the anomaly marks
            params = {"absence": params["presence"] / 2, **LEGACY_PARAMETERS, **params}
        tracker = cls(model, **params)
        tracker.labels = {_from_json_key(f): name for f, name in meta["labels"]}
        lengths, widths = arrays["lengths"], arrays["widths"]
        counts = {  # entries of each array per subject
            "times": lengths, "ids": widths, "weights": lengths * widths, "losses": lengths,
            "present": arrays["present_counts"],
        }
        if tracker.reproject:
            per_row = np.maximum(arrays["sample_nnz"], 0)
            row_ends = np.cumsum(lengths)
            total = np.concatenate(([0], np.cumsum(per_row)))
            nnz = np.diff(total[np.concatenate(([0], row_ends))])  # sample entries per subject
            counts |= {"versions": lengths, "sample_nnz": lengths, "sample_rows": nnz,
                       "sample_values": nnz}
        starts = {name: np.concatenate(([0], np.cumsum(c)[:-1])) for name, c in counts.items()}
        recent = _recent_entries(arrays, len(meta["subjects"]))
        for i, key in enumerate(meta["subjects"]):
            state = _Subject(tracker.reproject)
            part = {name: arrays[name][starts[name][i]:starts[name][i] + counts[name][i]].copy()
                    for name in counts}
            state.times, state.ids = part["times"], part["ids"]
            state.weights = part["weights"].reshape(int(lengths[i]), int(widths[i]))
            state.losses = part["losses"]
            state.present = tuple(part["present"].tolist())
            state.recent = next(recent)
            state.last_time = float(arrays["last_times"][i])
            if tracker.reproject:
                state.versions, state.sample_nnz = part["versions"], part["sample_nnz"]
                state.sample_rows, state.sample_values = part["sample_rows"], part["sample_values"]
            subject = _from_json_key(key)
            tracker._subjects[subject] = state
            tracker._account(subject, state)
        tracker._events.extend(meta["events"])
        tracker._model_events_seen = int(meta["model_events_seen"])
        tracker._now = -math.inf if meta["now"] is None else float(meta["now"])
        tracker._timestamps = meta["timestamps"]
        tracker.metrics.update({k: int(v) for k, v in meta["metrics"].items()})
        return tracker

    def save(self, path: str | os.PathLike) -> None:
        """Write :meth:`to_bytes` to ``path`` atomically."""
        snapshot.write_atomic(path, self.to_bytes())

    @classmethod
    def load(cls, path: str | os.PathLike) -> Tracker:
        """Read a file written by :meth:`save`."""
        arrays, meta = snapshot.read(path)
        return cls._from_state(arrays, meta, str(path))

    def __repr__(self) -> str:
        return (f"Tracker({self.model!r}, subjects={len(self._subjects)}, "
                f"events={len(self._events)})")


def record_fields(record: Mapping[str, Any]) -> dict[str, Any]:
    """The tracker's part of an output record, JSON-ready: ``growth``, ``events`` and, for a
    marked sample only, ``anomaly``.

    For a consumer that carries the tracker's results in its own records (the Kafka
    microbiome consumer's ``growth``, ``events`` and ``anomaly`` fields). Non-finite values
    are dropped.

    >>> record_fields({"growth": {3: 0.1, 4: float("nan")}, "events": [], "late": False})
    {'growth': {3: 0.1}, 'events': []}
    """
    growth = {int(c): float(r) for c, r in record.get("growth", {}).items()
              if r is not None and math.isfinite(r)}
    fields = {"growth": growth, "events": [_jsonable(e) for e in record.get("events", [])]}
    if record.get("anomaly") is not None:
        fields["anomaly"] = _jsonable(record["anomaly"])
    return fields


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _jsonable(value: Any) -> Any:
    """Plain JSON values (numpy scalars -> Python, non-finite floats -> None)."""
    kind = type(value)  # exact types first: the abc checks below cost ~1 us per value
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is float:
        return value if math.isfinite(value) else None
    if kind is dict:
        return {k if type(k) is str or type(k) is int else _json_field(k): _jsonable(v)
                for k, v in value.items()}
    if isinstance(value, Mapping):
        return {_json_field(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    return value


def _json_field(key: Any) -> Any:
    return str(key) if not isinstance(key, int | str) else key


def _json_key(value: Hashable) -> Any:
    """Keep str and int keys apart through JSON (a subject may be "7" or 7)."""
    return value if isinstance(value, str) else {"int": int(value)}


def _from_json_key(value: Any) -> Hashable:
    return int(value["int"]) if isinstance(value, dict) else value


def _recent_arrays(states: list[_Subject]) -> dict[str, np.ndarray]:
    """The subjects' latest samples (:class:`_Solved`) as snapshot arrays: entries per subject,
    then per sample its non-zero entries (-1: none known), version and width, concatenated."""
    entries = [e for s in states for e in s.recent]

    def joined(parts: list[np.ndarray], dtype: type) -> np.ndarray:
        return np.concatenate(parts, axis=None, dtype=dtype) if parts else np.empty(0, dtype)

    known = [e for e in entries if e.rows is not None]
    return {
        "recent_counts": np.fromiter((len(s.recent) for s in states), np.int64, len(states)),
        "recent_nnz": np.fromiter((-1 if e.rows is None else e.rows.size for e in entries),
                                  np.int64, len(entries)),
        "recent_versions": np.fromiter((e.version for e in entries), np.int64, len(entries)),
        "recent_widths": np.fromiter((e.ids.size for e in entries), np.int64, len(entries)),
        "recent_rows": joined([e.rows for e in known], np.int32),
        "recent_values": joined([e.values for e in known], np.float32),
        "recent_ids": joined([e.ids for e in entries], np.int64),
        "recent_h": joined([e.h for e in entries], np.float64),
    }


def _recent_entries(arrays: dict[str, np.ndarray], n: int) -> Iterator[list[_Solved]]:
    """Each subject's latest samples from :func:`_recent_arrays`' output, in the subjects'
    order (none for a snapshot written before they were kept)."""
    if "recent_counts" not in arrays:
        yield from ([] for _ in range(n))
        return
    nnz, widths = arrays["recent_nnz"], arrays["recent_widths"]
    data = np.concatenate(([0], np.cumsum(np.maximum(nnz, 0))))
    weights = np.concatenate(([0], np.cumsum(widths)))
    entry = 0
    for count in arrays["recent_counts"].tolist():
        out = []
        for e in range(entry, entry + count):
            span, width = slice(data[e], data[e + 1]), slice(weights[e], weights[e + 1])
            rows, values = ((None, None) if nnz[e] < 0 else
                            (arrays["recent_rows"][span].copy(),
                             arrays["recent_values"][span].copy()))
            out.append(_Solved(rows, values, int(arrays["recent_versions"][e]),
                               arrays["recent_ids"][width].copy(),
                               arrays["recent_h"][width].copy()))
        entry += count
        yield out


#: Snapshot layout: 1 = one {id: weight} list per sample (read, upgraded), 2 = the arrays.
_LAYOUT = 2
#: Per-sample history arrays of a snapshot, concatenated over subjects, with their dtype.
_HISTORY_ARRAYS = {"times": np.float64, "ids": np.int64, "weights": np.float64,
                   "losses": np.float64, "versions": np.int64, "sample_nnz": np.int64,
                   "sample_rows": np.int64, "sample_values": np.float64}
_REPROJECT_ARRAYS = ("versions", "sample_nnz", "sample_rows", "sample_values")


def _upgrade_layout(arrays: dict[str, np.ndarray],
                    meta: dict[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """A snapshot of layout 1 (one ``{id: weight}`` list per sample) in today's layout."""
    ends = np.cumsum(arrays["nnz"])
    widths, ids, weights, row = [], [], [], 0
    for length in arrays["lengths"].tolist():
        rows = []
        for s in range(row, row + length):
            begin, stop = ends[s] - arrays["nnz"][s], ends[s]
            rows.append(dict(zip(arrays["ids"][begin:stop].tolist(),
                                 arrays["values"][begin:stop].tolist())))
        row += length
        held = sorted(set().union(*rows))
        column = {c: j for j, c in enumerate(held)}
        dense = np.full((length, len(held)), np.nan)
        for i, h in enumerate(rows):
            for c, w in h.items():
                dense[i, column[c]] = w
        widths.append(len(held))
        ids.extend(held)
        weights.append(dense.ravel())
    subjects = meta["subjects"]
    arrays = {**arrays, "widths": np.array(widths, dtype=np.int64),
              "ids": np.array(ids, dtype=np.int64),
              "weights": np.concatenate(weights) if weights else np.empty(0),
              "last_times": np.array([-math.inf if t is None else t for *_, t in subjects]),
              "present_counts": np.array([len(p) for _, p, _ in subjects], dtype=np.int64),
              "present": np.array([c for _, p, _ in subjects for c in p], dtype=np.int64)}
    return arrays, {**meta, "subjects": [key for key, *_ in subjects]}


#: What a snapshot written before ``hold`` and ``anomaly_z`` existed meant (``absence`` was
#: half of ``presence``): a restored tracker goes on as it did.
LEGACY_PARAMETERS = {"hold": 1, "anomaly_z": None}

#: The constructor's parameter names but the model and the labels (their types, defaults and
#: checks: :data:`onlinenmf.parameters.TRACKER`).
_PARAMETERS = TRACKER.names
