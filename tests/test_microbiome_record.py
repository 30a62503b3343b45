"""The microbiome consumer's output record carries each sample's drift score (issue 13:
``OnlineNMF.last_drift_scores``), null where the score is NaN (JSON has no NaN)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from consumers.application import Source
from consumers.microbiome import MicrobiomeApp, encode_sample
from onlinenmf.monitor import DRIFT_WARMUP

TAXA = [f"t{j}" for j in range(12)]


def _records(app: MicrobiomeApp, n: int) -> list[tuple[dict, float]]:
    """Each sample's output record, with the model's drift score right after learning it."""
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        counts = {t: int(c) for t, c in zip(TAXA, rng.poisson(20, len(TAXA))) if c > 0}
        sample = app.decode(encode_sample(f"S{i % 3}", float(i), f"s{i}", counts))
        result = app.process(sample, Source("microbiome.samples", 0, i, None, b"k", "w"))
        (record,) = [json.loads(v) for topic, _, v in result.outputs
                     if topic == "microbiome.communities"]
        out.append((record, float(app.model.last_drift_scores[-1])))
    return out


@pytest.mark.parametrize("track", [True, False], ids=["tracked", "untracked"])
def test_the_record_carries_the_samples_drift_score(track):
    app = MicrobiomeApp(model_params={"n_components": 2, "seed": 0}, track=track)
    app.restore(None)
    records = _records(app, 6 * DRIFT_WARMUP)
    for record, score in records:
        expected = score if math.isfinite(score) else None
        assert "drift_score" in record and record["drift_score"] == expected
    scores = [record["drift_score"] for record, _ in records]
    assert scores[0] is None  # before the detector's first reference level
    assert sum(s is not None for s in scores) > DRIFT_WARMUP  # then each sample's own score
    assert len({s for s in scores if s is not None}) > 1


def test_without_a_detector_the_drift_score_is_null_not_left_out():
    app = MicrobiomeApp(model_params={"n_components": 2, "seed": 0, "drift_threshold": None})
    app.restore(None)
    assert [record["drift_score"] for record, _ in _records(app, 30)] == [None] * 30
