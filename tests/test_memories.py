"""The forgetting chosen by the data (onlinenmf.memories, issue 13): a short and a long memory
learn side by side and W is served from the one with the lower recent prequential loss."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from onlinenmf import OnlineNMF
from onlinenmf.datasets import make_poisson_stream
from onlinenmf.divergences import for_beta
from onlinenmf.divergences.base import Totals
from onlinenmf.memories import CANDIDATES

SHORT, LONG = (rho for rho, _ in CANDIDATES)


def drifting(n=1500, every=150, seed=0):
    """Poisson counts whose communities are replaced every ``every`` samples (a stream that
    keeps moving): a short memory follows it, a long one lags."""
    blocks, features = [], None
    for start in range(0, n, every):
        s = make_poisson_stream(n_features=80, n_components=4, n_samples=every, seed=seed + start,
                                taxa_per_community=15)
        blocks.append(s.X)
        features = s.features
    return sp.vstack(blocks).tocsr(), features


def served_memory(model, X, features, chunk=50):
    """Learn X in chunks; the forgetting factor in force after each chunk."""
    served = []
    for start in range(0, X.shape[0], chunk):
        model.learn_many(X[start : start + chunk], features=features)
        served.append(model.current_forget_factor)
    return np.array(served)


def test_a_moving_stream_is_served_the_short_memory_a_stationary_one_the_long():
    X, features = drifting()
    moving = OnlineNMF(n_components=4, beta=1, seed=0)
    served = served_memory(moving, X, features)
    assert (served[len(served) // 2 :] == SHORT).mean() >= 0.8, served
    switches = [e for e in moving.events if e.kind == "forget_factor"]
    assert switches and "lower recent prequential loss" in switches[0].reason

    s = make_poisson_stream(n_features=80, n_components=4, n_samples=1500, seed=1,
                            taxa_per_community=15)
    still = OnlineNMF(n_components=4, beta=1, seed=0)
    served = served_memory(still, s.X, s.features)
    assert (served[len(served) // 2 :] == LONG).all(), served


def test_the_served_memory_predicts_better_than_either_fixed_one_would():
    """On the moving stream the prequential loss with the memories is at most that of the
    better fixed forgetting factor plus 2 %, and below the worse one."""
    X, features = drifting()
    losses = {}
    for name, rho in {"auto": None, "short": SHORT, "long": LONG}.items():
        model = OnlineNMF(n_components=4, beta=1, seed=0, forget_factor=rho)
        model.learn_many(X, features=features)
        losses[name] = model.last_losses[300:].sum()
    assert losses["auto"] <= 1.02 * min(losses["short"], losses["long"]), losses
    assert losses["auto"] < max(losses["short"], losses["long"]), losses


@pytest.mark.parametrize("beta", [0, 1, 2])
def test_memories_round_trip_and_learn_many_equals_learn_one(beta):
    X, features = drifting(n=600)
    one = OnlineNMF(n_components=4, beta=beta, seed=3)
    one.add_features(features)
    for i in range(X.shape[0]):
        start, stop = X.indptr[i], X.indptr[i + 1]
        one.learn_one({features[c]: v for c, v in zip(X.indices[start:stop], X.data[start:stop])})
    many = OnlineNMF(n_components=4, beta=beta, seed=3)
    for start in range(0, 300, 70):
        many.learn_many(X[start : min(300, start + 70)], features=features)
    twin = OnlineNMF.from_bytes(many.to_bytes())
    assert twin == many
    for model in (many, twin):
        model.learn_many(X[300:], features=features)
    assert twin == many
    assert [(e.kind, e.sample) for e in one.events] == [(e.kind, e.sample) for e in many.events]
    np.testing.assert_allclose(one.W, many.W, rtol=1e-6, atol=1e-10)


def test_a_switch_keeps_each_component_in_its_place():
    """The incoming memory's columns are matched to the served ones: after a switch each id's
    column is the one most alike it before the switch."""
    X, features = drifting()
    model = OnlineNMF(n_components=4, beta=1, seed=0)
    before = None
    for start in range(0, X.shape[0], 10):
        previous = model.current_forget_factor
        if before is not None:
            old = np.array(model.W)
        model.learn_many(X[start : start + 10], features=features)
        if before is not None and model.current_forget_factor != previous:
            new = np.array(model.W)[: old.shape[0]]
            cosine = (old / np.linalg.norm(old, axis=0)).T @ (new / np.linalg.norm(new, axis=0))
            assert (np.argmax(cosine, axis=1) == np.arange(4)).all(), cosine.round(2)
            return
        before = True
    pytest.fail("no switch of memory on the moving stream")


def test_the_prior_keeps_mass_on_every_feature():
    """beta = 1: a prior of a samples' worth of reads adds a / (k m) of the mean reads per
    sample to every entry of N before the M-step; without it a feature no column has seen
    gets no mass."""
    divergence = for_beta(1)
    B = np.array([[6.0, 0.0], [0.0, 4.0], [0.0, 0.0]])
    usage, n_eff = np.array([6.0, 4.0]), 2.0
    plain, smooth = np.ones((3, 2)), np.ones((3, 2))
    divergence.update_dictionary(plain, Totals(None, B, None, usage, n_eff), 0.0, 0.0, 1)
    divergence.update_dictionary(smooth, Totals(None, B, None, usage, n_eff, 0.5), 0.0, 0.0, 1)
    pseudo = 0.5 * 10.0 / (2.0 * 2 * 3)  # prior x mean reads per sample / (k m)
    np.testing.assert_allclose(smooth, (B + pseudo) / usage)
    assert plain[2].max() < 1e-9 < smooth[2].min()


def test_an_explicit_forget_factor_keeps_one_memory():
    model = OnlineNMF(n_components=2, forget_factor=0.99)
    assert model._learner.memories is None and model.current_forget_factor == 0.99
    adaptive = OnlineNMF(n_components=2, adapt_forgetting=True)  # its own rule, from 0.998
    assert adaptive._learner.memories is None and adaptive.base_memory_length == 1 / (1 - LONG)
