"""Broker loss (issue 10, defect 4), on Tansu and on Apache Kafka (``private_broker``).

A consumer whose broker dies gives up within ``--broker-timeout`` (exit status 3), also
with ``--exit-when-idle`` set (a silent broker is not an idle stream), and leaves no
checkpoint that claims an output the broker never acknowledged. A broker that comes back
empty (Tansu's memory storage always does; Apache Kafka here with its data directory
wiped): the consumer, restarted or still running, refuses to resume on a log that ends
before its checkpoint (exit status 4, naming the partition and both offsets) instead of
rolling back and exiting 0 with half the stream silently unlearned. Tansu shows the short
log in the fetch responses' high watermark, Kafka answers OffsetOutOfRange.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
from pathlib import Path

import confluent_kafka as ck
import pytest

from consumers.broker_process import free_port, freeze
from consumers.checkpoint import CheckpointStore
from consumers.outcomes import EXIT_BROKER_LOST, EXIT_OFFSETS_NOT_IN_LOG
from consumers.output_producer import OUTPUT_CLIENT_ENV
from tests.kafka_broker import (
    FAST_GROUP_FLAGS,
    TIGHT_RECONNECT_FLAGS,
    TopicReader,
    create_topic,
    exit_story,
    produce,
    read_topic,
    run_cli,
    spawn,
    synthetic_messages,
    unique,
    wait_for,
)

N = 20_000  # a backlog the consumer is still busy with when its broker dies
ON_THE_NEW_BROKER = 5  # records on the empty broker's topic: its log end


def _consume(bootstrap: str, topic: str, ckpt: Path, log: Path, broker_timeout: float,
             group: str, *flags: str) -> subprocess.Popen[bytes]:
    return spawn("consume", "microbiome", "--bootstrap-servers", bootstrap, "--topic", topic,
                 "--group", group, "--checkpoint-dir", str(ckpt), "--worker-id", "w",
                 "--output-topic", topic + ".out", "--model-topic", "", "--no-track",
                 "--checkpoint-every", "500", "--checkpoint-interval", "1",
                 "--flush-timeout", "2", "--exit-when-idle", "3",
                 "--broker-timeout", str(broker_timeout), *FAST_GROUP_FLAGS, *flags, log=log)


def _wait(process: subprocess.Popen[bytes], timeout: float) -> int:
    try:
        return process.wait(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _errors(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if " ERROR onlinenmf" in line]


def _start_stream(bootstrap: str) -> tuple[str, TopicReader]:
    topic = create_topic(bootstrap, unique("loss"))
    create_topic(bootstrap, topic + ".out")
    produce(bootstrap, topic, synthetic_messages(N, seed=40))
    return topic, TopicReader(bootstrap, topic + ".out")


def _refill_empty_broker(bootstrap: str, topic: str) -> None:
    """What the restarted broker holds: the topic again, with a few new records."""
    try:
        create_topic(bootstrap, topic)
    except ck.KafkaException as err:  # a running consumer's metadata request was first
        if err.args[0].code() != ck.KafkaError.TOPIC_ALREADY_EXISTS:
            raise
    produce(bootstrap, topic, synthetic_messages(ON_THE_NEW_BROKER, seed=41), partition=0)


def _working(outputs: TopicReader, ckpt: Path) -> bool:
    return outputs.poll() >= 2000 and CheckpointStore(ckpt, "w").read_header() is not None


def test_dead_broker_bounded_exit_then_an_empty_broker_is_refused(private_broker, tmp_path):
    bootstrap = private_broker.bootstrap
    topic, outputs = _start_stream(bootstrap)
    ckpt, log = tmp_path / "ckpt", tmp_path / "consumer.log"
    group = unique("g")
    consumer = _consume(bootstrap, topic, ckpt, log, broker_timeout=5, group=group)
    try:
        wait_for(lambda: _working(outputs, ckpt), timeout=120, interval=0,
                 what="the consumer to checkpoint part of the stream")
        # Freeze the consumer, read every output the broker acknowledged, then kill the
        # broker: whatever checkpoint the consumer leaves must be covered by these outputs.
        assert freeze(consumer), log.read_text()[-3000:]
        outputs.drain(idle=1.0)
        outputs.close()
        private_broker.kill()
        consumer.send_signal(signal.SIGCONT)
        status = _wait(consumer, timeout=120)  # the bound is 5 s, plus a flush and a probe
    finally:
        if consumer.poll() is None:
            consumer.kill()
            consumer.wait()
    assert status == EXIT_BROKER_LOST, log.read_text()[-3000:]
    errors = _errors(log)
    assert len(errors) == 1 and "answered for" in errors[0] and "--broker-timeout 5" in errors[0]
    assert "no records for" not in log.read_text()  # the idle exit was not taken instead
    header = CheckpointStore(ckpt, "w").read_header()
    resume = header["offsets"][f"{topic}:0"]
    assert 0 < resume < N, "the broker must die mid-stream for this test to mean anything"
    assert header["learned"] == {f"{topic}:0": resume}
    delivered = {json.loads(m.value())["source"]["offset"] for m in outputs.messages}
    unacknowledged = set(range(resume)) - delivered
    assert not unacknowledged, f"checkpointed without output: {sorted(unacknowledged)[:5]}"

    # The broker comes back on the same port, empty: its log of the partition ends at 5,
    # the checkpoint resumes from `resume`.
    checkpoint_bytes = (ckpt / "w.ckpt").read_bytes()
    private_broker.start(empty=True)
    _refill_empty_broker(bootstrap, topic)
    log = tmp_path / "restarted.log"
    status = _wait(_consume(bootstrap, topic, ckpt, log, broker_timeout=30, group=group),
                   timeout=120)
    assert status == EXIT_OFFSETS_NOT_IN_LOG, log.read_text()[-3000:]
    errors = _errors(log)
    assert len(errors) == 1, errors
    assert f"partition {topic}:0" in errors[0]
    assert f"checkpointed next offset {resume} is beyond the log end {ON_THE_NEW_BROKER}" \
        in errors[0]
    assert (ckpt / "w.ckpt").read_bytes() == checkpoint_bytes  # nothing learned from it
    assert read_topic(bootstrap, topic + ".out", idle=1.0) == []


def test_running_consumer_refuses_an_empty_broker_back_on_its_port(private_broker, tmp_path):
    """The issue's run: the broker is killed and an empty one takes its port while the
    consumer waits (well within --broker-timeout); it used to roll back, take the silence
    for an idle stream and exit 0 with half the records never learned."""
    bootstrap = private_broker.bootstrap
    topic, outputs = _start_stream(bootstrap)
    ckpt, log = tmp_path / "ckpt", tmp_path / "consumer.log"
    consumer = _consume(bootstrap, topic, ckpt, log, broker_timeout=120, group=unique("g"))
    try:
        wait_for(lambda: _working(outputs, ckpt), timeout=120, interval=0,
                 what="the consumer to checkpoint part of the stream")
        outputs.close()
        private_broker.kill()
        private_broker.start(empty=True)
        _refill_empty_broker(bootstrap, topic)
        status = _wait(consumer, timeout=150)
    finally:
        if consumer.poll() is None:
            consumer.kill()
            consumer.wait()
    assert status == EXIT_OFFSETS_NOT_IN_LOG, log.read_text()[-3000:]
    errors = _errors(log)
    assert len(errors) == 1, errors
    resume = CheckpointStore(ckpt, "w").read_header()["offsets"][f"{topic}:0"]
    assert resume > ON_THE_NEW_BROKER
    # The consumer may have learned past its last checkpoint before the broker died (a
    # slow machine: CI of cfebc08 saw next 4890, checkpointed 4500); the line then names both.
    # The restarted broker may not answer the log-bound lookups in time (CI of 8e02932): the
    # line then says the offset is outside the log without the bound.
    refusal = re.search(
        rf"partition {re.escape(topic)}:0: the (?:checkpointed next offset {resume}|"
        rf"next offset (\d+) \(checkpointed: {resume}\)) (?:is beyond the log end (\d+)|"
        r"is outside the log \(the broker did not say where its log starts and ends\))",
        errors[0])
    assert refusal, errors[0]
    unsaved_next, end = refusal.groups()
    assert unsaved_next is None or int(unsaved_next) > resume, errors[0]
    # seen before or after the test refilled the topic (None: the bound went unanswered)
    assert end is None or int(end) in (0, ON_THE_NEW_BROKER), errors[0]


@pytest.mark.parametrize("flags, output_client", [
    ((), None),
    # the stats consumer and admin client of a shared dictionary (consumers/shared.py)
    (("--share-dictionary", "--share-every", "1"), None),
    # outputs through kafka-python's producer, replaced when outputs went undelivered
    ((), "kafka-python"),
], ids=["input", "shared-dictionary", "kafka-python-outputs"])
def test_connection_errors_of_a_dead_broker_end_in_one_line(private_broker, tmp_path,
                                                            monkeypatch, flags, output_client):
    """kafka-python's connection errors during an outage (here at nearly every poll: a
    client that reconnects every 10-20 ms) are a silent broker's: waited out for
    --broker-timeout, then exit 3 with one line, never a traceback (issue 15: a chaos run's
    worker died of KafkaConnectionError escaping poll()), whichever kafka-python client
    meets them: the input consumer, a shared dictionary's, the output producer."""
    if output_client is not None:
        monkeypatch.setenv(OUTPUT_CLIENT_ENV, output_client)
    bootstrap = private_broker.bootstrap
    topic, outputs = _start_stream(bootstrap)
    ckpt, log = tmp_path / "ckpt", tmp_path / "consumer.log"
    consumer = _consume(bootstrap, topic, ckpt, log, 8, unique("g"), *TIGHT_RECONNECT_FLAGS,
                        *flags)
    try:
        wait_for(lambda: _working(outputs, ckpt), timeout=120, interval=0,
                 what="the consumer to checkpoint part of the stream")
        outputs.close()
        private_broker.kill()
        status = _wait(consumer, timeout=120)
    finally:
        if consumer.poll() is None:
            consumer.kill()
            consumer.wait()
    # (an uncaught exception: status 1; kafka-python logs the errors it handles with their
    # tracebacks, so the log may hold some)
    assert status == EXIT_BROKER_LOST, exit_story(log.read_text())
    errors = _errors(log)
    assert len(errors) == 1 and "answered for" in errors[0] and "--broker-timeout 8" in errors[0]


def test_no_broker_at_start_is_a_bounded_one_line_exit(tmp_path):
    """Nothing listens at the address: exit 3 after --broker-timeout, not a traceback."""
    done = run_cli("consume", "microbiome", "--bootstrap-servers", f"127.0.0.1:{free_port()}",
                   "--topic", "t", "--group", "g", "--checkpoint-dir", str(tmp_path / "ckpt"),
                   "--worker-id", "w", "--broker-timeout", "2", timeout=60)
    assert done.returncode == EXIT_BROKER_LOST, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if " ERROR onlinenmf" in line]
    assert len(errors) == 1 and "no Kafka broker at 127.0.0.1:" in errors[0]
    assert not (tmp_path / "ckpt" / "w.ckpt").exists()
