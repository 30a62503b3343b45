"""Features removed from the core (OnlineNMF.remove_features) and the text model's pruned words
leaving it, so that memory stays bounded on a churning vocabulary (issue 19)."""

from __future__ import annotations

import random

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from onlinenmf import OnlineNMF
from onlinenmf.text import TopicModel, removal_batch
from tests.text_words import letter_word

K = 4
NAMES = [f"f{i}" for i in range(40)]


def _stream(n: int, rare_until: int = 300, seed: int = 0) -> list[dict[str, float]]:
    """Poisson counts of 4 planted columns over 40 features; a feature "rare" in every 10th
    of the first ``rare_until`` samples."""
    rng = np.random.default_rng(seed)
    W = rng.gamma(0.3, 1.0, (len(NAMES), K))
    W /= W.sum(axis=0)
    stream = []
    for t in range(n):
        v = rng.poisson(W @ (rng.gamma(0.5, 1.0, K) * 30))
        x = {NAMES[i]: float(v[i]) for i in np.flatnonzero(v)} or {NAMES[0]: 1.0}
        if t < rare_until and t % 10 == 0:
            x["rare"] = 2.0
        stream.append(x)
    return stream


def _copy(model: OnlineNMF) -> OnlineNMF:
    return OnlineNMF.from_bytes(model.to_bytes())


