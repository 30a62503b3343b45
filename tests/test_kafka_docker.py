"""docker/: the compose file parses and agrees with the CLI and the Dockerfile.

No Docker engine runs here, so this is all that is checked: images, listeners, topics,
volumes, and that every command line and ONLINENMF_* variable is one the CLI accepts.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest
import yaml

from consumers.cli import build_parser
from consumers.options import env_name

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker" / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def _subparser(name: str) -> argparse.ArgumentParser:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


def _parse(service: str, monkeypatch) -> argparse.Namespace:
    svc = SERVICES[service]
    for key, value in svc.get("environment", {}).items():
        monkeypatch.setenv(key, str(value))
    return build_parser().parse_args(svc["command"])  # defaults read the environment


def test_kafka_is_kraft_single_node_with_two_listeners():
    kafka = SERVICES["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = kafka["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    listeners = dict(item.split("://") for item in env["KAFKA_LISTENERS"].split(","))
    advertised = dict(item.split("://") for item in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    assert set(advertised) == {"PLAINTEXT", "PLAINTEXT_HOST"} <= set(listeners)
    assert advertised["PLAINTEXT"] == "kafka:" + listeners["PLAINTEXT"].lstrip(":")
    assert advertised["PLAINTEXT_HOST"].startswith("localhost:")
    host_port = advertised["PLAINTEXT_HOST"].split(":")[1]
    assert any(p.endswith(f":{host_port}:{host_port}") for p in kafka["ports"])
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{env['KAFKA_NODE_ID']}@kafka:")
    assert "kafka-data:/var/lib/kafka/data" in kafka["volumes"]


def _created_topics() -> dict[str, tuple[int, str]]:
    script = SERVICES["kafka-init"]["command"][0]
    specs = re.search(r"for spec in (.+?); do", script).group(1).split()
    return {name: (int(parts), policy)
            for name, parts, policy in (s.split(":") for s in specs)}


@pytest.mark.parametrize("service", ["consumer", "producer"])
def test_environment_variables_are_cli_options(service):
    command = SERVICES[service]["command"]
    options = {env_name(flag) for action in _subparser(command[0])._actions
               for flag in action.option_strings if flag.startswith("--")}
    options.add("ONLINENMF_KAFKA_CONFIG")
    unknown = set(SERVICES[service]["environment"]) - options
    assert not unknown, f"{service}: {unknown} are not options of `onlinenmf {command[0]}`"


def test_consumer_command_is_consistent(monkeypatch):
    args = _parse("consumer", monkeypatch)
    assert args.command == "consume" and args.kind == "microbiome"
    assert args.bootstrap_servers == "kafka:19092"  # the internal listener
    topics = _created_topics()
    for topic in (args.topic, args.topic + ".DLT", args.output_topic, args.model_topic):
        assert topic in topics, f"{topic} is not created by kafka-init"
    assert topics[args.topic][0] == topics[args.topic + ".DLT"][0]  # DLT keeps partitions
    assert topics[args.model_topic][1] == "compact"
    # checkpoints live on the named volume that every replica shares
    volume, mount = SERVICES["consumer"]["volumes"][0].split(":")
    assert volume in COMPOSE["volumes"] and str(args.checkpoint_dir).startswith(mount)
    # metrics port published; scaling possible (no fixed container name)
    assert any(p.endswith(f":{args.metrics_port}") for p in SERVICES["consumer"]["ports"])
    assert "container_name" not in SERVICES["consumer"]
    assert SERVICES["consumer"]["depends_on"]["kafka-init"]["condition"] == (
        "service_completed_successfully")


def test_producer_command_is_consistent(monkeypatch):
    args = _parse("producer", monkeypatch)
    assert args.command == "produce" and args.kind == "microbiome"
    assert args.bootstrap_servers == "kafka:19092"
    assert args.topic in _created_topics()
    assert SERVICES["producer"]["image"] == SERVICES["consumer"]["image"]


def test_dockerfile_matches_compose():
    build = SERVICES["consumer"]["build"]
    dockerfile = (ROOT / "docker" / build["context"] / build["dockerfile"]).resolve()
    assert dockerfile == ROOT / "docker" / "Dockerfile"
    text = dockerfile.read_text()
    for package in ("onlinenmf", "consumers"):
        assert re.search(rf"^COPY {package} ", text, re.M), package
    entrypoint = re.search(r"^ENTRYPOINT (.+)$", text, re.M).group(1)
    assert yaml.safe_load(entrypoint) == ["onlinenmf"]
    cmd = yaml.safe_load(re.search(r"^CMD (.+)$", text, re.M).group(1))
    build_parser().parse_args(cmd)  # the image's default command is a valid one
    exposed = re.search(r"^EXPOSE (\d+)$", text, re.M).group(1)
    assert SERVICES["consumer"]["environment"]["ONLINENMF_METRICS_PORT"] == exposed
