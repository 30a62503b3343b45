"""Dead components are re-seeded: a fast planted check of the engine's "Dead components" note.

Three planted communities on disjoint taxa; after a while the third one stops appearing and
the other two go on, so the loss does not rise (the loss-alarm path stays quiet) and only the
dead-component rule can act: the component that learned the vanished community must be
retired, its column re-used under a new id, within a few memory lengths.
"""

from __future__ import annotations

import numpy as np

from onlinenmf import OnlineNMF

TAXA = 10  # per community
SWITCH = 300  # samples before the third community vanishes


def planted(n, communities, rng):
    """n samples (rows) of Poisson counts, depth 200, from Dirichlet mixtures of the given
    communities; community c is uniform over taxa c*TAXA .. (c+1)*TAXA - 1."""
    W = np.zeros((3 * TAXA, 3))
    for c in range(3):
        W[c * TAXA : (c + 1) * TAXA, c] = 1.0 / TAXA
    H = np.zeros((n, 3))
    H[:, communities] = rng.dirichlet(np.ones(len(communities)), n)
    return rng.poisson(200.0 * H @ W.T).astype(np.float64), W


def test_a_component_whose_community_vanishes_is_reseeded():
    rng = np.random.default_rng(0)
    features = [f"taxon{i}" for i in range(3 * TAXA)]
    before, W_true = planted(SWITCH, [0, 1, 2], rng)
    after, _ = planted(250, [0, 1], rng)
    # drift_threshold=None: as before issue 13 (drift events by default), the only events here
    # are the re-seeding's
    model = OnlineNMF(n_components=3, beta=1, forget_factor=0.95, refresh_every=10, seed=0,
                      drift_threshold=None)
    model.learn_many(before, features=features)
    # which component learned which community (rows in the planted order)
    W = np.array(model.W)[[model.features.index(f) for f in features]]
    cosine = (W_true / np.linalg.norm(W_true, axis=0)).T @ (W / np.linalg.norm(W, axis=0))
    assert np.all(cosine.max(axis=1) >= 0.95), cosine  # all three were learned
    ids = model.component_ids
    vanished, alive = ids[int(np.argmax(cosine[2]))], {ids[int(np.argmax(cosine[c]))]
                                                       for c in (0, 1)}
    assert not model.events
    model.learn_many(after, features=features)
    retired = [e for e in model.events if e["kind"] == "retire"]
    assert retired, "the vanished community's component was never re-seeded"
    first = retired[0]
    assert first["component"] == vanished
    # within 8 memory lengths of the switch (measured: 110 samples, 5.5 memory lengths)
    assert first["sample"] <= SWITCH + 8 * model.memory_length
    born = [e for e in model.events if e["kind"] == "birth"][0]
    assert (born["component"], born["sample"]) == (first["new"], first["sample"])
    assert vanished not in model.component_ids
    assert alive <= set(model.component_ids)  # the communities still in use are kept
