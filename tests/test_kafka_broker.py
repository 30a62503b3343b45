"""The embedded broker: it serves kafka-python and confluent-kafka, and `onlinenmf broker`
prints its address and stops cleanly on SIGTERM."""

from __future__ import annotations

import signal
import socket
import subprocess

import confluent_kafka as ck
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from consumers.broker import EmbeddedBroker, free_port
from tests.kafka_broker import (
    FAST_GROUP,
    cli,
    cli_env,
    create_topic,
    produce,
    read_topic,
    unique,
    wait_for,
)


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def test_confluent_produce_kafka_python_group_consume(kafka_broker):
    topic = create_topic(kafka_broker.bootstrap, unique("smoke"), partitions=2)
    records = [(f"k{i % 5}".encode(), f"v{i}".encode()) for i in range(300)]
    acked = produce(kafka_broker.bootstrap, topic, records)
    consumer = KafkaConsumer(
        bootstrap_servers=kafka_broker.bootstrap, group_id=unique("g"),
        enable_auto_commit=False, auto_offset_reset="earliest", **FAST_GROUP,
    )
    consumer.subscribe([topic])
    seen: dict[tuple[int, int], bytes] = {}

    def poll() -> bool:
        for tp, batch in consumer.poll(500).items():
            seen.update({(tp.partition, r.offset): r.value for r in batch})
        return len(seen) >= 300

    wait_for(poll, timeout=60, interval=0, what="300 records")
    consumer.commit()
    committed = {p: consumer.committed(TopicPartition(topic, p)) for p in (0, 1)}
    consumer.close()
    assert sorted(seen) == sorted(acked)
    assert {seen[a] for a in acked} == {v for _, v in records}
    # the committed offset is the next one to read, per partition
    for p in (0, 1):
        assert committed[p] == max(o for q, o in acked if q == p) + 1


def test_kafka_python_produce_confluent_consume(kafka_broker):
    topic = create_topic(kafka_broker.bootstrap, unique("smoke"))
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap)
    for i in range(50):
        producer.send(topic, key=b"k", value=b"%d" % i)
    producer.flush(10)
    producer.close()
    got = read_topic(kafka_broker.bootstrap, topic, min_count=50, idle=0.5)
    assert [m.value() for m in got] == [b"%d" % i for i in range(50)]
    assert isinstance(got[0], ck.Message)


def test_context_manager_stops_broker_and_frees_port():
    with EmbeddedBroker() as broker:
        port = broker.port
        assert broker.running() and _port_open(port)
    assert not broker.running()
    assert not _port_open(port)


def test_broker_command_prints_address_and_stops_on_sigterm():
    port = free_port()
    proc = subprocess.Popen(cli("broker", "--port", str(port)), env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip()
        assert line == f"127.0.0.1:{port}"
        assert _port_open(port)
        # it is a real Kafka endpoint
        topic = create_topic(line, unique("cli"))
        produce(line, topic, [(None, b"hello")])
        assert [m.value() for m in read_topic(line, topic, 1, idle=0.3)] == [b"hello"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    wait_for(lambda: not _port_open(port), timeout=10, what="the port to close")
