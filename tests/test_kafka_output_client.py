"""The consumer's output producer (consumers/output_producer.py): librdkafka when
confluent-kafka is installed, kafka-python otherwise; the same run either way.

Every other Kafka test runs the librdkafka path (confluent-kafka is a test dependency); this
one also runs the kafka-python path, and checks that both learn the same model, send an
output record for every offset and dead-letter the same records.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from kafka import KafkaProducer

from consumers.checkpoint import CheckpointStore
from consumers.loop import ConsumerLoop, LoopConfig
from consumers.microbiome import MicrobiomeApp, model_from_blobs
from consumers.output_producer import (
    OUTPUT_CLIENT_ENV,
    ConfluentOutputs,
    new_output_producer,
    output_client,
)
from tests.kafka_broker import (
    FAST_GROUP,
    create_topic,
    produce,
    read_topic,
    synthetic_messages,
    unique,
)

N = 1500
BAD = {40: b"not json", 700: b'{"subject": "s1"}'}  # offsets of refused records
PARAMS = {"n_components": 4, "refresh_every": 50, "seed": 1}


def test_librdkafka_when_installed_unless_told_or_a_setting_has_no_name(monkeypatch):
    monkeypatch.delenv(OUTPUT_CLIENT_ENV, raising=False)
    assert output_client({"acks": "all", "ssl_cafile": "/ca.pem"}) == \
        "librdkafka (confluent-kafka)"
    assert output_client({"metadata_max_age_ms": 1000}) == (
        "kafka-python (setting metadata_max_age_ms has no librdkafka name here)")
    monkeypatch.setenv(OUTPUT_CLIENT_ENV, "kafka-python")
    assert output_client({}) == f"kafka-python ({OUTPUT_CLIENT_ENV}=kafka-python)"


def _run(bootstrap: str, topic: str, ckpt: Path) -> tuple[ConsumerLoop, str]:
    out = unique("out")
    app = MicrobiomeApp(model_params=PARAMS, output_topic=out, model_topic=None, track=False)
    loop = ConsumerLoop(app, LoopConfig(
        bootstrap_servers=bootstrap, topics=[topic], group_id=unique("g"),
        checkpoint_dir=ckpt, worker_id="w", exit_when_idle=2.0, checkpoint_every=400,
        consumer_config=dict(FAST_GROUP), dlt_suffix=f".{out}.DLT"))
    assert loop.run() == 0
    return loop, out


def test_both_clients_give_the_same_run(kafka_broker, tmp_path, monkeypatch):
    bootstrap = kafka_broker.bootstrap
    topic = create_topic(bootstrap, unique("client"), partitions=1)
    messages = synthetic_messages(N, seed=9)
    for offset, value in BAD.items():
        messages[offset] = (b"bad", value)
    produce(bootstrap, topic, messages)
    runs = {}
    for client in ("librdkafka", "kafka-python"):
        if client == "kafka-python":
            monkeypatch.setenv(OUTPUT_CLIENT_ENV, "kafka-python")
        loop, out = _run(bootstrap, topic, tmp_path / client)
        producer = new_output_producer({"bootstrap_servers": bootstrap})
        producer.close(timeout=0)
        assert isinstance(producer, ConfluentOutputs if client == "librdkafka"
                          else KafkaProducer)
        ckpt = CheckpointStore(tmp_path / client, "w").read()
        outputs = read_topic(bootstrap, out, min_count=N - len(BAD))
        dead = read_topic(bootstrap, f"{topic}.{out}.DLT", min_count=len(BAD))
        runs[client] = (model_from_blobs(ckpt.blobs), ckpt,
                        sorted(json.loads(m.value())["source"]["offset"] for m in outputs),
                        sorted(int(dict(m.headers())["kafka_dlt-original-offset"])
                               for m in dead))
    (model_a, ckpt_a, outs_a, dead_a), (model_b, ckpt_b, outs_b, dead_b) = runs.values()
    assert outs_a == outs_b == sorted(set(range(N)) - set(BAD))
    assert dead_a == dead_b == sorted(BAD)
    assert ckpt_a.learned == ckpt_b.learned == {f"{topic}:0": N - len(BAD)}
    assert ckpt_a.offsets == ckpt_b.offsets == {f"{topic}:0": N}
    assert np.array_equal(model_a.W, model_b.W)


@pytest.mark.parametrize("error", ["MSG_SIZE_TOO_LARGE", "UNKNOWN_PRODUCER_ID"])
def test_delivery_errors_are_kafka_python_errors(error):
    """The loop tells 'too large' (the record is dead-lettered when redone) from the rest
    (redone as it is) by kafka-python's exception classes."""
    import confluent_kafka as ck
    from kafka.errors import KafkaError, MessageSizeTooLargeError

    from consumers.output_producer import Delivery

    class Idle:  # a producer with no reports to serve
        def poll(self, timeout: float) -> int:
            return 0

        def flush(self, timeout: float) -> int:
            return 0

    delivery = Delivery(Idle())
    assert not delivery.is_done
    with pytest.raises(KafkaError, match="no acknowledgement"):
        delivery.get(timeout=0.01)
    delivery(ck.KafkaError(getattr(ck.KafkaError, error)), None)
    assert delivery.is_done and delivery.failed()
    too_large = isinstance(delivery.exception, MessageSizeTooLargeError)
    assert too_large == (error == "MSG_SIZE_TOO_LARGE")
    with pytest.raises(KafkaError):
        delivery.get(timeout=0)


