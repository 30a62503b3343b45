"""Appear/vanish events compare a subject's shares under one dictionary (issue 13, item 3): a
subject whose samples do not change makes no event however often W moves between them, and a
subject that does change still makes its events."""

from __future__ import annotations

import numpy as np
import pytest

from onlinenmf import OnlineNMF, Tracker
from onlinenmf.datasets import make_longitudinal_stream


@pytest.fixture(scope="module")
def stream():
    # 40 subjects whose communities grow and decline: W moves as it learns them
    return make_longitudinal_stream(n_subjects=40, n_times=10, seed=5, n_features=120,
                                    n_components=6, taxa_per_community=20)


def constant_subject_events(stream, **params) -> tuple[list[dict], int]:
    """A Tracker over the stream with one more subject, "same", whose every third sample is
    the same one (a copy of the stream's first sample); its appear/vanish events, and how many
    of its samples met a dictionary that changed since its previous one."""
    tracker = Tracker(OnlineNMF(n_components=6, beta=1, refresh_every=7, seed=0), **params)
    same, moved, version = stream.sample(0), 0, None
    for i in range(stream.X.shape[0]):
        tracker.learn_one(stream.sample(i), stream.subjects[i], float(stream.times[i]))
        if i % 3 == 2:
            moved += version is not None and version != tracker.model.model_version
            version = tracker.learn_one(same, "same", float(stream.times[i]))["model_version"]
    events = [e for e in tracker.events
              if e["subject"] == "same" and e["kind"] in ("appear", "vanish")]
    return events, moved


def test_a_subject_that_does_not_change_makes_no_event_when_w_moves(stream):
    events, moved = constant_subject_events(stream)
    assert moved >= 50  # W did move between its samples, many times
    assert events == [], [(e["kind"], e["component"], e["detail"]) for e in events]


def test_a_subject_that_changes_still_makes_its_events(stream):
    """The subject "switch" sends one planted community's profile, then another's: the second
    appears and the first vanishes, hold - 1 samples after the switch, while W moves."""
    tracker = Tracker(OnlineNMF(n_components=6, beta=1, refresh_every=7, seed=0))
    profiles = stream.W_true.T * 3000.0  # a planted community's expected reads
    names = stream.features
    for i in range(stream.X.shape[0]):
        tracker.learn_one(stream.sample(i), stream.subjects[i], float(stream.times[i]))
    switch_at = None
    for step in range(12):
        profile = profiles[0] if step < 6 else profiles[1]
        x = {names[j]: float(v) for j, v in enumerate(np.round(profile)) if v > 0}
        record = tracker.learn_one(x, "switch", 200.0 + step)
        if step == 6:
            switch_at = record["time"]
        for source in stream.sample(step), stream.sample(step + 40):  # W goes on moving
            tracker.learn_one(source, "other", 200.0 + step)
    mine = [e for e in tracker.events if e["subject"] == "switch"]
    kinds = {e["kind"] for e in mine if e["time"] == switch_at + 1}
    assert kinds == {"appear", "vanish"}, [(e["kind"], e["time"], e["detail"]) for e in mine]
