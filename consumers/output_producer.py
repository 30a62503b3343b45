"""The producer of the consumer loop's outputs: librdkafka (confluent-kafka) when installed.

kafka-python's ``KafkaProducer.send`` costs about 50-60 µs of Python per record on the loop's
thread (the partitioner, the batch builder, a future, a wake-up of its sender thread), and
its sender thread competes with the application for the GIL: with it the consumer ran at
31-48 % of the same application without Kafka. librdkafka builds and sends batches in C
threads of its own; ``produce`` costs a few µs. So the loop sends its outputs and dead
letters through :class:`ConfluentOutputs` when ``confluent-kafka`` is importable and every
producer setting has a librdkafka name (:data:`LIBRDKAFKA_NAMES`), and through kafka-python
otherwise (``ONLINENMF_OUTPUT_CLIENT=kafka-python`` forces that). The input side stays
kafka-python (its group protocol and rebalance listeners are what the loop is built on).

:class:`ConfluentOutputs` offers the part of ``KafkaProducer`` the loop uses (``send``
returning a future, ``flush``, ``partitions_for``, ``config['max_request_size']``,
``close``) with kafka-python's exceptions, so the loop's delivery bookkeeping is the same for
both: every output's acknowledgement is seen before a checkpoint covers its input, a refusal
as too large is a :class:`~kafka.errors.MessageSizeTooLargeError`, anything else a
:class:`~kafka.errors.KafkaError`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError, MessageSizeTooLargeError

__all__ = ["ConfluentOutputs", "Delivery", "LIBRDKAFKA_NAMES", "OUTPUT_CLIENT_ENV",
           "new_output_producer", "output_client"]

log = logging.getLogger("onlinenmf.consumer")

#: ``kafka-python`` forces the pure-Python producer (``confluent-kafka``: the default when
#: it is installed).
OUTPUT_CLIENT_ENV = "ONLINENMF_OUTPUT_CLIENT"

#: kafka-python producer settings the loop may be given, by their librdkafka names. A setting
#: outside this table keeps the outputs on kafka-python (which then applies it as given).
LIBRDKAFKA_NAMES = {
    "bootstrap_servers": "bootstrap.servers",
    "client_id": "client.id",
    "acks": "acks",
    "linger_ms": "linger.ms",
    "batch_size": "batch.size",
    "max_request_size": "message.max.bytes",
    "compression_type": "compression.type",
    "enable_idempotence": "enable.idempotence",
    "delivery_timeout_ms": "message.timeout.ms",
    "request_timeout_ms": "request.timeout.ms",
    "security_protocol": "security.protocol",
    "sasl_mechanism": "sasl.mechanism",
    "sasl_plain_username": "sasl.username",
    "sasl_plain_password": "sasl.password",
    "ssl_cafile": "ssl.ca.location",
    "ssl_certfile": "ssl.certificate.location",
    "ssl_keyfile": "ssl.key.location",
    "ssl_password": "ssl.key.password",
}

#: kafka-python's defaults that librdkafka's differ from (idempotent, 120 s to deliver).
_KAFKA_PYTHON_DEFAULTS = {"enable.idempotence": True, "message.timeout.ms": 120_000}

#: How long ``send`` waits for room in librdkafka's queue before it gives up (a KafkaError:
#: the loop counts the output undelivered and redoes its input after a rollback).
_QUEUE_FULL_WAIT = 10.0
#: Sends between two servings of the delivery reports (each serving releases the GIL, which
#: the input client's IO thread then holds for a while; Delivery.is_done serves them too).
_SERVE_EVERY = 64


class Delivery:
    """The future of one output record: what the loop asks of kafka-python's futures."""

    __slots__ = ("_done", "exception", "_producer")

    def __init__(self, producer: Any) -> None:
        self._done = False
        self.exception: Exception | None = None
        self._producer = producer

    def __call__(self, err: Any, msg: Any) -> None:  # librdkafka's delivery report
        if err is not None:
            try:
                self.exception = _kafka_error(err)
            except Exception as failure:  # nothing may raise inside librdkafka's poll
                self.exception = KafkaError(f"{err!r} ({failure})")
        self._done = True

    @property
    def is_done(self) -> bool:
        """Acknowledged or failed (asks librdkafka for the reports that arrived, if not)."""
        if not self._done:
            self._producer.poll(0)
        return self._done

    def failed(self) -> bool:
        return self.exception is not None

    def get(self, timeout: float | None = None) -> None:
        """Wait for the acknowledgement; raise the delivery error, or KafkaTimeoutError.

        Waits by flushing the producer: a flush sends what is queued at once, where a poll
        would first wait out ``linger.ms`` (the loop waits so for each dead letter)."""
        deadline = time.monotonic() + (timeout if timeout is not None else 1e9)
        while not self._done:
            left = deadline - time.monotonic()
            if left <= 0:
                raise KafkaTimeoutError(f"no acknowledgement within {timeout} s")
            try:
                self._producer.flush(min(left, 0.1))
            except Exception as err:  # KafkaException; a SystemError on a fatal error
                raise KafkaError(f"output producer: {err}") from None
        if self.exception is not None:
            raise self.exception


