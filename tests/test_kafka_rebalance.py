"""Rebalance: two consumers in one group split the partitions; when one leaves (SIGTERM)
or dies (SIGKILL), the other takes its partitions over from its last checkpoint and
nothing is lost or learned twice."""

from __future__ import annotations

import json
import signal
from collections import Counter, defaultdict

import pytest

from consumers.checkpoint import CheckpointStore
from tests.kafka_broker import (
    FAST_GROUP_FLAGS,
    PacedProducer,
    TopicReader,
    create_topic,
    spawn,
    unique,
    wait_for,
)


def _args(bootstrap, topic, group, ckpt_dir, worker, *extra):
    return ["consume", "microbiome", "--bootstrap-servers", bootstrap, "--topic", topic,
            "--group", group, "--checkpoint-dir", str(ckpt_dir), "--worker-id", worker,
            "--output-topic", topic + ".out", "--model-topic", "",
            "--checkpoint-every", "400", "--checkpoint-interval", "0.5",
            "--components", "4", "--no-track", "--log-level", "INFO", *FAST_GROUP_FLAGS, *extra]


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_survivor_takes_over_from_last_checkpoint(kafka_broker, tmp_path, how):
    bootstrap = kafka_broker.bootstrap
    topic = create_topic(bootstrap, unique("reb"), partitions=4)
    group, ckpt = unique("g"), tmp_path / "ckpt"
    outputs = TopicReader(bootstrap, topic + ".out")
    log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
    a = spawn(*_args(bootstrap, topic, group, ckpt, "A", "--exit-when-idle", "5"), log=log_a)
    b = spawn(*_args(bootstrap, topic, group, ckpt, "B"), log=log_b)
    # a steady stream until B has done real work, whenever B manages to join
    stream = PacedProducer(bootstrap, topic, rate=1500, seed=21).start()
    try:
        def both_working() -> bool:
            outputs.poll()
            workers = Counter(json.loads(m.value())["worker"] for m in outputs.messages)
            if not (workers["A"] > 0 and workers["B"] >= 300):
                return False
            # B's outputs run ahead of its checkpoints (at-least-once outputs): the takeover
            # is from B's last checkpoint, so B must have written one with learned records,
            # while it shared the partitions with A (the group's first member may own all
            # four for a while before the other joins)
            saved = CheckpointStore(ckpt, "B").read()
            return (saved is not None and any(n > 0 for n in saved.learned.values())
                    and 0 < len(saved.owned) < 4)

        wait_for(both_working, timeout=90, interval=0, what="both consumers to emit outputs")
        b.send_signal(signal.SIGTERM if how == "sigterm" else signal.SIGKILL)
        assert b.wait(timeout=30) == (0 if how == "sigterm" else -signal.SIGKILL)
        # more records arrive for B's partitions after it is gone: about a second's worth,
        # counted rather than slept for (a loaded machine may produce none in a given second)
        gone = len(stream.acked)
        wait_for(lambda: len(stream.acked) >= gone + 1500, timeout=60,
                 what="1,500 more records acknowledged after B left")
        produced = stream.stop()
        assert a.wait(timeout=120) == 0, f"consumer A failed, see {log_a}"
        outputs.drain(idle=1.0)
    finally:
        if stream.running:
            stream.stop()
        for proc in (a, b):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        outputs.close()

    per_partition = Counter(p for p, _ in produced)
    ckpt_a = CheckpointStore(ckpt, "A").read()
    ckpt_b = CheckpointStore(ckpt, "B").read()
    assert ckpt_a is not None and ckpt_b is not None

    # B owned a share of the partitions at its last checkpoint, and had learned from them
    assert 0 < len(ckpt_b.owned) < 4
    b_parts = {key for key in ckpt_b.owned if ckpt_b.learned.get(key, 0) > 0}
    assert b_parts

    # exactly once across the group: A's and B's checkpoints together learned each message
    total = Counter(ckpt_a.learned) + Counter(ckpt_b.learned)
    assert dict(total) == {f"{topic}:{p}": n for p, n in per_partition.items()}
    assert set(ckpt_a.owned) == {f"{topic}:{p}" for p in range(4)}

    # A resumed B's partitions exactly where B's last checkpoint left them
    by_worker = defaultdict(lambda: defaultdict(list))
    for msg in outputs.messages:
        rec = json.loads(msg.value())
        by_worker[rec["worker"]][f"{topic}:{rec['source']['partition']}"].append(
            rec["source"]["offset"])
    for key in b_parts:
        # (A may have read the partition before B joined too: on Apache Kafka the first
        # member of the group gets every partition at once, on Tansu both join together)
        after_b = [o for o in by_worker["A"][key] if o >= min(by_worker["B"][key])]
        assert min(after_b) == ckpt_b.offsets[key]

    # and no input offset lacks an output
    missing = set(produced) - set(_sources(outputs.messages))
    assert not missing, f"{len(missing)} offsets without output, e.g. {sorted(missing)[:5]}"


def _sources(messages):
    for msg in messages:
        src = json.loads(msg.value())["source"]
        yield src["partition"], src["offset"]
