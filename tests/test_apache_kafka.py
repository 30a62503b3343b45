"""The local Apache Kafka broker: `onlinenmf broker --apache`, its Maven-fetched jars, the
settings and version it shares with docker/, and where the two brokers the tests run
against differ (Tansu's documented faults, which Apache Kafka does not have).

Every other Kafka test runs against both brokers through the ``kafka_broker`` and
``private_broker`` fixtures (tests/kafka_broker.py).
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
from pathlib import Path

import confluent_kafka as ck
import pytest
import yaml
from confluent_kafka.admin import AdminClient, ConfigResource
from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

from consumers import apache_kafka
from consumers.apache_kafka import (
    LOCAL_SETTINGS,
    POM,
    SHARED_SETTINGS,
    ApacheBroker,
    fetch_jars,
    kafka_version,
    read_properties,
)
from consumers.broker_process import free_port
from tests.kafka_broker import (
    APACHE_TEST_SETTINGS,
    ROOT,
    apache_unavailable,
    cli,
    cli_env,
    create_topic,
    produce,
    read_topic,
    selected_brokers,
    unique,
)

COMPOSE = yaml.safe_load((ROOT / "docker" / "docker-compose.yml").read_text())
KAFKA = COMPOSE["services"]["kafka"]

_UNAVAILABLE = apache_unavailable()
needs_apache = pytest.mark.skipif(_UNAVAILABLE is not None,
                                  reason=f"Apache Kafka case not run: {_UNAVAILABLE}")
#: Settings that are each deployment's own: addresses and storage.
ADDRESS_KEYS = {"listeners", "advertised.listeners", "listener.security.protocol.map",
                "controller.quorum.bootstrap.servers", "controller.quorum.voters", "log.dirs"}
#: docker/ creates its topics up front (kafka-init); the local broker creates them when
#: first written, as Tansu does.
DEPLOYMENT_CHOICES = {"auto.create.topics.enable"}


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _env_to_property(name: str) -> str:
    """The apache/kafka image's mapping of ``KAFKA_*`` variables to properties (its
    README: ``.`` is ``_``, ``_`` is ``__``, ``-`` is ``___``)."""
    body = name.removeprefix("KAFKA_").lower()
    return body.replace("___", "\0").replace("__", "\1").replace("_", ".") \
        .replace("\0", "-").replace("\1", "_")


def _compose_properties() -> dict[str, str]:
    """What the compose file's broker runs with: the shared file, then its environment."""
    env = {_env_to_property(k): str(v) for k, v in KAFKA["environment"].items()
           if k.startswith("KAFKA_")}
    return {**read_properties(SHARED_SETTINGS), **env}


# --- one version, one set of settings --------------------------------------------------------

def test_docker_runs_the_pinned_version():
    version = kafka_version()
    assert version.startswith("4.")
    for service in ("kafka", "kafka-init"):
        assert COMPOSE["services"][service]["image"] == f"apache/kafka:{version}", service
    assert f"<kafka.version>{version}</kafka.version>" in POM.read_text()


def test_docker_mounts_the_shared_settings_and_overrides_none():
    mounts = {target: source for source, target, *_ in (v.split(":") for v in KAFKA["volumes"])}
    source = mounts.get("/mnt/shared/config/server.properties")
    assert source is not None, "the shared settings are not the image's file input"
    assert (ROOT / "docker" / source).resolve() == SHARED_SETTINGS
    shared = read_properties(SHARED_SETTINGS)
    env = {_env_to_property(k) for k in KAFKA["environment"] if k.startswith("KAFKA_")}
    assert not env & set(shared), f"docker/ overrides shared settings: {env & set(shared)}"


def test_shared_settings_are_the_single_node_ones():
    shared = read_properties(SHARED_SETTINGS)
    for key in ("offsets.topic.replication.factor", "transaction.state.log.replication.factor",
                "transaction.state.log.min.isr",
                "share.coordinator.state.topic.replication.factor",
                "share.coordinator.state.topic.min.isr"):
        assert shared[key] == "1", key
    assert shared["group.initial.rebalance.delay.ms"] == "0"
    # the broker must take what the replay producer may send (consumers/produce.py) and
    # what the consumer writes (at most --max-message-bytes per record)
    from consumers.messages import DEFAULT_MAX_BYTES

    assert int(shared["message.max.bytes"]) >= 8 * 1024 * 1024 > DEFAULT_MAX_BYTES
    assert "max_request_size\": 8 * 1024 * 1024" in (ROOT / "consumers" / "produce.py").read_text()


