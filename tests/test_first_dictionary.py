"""The first dictionary (fitted on the recent samples at the first refresh) recovers planted
communities at once: a fast check of the initialisation (diverse starting samples, batch NMF
on the buffer), which the later refreshes and the oracles of the statistics do not see."""

from __future__ import annotations

import numpy as np
import pytest

from onlinenmf import OnlineNMF

TAXA = 8  # per community


def planted(n, k, rng, overlap=0.0):
    """n samples of Poisson counts (depth 300) from sparse mixtures of k communities, each
    uniform over its own TAXA taxa plus ``overlap`` of its mass spread over all taxa."""
    W = np.full((k * TAXA, k), overlap / (k * TAXA))
    for c in range(k):
        W[c * TAXA : (c + 1) * TAXA, c] += (1.0 - overlap) / TAXA
    H = rng.dirichlet(np.full(k, 0.3), n)
    return rng.poisson(300.0 * H @ W.T).astype(np.float64), W


def cosines(model, features, W_true):
    """Best cosine of each planted column with a column of the model (rows in planted order)."""
    W = np.array(model.W)[[model.features.index(f) for f in features]]
    similarity = (W_true / np.linalg.norm(W_true, axis=0)).T @ (W / np.linalg.norm(W, axis=0))
    return similarity.max(axis=1), similarity


@pytest.mark.parametrize("init", ["samples", "core"])
@pytest.mark.parametrize("beta", [0, 1, 2])
def test_first_refresh_recovers_planted_communities(beta, init):
    rng = np.random.default_rng(beta)
    k = 4
    X, W_true = planted(60, k, rng, overlap=0.05)
    features = [f"taxon{i}" for i in range(k * TAXA)]
    model = OnlineNMF(n_components=k, beta=beta, refresh_every=60, init=init, seed=0)
    model.learn_many(X, features=features)
    assert model.model_version == 1  # the data-driven first dictionary, nothing after it
    best, similarity = cosines(model, features, W_true)
    assert best.min() >= 0.97, similarity.round(3)
    # one column per community, not two columns sharing one
    assert len(set(similarity.argmax(axis=1))) == k, similarity.round(3)
