"""Shared dictionary (``--share-dictionary``): two workers of one group, each owning the
partitions of subjects that carry only half of the planted communities. Sharing their
statistics through the stats topic, each learns all 8; without it, each learns its own 4."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import confluent_kafka as ck
import numpy as np

from consumers.checkpoint import CheckpointStore
from consumers.microbiome import encode_sample, model_from_blobs
from consumers.shared import SharedDictionary, decode_statistics
from tests.kafka_broker import (
    FAST_GROUP_FLAGS,
    create_topic,
    exit_story,
    produce,
    read_topic,
    spawn,
    synthetic_messages,
    unique,
    wait_for,
)
from tests.test_sharing import matched_cosines, split_stream

N_PER_SIDE = 800
CHUNK = 25  # records per partition and round: 50 per worker, one refresh
ASSIGNED = re.compile(r"assigned \[(.*)\]")


def _args(bootstrap, topic, group, ckpt_dir, worker, share):
    return ["consume", "microbiome", "--bootstrap-servers", bootstrap, "--topic", topic,
            "--group", group, "--checkpoint-dir", str(ckpt_dir), "--worker-id", worker,
            "--output-topic", "", "--model-topic", "", "--components", "8",
            "--refresh-every", "50", "--no-track", "--exit-when-idle", "4",
            "--log-level", "INFO", *FAST_GROUP_FLAGS, *(["--share-dictionary"] if share else [])]


def _owned(log: Path) -> list[int] | None:
    """The partitions of the worker's latest assignment, from its log."""
    found = ASSIGNED.findall(log.read_text()) if log.exists() else []
    return [int(p) for p in re.findall(r", (\d+)\)", found[-1])] if found else None


def run_group(bootstrap: str, tmp: Path, share: bool):
    """Start two workers, wait until each owns two partitions, then give the partitions of
    the first worker subjects with communities A..D and those of the second E..H."""
    tmp.mkdir(parents=True)
    topic = create_topic(bootstrap, unique("shared"), partitions=4)
    group, ckpt = unique("g"), tmp / "ckpt"
    logs = {w: tmp / f"{w}.log" for w in ("A", "B")}
    procs = {w: spawn(*_args(bootstrap, topic, group, ckpt, w, share), log=logs[w])
             for w in logs}
    try:
        def split() -> dict[str, list[int]] | None:
            owned = {w: _owned(log) for w, log in logs.items()}
            if all(owned.values()) and sorted(owned["A"] + owned["B"]) == [0, 1, 2, 3]:
                return owned if len(owned["A"]) == 2 else None
            return None

        owned = wait_for(split, timeout=60, interval=0.2, what="two partitions per worker")
        planted, first, second = split_stream(N_PER_SIDE)
        streams = []
        for worker, samples in (("A", first), ("B", second)):
            for p, partition in enumerate(owned[worker]):
                records = [(f"{worker}{p}s{i % 10}".encode(),
                            encode_sample(f"{worker}{p}s{i % 10}", i, f"{worker}{p}-{i}", x))
                           for i, x in enumerate(samples[p::2])]
                streams.append((partition, records))
        # a live stream, not a backlog: each round is about one refresh of each worker, so
        # that the workers' statistics can travel while they learn
        producer = ck.Producer({"bootstrap.servers": bootstrap, "linger.ms": 5,
                                "log_level": 3})
        for start in range(0, N_PER_SIDE // 2, CHUNK):
            for partition, records in streams:
                for key, value in records[start : start + CHUNK]:
                    producer.produce(topic, key=key, value=value, partition=partition)
            assert producer.flush(30) == 0
            time.sleep(0.3)
        for worker, proc in procs.items():
            assert proc.wait(timeout=120) == 0, f"worker {worker} failed, see {logs[worker]}"
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    models = {}
    for worker in logs:
        ckpt_read = CheckpointStore(ckpt, worker).read()
        assert ckpt_read is not None
        assert sum(ckpt_read.learned.values()) == N_PER_SIDE  # each learned its own half
        models[worker] = (model_from_blobs(ckpt_read.blobs), ckpt_read.summary)
    return planted, models, topic


def test_shared_dictionary_learns_every_community(kafka_broker, tmp_path):
    bootstrap = kafka_broker.bootstrap
    planted, models, topic = run_group(bootstrap, tmp_path / "shared", share=True)
    for worker, (model, summary) in models.items():
        cosines = matched_cosines(model, planted)
        print(f"shared, worker {worker}: matched cosines {np.round(cosines, 3)}")
        assert cosines.min() >= 0.9, (worker, cosines)
        assert summary["peers"] == [w for w in "AB" if w != worker]
    # the stats topic: states of both workers, numbered 1, 2, ... per worker
    sequences: dict[str, list[int]] = {}
    for message in read_topic(bootstrap, topic + ".stats", min_count=2):
        worker, sequence, stats = decode_statistics(message.value())
        assert message.key() == worker.encode()
        sequences.setdefault(worker, []).append(sequence)
    assert sorted(sequences) == ["A", "B"]
    assert all(s == list(range(1, len(s) + 1)) for s in sequences.values())
    # what a restarted worker A reads on start: B's latest state, and where its own
    # numbering resumes
    follower = SharedDictionary(bootstrap, topic + ".stats", "A")
    try:
        follower.start()
        assert sorted(follower.latest) == ["B"]
        assert follower.latest["B"][0] == max(sequences["B"])
        assert follower.sequence == max(sequences["A"])
    finally:
        follower.close()

    planted, models, _ = run_group(bootstrap, tmp_path / "alone", share=False)
    for worker, (model, summary) in models.items():
        cosines = np.sort(matched_cosines(model, planted))
        print(f"alone, worker {worker}: matched cosines {np.round(cosines, 3)}")
        assert cosines[4:].min() >= 0.9  # its own four communities
        assert cosines[:4].max() < 0.9  # not the other worker's
        assert "peers" not in summary


def test_a_worker_started_in_an_outage_waits_the_broker_timeout_for_the_stats_topic(
        private_broker, tmp_path):
    """A shared-dictionary worker started while its broker is frozen (SIGSTOP) for 45 s,
    with --broker-timeout 120: the stats topic's admin client and consumer wait for a broker
    as long as the loop does, then the worker learns the stream and exits 0 when idle
    (issue 15: before, the admin client gave up after kafka-python's 30 s and the worker
    exited 3 although its broker timeout was longer)."""
    bootstrap = private_broker.bootstrap
    topic = create_topic(bootstrap, unique("outage"), partitions=1)
    produce(bootstrap, topic, synthetic_messages(200, seed=15))
    ckpt, log = tmp_path / "ckpt", tmp_path / "w.log"
    private_broker.pause()
    outage = threading.Timer(45.0, private_broker.resume)
    outage.start()
    worker = spawn(*_args(bootstrap, topic, unique("g"), ckpt, "w", share=True),
                   "--broker-timeout", "120", log=log)
    try:
        status = worker.wait(timeout=300)
    finally:
        outage.join()
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert status == 0, exit_story(log.read_text())
    assert CheckpointStore(ckpt, "w").read().learned == {f"{topic}:0": 200}
