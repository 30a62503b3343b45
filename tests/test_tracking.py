"""Tracker: planted growth recovery, stable ids over re-seeds and snapshots, bounds, events."""

from __future__ import annotations

import gc
import json
import math
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
from scipy.optimize import linear_sum_assignment

from onlinenmf import OnlineNMF, Tracker, snapshot
from onlinenmf.datasets import make_longitudinal_stream
from onlinenmf.tracking import RECENT_OVERHEAD, record_fields, theil_sen


def _match(model: OnlineNMF, stream) -> list[int]:
    """Model component id matched to each planted community (Hungarian on cosine of W)."""
    position = {f: i for i, f in enumerate(model.features)}
    W = np.array([model.W[position[f]] if f in position else np.zeros(model.W.shape[1])
                  for f in stream.features])
    unit_true = stream.W_true / np.linalg.norm(stream.W_true, axis=0)
    unit = W / np.maximum(np.linalg.norm(W, axis=0), 1e-300)
    rows, cols = linear_sum_assignment(-(unit_true.T @ unit))
    assert (unit_true.T @ unit)[rows, cols].min() > 0.95
    return [model.component_ids[c] for c in cols]


@pytest.mark.parametrize("reproject", [False, True])
def test_planted_growth_rates_are_recovered(reproject):
    # One pass, online: each sample is learned and tracked when it arrives.
    stream = make_longitudinal_stream(n_subjects=100, n_times=10, seed=0)
    tracker = Tracker(OnlineNMF(n_components=8, beta=1, refresh_every=50, seed=0),
                      reproject=reproject)
    for i in range(stream.X.shape[0]):
        tracker.learn_one(stream.sample(i), subject=stream.subjects[i],
                          time=float(stream.times[i]))
    ids = _match(tracker.model, stream)
    estimated, planted = [], []
    for s, subject in enumerate(stream.subject_ids):
        growth = tracker.growth(subject)
        for k in np.flatnonzero(np.isfinite(stream.rates[s])):
            if ids[k] in growth:
                estimated.append(growth[ids[k]])
                planted.append(stream.rates[s, k])
    estimated, planted = np.array(estimated), np.array(planted)
    coverage = len(planted) / np.isfinite(stream.rates).sum()
    rho = scipy.stats.spearmanr(estimated, planted).statistic
    relative = np.median(np.abs(estimated - planted) / np.abs(planted))
    print(f"planted growth: coverage {coverage:.3f} spearman {rho:.3f} median rel {relative:.3f}")
    assert coverage >= 0.95
    assert rho >= 0.9
    assert relative <= 0.2


def test_theil_sen_matches_scipy():
    rng = np.random.default_rng(1)
    for n in (3, 7, 20):
        t = np.round(rng.uniform(0, 10, n))  # rounding makes tied times
        Y = rng.normal(size=(n, 3)) + 0.3 * t[:, None]
        Y[:, 2] = np.round(Y[:, 2])  # tied values: Sen's variance loses their ties too
        slope, low, high = theil_sen(t, Y)
        for j in range(3):
            ref = scipy.stats.theilslopes(Y[:, j], t, method="separate")
            assert slope[j] == pytest.approx(ref.slope)
            assert low[j] == pytest.approx(ref.low_slope)
            assert high[j] == pytest.approx(ref.high_slope)


def _doubling(day: float) -> dict[str, float]:
    return {"a": 100.0 * 2.0**day, "b": 30.0 * 2.0**day}


