"""The stream kinds, registered once: what ``onlinenmf produce KIND`` and ``onlinenmf
consume KIND`` run.

A kind is a package of the same shape (``consumers/<kind>/``: ``schema.py`` with its default
topics and input schema, ``application.py``, ``producer.py``, ``flags.py``); a new kind is a
new package and one line in :data:`STREAM_KINDS`.

>>> sorted(STREAM_KINDS)
['microbiome', 'reco', 'text']
>>> STREAM_KINDS["reco"].topics.input
'reco.ratings'
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from consumers import microbiome, reco, text
from consumers.microbiome import flags as microbiome_flags
from consumers.microbiome import producer as microbiome_producer
from consumers.reco import flags as reco_flags
from consumers.reco import producer as reco_producer
from consumers.text import flags as text_flags
from consumers.text import producer as text_producer
from consumers.topics import Topics

__all__ = ["StreamKind", "STREAM_KINDS"]


@dataclass(frozen=True)
class StreamKind:
    """One kind of stream and everything the commands need of it.

    Attributes
    ----------
    name : str
        The command-line word (``onlinenmf consume NAME``).
    topics : Topics
        Its default input, output and third (model / recommendations) topics.
    decode : callable
        ``decode(payload) -> event``: the input schema's decoder (a ``BadMessage`` when the
        payload cannot be learned), at the default limits.
    application : callable
        ``application(args) -> app``: the :class:`~consumers.loop.ConsumerLoop` application
        the parsed ``onlinenmf consume`` options ask for.
    messages : callable
        ``messages(args) -> iterator of (key, value)``: what ``onlinenmf produce`` sends.
    add_flags : callable
        Adds the kind's own ``onlinenmf consume`` options to the parser.
    exclusive_flags : tuple of str
        Options no other kind honours: given with another kind, they are refused.
    """

    name: str
    topics: Topics
    decode: Callable[[bytes | None], Any]
    application: Callable[[argparse.Namespace], Any]
    messages: Callable[[argparse.Namespace], Iterator[tuple[bytes, bytes]]]
    add_flags: Callable[[argparse.ArgumentParser], None]
    exclusive_flags: tuple[str, ...] = ()


#: name -> kind
STREAM_KINDS: dict[str, StreamKind] = {kind.name: kind for kind in (
    StreamKind("microbiome", microbiome.TOPICS, microbiome.decode_sample,
               microbiome_flags.make_app, microbiome_producer.microbiome_messages,
               microbiome_flags.add_flags, microbiome_flags.EXCLUSIVE_FLAGS),
    StreamKind("reco", reco.TOPICS, reco.decode_rating, reco_flags.make_app,
               reco_producer.reco_messages, reco_flags.add_flags, reco_flags.EXCLUSIVE_FLAGS),
    StreamKind("text", text.TOPICS, text.decode_document, text_flags.make_app,
               text_producer.text_messages, text_flags.add_flags, text_flags.EXCLUSIVE_FLAGS),
)}