@pytest.mark.parametrize("beta", [2, 1.5])
def test_removing_then_refreshing_is_refreshing_then_removing(beta):
    # each row of W is refreshed from its own statistics: removal commutes with a refresh (not
    # at beta = 1, whose refresh also re-solves the latest samples against every row)
    model = OnlineNMF(K, beta, forget_factor=1.0, refresh_every=50, reseed=False,
                      drift_threshold=None, seed=0)
    for x in _stream(420 if beta == 2 else 220):
        model.learn_one(x)
    removed, refreshed = _copy(model), _copy(model)
    removed.remove_features(["rare", "f3"])
    removed.refresh()
    refreshed.refresh()
    refreshed.remove_features(["rare", "f3"])
    assert removed.features == refreshed.features == [n for n in model.features
                                                       if n not in ("rare", "f3")]
    # up to rounding, and to the floor of the multiplicative updates (1e-12, not rescaled)
    np.testing.assert_allclose(removed.W, refreshed.W, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("forget_factor", [1.0, None])  # None: two memories, a twin
def test_a_removed_feature_leaves_every_row_and_the_snapshot_stays_whole(forget_factor):
    model = OnlineNMF(K, 2, forget_factor=forget_factor, seed=0)
    for x in _stream(400):
        model.learn_one(x)
    W = np.asarray(model.W).copy()
    keep = np.array([n not in ("rare", "f7") for n in model.features])
    model.remove_features(["f7", "rare", "f7"])
    assert "rare" not in model.features and "f7" not in model.features
    assert model.n_features == len(NAMES) - 1
    expected = W[keep] / W[keep].sum(axis=0)  # the rows that remain, columns summing to 1
    np.testing.assert_allclose(model.W, expected, rtol=1e-12)
    stats = model._statistics
    for held in (stats, stats.twin) if stats.twin is not None else (stats,):
        assert held.m == model.n_features
        assert not held.B[held.m:].any() and not held.W[held.m:].any()  # freed rows zeroed
        np.testing.assert_allclose(held.G, held.W[: held.m].T @ held.W[: held.m], rtol=1e-12)
    assert all(rows.size == 0 or rows.max() < model.n_features
               for rows, _, _ in model._monitor.recent)
    copy = _copy(model)
    assert copy == model
    for x in _stream(60, seed=1):  # both learn alike; "rare" and "f7" come back as new rows
        assert copy.learn_one(x) == model.learn_one(x)
    assert copy == model and set(model.features[-2:]) == {"rare", "f7"}


def test_the_recent_samples_lose_the_removed_entries_and_renumber_the_others():
    model = OnlineNMF(K, 2, forget_factor=1.0, seed=0)
    model.learn_one({"a": 1.0, "b": 2.0, "c": 3.0})
    model.remove_features(["b"])
    rows, values, _ = model._monitor.recent[-1]
    assert rows.tolist() == [0, 1] and values.tolist() == [1.0, 3.0]


def test_a_removed_feature_leaves_the_model_a_model_that_never_saw_it_would_be():
    # not exactly: the activations solved while "rare" was there saw it (see the docstring)
    stream = _stream(3000)
    for beta, tolerance in ((2, 1e-5), (1, 1e-3)):
        saw, never = (OnlineNMF(K, beta, forget_factor=1.0, seed=0) for _ in range(2))
        for t, x in enumerate(stream):
            saw.learn_one(x)
            never.learn_one({n: v for n, v in x.items() if n != "rare"})
            if t == 400:
                saw.remove_features(["rare"])
        assert saw.features == never.features
        Wa, Wb = np.asarray(saw.W), np.asarray(never.W)
        cosine = (Wa / np.linalg.norm(Wa, axis=0)).T @ (Wb / np.linalg.norm(Wb, axis=0))
        rows, cols = linear_sum_assignment(-cosine)
        assert cosine[rows, cols].min() > 1 - tolerance, (beta, cosine[rows, cols])


def test_removing_an_unknown_feature_is_refused_in_one_line_and_changes_nothing():
    model = OnlineNMF(K, 2, seed=0)
    for x in _stream(50):
        model.learn_one(x)
    before = _copy(model)
    with pytest.raises(ValueError, match=r"^remove_features: 'nope' is not a feature") as err:
        model.remove_features(["f1", "nope"])
    assert "\n" not in str(err.value)
    assert model == before


def test_a_model_sharing_its_dictionary_cannot_remove_features():
    a, b = (OnlineNMF(K, 2, refresh_every=10, seed=0) for _ in range(2))
    for x in _stream(40):
        a.learn_one(x)
        b.learn_one(x)
    a.set_peer_statistics([b.export_statistics()])
    with pytest.raises(ValueError, match="shares its dictionary with peers"):
        a.remove_features(["f1"])


# ---------------------------------------------------------------- the text model
def _churning(n: int, seed: int = 0) -> list[str]:
    """Documents of 6 steady words and words of the current era: every 50 documents an era of
    40 new words begins, never seen again once it ends (a vocabulary that churns)."""
    rng = random.Random(seed)
    steady = "gold silver army navy treaty tariff".split()
    docs = []
    for i in range(n):
        era = [letter_word(40 * (i // 50) + j, "z") for j in range(40)]
        docs.append(" ".join(rng.choices(steady, k=4) + rng.choices(era, k=8)))
    return docs


def test_the_text_model_memory_stays_bounded_on_a_churning_vocabulary():
    max_words = 120
    model = TopicModel(n_components=3, min_df=2, max_words=max_words, bucket_docs=50, seed=0)
    bound = max_words + removal_batch(max_words) - 1
    largest = 0
    for text in _churning(3_000):  # 60 eras of 40 words: 2,400 admitted over the stream
        model.learn_one(text)
        largest = max(largest, model.nmf.n_features)
        assert set(model.nmf.features) <= set(model.vectorizer.vocabulary.admitted) | set(
            model.vectorizer.vocabulary.pruned)
    assert largest <= bound
    assert model.nmf._statistics.W.shape[0] <= 2 * bound  # the arrays' capacity too
    restored = TopicModel.from_bytes(model.to_bytes())
    assert restored.nmf == model.nmf
    assert restored.vectorizer.vocabulary.state() == model.vectorizer.vocabulary.state()


def test_a_word_admitted_again_before_its_removal_keeps_its_row():
    model = TopicModel(n_components=2, min_df=1, max_words=20, seed=0)
    model.learn_one("gold silver")
    vocabulary = model.vectorizer.vocabulary
    vocabulary.pruned = ["gold", "silver"]  # both pruned; "gold" admitted again since
    del vocabulary.admitted["silver"]
    model.remove_pruned()
    assert model.nmf.features == ["gold"] and vocabulary.pruned == []