def test_growth_rate_units_and_timestamps():
    # One component: h is the sample's total up to W's scale, so the rate is exactly ln 2/day.
    # refresh_every=100 (the default before issue 13): W, so its scale, stays as it is
    numbers = Tracker(OnlineNMF(n_components=1, beta=1, seed=0, refresh_every=100))
    stamps = Tracker(OnlineNMF(n_components=1, beta=1, seed=0, refresh_every=100))
    for day in range(6):
        rec = numbers.learn_one(_doubling(day), subject="s", time=float(day))
        stamps.learn_one(_doubling(day), subject="s", time=f"2024-03-0{day + 1}T00:00:00")
    assert rec["growth"][0] == pytest.approx(math.log(2), rel=1e-6)
    assert rec["growth_points"][0] == 6
    low, high = rec["growth_interval"][0]
    assert low <= rec["growth"][0] <= high
    assert stamps.growth("s")[0] == pytest.approx(math.log(2), rel=1e-6)
    assert str(stamps.trajectory("s").index[0]) == "2024-03-01 00:00:00"
    with pytest.raises(ValueError, match="do not mix"):
        stamps.learn_one(_doubling(7), subject="s", time=7.0)


def test_window_limits_growth_to_recent_samples():
    tracker = Tracker(OnlineNMF(n_components=1, beta=1, seed=0), window=3.0)
    for day in range(10):  # grows until day 5, then shrinks
        factor = 2.0**day if day <= 5 else 2.0 ** (10 - day)
        tracker.learn_one({"a": 10 * factor}, subject="s", time=float(day))
    detail = tracker.growth_detail("s")[0]
    assert detail.n == 4  # days 6..9
    assert detail.rate == pytest.approx(-math.log(2), rel=1e-6)


def test_out_of_order_samples_are_inserted_in_time_order():
    # refresh_every=100 (the default before issue 13): W's scale stays, as the rate needs
    tracker = Tracker(OnlineNMF(n_components=1, beta=1, seed=0, refresh_every=100))
    for day in (0.0, 1.0, 3.0, 4.0):
        tracker.learn_one(_doubling(day), subject=7, time=day)
    rec = tracker.learn_one(_doubling(2.0), subject=7, time=2.0)
    assert rec["late"] and not rec["events"]
    trajectory = tracker.trajectory(7)
    assert list(trajectory.index) == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert trajectory[0].is_monotonic_increasing
    assert tracker.metrics["late_samples"] == 1
    assert rec["growth"][0] == pytest.approx(math.log(2), rel=1e-6)


def _two_communities() -> OnlineNMF:
    """A model whose two components are the patterns {a, b} and {c, d}."""
    model = OnlineNMF(n_components=2, beta=1, refresh_every=10, seed=0)
    rng = np.random.default_rng(0)
    X = np.zeros((200, 4))
    X[::2, :2] = rng.poisson(50, (100, 2))
    X[1::2, 2:] = rng.poisson(50, (100, 2))
    model.learn_many(X + 0.0, features=["a", "b", "c", "d"])
    return model


def test_appear_and_vanish_events():
    model = _two_communities()
    ab = max(model.component_ids, key=lambda c: model.transform_one({"a": 9, "b": 9})[c])
    cd = [c for c in model.component_ids if c != ab][0]
    tracker = Tracker(model, presence=0.2, absence=0.1)
    tracker.learn_one({"a": 50, "b": 50}, subject="x", time=0)
    tracker.learn_one({"a": 48, "b": 50, "c": 1}, subject="x", time=1)
    rec = tracker.learn_one({"a": 40, "b": 40, "c": 40, "d": 40}, subject="x", time=2)
    assert rec["events"] == []  # one sample above presence: not yet (hold = 2)
    rec = tracker.learn_one({"a": 41, "b": 40, "c": 39, "d": 40}, subject="x", time=3)
    assert [(e["kind"], e["component"]) for e in rec["events"]] == [("appear", cd)]
    assert tracker.learn_one({"c": 60, "d": 60}, subject="x", time=4)["events"] == []
    rec = tracker.learn_one({"c": 58, "d": 61}, subject="x", time=5)
    assert [(e["kind"], e["component"], e["subject"], e["time"]) for e in rec["events"]] == [
        ("vanish", ab, "x", 5.0)]
    assert rec["dominant"] == cd == tracker.dominant("x")
    assert [e["kind"] for e in tracker.events] == ["appear", "vanish"]


