"""How a consumer ends: its exit statuses, the aborts that carry them, and which of
kafka-python's errors mean that no broker answered.

Its own module so that every client of the broker (the loop's input consumer and output
producer, the shared dictionary's stats clients, ``onlinenmf produce``) takes the same
definitions without importing the loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from kafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    NodeNotReadyError,
    RequestTimedOutError,
)

log = logging.getLogger("onlinenmf.consumer")

__all__ = ["EXIT_OK", "EXIT_SETUP", "EXIT_BROKER_LOST", "EXIT_OFFSETS_NOT_IN_LOG",
           "EXIT_TOPICS_MISSING", "BROKER_AWAY", "BROKER_TIMEOUT", "LoopAbort", "BrokerLost",
           "OffsetsNotInLog", "TopicsMissing", "answered", "wait_out"]

#: Exit statuses of ``onlinenmf consume`` (consumers/README.md lists them; 1 is a crash)
EXIT_OK = 0
#: the setup is unusable: the options, or the checkpoint directory (unwritable, locked by
#: another worker, a corrupt file)
EXIT_SETUP = 2
#: no broker answered, or outputs stayed unacknowledged, for ``broker_timeout`` seconds
EXIT_BROKER_LOST = 3
#: the log of a partition does not hold the offset the checkpoint resumes from
EXIT_OFFSETS_NOT_IN_LOG = 4
#: a topic the consumer writes (outputs, model, dead letters, stats) does not exist and the
#: broker refused to create it (a name it rejects, a policy, no permission)
EXIT_TOPICS_MISSING = 5

#: Seconds without an answering broker before a consumer gives up (``--broker-timeout``).
BROKER_TIMEOUT = 180.0

#: kafka-python's errors that mean no broker answered: a connection refused, dropped or
#: timed out, a request or a wait timed out, no broker out of its reconnect backoff to ask.
#: kafka-python 3.0.12 lets them escape ``KafkaConsumer.poll`` during an outage (its
#: coordinator lookup, failing with a connection error, waits for a metadata refresh, and
#: a refused refresh is raised: only a timeout is caught there). A consumer takes them as a
#: silent broker's: retried, and BrokerLost once none answered for ``broker_timeout``.
BROKER_AWAY = (KafkaConnectionError, NodeNotReadyError, RequestTimedOutError, KafkaTimeoutError)


class LoopAbort(RuntimeError):
    """The loop cannot go on: it leaves without a checkpoint and exits with ``status``."""

    status = 1


class BrokerLost(LoopAbort):
    status = EXIT_BROKER_LOST


class OffsetsNotInLog(LoopAbort):
    status = EXIT_OFFSETS_NOT_IN_LOG


class TopicsMissing(LoopAbort):
    status = EXIT_TOPICS_MISSING


def wait_out(timeout_ms: int, start: float) -> None:
    """Sleep out the rest of a poll's wait begun at ``start`` (``time.monotonic()``) that a
    silent broker's error (:data:`BROKER_AWAY`) cut short: a poll loop does not spin."""
    time.sleep(max(0.0, timeout_ms / 1000 - (time.monotonic() - start)))


def answered(call: Callable[[], Any], what: str, bootstrap_servers: str,
             broker_timeout: float) -> Any:
    """``call()``, retried while no broker answers it (:data:`BROKER_AWAY`) for up to
    ``broker_timeout`` seconds, then :class:`BrokerLost` naming ``what`` was asked for."""
    deadline = time.monotonic() + broker_timeout
    while True:
        try:
            return call()
        except BROKER_AWAY as err:
            if time.monotonic() >= deadline:
                raise BrokerLost(
                    f"no Kafka broker at {bootstrap_servers} answered for {what} in "
                    f"{broker_timeout:g} s (--broker-timeout): {err}") from None
            log.warning("no broker answered for %s, retrying: %s", what, err)
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
