"""Anomaly marks surfaced where users read them: the consumer's output record and the report.

The tracker's own tests (tests/test_tracking.py) check when a sample is marked; these check
that a mark reaches the microbiome consumer's JSON record (and that an unmarked record has no
``anomaly`` field) and the HTML report's events section, in process (no broker).
"""

from __future__ import annotations

import html
import json

import numpy as np

from consumers.application import Source
from consumers.microbiome.application import MicrobiomeApp
from consumers.microbiome.schema import encode_sample
from consumers.report import write_report

FEATURES = [f"t{j}" for j in range(20)]


def _sample(rng: np.random.Generator, taxa) -> dict[str, float]:
    return {FEATURES[j]: float(rng.poisson(50)) for j in taxa}


def test_a_marked_sample_carries_its_mark_to_the_record_and_the_report(tmp_path):
    # Two patterns (taxa 0-9, 10-19) learned first; then subject s, always of the first
    # pattern, gets a sample no mix of the two explains (half of each): it is marked.
    app = MicrobiomeApp(model_params={"n_components": 2, "beta": 1, "refresh_every": 200,
                                      "seed": 0}, model_topic=None)
    app.restore(None)
    rng = np.random.default_rng(1)
    records = []
    for i in range(213):
        if i < 200:  # the two patterns, alternately, from 100 other subjects
            subject, taxa = f"p{i % 100}", range(10) if i % 2 == 0 else range(10, 20)
        else:
            subject, taxa = "s", range(10) if i < 212 else [*range(5), *range(10, 15)]
        sample = app.decode(encode_sample(subject, float(i), f"id{i}", _sample(rng, taxa)))
        result = app.process(sample, Source("microbiome.samples", 0, i, None,
                                            subject.encode(), "main"))
        (_, _, value), = result.outputs
        records.append(json.loads(value))
    assert all("anomaly" not in record for record in records[200:212])
    marked = records[212]
    assert marked["anomaly"]["z"] >= app.tracker.anomaly_z and marked["anomaly"]["ratio"] > 10
    assert [e["kind"] for e in marked["events"]] == ["anomaly"]

    page = write_report(app.tracker, tmp_path / "r.html", n_subjects=2).read_text()
    assert "Samples marked unusual for their subject" in page
    assert html.escape(marked["events"][0]["detail"], quote=False) in page