def _presence_log(tracker: Tracker, shares: list[float], start: int = 0) -> list[tuple]:
    """Observe one subject whose second community has these shares, one sample a day; the
    appear/vanish events as (kind, component, day)."""
    first, second = tracker.model.component_ids
    out = []
    for day, share in enumerate(shares, start=start):
        rec = tracker.observe("s", float(day), {first: 1.0 - share, second: share})
        out += [(e["kind"], e["component"], e["time"]) for e in rec["events"]]
    return out


def test_a_flickering_community_makes_no_events_and_a_lasting_change_one():
    # Issue 13: a community flickering around the threshold made an appear/vanish pair each
    # time (0.7-2 events per sample on real streams). At the defaults (presence 0.05,
    # absence 0.025, hold 2) a flicker across both thresholds makes none, and a lasting
    # appearance and vanishing each make one event, on their second sample.
    tracker = Tracker(OnlineNMF(n_components=2, beta=1, seed=0))
    second = tracker.model.component_ids[1]
    flicker = [0.01] + [0.08, 0.01] * 10  # days 0-20
    assert _presence_log(tracker, flicker) == []
    assert _presence_log(tracker, [0.1] * 10, start=21) == [("appear", second, 22.0)]
    assert _presence_log(tracker, [0.04, 0.06, 0.03] * 3, start=31) == []  # between the two
    assert _presence_log(tracker, [0.0] * 5, start=40) == [("vanish", second, 41.0)]
    assert [e["kind"] for e in tracker.events] == ["appear", "vanish"]
    # hold = 1 is the old behaviour: every crossing of a threshold is an event
    flapping = Tracker(OnlineNMF(n_components=2, beta=1, seed=0), hold=1)
    assert len(_presence_log(flapping, flicker)) == 20


@pytest.mark.parametrize("params, message", [
    ({"absence": 0.05}, "absence"), ({"absence": 0.0}, "absence"), ({"hold": 0}, "hold"),
    ({"presence": 0.01}, "absence"), ({"anomaly_z": -1.0}, "anomaly_z"),
    ({"anomaly_z": float("nan")}, "anomaly_z"),
])
def test_presence_and_anomaly_parameters_are_checked(params, message):
    with pytest.raises(ValueError, match=message):
        Tracker(OnlineNMF(n_components=2, beta=1, seed=0), **params)


def test_a_sample_unusual_for_its_subject_is_marked():
    # Issue 13: the tracker marks a sample whose loss is anomalous for its subject. The model
    # knows two patterns, over taxa 0-9 and 10-19. Subject x carries the first: well
    # explained. Subject y always carries half of each (taxa 0-4 and 10-14), which no mix of
    # the patterns explains well. The same odd sample is an anomaly in x, ordinary in y.
    rng = np.random.default_rng(1)
    X = np.zeros((200, 20))
    X[::2, :10] = rng.poisson(50, (100, 10))
    X[1::2, 10:] = rng.poisson(50, (100, 10))
    model = OnlineNMF(n_components=2, beta=1, refresh_every=200, seed=0)  # W stays after 200
    model.learn_many(X, features=[f"t{j}" for j in range(20)])
    tracker = Tracker(model)

    def sample(taxa: range) -> dict[str, float]:
        return {f"t{j}": float(rng.poisson(50)) for j in taxa}

    usual = {"x": range(10), "y": [*range(5), *range(10, 15)]}
    for day in range(12):
        for subject, taxa in usual.items():
            rec = tracker.learn_one(sample(taxa), subject=subject, time=day)
            assert rec["anomaly"] is None, (subject, day)
    restored = Tracker.from_bytes(tracker.to_bytes())
    odd = sample(usual["y"])
    rec = tracker.learn_one(odd, subject="x", time=12)
    assert rec["anomaly"]["z"] >= tracker.anomaly_z and rec["anomaly"]["ratio"] > 10
    marks = [e for e in rec["events"] if e["kind"] == "anomaly"]
    assert [(e["subject"], e["time"]) for e in marks] == [("x", 12.0)]
    assert record_fields(rec)["anomaly"] == rec["anomaly"]
    assert tracker.learn_one(odd, subject="y", time=12)["anomaly"] is None
    assert restored.learn_one(odd, subject="x", time=12) == rec  # the losses were saved
    unmarked = Tracker(OnlineNMF.from_bytes(restored.model.to_bytes()), anomaly_z=None)
    for day in range(13):
        rec = unmarked.learn_one(odd if day == 12 else sample(usual["x"]), "x", day)
    assert rec["anomaly"] is None and rec["events"] == []


