"""Run a Kafka consumer that learns a stream with crash-consistent checkpoints.

``onlinenmf consume microbiome --bootstrap-servers H:P --topic T --group G
--checkpoint-dir D [--exit-when-idle S] [--metrics-port P] [-X key=value ...]``

SIGTERM or SIGINT: the record in hand is finished, a last checkpoint is written and
committed, and the consumer leaves its group (a second SIGINT aborts at once).

Exit status: 0 done (stopped, or idle for ``--exit-when-idle`` seconds with a broker
answering); 2 the checkpoint directory is unusable (unwritable, corrupt, another worker's
lock) or the options are; 3 no broker answered, or outputs stayed unacknowledged, for
``--broker-timeout`` seconds (nothing unacknowledged was checkpointed); 4 a partition's log
does not hold the offset the checkpoint resumes from (a recreated topic, a broker that lost
its data: the message names the partition and both offsets); 5 a topic it writes does not
exist and the broker refused to create it (before anything is read). 1 is a crash.
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import sys
from pathlib import Path

from kafka.errors import KafkaConfigurationError

from consumers.checkpoint import CheckpointError
from consumers.config import (
    ConfigError,
    check_kafka_settings,
    embedded_broker_settings,
    producer_only_settings,
)
from consumers.config import configure_consume as configure
from consumers.kinds import STREAM_KINDS
from consumers.loop import ConsumerLoop, LoopConfig
from consumers.messages import DEFAULT_MAX_BYTES
from consumers.metrics import ConsumerMetrics
from consumers.options import (
    add_kafka_options,
    add_option,
    add_parameter_flags,
    parse_kafka_settings,
    security_settings,
    setup_logging,
)
from consumers.outcomes import EXIT_SETUP
from consumers.topics import topic_name

__all__ = ["add_arguments", "configure", "run", "loop_config", "resolve_topics"]

log = logging.getLogger("onlinenmf.consumer")


def _defaults(role: str) -> str:
    """The kinds' default topics in one role, for the help text."""
    return ", ".join(f"{getattr(kind.topics, role)} ({name})"
                     for name, kind in STREAM_KINDS.items())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``onlinenmf consume``."""
    parser.add_argument("kind", choices=sorted(STREAM_KINDS), help="which stream to consume")
    add_kafka_options(parser)
    add_option(parser, "--config", type=Path, help="TOML file of settings: [model], "
               "[tracker], [kafka], [topics], [consumer] (see consumers/README.md); the "
               "flags given here win over it")
    add_option(parser, "--topic", type=topic_name,
               help=f"input topic (default: {_defaults('input')})")
    add_option(parser, "--group", default="onlinenmf", help="consumer group id")
    add_option(parser, "--checkpoint-dir", type=Path, default=Path("checkpoints"),
               help="directory of checkpoints (share it between the group's workers)")
    add_option(parser, "--worker-id", default=socket.gethostname(),
               help="this worker's id: names its checkpoint file")
    add_option(parser, "--output-topic", type=topic_name,
               help="community records or predictions (default: "
               f"{_defaults('output')}; '' to disable)")
    add_option(parser, "--model-topic", type=topic_name,
               help="model versions or recommendations (default: "
               f"{_defaults('model')}; '' to disable)")
    add_option(parser, "--exit-when-idle", type=float, default=None,
               help="exit after this many seconds without a record")
    add_option(parser, "--metrics-port", type=int, default=None,
               help="serve Prometheus metrics on this port")
    add_option(parser, "--checkpoint-every", type=int, default=5000,
               help="records between checkpoints")
    add_option(parser, "--checkpoint-interval", type=float, default=10.0,
               help="seconds between checkpoints")
    add_option(parser, "--max-poll-records", type=int, default=500, help="records per poll")
    add_option(parser, "--max-inflight", type=int, default=20_000,
               help="unacknowledged output records before input is paused")
    add_option(parser, "--flush-timeout", type=float, default=10.0,
               help="seconds to wait for output acknowledgements before a checkpoint is "
                    "postponed (input paused meanwhile)")
    add_option(parser, "--broker-timeout", type=float, default=LoopConfig.broker_timeout,
               help="seconds without an answer from any broker, or with outputs "
                    "unacknowledged, before the consumer gives up (exit status 3)")
    add_option(parser, "--max-message-bytes", type=int, default=DEFAULT_MAX_BYTES,
               help="the largest record read or written: larger input messages are "
                    "dead-lettered (cut to fit), and it is the producer's max_request_size "
                    "and the least fetch size of the consumer")
    _add_model_flags(parser)
    add_option(parser, "--log-level", default="INFO", help="logging level")
    for kind in STREAM_KINDS.values():
        kind.add_flags(parser)


def _add_model_flags(parser: argparse.ArgumentParser) -> None:
    """``--components`` and ``--seed``, which every kind's model takes, from the parameter
    table (each kind adds its classes' other parameters in its own group)."""
    from onlinenmf.parameters import ENGINE, Table

    shared = Table(ENGINE.owner, [ENGINE["n_components"], ENGINE["seed"]])
    add_parameter_flags(parser, [shared])


def loop_config(args: argparse.Namespace, topics: list[str]) -> LoopConfig:
    """The loop settings the parsed command line asks for."""
    settings = parse_kafka_settings(args.kafka_config)
    # a producer's setting (-X linger_ms=50) is the output producer's: the consumer refuses it
    producer = producer_only_settings(settings)
    return LoopConfig(
        bootstrap_servers=args.bootstrap_servers,
        topics=topics,
        group_id=args.group,
        checkpoint_dir=Path(args.checkpoint_dir),
        worker_id=args.worker_id,
        checkpoint_every=args.checkpoint_every,
        checkpoint_interval=args.checkpoint_interval,
        exit_when_idle=args.exit_when_idle,
        max_poll_records=args.max_poll_records,
        max_inflight=args.max_inflight,
        flush_timeout=args.flush_timeout,
        max_message_bytes=args.max_message_bytes,
        broker_timeout=args.broker_timeout,
        consumer_config={k: v for k, v in settings.items() if k not in producer},
        producer_config={**security_settings(settings), **producer},
    )


def resolve_topics(args: argparse.Namespace) -> None:
    """Fill the topics not given with the kind's defaults ('' keeps an output disabled)."""
    topics = STREAM_KINDS[args.kind].topics
    args.topic = args.topic or topics.input
    args.output_topic = topics.output if args.output_topic is None else args.output_topic
    args.model_topic = topics.model if args.model_topic is None else args.model_topic


def _flags_of_other_kinds(args: argparse.Namespace, name: str) -> str | None:
    """Why a flag that only another kind honours cannot be used here (None: none given)."""
    for other in STREAM_KINDS.values():
        for flag in other.exclusive_flags if other.name != name else ():
            if getattr(args, flag.lstrip("-").replace("-", "_")) not in (None, False):
                return f"{flag} is for the {other.name} stream only"
    return None


def run(args: argparse.Namespace) -> int:
    """Build the application and the loop, serve metrics, run until stopped."""
    setup_logging(args.log_level)
    kind = STREAM_KINDS[args.kind]
    refused = _flags_of_other_kinds(args, kind.name)
    if refused:
        print(f"onlinenmf consume: {refused}", file=sys.stderr)
        return EXIT_SETUP
    try:  # a malformed -X is refused before anything is built
        parse_kafka_settings(args.kafka_config)
    except argparse.ArgumentTypeError as err:
        print(f"onlinenmf consume: {err}", file=sys.stderr)
        return EXIT_SETUP
    resolve_topics(args)
    metrics = ConsumerMetrics()
    try:
        app = kind.application(args)
    except ValueError as err:  # e.g. an unreadable --init-from snapshot
        print(f"onlinenmf consume: {err}", file=sys.stderr)
        return EXIT_SETUP
    config = loop_config(args, [args.topic])
    try:  # before the broker is asked anything
        check_kafka_settings({**config.consumer_config, **config.producer_config})
    except ConfigError as err:
        print(f"onlinenmf consume: {err}", file=sys.stderr)
        return EXIT_SETUP
    fast = embedded_broker_settings(config.bootstrap_servers, config.consumer_config)
    if fast:  # the embedded broker: a short session, so the group is joined in a second
        log.info("embedded broker: %s", ", ".join(f"{k}={v}" for k, v in fast.items()))
        config.consumer_config = {**fast, **config.consumer_config}
    loop = ConsumerLoop(app, config, metrics)
    if args.metrics_port is not None:
        metrics.serve(args.metrics_port)
        log.info("metrics on :%d/metrics", args.metrics_port)

    def _stop(signum: int, frame: object) -> None:
        log.info("signal %d: finishing the record in hand, then checkpoint and exit", signum)
        loop.stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second ^C aborts

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        return loop.run()
    except (CheckpointError, ConfigError, KafkaConfigurationError) as err:  # e.g. a bad -X
        print(f"onlinenmf consume: {err}", file=sys.stderr)
        return EXIT_SETUP
