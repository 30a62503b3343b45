"""The automatic refresh schedule and the drift events (issue 13): the first dictionary from the
first 2k samples, refreshes counted in samples and bounded in cost, a loss alarm judged on
windows of samples, and every detected rise of the prequential loss an event."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from onlinenmf import OnlineNMF
from onlinenmf.datasets import make_poisson_stream
from onlinenmf.monitor import ALARM_SAMPLES
from onlinenmf.schedule import COST_SHARE, RefreshSchedule


@pytest.fixture(scope="module")
def stationary():
    return make_poisson_stream(n_features=120, n_components=5, n_samples=1500, seed=4,
                               taxa_per_community=20)


def test_first_dictionary_after_two_samples_per_component(stationary):
    """At the defaults the samples after 2k meet a dictionary fitted on the data: W changes at
    the 2k-th sample and its columns then match the planted communities."""
    k = 5
    model = OnlineNMF(n_components=k, seed=0)
    for i in range(2 * k):
        assert model.model_version == 0
        model.learn_one(stationary.sample(i))
    assert model.model_version == 1
    model.learn_many(stationary.X[2 * k : 40 * k], features=stationary.features)
    W = np.array([model.W[model.features.index(f)] if f in model.features else np.zeros(k)
                  for f in stationary.features])
    a = stationary.W_true / np.linalg.norm(stationary.W_true, axis=0)
    b = W / np.linalg.norm(W, axis=0)
    assert (a.T @ b).max(axis=1).min() >= 0.9, (a.T @ b).round(2)


def test_refreshes_space_out_and_respect_the_cost_floor(stationary):
    """Refreshes come often while the model is young, then further apart, never beyond a
    quarter of the memory, and never before the samples since the last one hold COST_SHARE x
    m non-zero entries."""
    model = OnlineNMF(n_components=5, seed=0, forget_factor=0.99, drift_threshold=None)
    at, entries, since = [], [], 0
    for i in range(1500):
        x = stationary.sample(i)
        version = model.model_version
        model.learn_one(x)
        since += sum(value > 0 for value in x.values())
        if model.model_version != version:
            at.append(model.samples_learned)
            entries.append(since)
            since = 0
    gaps = np.diff(at)
    assert at[0] == 10 and {20, 40, 80} <= set(at)  # first dictionary at 2k, again at 4k, 8k
    assert gaps[:10].max() < gaps[-10:].min()  # spacing out
    assert gaps.max() <= 0.25 * model.memory_length
    assert min(entries[4:]) >= COST_SHARE * model.n_features


def test_learn_many_follows_the_automatic_schedule(stationary):
    """The batch path cuts at the same samples as a learn_one loop (cost floor included)."""
    one = OnlineNMF(n_components=5, beta=1, seed=2, forget_factor=0.99)
    one.add_features(stationary.features)  # as learn_many registers every column up front
    for i in range(700):
        one.learn_one(stationary.sample(i))
    many = OnlineNMF(n_components=5, beta=1, seed=2, forget_factor=0.99)
    for start in range(0, 700, 97):
        many.learn_many(stationary.X[start : min(700, start + 97)], features=stationary.features)
    assert one.model_version == many.model_version
    assert one.features == many.features
    np.testing.assert_allclose(one.W, many.W, rtol=1e-7, atol=1e-12)
    assert [(e.kind, e.sample) for e in one.events] == [(e.kind, e.sample) for e in many.events]


def test_schedule_stop_matches_due():
    """RefreshSchedule.stop finds the first row after which due() holds."""
    schedule = RefreshSchedule(None, n_components=3, buffer_size=128)
    schedule.restart(6)
    indptr = np.concatenate([[0], np.cumsum(np.full(300, 4))])
    stop = schedule.stop(0, indptr, samples=200, since_refresh=3, initialised=True,
                         memory_length=100.0, n_features=80)
    for row in range(1, stop + 1):
        due = schedule.due(200 + row, 3 + row, True, 100.0, 80, nnz=4 * row)
        assert due == (row == stop)


def test_a_refresh_per_sample_does_not_reseed_on_noise():
    """The loss alarm compares a window of at least ALARM_SAMPLES samples with the long-run
    level: refreshing after every sample of a stationary stream re-seeds nothing (it used to
    compare one sample with the long-run level and re-seed on noise: 54 times here)."""
    s = make_poisson_stream(n_features=120, n_components=5, n_samples=1500, seed=11,
                            taxa_per_community=20)
    model = OnlineNMF(n_components=5, beta=1, seed=0, refresh_every=1, forget_factor=0.99)
    model.learn_many(s.X, features=s.features)
    reseeds = [e for e in model.events if e.kind == "retire"]
    assert len(reseeds) <= 1, [e.reason for e in reseeds]
    assert ALARM_SAMPLES >= 10


def spliced(seed=3, onset=700, length=6, n=1000):
    """A stationary stream with ``length`` samples of another one (other communities on the
    same taxa) spliced in at ``onset``."""
    base = make_poisson_stream(n_features=120, n_components=5, n_samples=n, seed=seed,
                               taxa_per_community=20)
    other = make_poisson_stream(n_features=120, n_components=5, n_samples=length,
                                seed=seed + 100, taxa_per_community=20)
    X = sp.vstack([base.X[:onset], other.X, base.X[onset + length :]]).tocsr()
    return X, base.features


def test_a_spliced_perturbation_is_a_drift_event_within_three_samples():
    onset, length = 700, 6
    X, features = spliced(onset=onset, length=length)
    model = OnlineNMF(n_components=5, beta=1, seed=0)
    model.learn_many(X, features=features)
    drifts = [e for e in model.events if e.kind == "drift"]
    first = [e for e in drifts if e.sample > onset]
    assert first and first[0].sample <= onset + 3, [e.sample for e in drifts]
    event = first[0]
    assert event.new > 2 * event.old  # the loss and its recent level
    assert "z = " in event.reason and "CUSUM" in event.reason
    # elsewhere, after the warm-up: at most one false event per 100 samples
    false = [e for e in drifts if 100 < e.sample <= onset or e.sample > onset + 100]
    assert len(false) <= 0.01 * (X.shape[0] - 200), [e.sample for e in false]


def test_drift_events_follow_the_threshold_and_can_be_switched_off():
    X, features = spliced()
    quiet = OnlineNMF(n_components=5, beta=1, seed=0, drift_threshold=None)
    quiet.learn_many(X, features=features)
    assert not [e for e in quiet.events if e.kind == "drift"]
    with pytest.raises(ValueError, match="drift_threshold"):
        OnlineNMF(drift_threshold=0)
    with pytest.raises(ValueError, match="drift_threshold"):
        OnlineNMF(drift_threshold="5")


def test_page_hinkley_detections_are_drift_events_even_at_the_memory_floor():
    """Under adapt_forgetting a detection of its Page-Hinkley detector is a drift event, even
    when the memory is already at its floor and no forget_factor event follows."""
    s = make_poisson_stream(n_features=120, n_components=5, n_samples=3000, seed=1,
                            drift_at=1000, n_replaced=3, taxa_per_community=20)
    model = OnlineNMF(n_components=5, beta=1, seed=0, forget_factor=0.99, refresh_every=25,
                      adapt_forgetting=True, drift_threshold=1e9)  # only Page-Hinkley
    model.learn_many(s.X, features=s.features)
    drifts = [e for e in model.events if e.kind == "drift"]
    assert any(1000 <= e.sample <= 1100 and "Page-Hinkley" in e.reason for e in drifts), drifts


def test_snapshot_continues_the_automatic_schedule_and_detector(stationary, tmp_path):
    model = OnlineNMF(n_components=5, beta=1, seed=0, forget_factor=0.99)
    model.learn_many(stationary.X[:333], features=stationary.features)
    twin = OnlineNMF.from_bytes(model.to_bytes())
    assert twin == model
    for m in (model, twin):
        m.learn_many(stationary.X[333:900], features=stationary.features)
    assert twin == model and twin.model_version == model.model_version