def test_ids_survive_reseed_and_snapshot_round_trip(tmp_path):
    model = _two_communities()
    tracker = Tracker(model, reproject=True)
    for day in range(4):
        tracker.learn_one({"a": 40 + day, "b": 30, "c": 5 * day + 1}, subject="s1", time=day)
    before = model.component_ids
    model._reseed(0, "forced by the test")  # what a drift alarm does
    after = model.component_ids
    retired, born = before[0], after[0]
    assert born not in before and after[1] == before[1]
    rec = tracker.learn_one({"a": 40, "b": 30, "c": 30, "d": 20}, subject="s1", time=4)
    kinds = {(e["kind"], e["component"]) for e in rec["events"] if e["subject"] is None}
    assert kinds == {("retire", retired), ("birth", born)}
    assert retired not in rec["weights"] and born in rec["weights"]

    path = tmp_path / "tracker.npz"
    tracker.save(path)
    restored = Tracker.load(path)
    assert restored.model == model
    assert restored.model.component_ids == after
    assert restored.events == tracker.events
    assert restored.trajectory("s1").equals(tracker.trajectory("s1"))
    assert restored.growth_detail("s1") == tracker.growth_detail("s1")
    # A restart continues exactly as the uninterrupted tracker.
    x = {"a": 41, "b": 29, "c": 31, "d": 22}
    assert restored.learn_one(x, subject="s1", time=5) == tracker.learn_one(x, "s1", 5)
    assert restored.to_bytes() == tracker.to_bytes()


def test_lru_and_ttl_eviction_are_counted():
    tracker = Tracker(OnlineNMF(n_components=1, beta=1, seed=0), max_subjects=3, ttl=10.0)
    for i, subject in enumerate("abcde"):
        tracker.learn_one({"x": 5}, subject=subject, time=float(i))
    assert tracker.subjects == ["c", "d", "e"]
    assert tracker.metrics["evicted_lru"] == 2
    with pytest.raises(KeyError, match="evicted"):
        tracker.trajectory("a")
    tracker.learn_one({"x": 5}, subject="c", time=5.0)  # c is now the most recently used
    tracker.learn_one({"x": 5}, subject="f", time=13.5)  # d (t=3) is older than 13.5 - 10
    assert "d" not in tracker and "c" in tracker and "e" in tracker
    assert tracker.metrics["evicted_ttl"] == 1
    restored = Tracker.from_bytes(tracker.to_bytes())
    assert restored.subjects == tracker.subjects and restored.metrics == tracker.metrics


def test_bounded_history_drops_the_oldest():
    tracker = Tracker(OnlineNMF(n_components=1, beta=1, seed=0), max_history=4)
    for day in range(6):
        tracker.learn_one(_doubling(day), subject="s", time=day)
    assert list(tracker.trajectory("s").index) == [2.0, 3.0, 4.0, 5.0]
    assert tracker.metrics["history_dropped"] == 2


