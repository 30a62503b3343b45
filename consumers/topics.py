"""Topic names: the default topics of a stream kind, and the suffixes every kind shares.

Each kind declares its defaults once, in its schema module (``TOPICS`` of
:mod:`consumers.microbiome.schema`, :mod:`consumers.reco.schema`); the topics that follow
an input topic (its dead letters, the shared statistics) are named from it here.

>>> t = Topics(input="my.samples", output="my.out", model="my.model")
>>> dead_letter_topic(t.input), stats_topic(t.input)
('my.samples.DLT', 'my.samples.stats')

:func:`topic_name` checks a topic flag's value as Kafka would (the flags' argparse type, so
a config file's ``[topics]`` and an ``ONLINENMF_*`` variable are checked the same way);
:func:`ensure_topics` creates the topics a consumer writes when they do not exist yet (the
loop's outputs and dead letters, the shared dictionary's stats topic).

>>> topic_name("my.samples"), topic_name("")  # '' : the default, or an output switched off
('my.samples', '')
>>> try:
...     topic_name("my samples")
... except argparse.ArgumentTypeError as err:
...     print(str(err)[:62])
'my samples' is not a Kafka topic name: it may hold only ASCII
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from consumers.options import security_settings
from consumers.outcomes import BROKER_AWAY, TopicsMissing, answered

__all__ = ["DLT_SUFFIX", "STATS_SUFFIX", "BROKER_DEFAULT", "Topics", "dead_letter_topic",
           "stats_topic", "topic_name", "ensure_topics"]

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


def topic_name(value: str) -> str:
    """A topic flag's value, checked by kafka-python's own rule (Kafka's): a name the client
    would refuse with a traceback at subscribe, or the broker at creation, is one line at
    start. '' passes: a topic flag's "the default" or "switched off"."""
    from kafka.util import ensure_valid_topic_name

    if value == "":
        return value
    try:
        ensure_valid_topic_name(value)
    except ValueError:
        shown = value if len(value) <= 60 else value[:57] + "..."
        raise argparse.ArgumentTypeError(
            f"{shown!r} is not a Kafka topic name: it may hold only ASCII letters, digits, "
            "'.', '_' and '-' (at most 249 of them), and not be '.' or '..'") from None
    return value


#: Partitions (or replicas) "as the broker's num.partitions (default.replication.factor)
#: says": CreateTopics v4+ takes -1 for both, and Tansu 0.6 and Apache Kafka 4 accept it.
BROKER_DEFAULT = -1


def ensure_topics(bootstrap_servers: str, partitions: Mapping[str, int],
                  broker_timeout: float, client_config: Mapping[str, Any] | None = None,
                  ) -> list[str]:
    """Create those of ``partitions``' topics that do not exist; return the ones created.

    One CreateTopics request for all of them (kafka-python's admin client, closed after):
    a topic that exists already, made by an operator or by another worker starting at the
    same moment, is left as it is. A topic the broker refuses to create (a name it rejects,
    a creation policy, no permission to create) is looked up: one that exists is fine (a
    client may write to topics it is not allowed to create).

    Parameters
    ----------
    bootstrap_servers
        The broker to ask.
    partitions
        Topic name -> partitions to create it with (:data:`BROKER_DEFAULT`: the broker's);
        its replicas are always the broker's default.
    broker_timeout
        Seconds to retry while no broker answers, then
        :class:`~consumers.outcomes.BrokerLost` (``--broker-timeout``).
    client_config
        kafka-python client settings (``-X``); the connection's (security, SASL, SSL) are
        taken.

    Raises
    ------
    TopicsMissing
        A topic does not exist and the broker refused to create it: one line naming it, the
        broker's reason and the fix.
    """
    if not partitions:
        return []
    from kafka.admin import KafkaAdminClient
    from kafka.errors import TopicAlreadyExistsError, for_code

    settings = security_settings(dict(client_config or {}))  # how to connect, no more
    request = {name: {"num_partitions": count, "replication_factor": BROKER_DEFAULT}
               for name, count in partitions.items()}

    def create() -> tuple[list[str], dict[str, str]]:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers,
                                 bootstrap_timeout_ms=int(broker_timeout * 1000), **settings)
        try:
            answer = admin.create_topics(request, raise_errors=False)["topics"]
            for topic in answer:  # a broker too slow to answer is retried, not a refusal
                if issubclass(for_code(topic["error_code"]), BROKER_AWAY):
                    raise for_code(topic["error_code"])(topic.get("error_message"))
            codes = {t["name"]: t["error_code"] for t in answer}
            refused = {t["name"]: f"{for_code(t['error_code']).__name__}: "
                                  f"{t.get('error_message') or ''}"
                       for t in answer
                       if t["error_code"] not in (0, TopicAlreadyExistsError.errno)}
            if refused:  # rare: a second round trip, to tell refused from present
                present = {t["name"] for t in admin.describe_topics(list(refused))
                           if t["error_code"] == 0}
                refused = {name: why for name, why in refused.items() if name not in present}
            return [name for name, code in codes.items() if code == 0], refused
        finally:
            admin.close()

    created, refused = answered(create, "creating the topics " + ", ".join(partitions),
                                bootstrap_servers, broker_timeout)
    if refused:
        names = ", ".join(repr(name) for name in refused)
        reasons = "; ".join(why.rstrip(": ") for why in refused.values())
        which = "topic {} does" if len(refused) == 1 else "topics {} do"
        raise TopicsMissing(
            f"{which.format(names)} not exist and the broker refused to create "
            f"{'it' if len(refused) == 1 else 'them'} ({reasons}): create "
            f"{'it' if len(refused) == 1 else 'them'}, or let this client create topics")
    return created