def test_a_waited_for_record_does_not_wait_out_the_linger(kafka_broker):
    """The loop waits for each dead letter's acknowledgement (Delivery.get): the record is
    sent at once, not after linger.ms (here far longer than the wait allowed)."""
    topic = create_topic(kafka_broker.bootstrap, unique("linger"), partitions=1)
    producer = ConfluentOutputs({"bootstrap_servers": kafka_broker.bootstrap,
                                 "linger_ms": 100_000})
    try:
        producer.send(topic, value=b"first", key=b"k")
        producer.send(topic, value=b"dead letter", key=b"k").get(timeout=30)
    finally:
        producer.close(timeout=0)
    assert [m.value() for m in read_topic(kafka_broker.bootstrap, topic, min_count=2)] == [
        b"first", b"dead letter"]


def test_a_producer_setting_given_with_x_reaches_the_output_producer(tmp_path):
    """``-X linger_ms=50`` sets the output producer's linger (kafka-python's consumer would
    refuse the setting: 'Unrecognized configs'); a consumer setting stays the consumer's,
    and the defaults (consumers/config.py) fill the rest. No broker is asked."""
    import argparse

    from consumers.config import OUTPUT_PRODUCER_DEFAULTS
    from consumers.consume import add_arguments, loop_config

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["microbiome", "--bootstrap-servers", "127.0.0.1:9",
                              "--checkpoint-dir", str(tmp_path), "-X", "linger_ms=50",
                              "-X", "fetch_min_bytes=4096"])
    config = loop_config(args, ["t"])
    assert "linger_ms" not in config.consumer_config
    assert config.consumer_config["fetch_min_bytes"] == 4096
    loop = ConsumerLoop(MicrobiomeApp(model_params=PARAMS), config)
    producer = loop._new_producer()
    try:
        assert producer.config["linger_ms"] == 50
        assert producer.config["acks"] == OUTPUT_PRODUCER_DEFAULTS["acks"] == "all"
        assert "fetch_min_bytes" not in producer.config
    finally:
        producer.close(0)


def test_a_kafka_python_producer_replaced_in_an_outage_waits_the_broker_timeout(
        private_broker, tmp_path, monkeypatch):
    """The loop replaces its output producer after undelivered outputs, maybe while no
    broker answers. kafka-python's producer connects in its constructor: it waits for a
    broker as long as the loop would (--broker-timeout, here 90 s), not kafka-python's 30 s
    (issue 15: before, the producer built during a 35 s outage raised KafkaTimeoutError
    after 30 s, and the loop exited 3 although its broker timeout was longer)."""
    import threading

    monkeypatch.setenv(OUTPUT_CLIENT_ENV, "kafka-python")
    loop = ConsumerLoop(MicrobiomeApp(model_params=PARAMS), LoopConfig(
        bootstrap_servers=private_broker.bootstrap, topics=["t"], group_id="g",
        checkpoint_dir=tmp_path, broker_timeout=90.0))
    private_broker.pause()
    outage = threading.Timer(35.0, private_broker.resume)
    outage.start()
    try:
        producer = loop._new_producer()
    finally:
        outage.join()
    try:
        assert isinstance(producer, KafkaProducer)
        assert producer.config["bootstrap_timeout_ms"] == 90_000
    finally:
        producer.close(0)


def test_max_request_size_is_left_to_its_flag():
    """-X max_request_size would give the output producer a limit of its own beside
    --max-message-bytes (the one limit of records read and written): refused in one line
    that names the flag (before: accepted here, then refused by kafka-python's consumer)."""
    from consumers.config import ConfigError, check_kafka_settings

    with pytest.raises(ConfigError, match="--max-message-bytes"):
        check_kafka_settings({"max_request_size": 5_000_000})


@pytest.mark.parametrize("dead_letter", [False, True])
def test_a_full_queue_is_waited_for_then_refused(monkeypatch, dead_letter):
    """An output record (no headers, no partition: one ``produce`` call) and a dead letter
    (through the keyword path) wait alike for room in librdkafka's queue, then end in
    KafkaTimeoutError (the loop's 'undelivered': redone after a rollback), never a
    BufferError out of the loop."""
    import confluent_kafka as ck
    from kafka.errors import KafkaTimeoutError

    from consumers import output_producer

    monkeypatch.setattr(output_producer, "_QUEUE_FULL_WAIT", 0.2)
    outputs = ConfluentOutputs({"bootstrap_servers": "127.0.0.1:9"})  # nothing answers
    outputs._producer = ck.Producer({"bootstrap.servers": "127.0.0.1:9", "log_level": 0,
                                     "queue.buffering.max.messages": 1})
    extra = {"headers": [("why", b"bad")], "partition": 0} if dead_letter else {}
    try:
        outputs.send("out", value=b"first", key=b"k", **extra)  # fills the queue
        with pytest.raises(KafkaTimeoutError, match="output queue stayed full for 0.2 s"):
            outputs.send("out", value=b"second", key=b"k", **extra)
    finally:
        outputs.close(timeout=0)
