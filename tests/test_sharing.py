"""Shared dictionaries in the engine (no Kafka): two models that each see half of the
communities learn all of them by exchanging their statistics."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from onlinenmf import OnlineNMF
from onlinenmf.datasets import make_poisson_stream


def split_stream(n: int, seed: int = 0):
    """Planted W (8 communities); worker 1's samples mix 2 of A..D, worker 2's 2 of E..H."""
    planted = make_poisson_stream(n_features=120, n_components=8, n_samples=1,
                                  taxa_per_community=15, seed=seed)
    rng = np.random.default_rng(seed + 1)

    def samples(communities):
        for _ in range(n):
            chosen = rng.choice(communities, 2, replace=False)
            counts = rng.poisson(2000 * planted.W_true[:, chosen] @ rng.dirichlet([1, 1]))
            yield {planted.features[i]: float(counts[i]) for i in np.flatnonzero(counts)}

    return planted, list(samples([0, 1, 2, 3])), list(samples([4, 5, 6, 7]))


def matched_cosines(model: OnlineNMF, planted) -> np.ndarray:
    """Cosine of each planted community with its Hungarian-matched column of model.W."""
    index = {name: i for i, name in enumerate(model.features)}
    W = np.zeros((len(planted.features), model.W.shape[1]))
    for row, name in enumerate(planted.features):
        if name in index:
            W[row] = model.W[index[name]]
    truth = planted.W_true / np.linalg.norm(planted.W_true, axis=0)
    cosine = truth.T @ (W / np.maximum(np.linalg.norm(W, axis=0), 1e-300))
    rows, cols = linear_sum_assignment(-cosine)
    return cosine[rows, cols]


def run_pair(share: bool, n: int = 600, beta: int = 1, seed: int = 0):
    planted, first, second = split_stream(n, seed)
    models = [OnlineNMF(n_components=8, beta=beta, refresh_every=50, seed=0) for _ in range(2)]
    versions = [0, 0]
    for pair in zip(first, second):
        for me, x in enumerate(pair):
            models[me].learn_one(x)
        for me in range(2):  # publish after each refresh: the other one takes it
            if share and models[me].model_version != versions[me]:
                models[1 - me].set_peer_statistics([models[me].export_statistics()])
            versions[me] = models[me].model_version
    return planted, models


@pytest.mark.parametrize("beta", [1, 2])
def test_sharing_learns_every_community_and_not_sharing_does_not(beta):
    planted, shared = run_pair(share=True, beta=beta)
    for model in shared:
        assert matched_cosines(model, planted).min() >= 0.9
        reasons = [e["reason"] for e in model.events]
        assert any("shared dictionary" in r for r in reasons)
    planted, alone = run_pair(share=False, beta=beta)
    for model, own in zip(alone, (slice(0, 4), slice(4, 8))):
        cosines = matched_cosines(model, planted)
        assert np.sort(cosines)[4:].min() >= 0.9  # its own four
        assert np.sort(cosines)[:4].max() < 0.9  # and not the other four


def test_no_peers_changes_nothing():
    planted, first, _ = split_stream(300)
    a, b = (OnlineNMF(n_components=8, refresh_every=50, seed=0) for _ in range(2))
    for i, x in enumerate(first):
        a.learn_one(x)
        b.learn_one(x)
        if i % 50 == 0:
            b.set_peer_statistics([])
    assert a == b and a.W.tobytes() == b.W.tobytes()


def test_a_peer_state_given_again_is_not_counted_twice():
    _, first, second = split_stream(200)
    peer = OnlineNMF(n_components=4, refresh_every=50, seed=1)
    for x in second:
        peer.learn_one(x)
    twice = [OnlineNMF(n_components=4, refresh_every=50, seed=0) for _ in range(2)]
    for i, x in enumerate(first):
        for model in twice:
            model.learn_one(x)
        if i == 60:
            twice[0].set_peer_statistics([peer.export_statistics()])
            twice[1].set_peer_statistics([peer.export_statistics()])
            twice[1].set_peer_statistics([peer.export_statistics()])  # replaced, not added
    assert np.array_equal(twice[0].W, twice[1].W)


def test_bad_peer_statistics_are_refused_and_leave_no_trace():
    model = OnlineNMF(n_components=2, refresh_every=2, seed=0)
    for x in [{"a": 5, "b": 1}, {"c": 4}, {"a": 6}, {"c": 5}]:
        model.learn_one(x)
    good = model.export_statistics()
    before = model.to_bytes()
    renamed = {**good, "features": [f"{name}2" for name in good["features"]]}
    bad_usage = {**renamed, "usage": -good["usage"]}
    with pytest.raises(ValueError, match="peer statistics #1: usage holds negative"):
        model.set_peer_statistics([renamed, bad_usage])  # the first one's names not kept
    with pytest.raises(ValueError, match="peer statistics #0: beta=2"):
        model.set_peer_statistics([{**good, "beta": 2}])
    with pytest.raises(ValueError, match="peer statistics #0: B has shape"):
        model.set_peer_statistics([{**good, "B": good["B"][:2]}])
    with pytest.raises(ValueError, match="missing 'n_eff'"):
        model.set_peer_statistics([{k: v for k, v in good.items() if k != "n_eff"}])
    assert model.to_bytes() == before
