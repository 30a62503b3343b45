"""The microbiome stream's options of ``onlinenmf consume``, and the application they build.

The options every kind shares (Kafka, topics, checkpoints, ``--components``, ``--seed``)
are :func:`consumers.consume.add_arguments`'s.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from consumers.microbiome.application import MicrobiomeApp
from consumers.microbiome.schema import DEFAULT_MAX_FEATURES
from consumers.microbiome.supervised import SupervisedMicrobiomeApp, Supervision, label_path
from consumers.options import (
    add_flag,
    add_option,
    add_parameter_flags,
    parameter_dest,
    parameter_values,
    parse_kafka_settings,
    security_settings,
)
from consumers.topics import stats_topic, topic_name

__all__ = ["add_flags", "make_app", "EXCLUSIVE_FLAGS", "TRACKER_BOUNDS", "SUPERVISED_PREFIX",
           "supervised_section"]

#: flags no other kind honours (``onlinenmf consume reco --init-from ...`` is refused)
EXCLUSIVE_FLAGS = ("--share-dictionary", "--init-from", "--label")
#: The classifier's parameters are flags ``--supervised-<parameter>`` (``--supervised-n-
#: components``): the model's own flags (``--beta``, ``--forget-factor``) stay the model's.
SUPERVISED_PREFIX = "supervised_"
#: What a classifier flag's "none" reads as (the flags' own default, None, means "not given").
NONE = "none"

#: flag destination -> Tracker parameter, for the tracker's memory bounds
TRACKER_BOUNDS = {parameter_dest("Tracker", name): name for name in
                  ("max_subjects", "max_history", "max_history_bytes", "ttl", "max_events")}


def add_flags(parser: argparse.ArgumentParser) -> None:
    """Options of ``onlinenmf consume microbiome`` beyond the shared ones: every parameter of
    a new model and of the subject tracker (flags made from :mod:`onlinenmf.parameters`, so a
    consumer given no flag learns the same W as the model called with no argument)."""
    from onlinenmf.parameters import ENGINE, TRACKER

    group = parser.add_argument_group("microbiome (onlinenmf consume microbiome)")
    add_option(group, "--max-features", type=int, default=DEFAULT_MAX_FEATURES,
               help="input messages with more taxa are dead-lettered")
    add_option(group, "--init-from", type=Path, default=None,
               help="start from this model snapshot instead of a new model (onlinenmf fit "
                    "--out: a history fitted on Dask, followed live from there; the options "
                    "of a new model are then the snapshot's); recorded in the checkpoint, so a "
                    "restart continues the checkpoint and never re-applies it (microbiome)")
    add_flag(group, "--no-track", "no subject tracker: records without growth and events "
             "(faster; each subject's last h is still its warm start)")
    add_flag(group, "--share-dictionary", "share one dictionary with the group's other "
             "workers through a stats topic, so that each learns every community, also those "
             "of subjects on others' partitions (microbiome; see consumers/shared.py)")
    add_option(group, "--share-every", type=int, default=1,
               help="dictionary refreshes between two publications of this worker's "
                    "statistics (with --share-dictionary)")
    add_option(group, "--share-max-age", type=float, default=None,
               help="leave out peers whose latest statistics are older than this many "
                    "seconds (a worker gone for good; default: keep them)")
    add_option(group, "--stats-topic", default=None, type=topic_name,
               help=f"the stats topic (default: {stats_topic('<input topic>')})")
    model = parser.add_argument_group("microbiome (onlinenmf consume microbiome): a new model "
                                      "(OnlineNMF) and the subject tracker (times in days)")
    add_parameter_flags(model, [ENGINE, TRACKER])
    _add_supervised_flags(parser)


def _classifier_parameters() -> dict:
    """The classifier's parameters that are flags (its seed is the model's ``--seed``)."""
    from onlinenmf.parameters import CLASSIFIER

    return {name: p for name, p in CLASSIFIER.items() if name != "seed"}


def supervised_section() -> dict[str, str]:
    """``[supervised]`` of the ``--config`` file: key -> flag destination (``label``, and the
    classifier's parameters by their own names)."""
    return {"label": "label", **{name: SUPERVISED_PREFIX + name
                                 for name in _classifier_parameters()}}


def _label_field(text: str) -> str:
    try:
        label_path(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text.strip()


def _parameter_reader(parameter):
    """argparse type of a classifier flag: its text as the parameter's type, checked."""
    def read(text: str):
        if parameter.none is not None and text.strip().lower() == NONE:
            return NONE
        try:
            value = text if parameter.type is str else parameter.type(text)
            parameter.check(value)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
        return value

    read.__name__ = parameter.type.__name__
    return read


def _add_supervised_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "microbiome (onlinenmf consume microbiome): supervised mode (NMFClassifier; see "
        "consumers/microbiome/supervised.py)")
    add_option(group, "--label", type=_label_field, default=None, metavar="FIELD",
               help="learn supervised: each sample's class is this field of its meta, e.g. "
                    "meta.delivery (missing or null: unlabelled); output records gain the "
                    "class probabilities made before learning the sample")
    for name, parameter in _classifier_parameters().items():
        flag = "--" + (SUPERVISED_PREFIX + name).replace("_", "-")
        add_option(group, flag, type=_parameter_reader(parameter), default=None,
                   metavar=name.upper(),
                   help=f"with --label: the classifier's {name}: {parameter.doc}; "
                        f"{parameter.describe()} (default: {parameter.default!r})".replace(
                            "%", "%%"))


def _checked(model_params: dict, tracker_params: dict) -> None:
    """Refuse, before anything starts, what one flag's check cannot see (k_max < k_min, ...):
    the model and tracker raise their one-line ValueError here."""
    from onlinenmf import OnlineNMF
    from onlinenmf.tracking import Tracker

    Tracker(OnlineNMF(**model_params), **tracker_params)


def make_app(args: argparse.Namespace) -> MicrobiomeApp:
    """The application ``onlinenmf consume microbiome`` runs, from its parsed options (the
    topics already resolved to the kind's defaults)."""
    from onlinenmf.parameters import ENGINE, TRACKER

    params = parameter_values(args, ENGINE)
    tracker_params = parameter_values(args, TRACKER)
    _checked(params, tracker_params)
    shared = None
    if args.share_dictionary:
        from consumers.shared import SharedDictionary

        settings = security_settings(parse_kafka_settings(args.kafka_config))
        shared = SharedDictionary(args.bootstrap_servers,
                                  args.stats_topic or stats_topic(args.topic), args.worker_id,
                                  share_every=args.share_every, consumer_config=settings,
                                  max_age=args.share_max_age,
                                  broker_timeout=args.broker_timeout)
    settings = dict(
        model_params=params,
        output_topic=args.output_topic or None,
        model_topic=args.model_topic or None,
        max_bytes=args.max_message_bytes,
        max_features=args.max_features,
        track=not args.no_track,
        tracker_params=tracker_params,
        shared=shared,
        init_from=args.init_from,
    )
    if args.label is None:
        given = [name for name in _classifier_parameters()
                 if getattr(args, SUPERVISED_PREFIX + name) is not None]
        if given:
            flag = "--" + (SUPERVISED_PREFIX + given[0]).replace("_", "-")
            raise ValueError(f"{flag} sets the classifier of the supervised mode: give --label "
                             "FIELD too (e.g. --label meta.delivery)")
        return MicrobiomeApp(**settings)
    return SupervisedMicrobiomeApp(_supervision(args, params["seed"]), **settings)


def _supervision(args: argparse.Namespace, seed: int | None) -> Supervision:
    """``--label`` and the classifier's flags; a combination the classifier refuses is its
    one-line ValueError here, before anything starts."""
    from onlinenmf.river import NMFClassifier

    classifier = {name: getattr(args, SUPERVISED_PREFIX + name)
                  for name in _classifier_parameters()}
    classifier = {name: None if value == NONE else value
                  for name, value in classifier.items() if value is not None}
    classifier["seed"] = seed
    NMFClassifier(**classifier)
    return Supervision(args.label, classifier)