def test_compose_and_tested_broker_agree():
    tested = ApacheBroker(data_dir="/nonexistent", settings=APACHE_TEST_SETTINGS).config(
        port=9092, controller_port=9093)
    docker = _compose_properties()
    shared = read_properties(SHARED_SETTINGS)
    for key, value in shared.items():
        assert tested[key] == value == docker[key], key
    both = (set(tested) & set(docker)) - ADDRESS_KEYS - DEPLOYMENT_CHOICES
    disagree = {k: (tested[k], docker[k]) for k in both if tested[k] != docker[k]}
    assert not disagree, disagree
    # what only one side sets: its addresses, or settings named (and explained) in code
    assert set(tested) - set(docker) <= (ADDRESS_KEYS | set(LOCAL_SETTINGS)
                                         | set(APACHE_TEST_SETTINGS))
    assert set(docker) - set(tested) <= ADDRESS_KEYS
    assert docker["auto.create.topics.enable"] == "false"
    assert tested["auto.create.topics.enable"] == "true"
    # the test-only setting is not in what `onlinenmf broker --apache` runs with
    cli_config = ApacheBroker(data_dir="/nonexistent").config(port=9092, controller_port=9093)
    assert not set(APACHE_TEST_SETTINGS) & set(cli_config)


@pytest.mark.parametrize("kafka_broker",
                         [k for k in selected_brokers() if k == "apache"], indirect=True)
def test_running_broker_has_the_shared_settings(kafka_broker):
    admin = AdminClient({"bootstrap.servers": kafka_broker.bootstrap, "log_level": 3})
    resource = ConfigResource(ConfigResource.Type.BROKER, "1")
    configs = admin.describe_configs([resource])[resource].result(timeout=30)
    expected = {**read_properties(SHARED_SETTINGS), **LOCAL_SETTINGS,
                **{k: str(v) for k, v in APACHE_TEST_SETTINGS.items()}}
    running = {k: configs[k].value for k in expected}
    assert running == expected


@pytest.mark.parametrize("kafka_broker",
                         [k for k in selected_brokers() if k == "apache"], indirect=True)
def test_the_local_broker_runs_the_quick_compiler_alone(kafka_broker):
    """On the small shared machines the local broker is for, the optimising JIT compiler
    kept recompiling the request paths for minutes on the cores the consumers share
    (apache_kafka.HEAP says how much): the local broker's JVM runs C1 alone; docker/'s
    broker, on a host of its own, keeps the image's JVM options."""
    import psutil

    flags = psutil.Process(kafka_broker.process.pid).cmdline()
    assert "kafka.Kafka" in flags
    assert "-XX:TieredStopAtLevel=1" in flags[:flags.index("kafka.Kafka")]
    assert not {"KAFKA_JVM_PERFORMANCE_OPTS", "KAFKA_OPTS"} & set(KAFKA["environment"])


# --- where Tansu and Apache Kafka differ -----------------------------------------------------

def test_broker_faults_are_the_documented_ones(kafka_broker):
    """Tansu's faults (DESIGN.md) are there on Tansu and absent on Apache Kafka: the
    consumer's workarounds (lag from the high watermark, snapshot ids in the checkpoint)
    are then exercised on a broker that does not need them by every other Kafka test."""
    bootstrap = kafka_broker.bootstrap
    topic = create_topic(bootstrap, unique("faults"))
    produce(bootstrap, topic, [(None, b"%d" % i) for i in range(5)])
    tp, group = TopicPartition(topic, 0), unique("g")
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                             enable_auto_commit=False)
    try:
        latest = consumer.end_offsets([tp])[tp]
        consumer.commit({tp: OffsetAndMetadata(3, "snapshot-7", -1)})
    finally:
        consumer.close(autocommit=False)
    # read back by another client (confluent-kafka), as a restarted worker would
    check = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": group, "log_level": 3})
    try:
        back = check.committed([ck.TopicPartition(topic, 0)], timeout=30)[0]
    finally:
        check.close()
    assert back.offset == 3  # both brokers keep the committed offset itself
    broken = {"latest_offset": latest != 5, "commit_metadata": back.metadata != "snapshot-7"}
    assert {name for name, b in broken.items() if b} == kafka_broker.faults


# --- the broker process and its command ------------------------------------------------------

def cli_python(*args: str) -> list[str]:
    """``python ARGS`` with the interpreter the CLI runs with."""
    return [cli()[0], *args]


