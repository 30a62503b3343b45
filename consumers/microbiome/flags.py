"""The microbiome stream's options of ``onlinenmf consume``, and the application they build.

The options every kind shares (Kafka, topics, checkpoints, ``--components``, ``--seed``)
are :func:`consumers.consume.add_arguments`'s.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from consumers.microbiome.application import MicrobiomeApp
from consumers.microbiome.schema import DEFAULT_MAX_FEATURES
from consumers.options import (
    add_flag,
    add_option,
    byte_size,
    parse_kafka_settings,
    positive_float,
    positive_int,
    security_settings,
    signature_defaults,
)
from consumers.topics import stats_topic

__all__ = ["add_flags", "make_app", "EXCLUSIVE_FLAGS", "TRACKER_BOUNDS"]

#: flags no other kind honours (``onlinenmf consume reco --init-from ...`` is refused)
EXCLUSIVE_FLAGS = ("--share-dictionary", "--init-from")

#: flag destination -> Tracker parameter, for the tracker's memory bounds
TRACKER_BOUNDS = {"max_subjects": "max_subjects", "max_history": "max_history",
                  "max_history_bytes": "max_history_bytes", "subject_ttl": "ttl",
                  "max_events": "max_events"}


def add_flags(parser: argparse.ArgumentParser) -> None:
    """Options of ``onlinenmf consume microbiome`` beyond the shared ones."""
    group = parser.add_argument_group("microbiome (onlinenmf consume microbiome)")
    add_option(group, "--max-features", type=int, default=DEFAULT_MAX_FEATURES,
               help="input messages with more taxa are dead-lettered")
    # A new model's defaults are OnlineNMF's own (read from its signature, not copied), so
    # a consumer and an in-process model given the same options learn the same W.
    from onlinenmf import OnlineNMF

    model = signature_defaults(OnlineNMF)
    add_option(group, "--beta", type=float, default=model["beta"],
               help="beta-divergence of a new model (1: KL, counts)")
    add_option(group, "--forget-factor", type=float, default=model["forget_factor"],
               help="forgetting per sample of a new model (default: chosen by the data, "
                    "see OnlineNMF)")
    add_option(group, "--refresh-every", type=int, default=model["refresh_every"],
               help="samples between dictionary refreshes of a new model (default: the "
                    "automatic schedule, see OnlineNMF)")
    add_option(group, "--init-from", type=Path, default=None,
               help="start from this model snapshot instead of a new model (onlinenmf fit "
                    "--out: a history fitted on Dask, followed live from there; the options "
                    "of a new model are then the snapshot's); recorded in the checkpoint, so a "
                    "restart continues the checkpoint and never re-applies it (microbiome)")
    add_flag(group, "--no-track", "no subject tracker: records without growth and events "
             "(faster; each subject's last h is still its warm start)")
    add_option(group, "--growth-window", type=float, default=None,
               help="growth rates over the last this many days of a subject (default: all "
                    "its kept history)")
    _add_tracker_bounds(group)
    add_flag(group, "--share-dictionary", "share one dictionary with the group's other "
             "workers through a stats topic, so that each learns every community, also those "
             "of subjects on others' partitions (microbiome; see consumers/shared.py)")
    add_option(group, "--share-every", type=int, default=1,
               help="dictionary refreshes between two publications of this worker's "
                    "statistics (with --share-dictionary)")
    add_option(group, "--share-max-age", type=float, default=None,
               help="leave out peers whose latest statistics are older than this many "
                    "seconds (a worker gone for good; default: keep them)")
    add_option(group, "--stats-topic", default=None,
               help=f"the stats topic (default: {stats_topic('<input topic>')})")


def _add_tracker_bounds(parser: argparse._ActionsContainer) -> None:
    """The subject tracker's bounds; defaults are the Tracker's own. They also apply to a
    tracker restored from a checkpoint (see consumers/README.md, "Memory of the tracker")."""
    from onlinenmf.tracking import Tracker  # the onlinenmf CLI has imported it already

    default = signature_defaults(Tracker)
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


def make_app(args: argparse.Namespace) -> MicrobiomeApp:
    """The application ``onlinenmf consume microbiome`` runs, from its parsed options (the
    topics already resolved to the kind's defaults)."""
    params = {
        "n_components": args.components,
        "beta": args.beta,
        "forget_factor": args.forget_factor,
        "refresh_every": args.refresh_every,
        "seed": args.seed,
    }
    shared = None
    if args.share_dictionary:
        from consumers.shared import SharedDictionary

        settings = security_settings(parse_kafka_settings(args.kafka_config))
        shared = SharedDictionary(args.bootstrap_servers,
                                  args.stats_topic or stats_topic(args.topic), args.worker_id,
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
