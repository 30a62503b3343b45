"""How a consumer ends: its exit statuses, the aborts that carry them, and which of
kafka-python's errors mean that no broker answered.

Its own module so that every client of the broker (the loop's input consumer and output
producer, the shared dictionary's stats clients, ``onlinenmf produce``) takes the same
definitions without importing the loop.
"""

from __future__ import annotations

from kafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    NodeNotReadyError,
    RequestTimedOutError,
)

__all__ = ["EXIT_OK", "EXIT_SETUP", "EXIT_BROKER_LOST", "EXIT_OFFSETS_NOT_IN_LOG",
           "BROKER_AWAY", "BROKER_TIMEOUT", "LoopAbort", "BrokerLost", "OffsetsNotInLog"]

#: Exit statuses of ``onlinenmf consume`` (consumers/README.md lists them; 1 is a crash)
EXIT_OK = 0
#: the setup is unusable: the options, or the checkpoint directory (unwritable, locked by
#: another worker, a corrupt file)
EXIT_SETUP = 2
#: no broker answered, or outputs stayed unacknowledged, for ``broker_timeout`` seconds
EXIT_BROKER_LOST = 3
#: the log of a partition does not hold the offset the checkpoint resumes from
EXIT_OFFSETS_NOT_IN_LOG = 4

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
