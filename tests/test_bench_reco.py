"""benchmarks/bench_reco.py's timing: rounds interleaved, the fastest kept, scores checked."""

import random

import pytest

from benchmarks import bench_reco
from onlinenmf.reco import RecoNMF

EVENTS = [(u % 7, (3 * u) % 11, float(u % 5)) for u in range(300)]


class Coin:
    """A model whose predictions are not the same from one round to the next."""

    def predict_one(self, user, item):
        return random.random()

    def learn_one(self, user, item, value):
        pass


def test_rounds_interleave_and_the_fastest_rate_is_kept(monkeypatch):
    passes, measure = [], bench_reco.prequential_ratings

    def recorded(model, events, low, high):
        passes.append(measure(model, events, low, high))
        return dict(passes[-1])

    monkeypatch.setattr(bench_reco, "prequential_ratings", recorded)
    models = {"ours": lambda: RecoNMF(2, rating_range=(0, 4)),
              "biases": lambda: RecoNMF(2, rating_range=(0, 4), **bench_reco.NO_FACTORS)}
    results = bench_reco.fastest_of_rounds(models, EVENTS, 0.0, 4.0, rounds=3)
    assert len(passes) == 6  # interleaved: ours, biases, ours, biases, ...
    for name, first in (("ours", 0), ("biases", 1)):
        mine = passes[first::2]
        assert results[name]["events_per_s"] == max(r["events_per_s"] for r in mine)
        assert results[name]["rmse"] == mine[0]["rmse"]


def test_a_model_whose_scores_change_between_rounds_is_refused():
    with pytest.raises(RuntimeError, match="coin: scores differ between rounds"):
        bench_reco.fastest_of_rounds({"coin": Coin}, EVENTS, 0.0, 4.0, rounds=2)