@pytest.mark.parametrize("bad", [
    {"subject": "s", "time": float("nan")},
    {"subject": "s", "time": "not a time"},
    {"subject": "s", "time": None},
    {"subject": 1.5, "time": 1.0},
    {"subject": None, "time": 1.0},
    {"subject": "s", "time": 1.0, "x": {"a": -3.0}},
])
def test_bad_input_leaves_no_trace(bad):
    tracker = Tracker(OnlineNMF(n_components=2, beta=1, seed=0))
    tracker.learn_one({"a": 3, "b": 1}, subject="s", time=0.0)
    state = tracker.to_bytes()
    with pytest.raises(ValueError) as err:
        tracker.learn_one(bad.get("x", {"a": 3.0}), subject=bad["subject"], time=bad["time"])
    assert any(word in str(err.value) for word in ("time", "subject", "'a'", "-3"))
    assert tracker.to_bytes() == state


def test_population_by_time_bin():
    tracker = Tracker(OnlineNMF(n_components=1, beta=1, seed=0), presence=0.5)
    for subject, days in (("p", [0, 5, 12]), ("q", [1, 15])):
        for day in days:
            tracker.learn_one({"a": 10.0 * (day + 1)}, subject=subject, time=float(day))
    population = tracker.population(bin_width=10.0)
    assert population["bin"].tolist() == [0.0, 10.0]
    first = population.iloc[0]
    expected = np.mean([tracker.trajectory(s).loc[d, 0] for s, d in (("p", 0), ("p", 5),
                                                                      ("q", 1))])
    assert first["mean_weight"] == pytest.approx(expected)
    assert (first["n_samples"], first["n_subjects"], first["carriers"]) == (3, 2, 2)
    assert population.iloc[1]["mean_share"] == pytest.approx(1.0)
    assert tracker.population(subjects=["q"])["n_samples"].tolist() == [1, 1]


def test_record_fields_are_json_ready():
    tracker = Tracker(OnlineNMF(n_components=2, beta=1, seed=0))
    for day in range(4):
        rec = tracker.learn_one({"a": 3 + day, "b": 1}, subject="s", time=day)
    fields = record_fields(rec)
    assert set(fields) == {"growth", "events"}
    assert set(fields["growth"]) <= set(rec["weights"])
    json.dumps(fields, allow_nan=False)


def test_observe_records_weights_computed_elsewhere():
    model = OnlineNMF(n_components=2, beta=1, seed=0)
    tracker = Tracker(model)
    h = model.learn_one({"a": 3, "b": 1})
    rec = tracker.observe("s", 0.0, h)
    assert rec["weights"] == h and model.samples_learned == 1
    with pytest.raises(ValueError, match="weight of component"):
        tracker.observe("s", 1.0, {0: -1.0})


def _reference_growth(tracker: Tracker, subject) -> dict:
    """The growth fit written plainly with numpy and :func:`theil_sen` (the Tracker's first
    implementation), from the public trajectory: the compiled path must give the same bits."""
    frame = tracker.trajectory(subject)
    times = frame.index.to_numpy(dtype=np.float64)
    start = 0 if tracker.window is None else int(np.searchsorted(
        times, times[-1] - tracker.window, side="left"))
    window = frame.iloc[start:].dropna(axis=1, how="all")
    if len(window) < tracker.min_points:
        return {}
    times, ids, values = times[start:], list(window.columns), window.to_numpy()
    totals = np.nansum(values, axis=1)
    if tracker.growth_of == "composition":
        values = values / np.where(totals > 0, totals, 1.0)[:, None]
        floor = tracker.detection
    else:
        floor = tracker.detection * float(totals.mean())
    if not floor > 0:
        return {}
    logs = np.log(np.maximum(np.nan_to_num(values, nan=floor), floor))
    out = {}
    for j, component in enumerate(ids):
        rows = ~np.isnan(values[:, j])
        if (values[rows, j] > floor).sum() < tracker.min_points:
            continue
        slope, low, high = theil_sen(times[rows], logs[rows, j][:, None])
        if np.isfinite(slope[0]):
            out[component] = (slope[0], low[0], high[0], int(rows.sum()))
    return out


