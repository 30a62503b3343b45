"""Crash consistency: a consumer subprocess SIGKILLed at random points and restarted.

Single partition (with the subject tracker, the consumer's default): the final state
equals, bit for bit, that of an uninterrupted run over the same records (the application
fed in-process, no Kafka). Several partitions: the final
checkpoint has learned every message exactly once per partition (without the tracker, whose
state the first test already covers, to keep the test short). Both: every input
offset has at least one output record (at-least-once outputs; the duplicates come from
work redone after a kill).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from consumers.checkpoint import CheckpointStore
from consumers.microbiome import model_from_blobs, w_sha256
from onlinenmf.tracking import Tracker
from tests.kafka_broker import (
    FAST_GROUP_FLAGS,
    TopicReader,
    create_topic,
    kill_and_drain,
    produce,
    reference_app,
    run_cli,
    synthetic_messages,
    unique,
)

N_MESSAGES = 20_000
N_KILLS = 5
CHECKPOINT_EVERY = 1500
PARAMS = {"n_components": 5, "refresh_every": 50, "seed": 2}
MODEL_FLAGS = ["--components", "5", "--refresh-every", "50", "--seed", "2", "--beta", "1"]


def _consume_args(bootstrap, topic, group, ckpt_dir, *extra):
    return ["consume", "microbiome", "--bootstrap-servers", bootstrap, "--topic", topic,
            "--group", group, "--checkpoint-dir", str(ckpt_dir), "--worker-id", "w",
            "--output-topic", topic + ".out", "--model-topic", topic + ".model",
            # checkpoints by the record count alone (and no stream here ends on a multiple of
            # it): kill_and_drain(store=...) needs work left to redo at each kill
            "--checkpoint-every", str(CHECKPOINT_EVERY), "--checkpoint-interval", "3600",
            "--log-level", "INFO", *MODEL_FLAGS, *FAST_GROUP_FLAGS, *extra]


def _kill_and_restart(bootstrap, topic, ckpt_dir, log: Path, seed: int, expected: int,
                      kills: int = N_KILLS, between: tuple[int, int] = (300, 3500),
                      extra: tuple[str, ...] | list[str] = ()) -> list:
    """Run the consumer, SIGKILL it ``kills`` times after a random number of new outputs,
    each time with work left to redo (kill_and_drain), then let a last run drain the topic
    and exit. Returns the output messages."""
    group = unique("g")
    outputs = TopicReader(bootstrap, topic + ".out")
    try:
        return kill_and_drain(
            outputs, lambda *more: _consume_args(bootstrap, topic, group, ckpt_dir, *extra,
                                                 *more),
            expected=expected, kills=kills, seed=seed, between=between, log=log,
            store=CheckpointStore(ckpt_dir, "w"))
    finally:
        outputs.close()


def _check_outputs(outputs, produced: list[tuple[int, int]]) -> Counter:
    seen = Counter()
    for msg in outputs:
        src = json.loads(msg.value())["source"]
        seen[(src["partition"], src["offset"])] += 1
    missing = set(produced) - set(seen)
    assert not missing, f"{len(missing)} input offsets without output, e.g. {sorted(missing)[:5]}"
    assert set(seen) <= set(produced)
    return seen


def test_sigkill_single_partition_gives_the_uninterrupted_w(kafka_broker, tmp_path):
    bootstrap = kafka_broker.bootstrap
    topic = create_topic(bootstrap, unique("crash1"), partitions=1)
    # many subjects, so that the tracker's per-subject histories (and its cost) stay short
    messages = synthetic_messages(N_MESSAGES, seed=11, subjects=2000)
    produced = produce(bootstrap, topic, messages)

    outputs = _kill_and_restart(bootstrap, topic, tmp_path / "ckpt", tmp_path / "consumer.log",
                                seed=1, expected=N_MESSAGES)
    seen = _check_outputs(outputs, produced)
    assert sum(seen.values()) > N_MESSAGES, "no output was redone: were the kills effective?"

    reference = reference_app([v for _, v in messages], model_params=PARAMS)
    ckpt = CheckpointStore(tmp_path / "ckpt", "w").read()
    model = model_from_blobs(ckpt.blobs)
    assert model.samples_learned == N_MESSAGES
    assert np.array_equal(model.W, reference.model.W)
    assert model == reference.model  # statistics, counters, ids: everything
    tracker = Tracker.from_bytes(ckpt.blobs["tracker"])
    assert tracker.events == reference.tracker.events
    for subject in ("s0", "s1234", "s1999"):
        assert tracker.trajectory(subject).equals(reference.tracker.trajectory(subject))
    assert ckpt.learned == {f"{topic}:0": N_MESSAGES}
    assert ckpt.offsets == {f"{topic}:0": N_MESSAGES}
    assert ckpt.sequence > N_KILLS  # checkpoints were written between the kills

    info = json.loads(run_cli("inspect", "--checkpoint-dir", str(tmp_path / "ckpt"),
                              "--json").stdout)
    assert info["w_sha256"] == w_sha256(reference.model.W)
    assert info["samples_learned"] == N_MESSAGES


def test_sigkill_multi_partition_learns_each_message_once(kafka_broker, tmp_path):
    bootstrap = kafka_broker.bootstrap
    topic = create_topic(bootstrap, unique("crash4"), partitions=4)
    produced = produce(bootstrap, topic, synthetic_messages(N_MESSAGES, seed=12))
    per_partition = Counter(p for p, _ in produced)
    assert len(per_partition) == 4

    outputs = _kill_and_restart(bootstrap, topic, tmp_path / "ckpt", tmp_path / "consumer.log",
                                seed=2, expected=N_MESSAGES, extra=["--no-track"])
    _check_outputs(outputs, produced)
    ckpt = CheckpointStore(tmp_path / "ckpt", "w").read()
    assert ckpt.learned == {f"{topic}:{p}": n for p, n in per_partition.items()}
    assert ckpt.offsets == {f"{topic}:{p}": max(o for q, o in produced if q == p) + 1
                            for p in per_partition}
    assert model_from_blobs(ckpt.blobs).samples_learned == N_MESSAGES


def test_beta_one_and_a_half_through_kafka_survives_a_kill(kafka_broker, tmp_path):
    """Any beta >= 0 reaches the consumer (issue 11): at beta = 1.5 (compound Poisson-gamma)
    a SIGKILLed and restarted consumer ends with the W of an uninterrupted in-process run."""
    bootstrap = kafka_broker.bootstrap
    topic = create_topic(bootstrap, unique("beta15"), partitions=1)
    n = 3100  # not a multiple of CHECKPOINT_EVERY (see kill_and_drain)
    messages = synthetic_messages(n, seed=13, subjects=300)
    produce(bootstrap, topic, messages)
    ckpt_dir = tmp_path / "ckpt"
    # the last --beta on the command line wins over MODEL_FLAGS's
    outputs = _kill_and_restart(bootstrap, topic, ckpt_dir, tmp_path / "consumer.log", seed=3,
                                expected=n, kills=1, between=(1200, 1200),
                                extra=["--beta", "1.5"])
    assert len(outputs) > n, "no output was redone: was the kill effective?"

    reference = reference_app([v for _, v in messages], model_params={**PARAMS, "beta": 1.5})
    model = model_from_blobs(CheckpointStore(ckpt_dir, "w").read().blobs)
    assert model.beta == 1.5 and model.samples_learned == n
    assert np.array_equal(model.W, reference.model.W)
