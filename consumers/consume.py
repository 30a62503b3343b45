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
its data: the message names the partition and both offsets). 1 is a crash.
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kafka.errors import KafkaConfigurationError

from consumers.checkpoint import CheckpointError
from consumers.loop import EXIT_SETUP, ConsumerLoop, LoopConfig
from consumers.messages import DEFAULT_MAX_BYTES, DEFAULT_MAX_FEATURES
from consumers.metrics import ConsumerMetrics
from consumers.options import (
    add_flag,
    add_kafka_options,
    add_option,
    byte_size,
    parse_kafka_settings,
    positive_float,
    positive_int,
    security_settings,
    setup_logging,
)

__all__ = ["add_arguments", "run", "APPLICATIONS", "loop_config"]

log = logging.getLogger("onlinenmf.consumer")


def _microbiome_app(args: argparse.Namespace) -> Any:
    from consumers.microbiome import MicrobiomeApp

    params = {
        "n_components": args.components,
        "beta": args.beta,
        "forget_factor": args.forget_factor,
        "refresh_every": args.refresh_every,
        "seed": args.seed,
    }
    shared = None
    if args.share_dictionary:
        from consumers.shared import STATS_SUFFIX, SharedDictionary

        settings = security_settings(parse_kafka_settings(args.kafka_config))
        shared = SharedDictionary(args.bootstrap_servers, args.stats_topic or
                                  args.topic + STATS_SUFFIX, args.worker_id,
                                  share_every=args.share_every, consumer_config=settings,
                                  max_age=args.share_max_age)
    return MicrobiomeApp(
        model_params=params,
        output_topic=args.output_topic or None,
        model_topic=args.model_topic or None,
        max_bytes=args.max_message_bytes,
        max_features=args.max_features,
        track=not args.no_track,
        tracker_params={"window": args.growth_window,
                        **{name: getattr(args, flag) for flag, name in TRACKER_BOUNDS.items()}},
        shared=shared,
        init_from=args.init_from,
    )


def _reco_app(args: argparse.Namespace) -> Any:
    from consumers.reco import reco_app

    return reco_app(args)