@pytest.mark.parametrize("params", [
    {},
    {"growth_of": "composition", "window": 25.0, "reproject": True},
    {"max_history": 6, "min_points": 2},
])
def test_growth_is_bit_identical_to_the_numpy_reference(params):
    # Births (forced re-seeds), late samples, windows and dropped history exercise the
    # tracker's cached weight array; ties in time exercise the interval's tie correction.
    stream = make_longitudinal_stream(n_subjects=12, n_times=10, seed=4)
    order = list(range(stream.X.shape[0]))
    rng = np.random.default_rng(0)
    for _ in range(10):  # delay some samples behind later ones of their subject
        a = int(rng.integers(0, len(order) - 40))
        order.insert(a + 30, order.pop(a))
    tracker = Tracker(OnlineNMF(n_components=4, beta=1, refresh_every=20, seed=0), **params)
    late = 0
    for step, i in enumerate(order):
        if step in (40, 80):
            tracker.model._reseed(step % 4, "forced by the test")
        rec = tracker.learn_one(stream.sample(i), subject=stream.subjects[i],
                                time=float(np.round(stream.times[i])))
        late += rec["late"]
        expected = _reference_growth(tracker, rec["subject"])
        got = {c: (rec["growth"][c], *rec["growth_interval"][c], rec["growth_points"][c])
               for c in rec["growth"]}
        assert got == expected
    assert late > 0 and any(e["kind"] == "birth" for e in tracker.events)


