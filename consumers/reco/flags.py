"""The rating stream's options of ``onlinenmf consume``, and the application they build.

The options every kind shares (Kafka, topics, checkpoints, ``--components``, ``--seed``)
are :func:`consumers.consume.add_arguments`'s.
"""

from __future__ import annotations

import argparse

from consumers.options import add_option, signature_defaults
from consumers.reco.application import RecoApp

__all__ = ["add_flags", "make_app", "EXCLUSIVE_FLAGS"]

#: flags no other kind honours
EXCLUSIVE_FLAGS: tuple[str, ...] = ()


def add_flags(parser: argparse.ArgumentParser) -> None:
    """Options of ``onlinenmf consume reco`` (with --components and --seed, shared)."""
    from onlinenmf.reco import RecoNMF

    model = signature_defaults(RecoNMF)  # a new model's defaults are RecoNMF's own
    group = parser.add_argument_group("reco (onlinenmf consume reco)")
    add_option(group, "--feedback", default=model["feedback"],
               help="explicit ratings or implicit counts (reco)")
    add_option(group, "--rating-range", default=None,
               help="LOW,HIGH: ratings outside are dead-lettered, predictions clipped (reco)")
    add_option(group, "--history", type=int, default=model["history"],
               help="ratings remembered per user (reco)")
    add_option(group, "--item-forget-factor", type=float, default=model["forget_factor"],
               help="per-event forgetting of the item statistics (reco)")
    add_option(group, "--item-refresh-every", type=int,
               default=model["refresh_every"],
               help="events between item refreshes (reco; default 1 explicit, 100 implicit)")
    add_option(group, "--recommend-every", type=int, default=1000,
               help="events between two emissions of recommendations; 0: never (reco)")
    add_option(group, "--recommend-interval", type=float, default=None,
               help="also emit recommendations every this many seconds of event time (reco)")
    add_option(group, "--top-n", type=int, default=10, help="items per recommendation (reco)")
    add_option(group, "--max-active", type=int, default=1000,
               help="users recommended for per emission, the most recent (reco)")


def _rating_range(text: str | None) -> tuple[float, float] | None:
    if not text:
        return None
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise SystemExit(f"--rating-range {text!r}: expected LOW,HIGH such as 0,10") from None
    return (low, high)


def make_app(args: argparse.Namespace) -> RecoApp:
    """The application ``onlinenmf consume reco`` runs (the model topic slot carries the
    recommendations)."""
    params = {
        "n_components": args.components,
        "feedback": args.feedback,
        "rating_range": _rating_range(args.rating_range),
        "history": args.history,
        "forget_factor": args.item_forget_factor,
        "refresh_every": args.item_refresh_every,
        "seed": args.seed,
    }
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