def _kafka_error(err: Any) -> KafkaError:
    """kafka-python's exception for a librdkafka error (too large: MessageSizeTooLarge)."""
    import confluent_kafka as ck

    if err.code() in (ck.KafkaError.MSG_SIZE_TOO_LARGE,):
        return MessageSizeTooLargeError(err.str())
    return KafkaError(f"{err.name()}: {err.str()}")


def _on_error(err: Any) -> None:
    """librdkafka's client-wide errors: brokers down (retried on its own), a fatal state
    (every queued record then fails, and the loop replaces the producer)."""
    (log.warning if err.fatal() else log.debug)("output producer: %s", err.str())


class ConfluentOutputs:
    """A librdkafka producer behind the part of ``KafkaProducer``'s interface the loop uses.

    Parameters
    ----------
    config : mapping
        kafka-python producer settings, every one a key of :data:`LIBRDKAFKA_NAMES`.
    """

    def __init__(self, config: Mapping[str, Any]) -> None:
        import confluent_kafka as ck

        self.config = dict(config)
        settings = dict(_KAFKA_PYTHON_DEFAULTS)
        for key, value in config.items():
            settings[LIBRDKAFKA_NAMES[key]] = (",".join(value) if isinstance(value, list)
                                               else value)
        # critical only: a broker down is the loop's to report (librdkafka would print a
        # line to stderr per reconnection attempt); the errors reach _on_error
        settings["log_level"] = 2
        # Without an error callback, confluent-kafka's flush fails with a SystemError on a
        # fatal producer error (an idempotent producer whose broker came back empty).
        settings["error_cb"] = _on_error
        self._producer = ck.Producer(settings)
        self._ck = ck
        self._sent = 0

    def send(self, topic: str, value: bytes | None = None, key: bytes | None = None,
             headers: list[tuple[str, bytes]] | None = None,
             partition: int | None = None) -> Delivery:
        """Queue one record; its :class:`Delivery` is done when the broker answered."""
        delivery = Delivery(self._producer)
        if headers or partition is not None:  # a dead letter
            extra: dict[str, Any] = {"partition": partition} if partition is not None else {}
            if headers:
                extra["headers"] = headers
            self._queue(topic, value, key, delivery, extra)
        else:  # an output record: one produce call, no keyword dict built
            try:
                self._producer.produce(topic, value, key, on_delivery=delivery)
            except BufferError:
                self._queue(topic, value, key, delivery, {})
            except self._ck.KafkaException as err:
                raise _kafka_error(err.args[0]) from None
        self._sent += 1
        if not self._sent % _SERVE_EVERY:
            self._producer.poll(0)  # serve the delivery reports that arrived
        return delivery

    def _queue(self, topic: str, value: bytes | None, key: bytes | None,
               delivery: Delivery, extra: dict[str, Any]) -> None:
        """``produce``, waiting up to ``_QUEUE_FULL_WAIT`` s for room in librdkafka's queue."""
        deadline = None
        while True:
            try:
                self._producer.produce(topic, value, key, on_delivery=delivery, **extra)
                return
            except BufferError:  # librdkafka's queue is full: let it drain a little
                deadline = deadline or time.monotonic() + _QUEUE_FULL_WAIT
                if time.monotonic() > deadline:
                    raise KafkaTimeoutError(
                        f"the output queue stayed full for {_QUEUE_FULL_WAIT} s") from None
                self._producer.poll(0.05)
            except self._ck.KafkaException as err:
                raise _kafka_error(err.args[0]) from None

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every queued record is acknowledged or failed; KafkaTimeoutError if
        some are still waiting after ``timeout`` seconds."""
        try:
            left = self._producer.flush(timeout if timeout is not None else -1)
        except (self._ck.KafkaException, SystemError) as err:
            raise KafkaError(f"output producer: {err}") from None
        if left:
            raise KafkaTimeoutError(f"{left} output records not acknowledged in {timeout} s")

    def partitions_for(self, topic: str) -> set[int] | None:
        """The partitions of ``topic`` (None when the broker does not know it)."""
        try:
            meta = self._producer.list_topics(topic, timeout=self.config.get(
                "request_timeout_ms", 30_000) / 1000)
        except self._ck.KafkaException as err:
            raise _kafka_error(err.args[0]) from None
        found = meta.topics.get(topic)
        if found is None or found.error is not None:
            return None
        return set(found.partitions)

    def close(self, timeout: float | None = None) -> None:
        """Deliver what is queued for up to ``timeout`` s; drop the rest (0: drop all)."""
        if timeout:
            self._producer.flush(timeout)
        self._producer.purge()
        self._producer.flush(0)  # serve the purged records' reports


def _confluent_problem(config: Mapping[str, Any]) -> str | None:
    """Why the outputs cannot go through librdkafka (None: they can)."""
    if os.environ.get(OUTPUT_CLIENT_ENV, "").strip().lower() == "kafka-python":
        return f"{OUTPUT_CLIENT_ENV}=kafka-python"
    try:
        import confluent_kafka  # noqa: F401
    except ImportError:
        return "confluent-kafka is not installed"
    unknown = sorted(set(config) - set(LIBRDKAFKA_NAMES))
    if unknown:
        return f"setting {', '.join(unknown)} has no librdkafka name here"
    return None


def output_client(config: Mapping[str, Any] | None = None) -> str:
    """Which client sends the outputs for producer settings ``config``, and why, in words."""
    problem = _confluent_problem(config or {})
    return "librdkafka (confluent-kafka)" if problem is None else f"kafka-python ({problem})"


def new_output_producer(config: Mapping[str, Any],
                        broker_timeout: float | None = None) -> ConfluentOutputs | KafkaProducer:
    """The loop's producer: :class:`ConfluentOutputs` when it can be, else kafka-python's.

    ``broker_timeout``: the loop's (``--broker-timeout``), how long kafka-python's producer
    waits for its first connection (KafkaTimeoutError after: the loop's BrokerLost).
    kafka-python connects in its constructor, 30 s at most by default: a producer the loop
    replaced during an outage gave up after 30 s even when the loop would wait longer.
    librdkafka connects in its own threads and does not block here.
    """
    problem = _confluent_problem(config)
    if problem is None:
        return ConfluentOutputs(config)
    log.debug("outputs through kafka-python: %s", problem)
    waits = {} if broker_timeout is None else {"bootstrap_timeout_ms": int(broker_timeout * 1000)}
    return KafkaProducer(**{**waits, **config})
