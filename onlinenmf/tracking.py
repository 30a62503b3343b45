"""Follow communities in subjects over time: trajectories, growth rates, appear/vanish events.

A :class:`Tracker` drives an :class:`~onlinenmf.OnlineNMF` and keeps, per subject (an infant, a
vessel, a user), a bounded history of ``(time, h)`` in time order. From it come the subject's
composition ``h / sum(h)``, its dominant community, a growth rate per community (the Theil-Sen
slope of log abundance against time, with its number of points and a 95 % interval) and events
(a community appears in or vanishes from the subject). The model's own ``retire``/``birth``
events (a re-seeded column is a new community with a new id) are mirrored into the same list.

Component ids are the model's stable ids (never reused), so a trajectory stays true across
refreshes and re-seeds: a retired id simply stops appearing in later samples.

Memory is bounded: at most ``max_history`` samples per subject (the oldest dropped), at most
``max_subjects`` subjects (least recently used evicted) and, with ``ttl``, subjects not seen for
``ttl`` time units are evicted; evictions are counted in :attr:`Tracker.metrics`. The whole
state, the model included, round-trips through :meth:`Tracker.to_bytes` (the snapshot format of
:mod:`onlinenmf.snapshot`: npz + JSON, no pickle).

Examples
--------
>>> from onlinenmf import OnlineNMF, Tracker
>>> t = Tracker(OnlineNMF(n_components=2, beta=1, refresh_every=4, seed=0))
>>> for day in range(6):
...     rec = t.learn_one({"a": 10 * 2**day, "b": 50}, subject="C001", time=day)
>>> sorted(rec)[:5]
['composition', 'dominant', 'events', 'growth', 'growth_interval']
>>> t.trajectory("C001").shape
(6, 2)
>>> t2 = Tracker.from_bytes(t.to_bytes())
>>> t2.trajectory("C001").equals(t.trajectory("C001"))
True
"""

from __future__ import annotations

import bisect
import datetime as _dt
import math
import os
from collections import OrderedDict, deque
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import ndtri

from onlinenmf import snapshot
from onlinenmf._growth import growth_fits
from onlinenmf.engine import OnlineNMF

__all__ = ["GrowthEstimate", "Tracker", "record_fields", "theil_sen"]

_TIMESTAMP_TYPES = (_dt.datetime, _dt.date, np.datetime64, pd.Timestamp, str)
_Z95 = float(ndtri((1.0 - 0.95) / 2.0))  # normal quantile of the 95 % growth interval


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
    n = len(t)
    _, counts = np.unique(t, return_counts=True)
    ties_x = float(np.sum(counts * (counts - 1) * (2 * counts + 5)))
    sigma = math.sqrt((n * (n - 1) * (2 * n + 5) - ties_x) / 18.0)
    z = ndtri((1.0 - alpha) / 2.0)
    total = slopes.shape[0]
    upper = min(int(round((total - z * sigma) / 2.0)), total - 1)
    lower = max(int(round((total + z * sigma) / 2.0)) - 1, 0)
    return slope, slopes[lower], slopes[upper]


