"""Broker outage: the broker is frozen (SIGSTOP) for 10 s while a stream flows in and the
consumer works; after SIGCONT the consumer carries on, and in the end every record is
learned exactly once and has an output record.

After such a freeze the group may rejoin (the broker expired the member's session); the
leader assigns from its own metadata, and an assignment made while a subscribed topic was
missing there is redone (the second test makes that happen on demand).
"""

from __future__ import annotations

import json
import signal
import threading
import time
import urllib.request
from collections import Counter

import pytest
from kafka.coordinator.consumer import ConsumerCoordinator
from prometheus_client.parser import text_string_to_metric_families

from consumers.broker_process import free_port
from consumers.checkpoint import CheckpointStore
from consumers.loop import ConsumerLoop, LoopConfig
from consumers.microbiome import MicrobiomeApp
from tests.kafka_broker import (
    FAST_GROUP,
    FAST_GROUP_FLAGS,
    TopicReader,
    create_topic,
    produce,
    spawn,
    synthetic_messages,
    unique,
    wait_for,
)

BACKLOG = 15_000
N = 4000
RATE = 400.0  # messages per second: the stream outlasts the outage


def _paced(messages, rate):
    start = time.monotonic()
    for i, message in enumerate(messages):
        ahead = i / rate - (time.monotonic() - start)
        if ahead > 0:
            time.sleep(ahead)
        yield message


def test_consumer_survives_a_frozen_broker(private_broker, tmp_path):
    bootstrap = private_broker.bootstrap
    topic = create_topic(bootstrap, unique("outage"), partitions=2)
    ckpt = tmp_path / "ckpt"
    # a backlog, so that the consumer is busy (outputs in flight) when the broker freezes,
    # then a paced stream that keeps arriving through the outage
    produced = produce(bootstrap, topic, synthetic_messages(BACKLOG, seed=30))
    producer = threading.Thread(target=lambda: produced.extend(produce(
        bootstrap, topic, _paced(synthetic_messages(N, seed=31, start=BACKLOG), RATE))))
    outputs = TopicReader(bootstrap, topic + ".out")
    log = tmp_path / "consumer.log"
    metrics_port = free_port()
    consumer = spawn("consume", "microbiome", "--bootstrap-servers", bootstrap,
                     "--topic", topic, "--group", unique("g"), "--checkpoint-dir", str(ckpt),
                     "--worker-id", "w", "--output-topic", topic + ".out", "--model-topic", "",
                     "--no-track",  # loop semantics under test; the tracker costs time
                     "--metrics-port", str(metrics_port),
                     "--checkpoint-every", "500", "--checkpoint-interval", "1",
                     "--flush-timeout", "2",  # shorter than the outage: checkpoints wait
                     "--log-level", "DEBUG", *FAST_GROUP_FLAGS, log=log)
    try:
        wait_for(lambda: outputs.poll() >= 500, timeout=60, interval=0,
                 what="the consumer to start working")
        producer.start()
        private_broker.process.pause()
        time.sleep(10)
        private_broker.process.resume()
        assert consumer.poll() is None, f"consumer died during the outage, see {log}"
        producer.join(timeout=120)
        assert len(produced) == BACKLOG + N
        per_partition = Counter(p for p, _ in produced)
        expected = {f"{topic}:{p}": n for p, n in per_partition.items()}

        def all_learned():
            assert consumer.poll() is None, f"consumer exited ({consumer.poll()}), see {log}"
            header = CheckpointStore(ckpt, "w").read_header()
            return header is not None and header["learned"] == expected

        wait_for(all_learned, timeout=120, interval=0.3,
                 what=f"every record in a checkpoint ({expected}), see {log}")

        def metrics_settled():
            # the lag gauge is set after each poll, a moment after the checkpoint that the
            # wait above saw: scrape until it has caught up (it must reach 0)
            text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics",
                                          timeout=10).read().decode()
            lags = [s.value for family in text_string_to_metric_families(text)
                    for s in family.samples if s.name == "onlinenmf_consumer_lag_records"]
            return text if len(lags) == 2 and all(v == 0 for v in lags) else None

        scrape = wait_for(metrics_settled, timeout=30, interval=0.3,
                          what="the consumer's lag gauges to reach 0 on both partitions")
        consumer.send_signal(signal.SIGTERM)
        assert consumer.wait(timeout=30) == 0
        outputs.drain(idle=1.0)
    finally:
        if consumer.poll() is None:
            consumer.kill()
            consumer.wait()
        producer.join(timeout=1)
        outputs.close()

    final = CheckpointStore(ckpt, "w").read()
    assert final.learned == expected  # no record lost, none learned twice
    assert final.offsets == {f"{topic}:{p}": max(o for q, o in produced if q == p) + 1
                             for p in per_partition}
    sources = {(json.loads(m.value())["source"]["partition"],
                json.loads(m.value())["source"]["offset"]) for m in outputs.messages}
    missing = set(produced) - sources
    assert not missing, f"{len(missing)} offsets without output, e.g. {sorted(missing)[:5]}"

    # the --metrics-port endpoint of the consumer process saw it all
    samples = {}
    for family in text_string_to_metric_families(scrape):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    handled = sum(s.value for s in samples["onlinenmf_records_consumed_total"])
    assert handled >= BACKLOG + N  # records redone after a rollback count again
    assert {s.labels["partition"] for s in samples["onlinenmf_consumer_lag_records"]} == {
        "0", "1"}
    assert all(s.value == 0 for s in samples["onlinenmf_consumer_lag_records"])
    assert samples["onlinenmf_checkpoint_duration_seconds_count"][0].value >= 1


