"""The consumer and topics that do not exist yet (issue 15): at start, before it reads a
record, a worker makes sure the topics it writes exist (outputs, model, dead letters;
``consumers.topics.ensure_topics``), and exits in one line when the broker will not make one.

Without it, on a broker that does not create topics on demand (managed services: Apache
Kafka with ``auto.create.topics.enable=false``), the worker learned its records, then waited
``--broker-timeout`` for outputs that could not be delivered and exited as if the broker were
lost (3, after 30 s of warnings with ``--broker-timeout 30``; 180 s by default).
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from consumers import apache_kafka
from consumers.checkpoint import CheckpointStore
from consumers.loop import ConsumerLoop, LoopConfig
from consumers.microbiome import MicrobiomeApp
from consumers.outcomes import EXIT_TOPICS_MISSING
from consumers.topics import BROKER_DEFAULT, dead_letter_topic, ensure_topics
from tests.kafka_broker import (
    APACHE_TEST_SETTINGS,
    FAST_GROUP,
    FAST_GROUP_FLAGS,
    apache_unavailable,
    create_topic,
    produce,
    read_topic,
    run_cli,
    selected_brokers,
    synthetic_messages,
    unique,
)

PARAMS = {"n_components": 3, "refresh_every": 10, "seed": 1}


def _existing(bootstrap: str) -> set[str]:
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 3})
    return set(admin.list_topics(timeout=30).topics)


def _loop(bootstrap: str, topic: str, ckpt: Path, worker: str = "w",
          group: str | None = None) -> tuple[ConsumerLoop, MicrobiomeApp]:
    app = MicrobiomeApp(model_params=PARAMS, output_topic=topic + ".out",
                        model_topic=topic + ".model")
    loop = ConsumerLoop(app, LoopConfig(
        bootstrap_servers=bootstrap, topics=[topic], group_id=group or unique("g"),
        checkpoint_dir=ckpt, worker_id=worker, exit_when_idle=1.0, broker_timeout=60,
        consumer_config=dict(FAST_GROUP)))
    return loop, app


def _written(topic: str) -> set[str]:
    return {topic + ".out", topic + ".model", dead_letter_topic(topic)}


@pytest.fixture(scope="module")
def strict_apache(tmp_path_factory):
    """An Apache Kafka broker that creates no topic on demand (as managed services run)."""
    if "apache" not in selected_brokers():
        pytest.skip("Apache Kafka case not selected (ONLINENMF_TEST_BROKERS)")
    problem = apache_unavailable()
    if problem is not None:
        pytest.skip(f"Apache Kafka case not run: {problem}")
    broker = apache_kafka.ApacheBroker(
        data_dir=tmp_path_factory.mktemp("strict") / "kafka",
        settings={**APACHE_TEST_SETTINGS, "auto.create.topics.enable": "false"}).start()
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


def test_written_topics_exist_before_any_record(kafka_broker, tmp_path):
    """An empty input: nothing is read or written, yet the topics the worker writes exist."""
    bootstrap = kafka_broker.bootstrap
    topic = create_topic(bootstrap, unique("empty"))
    loop, app = _loop(bootstrap, topic, tmp_path / "ckpt")
    assert loop.run() == 0
    assert app.summary()["samples_learned"] == 0
    assert _written(topic) <= _existing(bootstrap)


def test_two_workers_starting_at_once(kafka_broker, tmp_path):
    """Two workers creating the same topics at the same moment: each topic is created by
    exactly one of them, the other finds it there (TopicAlreadyExists), both start."""
    bootstrap = kafka_broker.bootstrap
    names = {unique("race") + suffix: BROKER_DEFAULT for suffix in (".out", ".model", ".DLT")}
    barrier = threading.Barrier(2)
    created: list[list[str]] = []

    def start() -> None:
        barrier.wait()
        created.append(ensure_topics(bootstrap, names, broker_timeout=60))

    threads = [threading.Thread(target=start) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(created) == 2  # neither raised
    assert sorted(created[0] + created[1]) == sorted(names)
    assert set(names) <= _existing(bootstrap)

    # and two loops of one group, over a stream, starting together: both run to the end
    topic = create_topic(bootstrap, unique("pair"), partitions=2)
    produce(bootstrap, topic, synthetic_messages(40, seed=3))
    group = unique("g")
    loops = [_loop(bootstrap, topic, tmp_path / "ckpt", worker=f"w{i}", group=group)
             for i in range(2)]
    statuses: list[int] = []
    runners = [threading.Thread(target=lambda lp=lp: statuses.append(lp.run()))
               for lp, _ in loops]
    for runner in runners:
        runner.start()
    for runner in runners:
        runner.join(300)
    assert statuses == [0, 0]
    assert len(read_topic(bootstrap, topic + ".out", min_count=40)) >= 40


def test_outputs_without_auto_creation(strict_apache, tmp_path):
    """The user's case: a broker that makes no topic on demand; the worker's outputs,
    model versions and dead letters arrive, and it exits 0."""
    topic = create_topic(strict_apache, unique("strict"))
    produce(strict_apache, topic, synthetic_messages(30, seed=4) + [(b"s1", b"not json")])
    loop, app = _loop(strict_apache, topic, tmp_path / "ckpt")
    assert loop.run() == 0
    assert app.summary()["samples_learned"] == 30
    assert len(read_topic(strict_apache, topic + ".out", min_count=30)) == 30
    assert len(read_topic(strict_apache, dead_letter_topic(topic), min_count=1)) == 1


def test_refused_topic_is_one_line_before_any_record(strict_apache, tmp_path):
    """A topic the broker refuses to create (Apache Kafka: a name colliding with an existing
    topic's once '.' and '_' are confused; Tansu 0.6 creates any name): exit
    EXIT_TOPICS_MISSING with one line naming the topic and the fix, nothing learned."""
    topic = create_topic(strict_apache, unique("refused"))
    create_topic(strict_apache, topic + "_out")  # takes the name topic.out would collide with
    produce(strict_apache, topic, synthetic_messages(10, seed=5))
    ckpt = tmp_path / "ckpt"
    out = run_cli("consume", "microbiome", "--bootstrap-servers", strict_apache,
                  "--topic", topic, "--group", unique("g"), "--checkpoint-dir", str(ckpt),
                  "--worker-id", "w", "--output-topic", topic + ".out",
                  "--model-topic", topic + ".model", "--exit-when-idle", "1",
                  "--broker-timeout", "20", *FAST_GROUP_FLAGS)
    log = out.stdout + out.stderr
    assert out.returncode == EXIT_TOPICS_MISSING, log[-3000:]
    assert "Traceback" not in log
    lines = [line for line in log.splitlines() if f"'{topic}.out'" in line]
    assert len(lines) == 1, log[-3000:]
    assert "does not exist" in lines[0] and "collides" in lines[0]
    assert "create it" in lines[0]
    assert CheckpointStore(ckpt, "w").read() is None  # nothing learned, nothing kept
