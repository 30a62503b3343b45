"""The rating stream's options of ``onlinenmf consume``, and the application they build.

The options every kind shares (Kafka, topics, checkpoints, ``--components``, ``--seed``)
are :func:`consumers.consume.add_arguments`'s.
"""

from __future__ import annotations

import argparse

from consumers.options import add_option, add_parameter_flags, parameter_values
from consumers.reco.application import RecoApp

__all__ = ["add_flags", "make_app", "EXCLUSIVE_FLAGS"]

#: flags no other kind honours
EXCLUSIVE_FLAGS: tuple[str, ...] = ()


def add_flags(parser: argparse.ArgumentParser) -> None:
    """Options of ``onlinenmf consume reco``: every parameter of a new model (flags made from
    :mod:`onlinenmf.parameters`: its defaults are RecoNMF's own) and the recommendations."""
    from onlinenmf.parameters import RECO

    group = parser.add_argument_group("reco (onlinenmf consume reco)")
    add_option(group, "--recommend-every", type=int, default=1000,
               help="events between two emissions of recommendations; 0: never (reco)")
    add_option(group, "--recommend-interval", type=float, default=None,
               help="also emit recommendations every this many seconds of event time (reco)")
    add_option(group, "--top-n", type=int, default=10, help="items per recommendation (reco)")
    add_option(group, "--max-active", type=int, default=1000,
               help="users recommended for per emission, the most recent (reco)")
    model = parser.add_argument_group("reco (onlinenmf consume reco): a new model (RecoNMF)")
    add_parameter_flags(model, [RECO])


def make_app(args: argparse.Namespace) -> RecoApp:
    """The application ``onlinenmf consume reco`` runs (the model topic slot carries the
    recommendations)."""
    from onlinenmf.parameters import RECO

    params = parameter_values(args, RECO)
    return RecoApp(
        model_params=params,
        output_topic=args.output_topic or None,
        recommendations_topic=args.model_topic or None,
        recommend_every=args.recommend_every,
        recommend_interval=args.recommend_interval,
        top_n=args.top_n,
        max_active=args.max_active,
        max_bytes=args.max_message_bytes,
    )
