"""Topic names: the default topics of a stream kind, and the suffixes every kind shares.

Each kind declares its defaults once, in its schema module (``TOPICS`` of
:mod:`consumers.microbiome.schema`, :mod:`consumers.reco.schema`); the topics that follow
an input topic (its dead letters, the shared statistics) are named from it here.

>>> t = Topics(input="my.samples", output="my.out", model="my.model")
>>> dead_letter_topic(t.input), stats_topic(t.input)
('my.samples.DLT', 'my.samples.stats')
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DLT_SUFFIX", "STATS_SUFFIX", "Topics", "dead_letter_topic", "stats_topic"]

#: Dead letters of topic T go to T + DLT_SUFFIX.
DLT_SUFFIX = ".DLT"
#: With ``--share-dictionary``, the workers reading topic T share statistics on
#: T + STATS_SUFFIX (unless ``--stats-topic`` names another).
STATS_SUFFIX = ".stats"


@dataclass(frozen=True)
class Topics:
    """The default topics of one stream kind.

    ``model`` is the kind's third output: model versions (microbiome), top-N
    recommendations (reco).
    """

    input: str
    output: str
    model: str


def dead_letter_topic(topic: str) -> str:
    """Where the records of ``topic`` that cannot be learned go."""
    return topic + DLT_SUFFIX


def stats_topic(topic: str) -> str:
    """The default stats topic of the workers sharing one dictionary over ``topic``."""
    return topic + STATS_SUFFIX
