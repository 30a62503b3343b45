"""The test brokers (Tansu and Apache Kafka): they serve kafka-python and confluent-kafka,
the outage tests' control API (kill, stop, start on the same port, pause) works on both,
and `onlinenmf broker` prints its address and stops cleanly on SIGTERM (its Apache Kafka
variant: tests/test_apache_kafka.py)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading

import confluent_kafka as ck
import pytest
from confluent_kafka.admin import AdminClient
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from consumers.broker import EmbeddedBroker
from consumers.broker_process import free_port
from tests.kafka_broker import (
    FAST_GROUP,
    TopicReader,
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


def _topics(bootstrap: str) -> set[str]:
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 3})
    return set(admin.list_topics(timeout=30).topics)


def test_broker_control_keeps_the_address(private_broker):
    """The control API the outage tests use, on both brokers: a broker killed or stopped
    comes back on its port, with its data if it is persistent (Apache Kafka) or empty
    (Tansu), empty on request; a paused broker answers nothing until resumed."""
    broker = private_broker
    bootstrap = broker.bootstrap
    port = int(bootstrap.rsplit(":", 1)[1])
    topic = create_topic(bootstrap, unique("ctl"))
    acked = produce(bootstrap, topic, [(None, b"%d" % i) for i in range(100)])

    broker.kill()
    wait_for(lambda: not _port_open(port), timeout=30, what="the killed broker's port to close")
    broker.start()
    assert (topic in _topics(bootstrap)) == broker.persistent
    if broker.persistent:  # every acknowledged record survived the SIGKILL
        got = read_topic(bootstrap, topic, 100, idle=0.5)
        assert [(m.partition(), m.offset()) for m in got] == acked

    broker.stop()
    assert not _port_open(port)
    broker.start(empty=True)
    assert topic not in _topics(bootstrap)

    broker.pause()
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    with pytest.raises(ck.KafkaException):
        admin.list_topics(timeout=2)
    broker.resume()
    assert isinstance(_topics(bootstrap), set)


def _thread_states(pid: int) -> set[str]:
    """The scheduler states (``/proc``) of every thread of process ``pid``."""
    states = set()
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/stat") as stat:
            states.add(stat.read().rsplit(")", 1)[1].split()[0])
    return states


@pytest.mark.skipif(sys.platform != "linux", reason="reads thread states from /proc")
def test_pause_returns_once_every_broker_thread_has_stopped(private_broker):
    """kill(SIGSTOP) returns before the broker stops: its main thread takes the signal when
    next scheduled and stops the others, which serve clients meanwhile (a clean-clone CI saw
    a paused Tansu answer list_topics). Here the main thread runs only when nothing else
    wants the CPU, as on a loaded machine: pause() must still return a stopped broker."""
    pid = private_broker.process.pid
    os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))  # the main thread only
    for _ in range(5):
        private_broker.pause()
        states = _thread_states(pid)
        private_broker.resume()
        assert states == {"T"}, f"threads still running after pause(): {states}"


def test_a_drain_reads_every_partition_to_its_end_before_its_idle_timer(private_broker):
    """A reader's first fetch can take longer than a drain's idle time (about a second on
    a quiet machine, more on a loaded one): an idle timer started before it ended the drain
    with nothing read (a CI run read an empty dead-letter topic, 0 of 12). Here the broker
    is paused for 2 s once the reader is assigned; one partition stays empty."""
    bootstrap = private_broker.bootstrap
    topic = create_topic(bootstrap, unique("drain"), partitions=3)
    produce(bootstrap, topic, [(None, b"%d" % i) for i in range(7)], partition=1)
    produce(bootstrap, topic, [(None, b"x")], partition=2)
    reader = TopicReader(bootstrap, topic)
    private_broker.pause()
    resume = threading.Timer(2.0, private_broker.resume)
    resume.start()
    try:
        assert len(reader.drain(idle=0.5)) == 8
    finally:
        resume.join()
        reader.close()
    assert len(read_topic(bootstrap, topic, idle=0.01)) == 8