@pytest.mark.parametrize("others", [0, 1], ids=["alone", "beside-another-topic"])
def test_an_assignment_made_without_a_topics_metadata_is_redone(
        kafka_broker, tmp_path, monkeypatch, others):
    """The group's leader (here the only member) assigns while its metadata lacks a
    subscribed topic, and kafka-python's snapshot of that metadata holds the partitions: the
    state in which kafka-python assigns none of the topic ("No partition metadata for
    topic") and does not rejoin by itself, as its metadata refreshes show no change from
    that snapshot. The consumer still learns every record of every topic, once (beside
    another topic, whose partitions it owned and worked on, it joins again through a
    revocation). Before the loop redid such an assignment, it never read the topic (alone:
    it left after the 30 s it allows a group join, having read nothing)."""
    bootstrap = kafka_broker.bootstrap
    topics = [create_topic(bootstrap, unique("nometa"), partitions=2) for _ in range(1 + others)]
    expected = Counter()
    for k, topic in enumerate(topics):
        for p, _ in produce(bootstrap, topic, synthetic_messages(300, seed=32 + k)):
            expected[f"{topic}:{p}"] += 1
    hidden = topics[0]
    perform = ConsumerCoordinator._perform_assignment
    dropped = []

    def without_the_topic(self, *args, **kwargs):
        if not dropped:  # the first assignment only
            self._metadata_snapshot = self._build_metadata_snapshot(self._subscription,
                                                                    self._cluster)
            with self._cluster._lock:
                dropped.append(self._cluster._partitions.pop(hidden, None))
        return perform(self, *args, **kwargs)

    monkeypatch.setattr(ConsumerCoordinator, "_perform_assignment", without_the_topic)
    app = MicrobiomeApp(output_topic=hidden + ".out", model_topic=None)
    loop = ConsumerLoop(app, LoopConfig(
        bootstrap_servers=bootstrap, topics=topics, group_id=unique("g"),
        checkpoint_dir=tmp_path / "ckpt", worker_id="w", checkpoint_interval=60,
        exit_when_idle=1.5, consumer_config=dict(FAST_GROUP)))
    assert loop.run() == 0
    assert len(dropped) == 1 and dropped[0], "the topic was not in the metadata to drop"
    assert loop.learned_counts == expected  # nothing unread, nothing learned twice
    assert CheckpointStore(tmp_path / "ckpt", "w").read().learned == expected