#: stream kind -> (default input, output and model topics, application factory); for reco
#: the third topic carries the top-N recommendations
APPLICATIONS: dict[str, tuple[tuple[str, str, str], Callable[[argparse.Namespace], Any]]] = {
    "microbiome": (
        ("microbiome.samples", "microbiome.communities", "microbiome.model"), _microbiome_app
    ),
    "reco": (("reco.ratings", "reco.predictions", "reco.recommendations"), _reco_app),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``onlinenmf consume``."""
    parser.add_argument("kind", choices=sorted(APPLICATIONS), help="which stream to consume")
    add_kafka_options(parser)
    add_option(parser, "--topic", help="input topic (default: microbiome.samples)")
    add_option(parser, "--group", default="onlinenmf", help="consumer group id")
    add_option(parser, "--checkpoint-dir", type=Path, default=Path("checkpoints"),
               help="directory of checkpoints (share it between the group's workers)")
    add_option(parser, "--worker-id", default=socket.gethostname(),
               help="this worker's id: names its checkpoint file")
    add_option(parser, "--output-topic", help="community records (default: "
               "microbiome.communities; '' to disable)")
    add_option(parser, "--model-topic", help="model versions (default: microbiome.model; '' "
               "to disable)")
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
    add_option(parser, "--max-features", type=int, default=DEFAULT_MAX_FEATURES,
               help="input messages with more taxa are dead-lettered")
    add_option(parser, "--components", type=int, default=10, help="rank k of a new model")
    add_option(parser, "--beta", type=float, default=1.0,
               help="beta-divergence of a new model (1: KL, counts)")
    add_option(parser, "--forget-factor", type=float, default=0.998,
               help="forgetting per sample of a new model")
    add_option(parser, "--refresh-every", type=int, default=100,
               help="samples between dictionary refreshes of a new model")
    add_option(parser, "--seed", type=int, default=0, help="seed of a new model")
    add_option(parser, "--init-from", type=Path, default=None,
               help="start from this model snapshot instead of a new model (onlinenmf fit "
                    "--out: a history fitted on Dask, followed live from there; the options "
                    "of a new model are then the snapshot's); recorded in the checkpoint, so a "
                    "restart continues the checkpoint and never re-applies it (microbiome)")
    add_flag(parser, "--no-track", "no subject tracker: records without growth and events "
             "(faster; each subject's last h is still its warm start)")
    add_option(parser, "--growth-window", type=float, default=None,
               help="growth rates over the last this many days of a subject (default: all "
                    "its kept history)")
    _add_tracker_bounds(parser)
    add_flag(parser, "--share-dictionary", "share one dictionary with the group's other "
             "workers through a stats topic, so that each learns every community, also those "
             "of subjects on others' partitions (microbiome; see consumers/shared.py)")
    add_option(parser, "--share-every", type=int, default=1,
               help="dictionary refreshes between two publications of this worker's "
                    "statistics (with --share-dictionary)")
    add_option(parser, "--share-max-age", type=float, default=None,
               help="leave out peers whose latest statistics are older than this many "
                    "seconds (a worker gone for good; default: keep them)")
    add_option(parser, "--stats-topic", default=None,
               help="the stats topic (default: <input topic>.stats)")
    add_option(parser, "--log-level", default="INFO", help="logging level")
    from consumers.reco import add_reco_arguments

    add_reco_arguments(parser)


#: flag destination -> Tracker parameter, for the tracker's memory bounds (microbiome)
TRACKER_BOUNDS = {"max_subjects": "max_subjects", "max_history": "max_history",
                  "max_history_bytes": "max_history_bytes", "subject_ttl": "ttl",
                  "max_events": "max_events"}


def _add_tracker_bounds(parser: argparse.ArgumentParser) -> None:
    """The subject tracker's bounds; defaults are the Tracker's own. They also apply to a
    tracker restored from a checkpoint (see consumers/README.md, "Memory of the tracker")."""
    import inspect

    from onlinenmf.tracking import Tracker  # the onlinenmf CLI has imported it already

    default = {name: p.default for name, p in inspect.signature(Tracker).parameters.items()}
    add_option(parser, "--max-subjects", type=positive_int, default=default["max_subjects"],
               help="subjects the tracker keeps (least recently seen evicted)")
    add_option(parser, "--max-history", type=positive_int, default=default["max_history"],
               help="samples the tracker keeps per subject (oldest dropped)")
    add_option(parser, "--max-history-bytes", type=byte_size,
               default=default["max_history_bytes"],
               help="memory budget of the tracker's subject histories, in bytes or with K, M, "
                    "G (e.g. 256M); past it the least recently seen subjects are evicted")
    add_option(parser, "--subject-ttl", type=positive_float, default=default["ttl"],
               help="days after its latest sample that a subject is kept (default: no limit)")
    add_option(parser, "--max-events", type=positive_int, default=default["max_events"],
               help="appear/vanish/birth/retire events the tracker keeps")


def loop_config(args: argparse.Namespace, topics: list[str]) -> LoopConfig:
    """The loop settings the parsed command line asks for."""
    settings = parse_kafka_settings(args.kafka_config)
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
        consumer_config=settings,
        producer_config=security_settings(settings),
    )


def run(args: argparse.Namespace) -> int:
    """Build the application and the loop, serve metrics, run until stopped."""
    setup_logging(args.log_level)
    if args.share_dictionary and args.kind != "microbiome":
        print("onlinenmf consume: --share-dictionary is for the microbiome stream only",
              file=sys.stderr)
        return EXIT_SETUP
    if args.init_from is not None and args.kind != "microbiome":
        print("onlinenmf consume: --init-from is for the microbiome stream only",
              file=sys.stderr)
        return EXIT_SETUP
    (topic, output, model), factory = APPLICATIONS[args.kind]
    args.topic = args.topic or topic
    args.output_topic = output if args.output_topic is None else args.output_topic
    args.model_topic = model if args.model_topic is None else args.model_topic
    metrics = ConsumerMetrics()
    try:
        app = factory(args)
    except ValueError as err:  # e.g. an unreadable --init-from snapshot
        print(f"onlinenmf consume: {err}", file=sys.stderr)
        return EXIT_SETUP
    loop = ConsumerLoop(app, loop_config(args, [args.topic]), metrics)
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
    except (CheckpointError, KafkaConfigurationError) as err:  # e.g. an unknown -X setting
        print(f"onlinenmf consume: {err}", file=sys.stderr)
        return EXIT_SETUP
