"""The golden streams: the model core reproduces, bit for bit, what it answered before the
redesign of issue 11 (see ``tests/data/golden/make_golden.py``), and reads its old snapshots.

Each scenario streams 900 samples with a drift and late features through ``learn_one`` and
``learn_many``, with a snapshot round trip half-way: refreshes, dead-component re-seeding,
loss alarms, rank adaptation (prunes and births), sparsity and forgetting re-estimation with
refits after the drift, and two workers sharing a dictionary, for beta = 0, 1 and 2.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from onlinenmf import OnlineNMF

GOLDEN = Path(__file__).resolve().parent / "data" / "golden"


def _scenarios():
    spec = importlib.util.spec_from_file_location("make_golden", GOLDEN / "make_golden.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


scenarios = _scenarios()
for _params in scenarios.SCENARIOS.values():
    _params.update(scenarios.PINNED)
NAMES = list(scenarios.SCENARIOS)
SNAPSHOTS = [name for name in NAMES if (GOLDEN / f"snapshot_v1_{name}.npz").exists()]


@pytest.fixture(scope="module")
def golden():
    X, features = scenarios.load_stream()
    with np.load(GOLDEN / "golden.npz", allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    facts = json.loads((GOLDEN / "golden.json").read_text())
    return X, features, arrays, facts


def assert_outputs(name, part, outputs, arrays):
    expected_losses = arrays[f"{name}.{part}.losses"]
    losses = outputs["losses"]
    assert losses.shape == expected_losses.shape
    differ = np.flatnonzero(losses != expected_losses)
    assert differ.size == 0, f"{name} ({part}): first loss that differs is sample {differ[0]}"
    digests = outputs["digests"]
    differ = np.flatnonzero(digests != arrays[f"{name}.{part}.digests"])
    assert differ.size == 0, f"{name} ({part}): first h/H that differs is output {differ[0]}"


def assert_final(name, part, final, arrays, facts):
    assert np.array_equal(final.pop("W"), arrays[f"{name}.{part}.W"])
    assert np.array_equal(final.pop("transform"), arrays[f"{name}.{part}.transform"])
    expected = facts[name][part]
    final = json.loads(json.dumps(final))  # the JSON view: tuples become lists
    for key in expected:
        assert final[key] == expected[key], f"{name} ({part}): {key} differs"


@pytest.mark.parametrize("name", NAMES)
def test_stream_is_reproduced_bit_for_bit(name, golden):
    X, features, arrays, facts = golden
    record = scenarios.run(name, X, features, OnlineNMF)
    assert_outputs(name, "first", record["first"], arrays)
    assert_outputs(name, "second", record["second"], arrays)
    assert_final(name, "final", record["final"], arrays, facts)
    if "final_peer" in record:
        assert_final(name, "final_peer", record["final_peer"], arrays, facts)


@pytest.mark.parametrize("name", SNAPSHOTS)
def test_old_snapshot_continues_the_stream_bit_for_bit(name, golden):
    """A snapshot written by the pre-redesign code (format version 1) loads and the model
    continues exactly as the uninterrupted run did; for a scenario re-recorded since
    (``make_golden.RERECORDED``), exactly as recorded from that snapshot (``resumed``)."""
    X, features, arrays, facts = golden
    data = (GOLDEN / f"snapshot_v1_{name}.npz").read_bytes()
    model = OnlineNMF.from_bytes(data, source=f"snapshot_v1_{name}.npz")
    again = OnlineNMF.from_bytes(model.to_bytes())  # today's format, read back
    assert again == model
    record = scenarios.continue_from(model, X, features)
    resumed = name in scenarios.RERECORDED
    assert_outputs(name, "resumed" if resumed else "second", record["outputs"], arrays)
    assert_final(name, "resumed_final" if resumed else "final", record["final"], arrays, facts)
