"""The river adapter NMFRecommender: river 0.26.1's check suite (one pytest case per check)
and the Ranker contract the suite does not exercise."""

from __future__ import annotations

import pickle

import pandas  # noqa: F401  (the suite differs without pandas: keep it the full one)
import pytest
import sklearn  # noqa: F401  (river's check generation imports it)
from river import base, checks
from river.reco.base import Ranker

from onlinenmf.reco import RecoNMF
from onlinenmf.river import NMFRecommender


def _cases():
    for params in NMFRecommender._unit_test_params():
        estimator = NMFRecommender(**params)
        label = ",".join(f"{k}={v}" for k, v in params.items()) or "defaults"
        for check in checks.yield_checks(estimator):
            if check.__name__ in estimator._unit_test_skips():
                continue
            yield pytest.param(estimator, check, id=f"NMFRecommender({label}):{check.__name__}")


CASES = list(_cases())


@pytest.mark.parametrize("estimator, check", CASES)
def test_river_check(estimator, check):
    check(estimator.clone())


def test_suite_has_the_ranker_routine_and_no_extra_skips():
    names = {param.values[1].__name__ for param in CASES}
    assert "check_reco_routine" in names
    # only the two that Ranker itself declares (feature checks make no sense for a ranker)
    assert NMFRecommender()._unit_test_skips() == Ranker._unit_test_skips(NMFRecommender())


def test_is_a_ranker_only():
    ranker = NMFRecommender()
    assert isinstance(ranker, Ranker)
    assert not isinstance(ranker, base.Regressor)


def test_rank_sorts_by_predict_one_and_accepts_bool_feedback():
    ranker = NMFRecommender(n_components=2, feedback="implicit", refresh_every=3)
    for t in range(60):
        ranker.learn_one(f"u{t % 4}", f"i{(t * 7) % 9}", t % 3 != 0)
    items = {f"i{j}" for j in range(9)} | {"never-seen"}
    ranked = ranker.rank("u1", items)
    assert sorted(ranked) == sorted(items)
    scores = [ranker.predict_one("u1", item) for item in ranked]
    assert scores == sorted(scores, reverse=True)
    assert ranker.rank("u1", set()) == []


def test_adapter_numbers_are_the_core_models():
    events = [("a", "x", 4), ("b", "x", 5), ("a", "y", 1), ("c", "y", 2), ("c", "z", 5)]
    ranker = NMFRecommender(rating_range=(1, 5), n_components=3, seed=2)
    core = RecoNMF(rating_range=(1, 5), n_components=3, seed=2)
    for user, item, y in events:
        ranker.learn_one(user, item, y)
        core.learn_one(user, item, y)
    assert ranker.model == core
    assert ranker.predict_one("b", "z") == core.predict_one("b", "z")
    assert ranker.recommend("a", n=2) == core.recommend("a", n=2)
    clone = pickle.loads(pickle.dumps(ranker))
    assert clone.model == core


def test_bad_rating_is_refused_without_trace():
    ranker = NMFRecommender(rating_range=(1, 5))
    ranker.learn_one("a", "x", 3)
    before = ranker.model.to_bytes()
    with pytest.raises(ValueError, match="outside rating_range"):
        ranker.learn_one("a", "y", 7)
    assert ranker.model.to_bytes() == before