def test_growth_kernel_matches_theil_sen_bit_for_bit():
    from onlinenmf._growth import growth_fits

    rng = np.random.default_rng(2)
    z = float(scipy.stats.norm.ppf(0.025))
    for trial in range(300):
        n, p = int(rng.integers(2, 40)), int(rng.integers(1, 4))
        t = np.sort(rng.uniform(0, 20, n))
        if trial % 2:
            t = np.round(t)  # tied times
        v = rng.exponential(size=(n, p))
        v[rng.random((n, p)) < rng.random()] = 1e-9  # at the floor: many zero slopes
        if trial % 3 == 0:
            v[: n // 3, 0] = np.nan  # a component born later
        floor = 1e-3
        logs = np.log(np.fmax(v, floor))
        slope, low, high, points = growth_fits(t, v, logs, floor, 2, z)
        for j in range(p):
            rows = ~np.isnan(v[:, j])
            ref = theil_sen(t[rows], logs[rows, j][:, None])
            if (v[rows, j] > floor).sum() < 2 or not np.isfinite(ref[0][0]):
                assert np.isnan(slope[j])
                continue
            assert (slope[j], low[j], high[j]) == (ref[0][0], ref[1][0], ref[2][0])
            assert points[j] == rows.sum()


# ---------------------------------------------------------------- memory bounds (issue 10)
def _h(model: OnlineNMF, rng: np.random.Generator) -> dict[int, float]:
    return {c: float(v) for c, v in zip(model.component_ids,
                                         rng.exponential(size=len(model.component_ids)))}


def _cost_of_one(reproject: bool = False) -> int:
    """history_bytes of a tracker holding one subject ("a") with one k = 10 sample."""
    model = OnlineNMF(n_components=10, beta=1, seed=0)
    tracker = Tracker(model, reproject=reproject)
    tracker.observe("a", 0.0, _h(model, np.random.default_rng(0)))
    return tracker.history_bytes


@pytest.mark.parametrize("reproject", [False, True])
def test_history_budget_bounds_the_memory_tracemalloc_measures(reproject):
    # 2,000 samples of 1,000 subjects (k = 10) against a 256 KiB budget: the budget is never
    # exceeded, and what the histories really hold (tracemalloc, numpy's buffers included)
    # stays under it: SUBJECT_OVERHEAD covers the Python objects a subject costs.
    model = OnlineNMF(n_components=10, beta=1, seed=0)
    budget = 256 << 10
    tracker = Tracker(model, max_history_bytes=budget, max_events=1, reproject=reproject)
    rng = np.random.default_rng(0)
    # One-off costs (compiled kernels, lazy imports, caches) are not the histories': paid
    # first by a throwaway tracker, so the measure is the same alone or after other tests.
    warm = Tracker(model, max_history_bytes=budget, max_events=1, reproject=reproject)
    for i in range(50):
        warm.observe(f"W{i % 5}", float(i), _h(model, np.random.default_rng(i)))
    del warm
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for i in range(2000):
            tracker.observe(f"S{int(rng.integers(0, 1000)):05d}", float(i), _h(model, rng))
            assert tracker.history_bytes <= budget
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert tracker.metrics["evicted_budget"] > 300 and tracker.metrics["evicted_lru"] == 0
    assert 0.8 * tracker.history_bytes <= held <= budget
    recount = Tracker.from_bytes(tracker.to_bytes())
    assert recount.history_bytes == tracker.history_bytes and recount.subjects == tracker.subjects


def test_budget_evicts_the_least_recently_seen_subject():
    one = _cost_of_one()
    model = OnlineNMF(n_components=10, beta=1, seed=0)
    tracker = Tracker(model, max_history_bytes=3 * one + one // 2)
    rng = np.random.default_rng(1)
    for day, subject in enumerate("abca"):  # a is seen again: b is now the least recent
        tracker.observe(subject, float(day), _h(model, rng))
    assert tracker.subjects == ["b", "c", "a"] and tracker.metrics["evicted_budget"] == 0
    tracker.observe("d", 4.0, _h(model, rng))
    assert tracker.subjects == ["c", "a", "d"]
    assert tracker.metrics["evicted_budget"] == 1
    assert len(tracker.trajectory("a")) == 2


def test_one_subject_over_the_budget_keeps_its_latest_samples():
    model = OnlineNMF(n_components=10, beta=1, seed=0)
    even = {c: 1.0 for c in model.component_ids}  # every community present, always
    first = Tracker(model)
    first.observe("a", 0.0, even)
    first.observe("a", 1.0, even)  # two samples: its latest `hold` kept for the events too
    per_sample = 8 * (2 + 10)  # its time, its loss and 10 weights
    tracker = Tracker(model, max_history_bytes=first.history_bytes + 3 * per_sample)
    for day in range(8):
        tracker.observe("a", float(day), even)
        assert tracker.history_bytes <= tracker.max_history_bytes
    assert list(tracker.trajectory("a").index) == [3.0, 4.0, 5.0, 6.0, 7.0]
    assert tracker.metrics["history_dropped"] == 3


def test_reprojected_samples_count_in_the_budget():
    model = OnlineNMF(n_components=10, beta=1, seed=0)
    tracker = Tracker(model, reproject=True)
    tracker.learn_one({"a": 3.0, "b": 1.0, "c": 0.0}, subject="s", time=0.0)
    before, present = tracker.history_bytes, len(tracker._subjects["s"].present)
    tracker.learn_one({"a": 3.0, "b": 1.0, "c": 2.0}, subject="s", time=1.0)
    # time, loss, 10 weights, version and entry count, then 3 (row, value) pairs (and 8 bytes
    # per community present in the subject); and, kept for the appear/vanish events as the
    # second of its latest `hold` samples, its 3 entries (32-bit row and value), 10 (id, h)
    # pairs and RECENT_OVERHEAD
    present = len(tracker._subjects["s"].present) - present
    recent = 8 * 3 + 16 * 10 + RECENT_OVERHEAD
    assert tracker.history_bytes - before == 8 * (2 + 10 + 2) + 16 * 3 + 8 * present + recent


@pytest.mark.parametrize("reproject", [False, True])
def test_restore_through_budget_evictions_is_bit_identical(reproject):
    # A tracker restored from its snapshot every 97 samples gives the records, the model and
    # the snapshot of the uninterrupted one, while the budget evicts subjects and samples.
    stream = make_longitudinal_stream(n_subjects=60, n_times=8, seed=3)

    def fresh() -> Tracker:
        return Tracker(OnlineNMF(n_components=4, beta=1, refresh_every=25, seed=0),
                       max_history_bytes=30_000, reproject=reproject)

    straight, restarted = fresh(), fresh()
    for i in range(stream.X.shape[0]):
        x, subject, time = stream.sample(i), stream.subjects[i], float(stream.times[i])
        if i % 97 == 96:
            restarted = Tracker.from_bytes(restarted.to_bytes())
        assert restarted.learn_one(x, subject, time) == straight.learn_one(x, subject, time)
    assert straight.metrics["evicted_budget"] > 0
    assert restarted.history_bytes == straight.history_bytes <= 30_000
    assert restarted.to_bytes() == straight.to_bytes()
    assert np.array_equal(restarted.model.W, straight.model.W)


def test_set_bounds_applies_at_once_and_refuses_bad_values():
    model = OnlineNMF(n_components=10, beta=1, seed=0)
    tracker = Tracker(model)
    rng = np.random.default_rng(4)
    for day in range(4):
        for subject in "abc":
            tracker.observe(subject, float(day), _h(model, rng))
    state = tracker.to_bytes()
    with pytest.raises(ValueError, match="max_history_bytes must be a positive integer"):
        tracker.set_bounds(max_history=2, max_history_bytes=0)
    with pytest.raises(ValueError, match="not a bound of the tracker: window"):
        tracker.set_bounds(window=3.0)
    assert tracker.to_bytes() == state  # refused: nothing changed, not even max_history
    tracker.set_bounds(max_history=2, max_subjects=2, max_events=1)
    assert tracker.subjects == ["b", "c"] and len(tracker.trajectory("c")) == 2
    assert len(tracker.events) <= 1
    assert tracker.history_bytes == Tracker.from_bytes(tracker.to_bytes()).history_bytes


def test_snapshot_of_the_first_layout_is_read():
    # tests/data/tracker-layout1.npz was written by the tracker before histories became
    # arrays (commit f51c2b1: one {id: weight} list per sample): 3 subjects of 6 samples, a
    # component re-seeded after the 9th, so rows carry different ids. Every row, time,
    # present set and counter comes through, and the tracker learns on from there.
    path = Path(__file__).parent / "data" / "tracker-layout1.npz"
    arrays, meta = snapshot.read(path)  # the raw layout-1 arrays
    tracker = Tracker.load(path)
    assert tracker.subjects == [key for key, *_ in meta["subjects"]]
    ends, row = np.cumsum(arrays["nnz"]), 0
    for (key, present, last_time), length in zip(meta["subjects"], arrays["lengths"]):
        frame = tracker.trajectory(key)
        assert frame.index.tolist() == arrays["times"][row:row + length].tolist()
        for i, s in enumerate(range(row, row + length)):
            span = slice(ends[s] - arrays["nnz"][s], ends[s])
            expected = dict(zip(arrays["ids"][span].tolist(), arrays["values"][span].tolist()))
            assert frame.iloc[i].dropna().to_dict() == expected
        assert tracker._subjects[key].present == tuple(present)
        assert tracker._subjects[key].last_time == last_time
        row += length
    assert tracker.trajectory("S000").isna().any().any()  # the re-seed's NaN columns
    assert tracker.metrics == {**tracker.metrics, **meta["metrics"]}
    assert Tracker.from_bytes(tracker.to_bytes()).to_bytes() == tracker.to_bytes()
    rec = tracker.learn_one({"t0": 5.0, "t3": 2.0}, subject="S001", time=200.0)
    assert len(tracker.trajectory("S001")) == 7 and rec["growth"]
