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
import random
import signal
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
    produce,
    reference_app,
    run_cli,
    spawn,
    synthetic_messages,
    unique,
    wait_for,
)

N_MESSAGES = 20_000
N_KILLS = 5
PARAMS = {"n_components": 5, "refresh_every": 50, "seed": 2}
MODEL_FLAGS = ["--components", "5", "--refresh-every", "50", "--seed", "2", "--beta", "1"]


def _consume_args(bootstrap, topic, group, ckpt_dir, *extra):
    return ["consume", "microbiome", "--bootstrap-servers", bootstrap, "--topic", topic,
            "--group", group, "--checkpoint-dir", str(ckpt_dir), "--worker-id", "w",
            "--output-topic", topic + ".out", "--model-topic", topic + ".model",
            "--checkpoint-every", "1500", "--checkpoint-interval", "0.7",
            "--log-level", "INFO", *MODEL_FLAGS, *FAST_GROUP_FLAGS, *extra]


def _kill_and_restart(bootstrap, topic, ckpt_dir, log: Path, seed: int,
                      extra: tuple[str, ...] | list[str] = ()) -> tuple[int, list]:
    """Run the consumer, SIGKILL it N_KILLS times after a random number of new outputs,
    then let a last run drain the topic and exit. Returns (kills done, output messages)."""
    rng = random.Random(seed)
    group = unique("g")
    outputs = TopicReader(bootstrap, topic + ".out")
    kills = 0
    try:
        for _ in range(N_KILLS):
            proc = spawn(*_consume_args(bootstrap, topic, group, ckpt_dir, *extra), log=log)
            target = outputs.poll() + rng.randint(300, 3500)
            wait_for(lambda p=proc, t=target: outputs.poll() >= t or p.poll() is not None,
                     timeout=120, interval=0, what="consumer progress")
            assert proc.poll() is None, f"consumer exited early, see {log}"
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
        last = spawn(*_consume_args(bootstrap, topic, group, ckpt_dir, *extra,
                                    "--exit-when-idle", "2"), log=log)
        assert last.wait(timeout=180) == 0, f"final consumer failed, see {log}"
        return kills, outputs.drain(idle=1.0)
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

    kills, outputs = _kill_and_restart(bootstrap, topic, tmp_path / "ckpt",
                                       tmp_path / "consumer.log", seed=1)
    assert kills >= N_KILLS
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
    assert ckpt.sequence > kills  # checkpoints were written between the kills

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

    kills, outputs = _kill_and_restart(bootstrap, topic, tmp_path / "ckpt",
                                       tmp_path / "consumer.log", seed=2, extra=["--no-track"])
    assert kills >= N_KILLS
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
    n = 3000
    messages = synthetic_messages(n, seed=13, subjects=300)
    produce(bootstrap, topic, messages)
    ckpt_dir, log, group = tmp_path / "ckpt", tmp_path / "consumer.log", unique("g")
    outputs = TopicReader(bootstrap, topic + ".out")
    try:
        # the last --beta on the command line wins over MODEL_FLAGS's
        args = _consume_args(bootstrap, topic, group, ckpt_dir, "--beta", "1.5")
        proc = spawn(*args, log=log)
        wait_for(lambda: outputs.poll() >= 1200 or proc.poll() is not None, timeout=120,
                 interval=0, what="consumer progress")
        assert proc.poll() is None, f"consumer exited early, see {log}"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        last = spawn(*args, "--exit-when-idle", "2", log=log)
        assert last.wait(timeout=180) == 0, f"final consumer failed, see {log}"
    finally:
        outputs.close()

    reference = reference_app([v for _, v in messages], model_params={**PARAMS, "beta": 1.5})
    model = model_from_blobs(CheckpointStore(ckpt_dir, "w").read().blobs)
    assert model.beta == 1.5 and model.samples_learned == n
    assert np.array_equal(model.W, reference.model.W)