@dataclass
class _Subject:
    """One subject's bounded, time-ordered history."""

    times: list[float] = field(default_factory=list)
    weights: list[dict[int, float]] = field(default_factory=list)
    present: set[int] = field(default_factory=set)
    # With ``reproject``: each sample (feature names, values) and the model version its
    # weights were solved under (None entries: weights given to ``observe``, no sample).
    samples: list[dict | None] = field(default_factory=list)
    versions: list[int] = field(default_factory=list)
    last_time: float = -math.inf  # latest time seen (for TTL and the in-order test)
    # ``weights`` as one array (rows in step with it, columns = ``ids`` sorted, NaN where a
    # component did not exist), so a growth fit does not rebuild it from the dicts each
    # sample. None: stale, rebuilt when next read. Not part of the snapshot.
    dense: np.ndarray | None = field(default=None, repr=False)
    ids: list[int] = field(default_factory=list, repr=False)
    columns: dict[int, int] = field(default_factory=dict, repr=False)

    def dense_weights(self) -> tuple[np.ndarray, list[int]]:
        """The weights as an array (samples x ``ids``), built if stale."""
        if self.dense is None:
            self.ids = sorted(set().union(*self.weights))
            self.columns = {c: j for j, c in enumerate(self.ids)}
            dense = np.full((len(self.weights), len(self.ids)), np.nan)
            for i, h in enumerate(self.weights):
                for c, w in h.items():
                    dense[i, self.columns[c]] = w
            self.dense = dense
        return self.dense, self.ids

    def dense_insert(self, position: int, h: Mapping[int, float]) -> None:
        """Keep :meth:`dense_weights` in step with ``weights.insert(position, h)``."""
        dense = self.dense
        if dense is None:
            return
        try:
            columns = [self.columns[c] for c in h]
        except KeyError:  # a community new to this subject: rebuild when next read
            self.dense = None
            return
        row = np.full((1, len(self.ids)), np.nan)
        row[0, columns] = list(h.values())
        self.dense = (np.concatenate((dense, row)) if position == len(dense) else
                      np.concatenate((dense[:position], row, dense[position:])))


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
    presence
        Share at which a community counts as appearing in a subject; it vanishes when its
        share falls under half that (the hysteresis keeps a community near the threshold from
        flapping).
    max_history, max_subjects, ttl
        Bounds: samples kept per subject (oldest dropped), subjects kept (least recently used
        evicted), and time units after its latest sample that a subject is kept (None: no TTL).
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
    """

    def __init__(
        self,
        model: OnlineNMF,
        *,
        window: float | None = None,
        min_points: int = 3,
        growth_of: str = "weights",
        detection: float = 1e-3,
        presence: float = 0.05,
        max_history: int = 128,
        max_subjects: int = 100_000,
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
        self.window = window
        self.min_points = min_points
        self.growth_of = growth_of
        self.detection = detection
        self.presence = presence
        self.max_history = max_history
        self.max_subjects = max_subjects
        self.ttl = ttl
        self.max_events = max_events
        self.bin_width = bin_width
        self.time_unit = time_unit
        self.warm_start = warm_start
        self.reproject = reproject
        self._check_params()
        self.labels: dict[Hashable, str] = dict(labels or {})
        self._subjects: OrderedDict[Hashable, _Subject] = OrderedDict()
        self._events: deque[dict[str, Any]] = deque(maxlen=max_events)
        self._model_events_seen = len(model.events)
        self._now = -math.inf  # latest time in the stream
        self._timestamps: bool | None = None  # are times timestamps (set by the first one)
        self.metrics: dict[str, int] = {
            "samples": 0, "late_samples": 0, "evicted_lru": 0, "evicted_ttl": 0,
            "history_dropped": 0, "events_dropped": 0,
        }

    def _params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _PARAMETERS}

    def _check_params(self) -> None:
        if self.window is not None and not (np.isfinite(self.window) and self.window > 0):
            raise ValueError(f"window must be a positive number or None, got {self.window!r}")
        if self.growth_of not in ("weights", "composition"):
            raise ValueError(
                f"growth_of must be 'weights' or 'composition', got {self.growth_of!r}")
        for name in ("min_points", "max_history", "max_subjects", "max_events"):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.min_points < 2:
            raise ValueError(f"min_points must be at least 2, got {self.min_points!r}")
        for name in ("detection", "presence"):
            value = getattr(self, name)
            if not (np.isfinite(value) and 0 < value < 1):
                raise ValueError(f"{name} must be in (0, 1), got {value!r}")
        for name in ("ttl", "bin_width"):
            value = getattr(self, name)
            if value is not None and not (np.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number or None, got {value!r}")
        if not (np.isfinite(self.time_unit) and self.time_unit > 0):
            raise ValueError(f"time_unit must be a positive number, got {self.time_unit!r}")

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
        return int(subject) if isinstance(subject, np.integer) else subject

    # ------------------------------------------------------------------ learning
    def learn_one(self, x: Mapping, subject: Any, time: Any) -> dict[str, Any]:
        """Learn one sample of ``subject`` taken at ``time`` and return its record.

        The record holds ``subject``, ``time``, ``weights`` and ``composition``
        (``{component id: value}``), ``dominant`` (id or None), ``growth`` (``{id: rate per
        time unit}`` for the communities with enough points), ``growth_interval``
        (``{id: [low, high]}``), ``growth_points`` (``{id: n}``), ``events`` (those this sample
        caused: appear/vanish in the subject, birth/retire in the model), ``late`` (an
        out-of-order sample) and ``model_version``. Invalid input raises ``ValueError`` and
        leaves both the tracker and the model unchanged.
        """
        subject = self._check_subject(subject)
        value = self._time(time)
        state = self._subjects.get(subject)
        warm = None
        if self.warm_start and state is not None and state.times:
            before = bisect.bisect_right(state.times, value)
            warm = state.weights[before - 1] if before else state.weights[0]
        h = self.model.learn_one(x, warm_start=warm)  # raises before any change on bad input
        return self._observe(subject, value, time, h, dict(x) if self.reproject else None)

    def observe(self, subject: Any, time: Any, h: Mapping[int, float]) -> dict[str, Any]:
        """Record activations ``h`` computed elsewhere (e.g. by a consumer driving the model).

        Same record as :meth:`learn_one`; the model is not touched except for reading its
        new events.
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
        return self._observe(subject, value, time, clean, None)

    def _observe(self, subject: Hashable, value: float, raw_time: Any,
                 h: dict[int, float], sample: dict | None) -> dict[str, Any]:
        if self._timestamps is None:
            self._timestamps = isinstance(raw_time, _TIMESTAMP_TYPES)
        self.metrics["samples"] += 1
        new_events = self._model_events(value)
        state = self._subjects.get(subject)
        if state is None:
            state = self._subjects[subject] = _Subject()
        self._subjects.move_to_end(subject)
        late = value < state.last_time
        position = bisect.bisect_right(state.times, value)
        state.times.insert(position, value)
        state.weights.insert(position, dict(h))
        state.dense_insert(position, h)
        if self.reproject:
            state.samples.insert(position, sample)
            state.versions.insert(position, int(self.model.model_version))
        total = sum(h.values())
        composition = {c: (w / total if total > 0 else 0.0) for c, w in h.items()}
        if late:
            self.metrics["late_samples"] += 1
        else:
            new_events += self._presence_events(subject, state, value, composition)
            state.last_time = value
        if len(state.times) > self.max_history:
            del state.times[0], state.weights[0]
            if state.dense is not None:
                state.dense = state.dense[1:]
            if self.reproject:
                del state.samples[0], state.versions[0]
            self.metrics["history_dropped"] += 1
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
                         composition: Mapping[int, float]) -> list[dict[str, Any]]:
        if not state.times or len(state.times) == 1:  # the first sample sets the baseline
            state.present = {c for c, s in composition.items() if s >= self.presence}
            return []
        out = []
        present, half = state.present, self.presence / 2
        changed = [c for c, share in composition.items()
                   if (share >= self.presence and c not in present)
                   or (share < half and c in present)]
        changed += [c for c in present if c not in composition]
        for component in sorted(changed):  # only these can appear or vanish
            share = composition.get(component, 0.0)
            if component not in state.present and share >= self.presence:
                state.present.add(component)
                out.append(self._add_event({
                    "kind": "appear", "component": component, "subject": subject, "time": time,
                    "detail": f"share {share:.3f} >= {self.presence:g}"}))
            elif component in state.present and share < self.presence / 2:
                state.present.discard(component)
                gone = "retired from the model" if component not in composition else (
                    f"share {share:.3f} < {self.presence / 2:g}")
                out.append(self._add_event({
                    "kind": "vanish", "component": component, "subject": subject, "time": time,
                    "detail": gone}))
        return out

    def _evict(self, keep: Hashable) -> None:
        if self.ttl is not None:
            horizon = self._now - self.ttl
            while self._subjects:  # least recently used first: usually also the stalest
                subject, state = next(iter(self._subjects.items()))
                if subject == keep or state.last_time >= horizon:
                    break
                del self._subjects[subject]
                self.metrics["evicted_ttl"] += 1
        while len(self._subjects) > self.max_subjects:
            self._subjects.popitem(last=False)
            self.metrics["evicted_lru"] += 1

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

    def _reproject(self, state: _Subject) -> None:
        """Re-solve the held samples solved under an older dictionary (``reproject``)."""
        version = int(self.model.model_version)
        if not self.reproject or all(v == version for v in state.versions):
            return
        previous = None
        for i, sample in enumerate(state.samples):
            if sample is not None and state.versions[i] != version:
                start = previous if previous is not None else state.weights[i]
                state.weights[i] = self.model.transform_one(sample, warm_start=start)
                state.versions[i] = version
                state.dense = None
            previous = state.weights[i]

    def trajectory(self, subject: Hashable, kind: str = "weights") -> pd.DataFrame:
        """The subject's history: rows = samples in time order, columns = component ids.

        ``kind`` is ``"weights"`` (h) or ``"composition"`` (h / sum h). A component absent
        from the model at a sample's time (born later, or retired) is NaN there.
        """
        if kind not in ("weights", "composition"):
            raise ValueError(f"kind must be 'weights' or 'composition', got {kind!r}")
        state = self._state_of(subject)
        self._reproject(state)
        frame = pd.DataFrame(state.weights, index=self._index(state.times), dtype=np.float64)
        frame = frame.reindex(columns=sorted(frame.columns))
        frame.columns.name = "component"
        if kind == "composition":
            frame = frame.div(frame.sum(axis=1).where(lambda s: s > 0), axis=0)
        return frame

    def dominant(self, subject: Hashable) -> int | None:
        """The community with the largest weight in the subject's latest sample."""
        h = self._state_of(subject).weights[-1]
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
        self._reproject(state)
        start = 0 if self.window is None else bisect.bisect_left(
            state.times, state.times[-1] - self.window)
        if len(state.times) - start < self.min_points:
            return [], [], [], [], []
        dense, ids = state.dense_weights()
        values = dense[start:]
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
        logs = np.log(np.fmax(values, floor))
        slope, low, high, points = growth_fits(np.array(state.times[start:]), values, logs,
                                               floor, self.min_points, _Z95)
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
            self._reproject(state)
            frame = pd.DataFrame(state.weights, dtype=np.float64).fillna(0.0)
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
        """The tracker's state with the model embedded, as snapshot bytes (npz + JSON)."""
        order = list(self._subjects.items())
        times, ids, values, nnz, lengths = [], [], [], [], []
        versions, sample_nnz, sample_rows, sample_values = [], [], [], []
        row_of = {name: i for i, name in enumerate(self.model.features)} if self.reproject else {}
        for _, state in order:
            lengths.append(len(state.times))
            times.extend(state.times)
            for h in state.weights:
                nnz.append(len(h))
                ids.extend(h)
                values.extend(h.values())
            versions.extend(state.versions)
            for sample in state.samples:  # features by their row in the embedded model
                sample_nnz.append(-1 if sample is None else len(sample))
                if sample is not None:
                    sample_rows.extend(row_of[name] for name in sample)
                    sample_values.extend(float(v) for v in sample.values())
        arrays = {
            "model": np.frombuffer(self.model.to_bytes(), dtype=np.uint8),
            "times": np.asarray(times, dtype=np.float64),
            "lengths": np.asarray(lengths, dtype=np.int64),
            "nnz": np.asarray(nnz, dtype=np.int64),
            "ids": np.asarray(ids, dtype=np.int64),
            "values": np.asarray(values, dtype=np.float64),
            "versions": np.asarray(versions, dtype=np.int64),
            "sample_nnz": np.asarray(sample_nnz, dtype=np.int64),
            "sample_rows": np.asarray(sample_rows, dtype=np.int64),
            "sample_values": np.asarray(sample_values, dtype=np.float64),
        }
        meta = {
            "class": type(self).__name__,
            "params": self._params(),
            "subjects": [[_json_key(s), sorted(st.present), _finite(st.last_time)]
                         for s, st in order],
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
        model = OnlineNMF.from_bytes(arrays["model"].tobytes(), source=f"{source} (model)")
        tracker = cls(model, **meta["params"])
        tracker.labels = {_from_json_key(f): name for f, name in meta["labels"]}
        ends = np.cumsum(arrays["lengths"])
        sample_ends_h = np.cumsum(arrays["nnz"])
        ids, values, times = arrays["ids"], arrays["values"], arrays["times"]
        names = model.features
        sample_nnz = arrays["sample_nnz"]
        sample_ends = np.cumsum(np.maximum(sample_nnz, 0))
        for (subject, present, last_time), end, length in zip(meta["subjects"], ends,
                                                              arrays["lengths"]):
            state = _Subject(times=[float(t) for t in times[end - length:end]],
                             present={int(c) for c in present},
                             last_time=-math.inf if last_time is None else float(last_time))
            for s in range(end - length, end):
                stop = sample_ends_h[s]
                begin = stop - arrays["nnz"][s]
                state.weights.append({int(c): float(v) for c, v in
                                      zip(ids[begin:stop], values[begin:stop])})
                if tracker.reproject:
                    state.versions.append(int(arrays["versions"][s]))
                    if sample_nnz[s] < 0:
                        state.samples.append(None)
                        continue
                    stop = sample_ends[s]
                    begin = stop - sample_nnz[s]
                    state.samples.append({
                        names[r]: float(v) for r, v in zip(arrays["sample_rows"][begin:stop],
                                                           arrays["sample_values"][begin:stop])})
            tracker._subjects[_from_json_key(subject)] = state
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
    """The tracker's part of an output record, JSON-ready: ``growth`` and ``events``.

    For a consumer that carries the tracker's results in its own records (the Kafka
    microbiome consumer's ``growth`` and ``events`` fields). Non-finite values are dropped.

    >>> record_fields({"growth": {3: 0.1, 4: float("nan")}, "events": [], "late": False})
    {'growth': {3: 0.1}, 'events': []}
    """
    growth = {int(c): float(r) for c, r in record.get("growth", {}).items()
              if r is not None and math.isfinite(r)}
    return {"growth": growth, "events": [_jsonable(e) for e in record.get("events", [])]}


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


_PARAMETERS = (
    "window", "min_points", "growth_of", "detection", "presence", "max_history",
    "max_subjects", "ttl", "max_events", "bin_width", "time_unit", "warm_start",
    "reproject",
)
