"""The text stream's options of ``onlinenmf consume``, and the application they build.

The options every kind shares (Kafka, topics, checkpoints, ``--components``, ``--seed``)
are :func:`consumers.consume.add_arguments`'s. A new model's other defaults are
:class:`onlinenmf.text.TopicModel`'s own (read from its signature, not copied).
"""

from __future__ import annotations

import argparse

from consumers.options import add_option, positive_int, signature_defaults
from consumers.text.application import TOP_WORDS, TextApp

__all__ = ["add_flags", "make_app", "idf_power", "EXCLUSIVE_FLAGS", "MODEL_FLAGS"]

#: flags no other kind honours
EXCLUSIVE_FLAGS = ("--weighting", "--min-df", "--max-words", "--idf-power")
#: the flags that set a new TopicModel's parameter of the same name (not given: its default)
MODEL_FLAGS = ("weighting", "min_df", "max_words", "idf_power")


def idf_power(text: str) -> float:
    """argparse type of ``--idf-power``: a number that :class:`onlinenmf.text.TextVectorizer`
    (which holds the power for TopicModel) accepts; its own check gives the message.

    >>> idf_power("1.5")
    1.5
    """
    from onlinenmf.text import TextVectorizer

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    try:
        TextVectorizer(idf_power=value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return value


def add_flags(parser: argparse.ArgumentParser) -> None:
    """Options of ``onlinenmf consume text`` (with --components and --seed, shared)."""
    from onlinenmf.text import WEIGHTINGS, TopicModel

    model = signature_defaults(TopicModel)
    group = parser.add_argument_group("text (onlinenmf consume text)")
    add_option(group, "--weighting", default=None, choices=WEIGHTINGS,
               help=f"word weights of a new model (default: {model['weighting']}) (text)")
    add_option(group, "--min-df", type=positive_int, default=None,
               help=f"documents a word must be seen in before it joins the vocabulary "
                    f"(default: {model['min_df']}) (text)")
    add_option(group, "--max-words", type=positive_int, default=None,
               help=f"largest vocabulary; the words in the fewest documents are pruned "
                    f"(default: {model['max_words']}) (text)")
    add_option(group, "--idf-power", type=idf_power, default=None,
               help=f"power of the idf in the tfidf weighting of a new model, tf * idf ** P; "
                    f"1: plain TF-IDF (default: {model['idf_power']:g}) (text)")
    add_option(group, "--top-words", type=positive_int, default=TOP_WORDS,
               help="words per topic in the topics records (text)")


def make_app(args: argparse.Namespace) -> TextApp:
    """The application ``onlinenmf consume text`` runs (the model topic slot carries the
    topics' word lists)."""
    params = {"n_components": args.components, "seed": args.seed}
    for name in MODEL_FLAGS:  # not given: TopicModel's default
        if getattr(args, name) is not None:
            params[name] = getattr(args, name)
    return TextApp(model_params=params, output_topic=args.output_topic or None,
                   model_topic=args.model_topic or None, top_words=args.top_words,
                   max_bytes=args.max_message_bytes)
