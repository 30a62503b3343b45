"""Fast start on the embedded broker (issue 14, part 2): `onlinenmf consume` recognises the
embedded broker by its cluster id and joins its group with a short session (Tansu answers a
join after half the session timeout: 22 s at kafka-python's default), while any other broker,
or a user who set the group timing, keeps the settings given. Times are measured by
`python -m benchmarks start`, not asserted here.
"""

from __future__ import annotations

from consumers.broker import EMBEDDED_CLUSTER_ID, EMBEDDED_GROUP_SETTINGS
from consumers.config import embedded_broker_settings
from tests.kafka_broker import produce, read_topic, run_cli, synthetic_messages, unique


def test_the_embedded_broker_and_only_it_gets_the_fast_group_settings(kafka_broker):
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap)
    try:
        cluster = admin.describe_cluster()["cluster_id"]
    finally:
        admin.close()
    fast = embedded_broker_settings(kafka_broker.bootstrap, {})
    if kafka_broker.kind == "tansu":
        assert cluster == EMBEDDED_CLUSTER_ID
        assert fast == EMBEDDED_GROUP_SETTINGS
    else:  # Apache Kafka, as a production broker: kafka-python's defaults stay
        assert cluster != EMBEDDED_CLUSTER_ID
        assert fast == {}


def test_group_timing_given_by_the_user_is_left_alone(kafka_broker):
    assert embedded_broker_settings(kafka_broker.bootstrap, {"session_timeout_ms": 10000}) == {}
    assert embedded_broker_settings(kafka_broker.bootstrap,
                                    {"heartbeat_interval_ms": 1000}) == {}


def test_a_broker_off_loopback_is_not_even_asked():
    # nothing answers at this address: asking would fail, and the answer would be {} anyway;
    # not asking shows in the absence of a connection attempt, so check the host rule itself
    assert embedded_broker_settings("192.0.2.1:9092,kafka:9092", {}) == {}


def _consume_until_idle(broker, topic, out, group, tmp_path, *extra, timeout):
    """``onlinenmf consume microbiome`` from ``topic`` to ``out`` until 1 s without records."""
    return run_cli("consume", "microbiome", "--bootstrap-servers", broker.bootstrap,
                   "--topic", topic, "--output-topic", out, "--model-topic", "",
                   "--group", group, "--checkpoint-dir", str(tmp_path / "ck"),
                   "--exit-when-idle", "1", *extra, timeout=timeout)


def test_consume_without_timeout_flags_uses_them_and_learns_every_record(kafka_broker,
                                                                       tmp_path):
    topic = unique("fast-in")
    out = unique("fast-out")
    produce(kafka_broker.bootstrap, topic, synthetic_messages(40))
    done = _consume_until_idle(kafka_broker, topic, out, unique("fast"), tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    said = "embedded broker: session_timeout_ms=2000, heartbeat_interval_ms=500"
    assert (said in done.stderr) == (kafka_broker.kind == "tansu"), done.stderr[-3000:]
    try:
        outputs = read_topic(kafka_broker.bootstrap, out, min_count=40)
    except AssertionError as missing:  # say what the consumer said (seen once in CI: none)
        raise AssertionError(f"{missing}; the consumer's log: {done.stderr[-3000:]}") from None
    assert len(outputs) == 40


def test_a_slow_group_join_is_waited_for_not_taken_for_an_idle_stream(kafka_broker, tmp_path):
    # The user's own group timing: Tansu answers the join after about half the session
    # timeout (35 s here), longer than exit_when_idle once waited before a join completed
    # (30 s): the consumer left with exit status 0 having read nothing. The wait now
    # follows the client's settings (ConsumerLoop.join_allowance).
    topic = unique("slow-join-in")
    out = unique("slow-join-out")
    produce(kafka_broker.bootstrap, topic, synthetic_messages(20))
    done = _consume_until_idle(kafka_broker, topic, out, unique("slow-join"), tmp_path,
                               "-X", "session_timeout_ms=70000",
                               "-X", "heartbeat_interval_ms=3000", timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    assert " assigned " in done.stderr, done.stderr[-3000:]
    outputs = read_topic(kafka_broker.bootstrap, out, min_count=20)
    assert len(outputs) == 20