def _broker_command(port: int, data_dir: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(cli("broker", "--apache", "--port", str(port), "--data-dir",
                                str(data_dir)),
                            env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _sigterm(proc: subprocess.Popen[str], port: int) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 0, proc.stderr.read()
    assert not _port_open(port)


@needs_apache
def test_broker_command_serves_stops_on_sigterm_and_keeps_its_data(tmp_path):
    port, data = free_port(), tmp_path / "kafka"
    proc = _broker_command(port, data)
    try:
        line = proc.stdout.readline().strip()
        assert line == f"127.0.0.1:{port}", proc.stderr.read() if not line else line
        assert _port_open(port)
        topic = create_topic(line, unique("cli"))
        produce(line, topic, [(b"k", b"hello")])
        assert [m.value() for m in read_topic(line, topic, 1, idle=0.3)] == [b"hello"]
        _sigterm(proc, port)
        assert (data / "kraft" / "meta.properties").is_file()
        assert read_properties(data / "server.properties")["log.dirs"] == str(data / "kraft")
        # a second run on the same directory: not formatted again, the topic is still there
        proc = _broker_command(port, data)
        assert proc.stdout.readline().strip() == line
        assert [m.value() for m in read_topic(line, topic, 1, idle=0.3)] == [b"hello"]
        _sigterm(proc, port)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Formatting" in (data / "broker.log").read_text()
    assert (data / "broker.log").read_text().count("Formatting") == 1


def _no_java_env(tmp_path: Path, java_script: str | None = None) -> dict[str, str]:
    """The CLI's environment with a PATH where `java` is missing (or a fake one)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if java_script is not None:
        java = bin_dir / "java"
        java.write_text(java_script)
        java.chmod(java.stat().st_mode | stat.S_IXUSR)
    env = cli_env()
    env["PATH"] = str(bin_dir)
    return env


@pytest.mark.parametrize("java, expected", [
    (None, "Apache Kafka needs Java 17 or newer and `java` is not on PATH"),
    ("#!/bin/sh\necho 'openjdk version \"11.0.21\" 2023-10-17' >&2\n",
     "Apache Kafka needs Java 17 or newer; "),
], ids=["no-java", "java-11"])
def test_without_java_the_command_says_so_in_one_line(tmp_path, java, expected):
    env = _no_java_env(tmp_path, java)
    env["TMPDIR"] = str(tmp_path / "tmp")
    (tmp_path / "tmp").mkdir()
    done = subprocess.run(cli("broker", "--apache"), env=env, capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("onlinenmf broker: " + expected), lines
    assert list((tmp_path / "tmp").iterdir()) == []  # no temporary data directory left


def test_data_dir_without_apache_is_refused(tmp_path):
    done = subprocess.run(cli("broker", "--data-dir", str(tmp_path / "d")), env=cli_env(),
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "onlinenmf broker: --data-dir needs --apache (Tansu keeps everything in memory)")
    assert not (tmp_path / "d").exists()


def test_make_kafka_without_java(tmp_path):
    """`make test` runs the fetch with --optional: a machine without Java gets a warning
    (the Apache Kafka cases then skip), `make kafka` gets an error."""
    env = _no_java_env(tmp_path)
    for flags, status in (["--optional"], 0), ([], 1):
        done = subprocess.run(cli_python("-m", "consumers.apache_kafka", "fetch", *flags),
                              env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert done.returncode == status, done.stderr
        assert len(done.stderr.splitlines()) == 1 and "Java 17" in done.stderr


def test_maven_failure_is_one_line(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    mvn = bin_dir / "mvn"
    mvn.write_text("#!/bin/sh\necho '[ERROR] Could not resolve dependencies: offline'\n"
                   "exit 1\n")
    mvn.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv(apache_kafka.CACHE_ENV, str(tmp_path / "cache"))
    with pytest.raises(apache_kafka.BrokerError) as err:
        fetch_jars()
    assert str(err.value) == (f"Maven could not fetch Apache Kafka {kafka_version()} (exit 1): "
                              "Could not resolve dependencies: offline")
    lib = apache_kafka.lib_dir()
    assert not lib.exists() and list(lib.parent.iterdir()) == []  # no half copy left


@needs_apache
def test_fetch_copies_the_pinned_jars_once(tmp_path, monkeypatch):
    monkeypatch.setenv(apache_kafka.CACHE_ENV, str(tmp_path / "cache"))
    lines: list[str] = []
    lib = fetch_jars(lines.append)
    assert lib == apache_kafka.lib_dir() and lib.is_relative_to(tmp_path / "cache")
    assert (lib / f"kafka_2.13-{kafka_version()}.jar").is_file()
    assert any(lib.glob("log4j-slf4j-impl-*.jar"))  # the binding the POM lacks
    assert len(lines) == 2 and "fetching Apache Kafka" in lines[0]
    assert fetch_jars(lines.append) == lib and len(lines) == 2  # cached: no second fetch
    assert sorted(p.name for p in lib.parent.iterdir()) == ["lib"]


@pytest.mark.parametrize("text, major", [
    ('openjdk version "17.0.15" 2025-04-15', 17),
    ('openjdk version "21" 2023-09-19', 21),
    ('java version "1.8.0_392"', 8),
    ("no version here", None),
])
def test_java_version_parsing(text, major):
    assert apache_kafka._java_major(text) == major
