"""Births without a loss step under adapt_rank (onlinenmf.hyper, issue 13): a rank that is
too low from the start grows to the planted rank and not beyond; a rank that fits does not."""

from __future__ import annotations

import numpy as np
import pytest

from onlinenmf import OnlineNMF, hyper
from tests.test_hyper import CHUNK, planted_rank_stream, stream

MEMORY = 200


def planted(k: int, k_max: int) -> tuple[np.ndarray, list]:
    """A stationary stream of 6 planted communities learned from rank k: ranks per chunk and
    the model's grow events."""
    X = planted_rank_stream([(range(6), 2400)])
    model = OnlineNMF(n_components=k, beta=1, seed=0, forget_factor=1 - 1 / MEMORY,
                      refresh_every=CHUNK, adapt_rank=True, k_max=k_max)
    ranks, _ = stream(model, X)
    return ranks, [e for e in model.events if e["kind"] == "grow"]


def test_a_rank_too_low_from_the_start_grows_to_the_planted_rank():
    """No loss step ever happens here (the loss is high from the first window on), which the
    loss-alarm births need: the held-out trial grows the rank. (Three communities missing at
    once overshoot by up to three for a few hundred samples: blends of two missing communities
    are born first, and the prune retires them; see onlinenmf.hyper.)"""
    ranks, grown = planted(k=3, k_max=10)
    assert np.all(ranks[-30:] == 6), ranks  # reached the planted rank and holds it
    assert len(grown) >= 3 and all("lowers the loss" in e["reason"] for e in grown)


def test_no_birth_on_a_stationary_stream_the_rank_fits():
    ranks, grown = planted(k=6, k_max=12)
    assert not grown and np.all(ranks == 6), ranks


def test_the_margin_is_what_keeps_the_rank(monkeypatch):
    """The test above can fail: without the gain and share margins the same stream grows."""
    monkeypatch.setattr(hyper, "GROWTH_GAIN", -1.0)
    monkeypatch.setattr(hyper, "PRUNE_SHARE", 0.0)
    monkeypatch.setattr(hyper, "GROWTH_SHARE", 0.0)
    ranks, grown = planted(k=6, k_max=12)
    assert grown and ranks.max() > 6


@pytest.mark.parametrize("k", [3, 6])
def test_a_trial_leaves_the_model_unchanged_when_nothing_is_born(monkeypatch, k):
    """Candidates are judged on a copy of W's caches: a rejected trial changes nothing."""
    X = planted_rank_stream([(range(6), 400)])
    model = OnlineNMF(n_components=k, beta=1, seed=0, refresh_every=CHUNK, adapt_rank=True,
                      forget_factor=1 - 1 / MEMORY)
    stream(model, X)
    before = model.to_bytes()
    monkeypatch.setattr(hyper, "GROWTH_GAIN", np.inf)
    model._hyper._grow()
    assert model.to_bytes() == before
