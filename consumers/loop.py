"""The consumer loop: poll -> decode -> validate -> engine -> emit -> checkpoint -> commit.

It is generic over an *application* (:class:`~consumers.application.Application`): the
microbiome, recommender and text consumers plug their decoding, model update and output
records into the same loop, and inherit its correctness contract:

- Records of a partition are handled one at a time, in offset order; the application
  sees exactly the same sequence of calls whatever the poll boundaries, so a
  deterministic application ends in the same state after any number of crashes.
- A checkpoint (:mod:`consumers.checkpoint`) holds the application's whole state and
  the next offset of every partition it has learned from. Before it is written, every
  output record sent so far is acknowledged (``producer.flush``), so no input offset
  covered by a checkpoint can lack its output. Offsets are committed to Kafka only
  after the checkpoint is on disk; the checkpoint, not the group offset, is the
  authority (commit metadata is lost on Tansu anyway).
- On assignment the loop seeks every partition to the largest offset any checkpoint in
  the directory records for it (or to the beginning: a model must learn everything it
  is credited with) and skips records below it. On revocation it checkpoints and
  commits (``AsyncConsumerRebalanceListener`` + ``await commit_async``: kafka-python 3
  runs listeners on its IO thread, where a blocking commit raises). When partitions are
  lost, or output delivery failed, it rolls back to its last checkpoint and re-reads.
- A record the application refuses (:class:`~consumers.messages.BadMessage`) goes to
  ``<topic>.DLT`` with its original bytes and the reason in headers; its offset counts
  as handled only once the dead letter is acknowledged.
- The model and the offsets move together or not at all. A record whose output can never
  be sent (larger than the producer's ``max_request_size``, or refused by the broker as
  too large) was learned already: the loop rolls back to its last checkpoint and, when the
  record comes round again, dead-letters it (``oversize``) instead of learning it. When
  the application fails half-way (an exception other than BadMessage), the loop rolls back
  before the exception leaves it, so no checkpoint can hold a record its offsets call
  unprocessed.
- At start, once a broker answers and before a record is read, the topics the loop writes
  (the application's ``topics_written()`` and each input topic's ``.DLT``) are created when
  missing, in one admin request (:func:`~consumers.topics.ensure_topics`; one made meanwhile
  by another worker is fine). One the broker refuses to create (a managed cluster's policy,
  a name it rejects) ends the loop with :data:`~consumers.outcomes.EXIT_TOPICS_MISSING` and
  one line naming it, before anything is learned: its outputs could never be sent.
- Outputs and dead letters go through librdkafka (confluent-kafka) when it is installed,
  through kafka-python's producer otherwise (:mod:`consumers.output_producer`): the same
  futures and errors, and the same guarantees, either way.
- Backpressure: when more than ``max_inflight`` output records await acknowledgement,
  or a checkpoint cannot be written, the input partitions are paused (``poll`` keeps
  the group membership alive) instead of buffering without bound.
- SIGTERM/SIGINT (:meth:`ConsumerLoop.stop`): the record in hand is finished, then a
  last checkpoint and commit, then the consumer leaves the group.
- Broker loss: when no broker has answered, or outputs have stayed unacknowledged, for
  ``broker_timeout`` seconds, the loop leaves without a checkpoint (its work since the last
  one is redone) and :meth:`ConsumerLoop.run` returns :data:`EXIT_BROKER_LOST`. An idle
  stream is told from a silent broker by asking the group coordinator (``committed``).
  A connection error out of ``poll`` (:data:`BROKER_AWAY`) is such a silence, not a crash.
- A checkpoint is written only once the group confirms that this worker still owns its
  partitions (:meth:`ConsumerLoop._group_confirms`): the group may have expelled it and
  moved them meanwhile, unnoticed by the client until its next heartbeat. One the group
  refuses is not written: the work since the last checkpoint goes back with the partitions
  (rolled back on their loss; at a stop, left to their new owner, exit status 0).
- A partition whose log ends before the offset the checkpoint resumes from (a recreated
  topic, a broker that lost its data; seen in the fetch responses' high watermark, which
  Tansu reports correctly, or as Kafka's OffsetOutOfRange: there is no automatic offset
  reset) is refused: :data:`EXIT_OFFSETS_NOT_IN_LOG`, never a silent jump.
"""

from __future__ import annotations

import gc
import logging
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka import (
    AsyncConsumerRebalanceListener,
    KafkaConsumer,
    KafkaProducer,
    OffsetAndMetadata,
    TopicPartition,
)
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.errors import (
    CommitFailedError,
    KafkaError,
    KafkaTimeoutError,
    LogTruncationError,
    MessageSizeTooLargeError,
    OffsetOutOfRangeError,
    RecordListTooLargeError,
)
from kafka.record.default_records import DefaultRecordBatchBuilder

from consumers.application import Application, Result, Source
from consumers.checkpoint import Checkpoint, CheckpointStore, tp_key
from consumers.config import CONSUMER_DEFAULTS, OUTPUT_PRODUCER_DEFAULTS, check_kafka_settings
from consumers.messages import DEFAULT_MAX_BYTES, BadMessage
from consumers.metrics import ConsumerMetrics
from consumers.outcomes import (
    BROKER_AWAY,
    BROKER_TIMEOUT,
    EXIT_OK,
    BrokerLost,
    LoopAbort,
    OffsetsNotInLog,
    wait_out,
)
from consumers.output_producer import ConfluentOutputs, new_output_producer
from consumers.topics import BROKER_DEFAULT, DLT_SUFFIX, ensure_topics

__all__ = ["LoopConfig", "ConsumerLoop", "DLT_HEADERS", "dead_letter_record", "record_size"]

log = logging.getLogger("onlinenmf.consumer")

#: Dead-letter headers (Spring Kafka's names, so existing DLT tooling reads them) plus ours.
DLT_HEADERS = (
    "kafka_dlt-original-topic",
    "kafka_dlt-original-partition",
    "kafka_dlt-original-offset",
    "kafka_dlt-original-timestamp",
    "kafka_dlt-original-consumer-group",
    "kafka_dlt-exception-fqcn",
    "kafka_dlt-exception-message",
    "onlinenmf-dlt-reason",
    "onlinenmf-worker",
    # only on a dead letter cut to fit the producer's limit: the original lengths in bytes
    "onlinenmf-dlt-truncated",
    "onlinenmf-dlt-key-truncated",
)
#: Longest ``kafka_dlt-exception-message`` in bytes (a reason may quote a taxon name of any
#: length); a longer one is cut and ends with "...".
MAX_REASON_BYTES = 4096
#: A key above this share of the record limit is cut before the value is: the value is
#: what an operator inspects, and the dead letter's partition is chosen explicitly.
_KEY_SHARE = 16
#: A broker may accept less than our producer (its message.max.bytes): a dead letter it
#: refuses as too large is cut to half, down to this, and sent again.
_MIN_DEAD_LETTER_BYTES = 16 * 1024


def record_size(key: bytes | None, value: bytes | None,
                headers: list[tuple[str, bytes]] | None = None) -> int:
    """Bytes a record counts against the producer's ``max_request_size``: kafka-python's
    own upper bound (``KafkaProducer.send`` refuses a record above the limit with it)."""
    return DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers or [])


def dead_letter_record(
    key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]], limit: int,
) -> tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]:
    """The dead letter of a record: its key and value with ``headers``, cut to fit ``limit``.

    Unchanged when the whole fits. Otherwise a key longer than ``limit / 16`` is cut to that
    (header ``onlinenmf-dlt-key-truncated``: its length), then the value to what is left
    (header ``onlinenmf-dlt-truncated``: its length); both keep their first bytes. A record
    with neither key nor value (a tombstone without a key) gets an empty value: Kafka
    clients refuse to send one with neither.

    >>> key, value, headers = dead_letter_record(b"k", b"x" * 5000, [("why", b"big")], 1000)
    >>> key, len(value) <= 1000, headers[-1], record_size(key, value, headers) <= 1000
    (b'k', True, ('onlinenmf-dlt-truncated', b'5000'), True)
    """
    if key is None and value is None:
        value = b""
    if record_size(key, value, headers) <= limit:
        return key, value, headers
    headers = list(headers)
    if key is not None and len(key) > limit // _KEY_SHARE:
        headers.append(("onlinenmf-dlt-key-truncated", str(len(key)).encode()))
        key = key[: limit // _KEY_SHARE]
        if record_size(key, value, headers) <= limit:
            return key, value, headers
    if value is not None:
        headers.append(("onlinenmf-dlt-truncated", str(len(value)).encode()))
        # the value's length prefix grows by at most 4 bytes (a varint) from empty
        room = max(limit - record_size(key, b"", headers) - 4, 0)
        value = value[:room]
    return key, value, headers


#: ``Source`` built from a tuple without its generated ``__new__``: a Python frame less per
#: record (95 ns against 220)
_new_source = tuple.__new__


@dataclass
class LoopConfig:
    """Settings of :class:`ConsumerLoop` (the CLI maps its flags onto these)."""

    bootstrap_servers: str
    topics: list[str]
    group_id: str
    checkpoint_dir: Path
    worker_id: str = "main"
    checkpoint_every: int = 5000
    checkpoint_interval: float = 10.0
    exit_when_idle: float | None = None
    max_poll_records: int = 500
    poll_timeout: float = 0.5
    max_inflight: int = 20_000
    flush_timeout: float = 10.0
    #: seconds without an answer from any broker (or with outputs unacknowledged) before
    #: the loop gives up with EXIT_BROKER_LOST; also the wait for the first connection
    broker_timeout: float = BROKER_TIMEOUT
    dlt_suffix: str = DLT_SUFFIX
    #: the largest record read or written (``--max-message-bytes``): the producer's
    #: ``max_request_size``, and the consumer's fetch sizes admit it (the application's
    #: input limit is the same number on the command line)
    max_message_bytes: int = DEFAULT_MAX_BYTES
    consumer_config: dict[str, Any] = field(default_factory=dict)
    producer_config: dict[str, Any] = field(default_factory=dict)

    def fetch_settings(self) -> dict[str, int]:
        """Consumer fetch sizes that admit a record of ``max_message_bytes`` (kafka-python's
        defaults, raised when that is larger)."""
        return {"max_partition_fetch_bytes": max(1_048_576, self.max_message_bytes),
                "fetch_max_bytes": max(52_428_800, self.max_message_bytes)}


class _RangeAssignor(RangePartitionAssignor):
    """kafka-python's range assignor, noting the subscribed topics it found no partitions for.

    The group's leader assigns from its own metadata. A subscribed topic missing there (one
    created a moment ago) gets none of its partitions assigned, to anyone ("No partition
    metadata for topic", a warning kafka-python's logger level here hides). kafka-python
    rejoins when its metadata changes, but it compares with a snapshot taken before the
    assignor looked at the metadata, which can hold the partitions already: the group then
    sits with nothing assigned until the partitions change. :class:`ConsumerLoop` watches
    :attr:`missing` and joins the group again once the metadata holds them.
    """

    def __init__(self) -> None:
        #: subscribed topics without partitions in the metadata of the last assignment made
        self.missing: set[str] = set()
        self.cluster: Any = None  # kafka-python's ClusterMetadata that assignment used

    def assign(self, cluster: Any, members: Any) -> Any:  # an instance: it keeps its notes
        topics = {topic for member in members for topic in member.metadata.topics}
        self.missing = {topic for topic in topics if not cluster.partitions_for_topic(topic)}
        self.cluster = cluster
        return super().assign(cluster, members)


class _Listener(AsyncConsumerRebalanceListener):
    def __init__(self, loop: ConsumerLoop) -> None:
        self.loop = loop

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        # The group's word on our membership, asked before the revocation's checkpoint (a
        # blocking call raises on this IO thread: the question is an awaited commit_async,
        # of the checkpointed offsets only; with none, the revocation's checkpoint is unasked)
        confirmed = None
        fence = (self.loop._fence_offsets()  # (reads the checkpoint files: only when needed)
                 if revoked and self.loop._dirty and not self.loop._aborted else None)
        if fence:
            try:
                await self.loop.consumer.commit_async(fence)
            except (CommitFailedError, *BROKER_AWAY) as err:
                confirmed = False
                log.warning("revocation: the group did not confirm this worker owns %s: %s",
                            sorted(revoked), err)
            except KafkaError as err:  # not a refusal of this member
                log.warning("revocation: the group's answer on this worker's partitions: %s",
                            err)
        offsets = self.loop._on_revoked(revoked, confirmed is not False)
        if offsets:
            start = time.perf_counter()
            try:
                await self.loop.consumer.commit_async(offsets)
            except Exception as err:  # the checkpoint holds; the commit is advisory
                self.loop.metrics.commit_failures.inc()
                log.warning("commit on revocation failed: %s", err)
            else:
                self.loop.metrics.commit_seconds.observe(time.perf_counter() - start)

    async def on_partitions_lost(self, lost: set[TopicPartition]) -> None:
        self.loop._on_lost(lost)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.loop._on_assigned(assigned)


class ConsumerLoop:
    """One consumer process: a kafka-python consumer group member driving an application.

    Parameters
    ----------
    app : Application
        The model adapter.
    config : LoopConfig
        Connection, checkpoint and flow settings.
    metrics : ConsumerMetrics, optional
        Where to count; a fresh registry by default.
    """

    def __init__(
        self, app: Application, config: LoopConfig, metrics: ConsumerMetrics | None = None
    ) -> None:
        self.app = app
        self.config = config
        self.metrics = metrics or ConsumerMetrics()
        self.store = CheckpointStore(config.checkpoint_dir, config.worker_id)
        self.consumer: KafkaConsumer | None = None
        self.producer: KafkaProducer | ConfluentOutputs | None = None
        #: The producer's max_request_size, noted when it is made (_new_producer): no
        #: record sent may count more.
        self._limit = 0
        self._stopping = False
        self._owned: set[TopicPartition] = set()
        self._next: dict[str, int] = {}
        self._learned: dict[str, int] = {}
        self._dead: dict[str, int] = {}
        self._dirty = False
        self._since_checkpoint = 0
        self._last_checkpoint = time.monotonic()
        self._last_activity = time.monotonic()
        self._broker_seen = time.monotonic()  # a broker last answered (records, probe)
        self._away_noted = 0.0  # when a poll was last refused for want of a broker (_poll)
        # The group refused the last checkpoint: it did not confirm this worker owns its
        # partitions (_group_confirms)
        self._disowned = False
        self._stalled_since: float | None = None  # checkpoints failing since
        self._aborted = False  # leaving without a checkpoint (LoopAbort)
        self._consumer_config: dict[str, Any] = {}
        self._assignor = _RangeAssignor()
        self._metadata_asked = 0.0  # when the missing topics' metadata was last asked for
        self._epoch = 0  # +1 whenever positions or state jump (assignment, rollback)
        # Futures of output records not yet seen acknowledged, oldest first. Checked from
        # the main thread only (no callbacks: they cost more than the send itself).
        # Each with the (partition key, offset) of the record that produced it.
        self._pending: deque[tuple[Any, tuple[str, int]]] = deque()
        # Records learned whose output could never be sent: dead-lettered when re-read.
        self._refused: dict[tuple[str, int], BadMessage] = {}
        self._send_errors = 0
        self._errors_at_checkpoint = 0
        self._children: dict[TopicPartition, tuple[Any, Any]] = {}
        self._output_children: dict[str, Any] = {}
        # counts of the poll batch in hand, by Prometheus counter child (see _count)
        self._tally: Counter[Any] = Counter()
        # losses of the poll batch in hand, observed together (see _count)
        self._losses: list[float] = []
        self._paused = False
        # True from a completed group join (an assignment, even an empty one) to the next
        # revocation, loss or rejoin (False: not in the group yet, or in a rebalance, as
        # after a broker restart: not an idle stream); _join_started: since when False
        self._joined = False
        self._join_started = time.monotonic()
        self._dlt_partitions: dict[str, int | None] = {}
        # log ends confirmed by _fresh_high_watermarks (a stale high watermark is asked once)
        self._log_end_seen: dict[TopicPartition, int] = {}
        self._last_version: float | None = None
        self.checkpoints_written = 0
        #: perf_counter() of the first and latest handled record (throughput measurements)
        self.first_record_time: float | None = None
        self.last_record_time: float | None = None

    # ----------------------------------------------------------------- lifecycle
    def stop(self) -> None:
        """Ask the loop to finish the record in hand, checkpoint, commit and leave."""
        self._stopping = True

    def run(self) -> int:
        """Consume until :meth:`stop` (or ``exit_when_idle``); return an exit status:
        :data:`EXIT_OK`, :data:`EXIT_BROKER_LOST`, :data:`EXIT_OFFSETS_NOT_IN_LOG` or
        :data:`~consumers.outcomes.EXIT_TOPICS_MISSING` (the reason logged as one line). An
        unusable checkpoint directory raises CheckpointError.
        """
        self._check_settings()
        self.store.lock()
        try:
            self._consume()
        except LoopAbort as err:
            self._aborted = True
            log.error("%s", err)
            return err.status
        finally:
            self._close()
            self.store.unlock()
        return EXIT_OK

    def _consume(self) -> None:
        """Restore, connect, loop, write the last checkpoint; LoopAbort if it cannot."""
        try:
            self._restore()
            self._open()
            assert self.consumer is not None
            # The first full collection of the process's heap (every module imported, the
            # clients, the restored state: ~0.1 s) would otherwise come mid-stream, once
            # enough objects survived the young collections; have it now, before any record.
            gc.collect()
            # The topics' partitions in the client's metadata before the group assigns them
            # (the join comes with the first poll): an assignment made without them is empty
            # ("No partition metadata"; a topic created just before the consumer started,
            # seen on Apache Kafka); one made so later is redone (_rejoin_if_unassigned).
            # Fetched after subscribe(), so that kafka-python's snapshot of the subscribed
            # topics' partitions has them too: it rejoined once on every start otherwise
            # (the snapshot was still empty at the first assignment), and on Apache Kafka
            # that rebalance came seconds later, with a revocation and its checkpoint.
            self.consumer.subscribe(self.config.topics, listener=_Listener(self))
            try:
                for topic in self.config.topics:
                    self.consumer.partitions_for_topic(topic)
            except BROKER_AWAY as err:  # gone since the connection: the loop waits for it
                log.warning("no partitions of %s from the broker yet: %s",
                            ", ".join(self.config.topics), err)
            self._last_activity = self._broker_seen = time.monotonic()
            while not self._stopping:
                self._poll_once()
                self._check_broker()
                if self._idle():
                    break
        except KafkaTimeoutError as err:
            # a client that gave up waiting for a broker: the first connection, or a
            # producer replaced while none answers (a poll's are waited out: _poll)
            raise BrokerLost(f"no Kafka broker at {self.config.bootstrap_servers} answered: "
                             f"{err}; check --bootstrap-servers") from None
        if self._final_checkpoint():
            return
        if self._disowned:
            # An operator's stop is no failure: the partitions have a new owner, which
            # resumes from the last checkpoint and redoes the work since (exit status 0)
            log.warning("stopping without a final checkpoint: the group gave this worker's "
                        "partitions to another, which redoes the work since the last one")
            self._restore()  # nothing unsaved for the revocation as the consumer closes
            return
        raise BrokerLost("could not write the final checkpoint (no broker acknowledged the "
                         "outputs or answered for the group): the work since the last one "
                         "will be redone")

    def _idle(self) -> bool:
        """True when ``exit_when_idle`` has come: a group join completed (BrokerLost when
        none has within :meth:`join_allowance`), no record for that long, input not paused,
        and the broker answering now that every owned partition's log ends at the next
        offset (a silent broker, or one that lost the log, is not an idle stream)."""
        idle = self.config.exit_when_idle
        if idle is None or self._paused:
            return False
        if not self._joined:
            # Not in the group yet: nothing was offered to read, so no idle stream (leaving
            # would exit 0 having read nothing). Bounded by the join allowance.
            self._check_join()
            return False
        if time.monotonic() - self._last_activity <= idle:
            return False
        ends = self._log_ends()  # raises OffsetsNotInLog
        if ends is None or any(end > self._next[tp_key(tp.topic, tp.partition)]
                               for tp, end in ends.items()):
            return False  # no answer, or records are waiting after all
        log.info("no records for %.1f s: exiting", idle)
        return True

    def join_allowance(self) -> float:
        """Seconds a group join may take with this client's settings: the coordinator awaits
        the members up to the rebalance timeout (kafka-python sends its
        ``max_poll_interval_ms``), and a previous member of the group up to its session
        timeout (Tansu answers a join after about half of it)."""
        assert self.consumer is not None
        settings = self.consumer.config
        return (settings["session_timeout_ms"] + settings["max_poll_interval_ms"]) / 1000

    def _check_join(self) -> None:
        """Raise BrokerLost when a group join has taken longer than :meth:`join_allowance`."""
        waited = time.monotonic() - self._join_started
        if waited > self.join_allowance():
            raise BrokerLost(
                f"group {self.config.group_id!r} not joined after {waited:.0f} s "
                "(session_timeout_ms + max_poll_interval_ms): nothing was assigned; check "
                "the broker and the group's -X settings")

    def _check_settings(self) -> None:
        """The user's client settings (``-X``), refused in one line before anything starts
        when kafka-python would refuse them (or crash on them) when the clients are built:
        a ConfigError."""
        check_kafka_settings(self.config.consumer_config, base=self._own_settings())

    def _own_settings(self) -> dict[str, Any]:
        """The consumer's settings before the user's (``-X``) are laid over them."""
        cfg = self.config
        return {
            "bootstrap_servers": cfg.bootstrap_servers,
            "group_id": cfg.group_id,
            "client_id": f"onlinenmf-{cfg.worker_id}",
            "enable_auto_commit": False,
            # No automatic reset: every partition is positioned explicitly (_seek: the
            # checkpoint's offset, or the beginning), and an offset the log does not hold
            # must stop the loop (OffsetsNotInLog), not jump to 'earliest' (learning twice)
            # or 'latest' (skipping; Tansu answers such lookups wrongly anyway).
            "auto_offset_reset": "none",
            "max_poll_records": cfg.max_poll_records,
            "bootstrap_timeout_ms": int(cfg.broker_timeout * 1000),
            "partition_assignment_strategy": [self._assignor],
            **CONSUMER_DEFAULTS,
            **cfg.fetch_settings(),
        }

    def _open(self) -> None:
        consumer_config = {**self._own_settings(), **self.config.consumer_config}
        self._consumer_config = consumer_config
        self.consumer = KafkaConsumer(**consumer_config)  # waits for a broker (bootstrap)
        # Every topic written exists before a record is read: learned, a record's outputs
        # could not be sent to a topic the broker will not make (TopicsMissing)
        cfg = self.config
        written = [*self.app.topics_written(), *(topic + cfg.dlt_suffix for topic in cfg.topics)]
        ensure_topics(cfg.bootstrap_servers, dict.fromkeys(written, BROKER_DEFAULT),
                      cfg.broker_timeout, consumer_config)
        self.producer = self._new_producer()

    def _new_producer(self) -> KafkaProducer | ConfluentOutputs:
        producer_config = {
            "bootstrap_servers": self.config.bootstrap_servers,
            "client_id": f"onlinenmf-{self.config.worker_id}-out",
            **OUTPUT_PRODUCER_DEFAULTS,  # acks=all, linger, batch size: why there
            # the one limit of records read and written (outputs, dead letters cut to fit)
            "max_request_size": self.config.max_message_bytes,
        }
        producer_config.update(self.config.producer_config)
        # librdkafka when installed: kafka-python's send cost the loop half its rate
        producer = new_output_producer(producer_config, self.config.broker_timeout)
        self._limit = int(producer.config["max_request_size"])  # read per record (_emit)
        return producer

    def _close(self) -> None:
        # After a LoopAbort, outputs still buffered are past the last checkpoint: not waited for
        producer_timeout = 0 if self._aborted else self.config.flush_timeout
        if self.consumer is not None:
            try:
                # Fires on_partitions_revoked: nothing is dirty after the final checkpoint.
                self.consumer.close(autocommit=False, timeout_ms=5000)
            except Exception as err:  # closing must not mask the real outcome
                log.warning("closing the consumer: %s", err)
        if self.producer is not None:
            try:
                self.producer.close(timeout=producer_timeout)
            except Exception as err:
                log.warning("closing the producer: %s", err)

    # ----------------------------------------------------------------- state
    def _restore(self) -> None:
        """Load this worker's own checkpoint into the application (or start fresh)."""
        ckpt = self.store.read()
        self.app.restore(ckpt.blobs if ckpt else None)
        self._next = dict(ckpt.offsets) if ckpt else {}
        self._learned = dict(ckpt.learned) if ckpt else {}
        self._dead = dict(ckpt.dead_letters) if ckpt else {}
        self._dirty = False
        self._since_checkpoint = 0
        self._errors_at_checkpoint = self._send_errors
        self._observe_model()
        if ckpt:
            log.info("restored checkpoint #%d of %s", ckpt.sequence, self.store.path)

    def _rollback(self, reason: str) -> None:
        """Return to the last checkpoint and re-read every owned partition from the frontier."""
        log.warning("rolling back to the last checkpoint: %s", reason)
        self.metrics.rollbacks.inc()
        self._restore()
        self._seek(self._owned)

    def _seek(self, partitions: set[TopicPartition]) -> None:
        """Position ``partitions`` at the checkpoint frontier (or their beginning)."""
        assert self.consumer is not None
        frontier = self.store.frontier()
        for tp in partitions:
            key = tp_key(tp.topic, tp.partition)
            offset = frontier.get(key)
            if offset is None:
                self._next.pop(key, None)
                self.consumer.seek_to_beginning(tp)
            else:
                self._next[key] = offset
                self.consumer.seek(tp, offset)
        self._epoch += 1

    def checkpoint(self, fence: bool = True) -> bool:
        """Write a checkpoint now if anything changed; False if it could not be written.
        ``fence``: first ask the group whether this worker still owns its partitions
        (:meth:`_group_confirms`; False from the revocation listener, which asks it by
        itself: it runs on kafka-python's IO thread, where a blocking commit raises)."""
        self._disowned = False
        if self._aborted:
            return False
        if not self._dirty:
            self._stalled_since = None
            return True
        assert self.producer is not None
        start = time.perf_counter()
        try:
            self.producer.flush(timeout=self.config.flush_timeout)
        except KafkaError as err:
            log.warning("outputs not acknowledged, checkpoint postponed: %s", err)
            self._stalled()
            return False
        self._prune(everything=True)
        if self._send_errors != self._errors_at_checkpoint:
            # Some output since the last checkpoint was never delivered: the offsets that
            # produced it must be processed again, so the state goes back with them.
            self._replace_producer()
            self._rollback("output records were not delivered")
            self._stalled()
            return False
        if fence and not self._group_confirms():
            self._stalled()
            return False
        ckpt = Checkpoint(
            offsets=dict(self._next),
            owned=[tp_key(tp.topic, tp.partition) for tp in self._owned],
            learned=dict(self._learned),
            dead_letters=dict(self._dead),
            summary=self.app.summary(),
            blobs=self.app.snapshot(),
        )
        path = self.store.write(ckpt)
        # Counters are added once per batch; a checkpoint mid-batch adds them now, so the
        # metrics never lag behind what a checkpoint says was handled.
        self._count()
        self._dirty = False
        self._stalled_since = None
        self._since_checkpoint = 0
        self._last_checkpoint = time.monotonic()
        self.checkpoints_written += 1
        elapsed = time.perf_counter() - start
        self.metrics.checkpoint_seconds.observe(elapsed)
        (log.warning if elapsed > 2.0 else log.debug)(
            "checkpoint #%d in %.3f s: %s", ckpt.sequence, elapsed, ckpt.offsets)
        self.metrics.last_checkpoint.set(time.time())
        self.metrics.checkpoint_bytes.set(path.stat().st_size)
        return True

    def _commit_offsets(self) -> dict[TopicPartition, OffsetAndMetadata]:
        out = {}
        for tp in self._owned:
            offset = self._next.get(tp_key(tp.topic, tp.partition))
            if offset is not None:
                out[tp] = OffsetAndMetadata(offset, "", -1)
        return out

    def _checkpoint_and_commit(self) -> bool:
        if not self.checkpoint():
            return False
        offsets = self._commit_offsets()
        if offsets:
            assert self.consumer is not None
            start = time.perf_counter()
            try:
                self.consumer.commit(offsets, timeout_ms=int(self.config.flush_timeout * 1000))
            except KafkaError as err:  # e.g. a rebalance is under way: the checkpoint holds
                self.metrics.commit_failures.inc()
                log.warning("offset commit failed (checkpoint kept): %s", err)
            else:
                self.metrics.commit_seconds.observe(time.perf_counter() - start)
        return True

    def _fence_offsets(self) -> dict[TopicPartition, OffsetAndMetadata]:
        """The offsets the membership question commits: the owned partitions' checkpointed
        ones (the frontier: nothing new is committed before its checkpoint)."""
        frontier = self.store.frontier()
        return {tp: OffsetAndMetadata(frontier[tp_key(tp.topic, tp.partition)], "", -1)
                for tp in self._owned if tp_key(tp.topic, tp.partition) in frontier}

    def _group_confirms(self) -> bool:
        """Whether the group still counts this worker the owner of its partitions, asked
        before every checkpoint (one commit round trip). The group may have expelled the
        worker (its session expired while the broker was away, or while the process was
        paused) and given its partitions to another, which resumed from the checkpoints on
        disk; the client learns so only at its next heartbeat, and a checkpoint written
        meanwhile claims records the new owner learns too (tests/test_kafka_chaos.py: after
        broker restarts, and after a worker's SIGSTOP, which no poll reports). The question
        is a commit of the offsets already checkpointed (:meth:`_fence_offsets`; the log's
        beginning for a partition in no checkpoint yet), which the coordinator refuses from
        an expelled member or during a rebalance (CommitFailedError: :attr:`_disowned`; the
        loss then rolls back, the rebalance's revocation checkpoints). False also when no
        broker answers (asked again later)."""
        assert self.consumer is not None
        offsets = self._fence_offsets()
        unknown = sorted(self._owned - offsets.keys())
        timeout_ms = int(self._probe_every * 1000)
        try:
            if unknown:  # in no checkpoint yet: their owner reads them from the beginning
                offsets |= {tp: OffsetAndMetadata(offset, "", -1) for tp, offset in
                            self.consumer.beginning_offsets(unknown, timeout_ms).items()}
            if not offsets:  # nothing owned, nothing to claim
                return True
            self.consumer.commit(offsets, timeout_ms=timeout_ms)
        except CommitFailedError as err:
            self._disowned = True
            log.warning("checkpoint postponed: the group did not confirm this worker owns "
                        "%s: %s", sorted(offsets), err)
            return False
        except BROKER_AWAY as err:
            log.warning("checkpoint postponed: no broker answered whether this worker still "
                        "owns %s: %s", sorted(offsets), err)
            return False
        except KafkaError as err:  # not a refusal of this member: the checkpoint may go on
            log.warning("the group's answer on this worker's partitions: %s", err)
        return True

    def _final_checkpoint(self) -> bool:
        # a failed attempt may have rolled back (undelivered outputs): the next one then
        # finds nothing to save
        return any(self._checkpoint_and_commit() for _ in range(3))

    def _stalled(self) -> None:
        """Note that a checkpoint failed (the stall is bounded by ``broker_timeout``)."""
        if self._stalled_since is None:
            self._stalled_since = time.monotonic()

    # ----------------------------------------------------------------- broker loss
    @property
    def _probe_every(self) -> float:
        """Seconds of silence before the broker is asked whether it is there."""
        return max(0.5, min(5.0, self.config.broker_timeout / 4))

    def _probe(self) -> bool:
        """Ask the group coordinator for a committed offset: a round trip that needs a live
        broker and coordinator, answered however idle the stream. True if it answered."""
        assert self.consumer is not None
        owned = sorted(self._owned)
        tp = owned[0] if owned else TopicPartition(self.config.topics[0], 0)
        try:
            self.consumer.committed(tp, timeout_ms=int(self._probe_every * 1000))
        except KafkaError as err:
            log.debug("no answer from the broker: %s", err)
            return False
        self._broker_seen = time.monotonic()
        return True

    def _check_broker(self) -> None:
        """Raise BrokerLost when no broker answered, or checkpoints kept failing with work
        unsaved, for longer than ``broker_timeout``."""
        limit = self.config.broker_timeout
        # Not while a group join is pending: Tansu answers the coordinator's other requests
        # only after the join (about half the session timeout), so the probe held the loop
        # outside poll() when the join completed (kafka-python then sends a new JoinGroup
        # instead of taking the finished one), or timed out at request_timeout_ms and took
        # the coordinator's connection, with the join, down: the group was never joined.
        if self._joined and time.monotonic() - self._broker_seen > self._probe_every:
            self._probe()
        now = time.monotonic()
        if now - self._broker_seen > limit:
            raise BrokerLost(
                f"no Kafka broker at {self.config.bootstrap_servers} answered for "
                f"{now - self._broker_seen:.0f} s (--broker-timeout {limit:g}): exiting "
                "without a checkpoint; the work since the last one will be redone")
        if self._stalled_since is not None and self._dirty and now - self._stalled_since > limit:
            raise BrokerLost(
                f"outputs not acknowledged by {self.config.bootstrap_servers} for "
                f"{now - self._stalled_since:.0f} s (--broker-timeout {limit:g}): exiting "
                "without a checkpoint; the work since the last one will be redone")

    def _check_log_end(self) -> None:
        """Raise OffsetsNotInLog when an owned partition's log ends before the next offset
        to read. The high watermark comes from fetch responses of the current assignment
        (kafka-python drops it with the partition), so it is never another owner's stale one;
        but on Apache Kafka, with records flowing in while partitions move, it was seen one
        below the next offset of records already returned (tests/test_kafka_chaos.py): a
        short log is confirmed by a fetch of its own (:meth:`_fresh_high_watermarks`) before
        the loop refuses to go on.
        """
        assert self.consumer is not None
        suspects = {}
        for tp in self._owned:
            high = self.consumer.highwater(tp)
            offset = self._next.get(tp_key(tp.topic, tp.partition))
            if (high is not None and offset is not None and high < offset
                    and self._log_end_seen.get(tp, -1) < offset):
                suspects[tp] = offset
        if not suspects:
            return
        ends = self._fresh_high_watermarks(suspects)  # raises OffsetsNotInLog on Kafka
        for tp, end in (ends or {}).items():  # (None: no answer; asked again next poll)
            if end < suspects[tp]:
                raise self._not_in_log(tp, suspects[tp], start=None, end=end)
            log.info("%s: the high watermark seen, %s, was below the next offset %d; the log "
                     "ends at %d", tp_key(tp.topic, tp.partition),
                     self.consumer.highwater(tp), suspects[tp], end)
            self._log_end_seen[tp] = end

    def _log_ends(self) -> dict[TopicPartition, int] | None:
        """The log end of every owned partition with a known next offset, as the broker
        answers it now (None: no answer); raises OffsetsNotInLog if one ends before it."""
        positions = {tp: self._next[tp_key(tp.topic, tp.partition)] for tp in self._owned
                     if tp_key(tp.topic, tp.partition) in self._next}
        if not positions:
            return {} if self._probe() else None
        ends = self._fresh_high_watermarks(positions)
        if ends is None:
            return None
        self._broker_seen = time.monotonic()
        for tp, end in ends.items():
            if end < positions[tp]:
                raise self._not_in_log(tp, positions[tp], start=None, end=end)
        return ends

    def _fresh_high_watermarks(
        self, positions: dict[TopicPartition, int]
    ) -> dict[TopicPartition, int] | None:
        """High watermarks from one fetch at ``positions`` by a group-less consumer (None:
        no answer in time). The loop's own may predate an outage (kafka-python keeps them
        until a fetch succeeds), and Tansu answers end-offset lookups wrongly."""
        timeout = self._probe_every
        try:
            checker = KafkaConsumer(**{
                **self._consumer_config, "group_id": None, "enable_auto_commit": False,
                "client_id": f"onlinenmf-{self.config.worker_id}-check",
                "bootstrap_timeout_ms": int(timeout * 1000)})
        except KafkaError:
            return None
        try:
            checker.assign(list(positions))
            for tp, offset in positions.items():
                checker.seek(tp, offset)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                ends = {tp: checker.highwater(tp) for tp in positions}
                if all(end is not None for end in ends.values()):
                    return ends
                try:
                    checker.poll(timeout_ms=200)
                except (OffsetOutOfRangeError, LogTruncationError) as err:
                    raise self._out_of_range(err) from None
                except BROKER_AWAY:
                    return None
            return None
        finally:
            try:
                checker.close(autocommit=False, timeout_ms=1000)
            except Exception as err:  # closing must not mask the answer
                log.warning("closing the log-end checker: %s", err)

    def _out_of_range(self, err: KafkaError) -> OffsetsNotInLog:
        """OffsetsNotInLog from kafka-python's OffsetOutOfRange/LogTruncation error (Kafka
        answers a fetch outside the log so; Tansu returns nothing and the high watermark)."""
        assert self.consumer is not None
        # OffsetOutOfRangeError carries {tp: offset} as its argument; LogTruncationError (a
        # broker whose leader epoch went back: a new, empty Kafka on the old port) carries
        # {tp: OffsetAndMetadata | None} as divergent_offsets and a message as its argument.
        positions = getattr(err, "divergent_offsets", None) or (
            err.args[0] if err.args and isinstance(err.args[0], dict) else {})
        if not positions:
            return OffsetsNotInLog(f"the broker holds no record at the next offset: {err}")
        tp = sorted(positions)[0]
        offset = self._next.get(tp_key(tp.topic, tp.partition))
        if offset is None:
            offset = getattr(positions[tp], "offset", positions[tp])  # may be None
        timeout = int(self._probe_every * 1000)
        try:  # real Kafka answers these lookups correctly (Tansu never gets here)
            start = self.consumer.beginning_offsets([tp], timeout_ms=timeout)[tp]
            end = self.consumer.end_offsets([tp], timeout_ms=timeout)[tp]
        except KafkaError:
            start = end = None
        return self._not_in_log(tp, offset, start=start, end=end)

    def _not_in_log(self, tp: TopicPartition, offset: int | None, start: int | None,
                    end: int | None) -> OffsetsNotInLog:
        """The refusal: the partition, its next (and checkpointed) offset, the log bound."""
        key = tp_key(tp.topic, tp.partition)
        checkpointed = self.store.frontier().get(key)
        ours = f"next offset {offset}"
        if checkpointed is not None and checkpointed != offset:
            ours += f" (checkpointed: {checkpointed})"
        elif checkpointed is not None:
            ours = f"checkpointed next offset {offset}"
        if start is not None and offset is not None and offset < start:
            where = (f"is before the log start {start}: records were deleted before they "
                     "were learned")
        elif end is not None:
            where = (f"is beyond the log end {end}: the topic was recreated or the broker "
                     "lost its data")
        else:  # the lookups went unanswered (a broker just restarted can be slow to say)
            where = ("is outside the log (the broker did not say where its log starts and "
                     "ends)")
        return OffsetsNotInLog(
            f"partition {key}: the {ours} {where}. Refusing to go on (records would be "
            f"skipped silently); restore the topic, or move {self.store.directory} away to "
            "learn this log from scratch")

    # ----------------------------------------------------------------- rebalance callbacks
    def _on_revoked(self, revoked: set[TopicPartition], confirmed: bool | None = None
                    ) -> dict | None:
        """Checkpoint before ``revoked`` go (or roll back if that fails); the offsets to
        commit. ``confirmed``: the group's word on our membership, asked by the listener
        (None: asked here, by :meth:`checkpoint`, on the main thread)."""
        self.metrics.rebalances.labels(kind="revoked").inc()
        self._left_group()
        if not revoked or self._aborted:  # leaving without a checkpoint: nothing to commit
            return None
        offsets = None
        was_dirty = self._dirty
        saved = (self.checkpoint() if confirmed is None
                 else confirmed and self.checkpoint(fence=False))
        if saved:
            offsets = {tp: om for tp, om in self._commit_offsets().items() if tp in revoked}
            offsets = offsets if was_dirty else None
        else:
            # The revoked partitions' new owner resumes from our last checkpoint: our
            # unsaved work on them must go, and with it everything after that checkpoint.
            self._owned -= revoked
            self._rollback("checkpoint failed during revocation")
        self._owned -= revoked
        self._set_paused(False)
        self.metrics.assigned.set(len(self._owned))
        return offsets

    def _on_lost(self, lost: set[TopicPartition]) -> None:
        self.metrics.rebalances.labels(kind="lost").inc()
        self._left_group()
        if self._aborted:  # closing after a LoopAbort: the checkpoint on disk stands
            return
        self._owned -= lost
        self._set_paused(False)
        self._rollback(f"lost partitions {sorted(lost)}")
        self.metrics.assigned.set(len(self._owned))

    def _left_group(self) -> None:
        """A revocation, loss or rejoin: out of the group until the next assignment."""
        self._joined = False
        self._join_started = self._last_activity = time.monotonic()

    def _on_assigned(self, assigned: set[TopicPartition]) -> None:
        self.metrics.rebalances.labels(kind="assigned").inc()
        self._owned |= set(assigned)
        # A join completed, even with nothing assigned (more members than partitions): such
        # a member may leave when idle. An assignment made without a topic's partitions
        # (_RangeAssignor.missing: one created a moment ago) does not count: it is redone by
        # _rejoin_if_unassigned, and exit_when_idle waits for that as for a join.
        self._joined = not self._assignor.missing
        self._seek(set(assigned))
        self._last_activity = time.monotonic()
        self.metrics.assigned.set(len(self._owned))
        log.info("assigned %s", sorted((tp.topic, tp.partition) for tp in self._owned))

    # ----------------------------------------------------------------- the loop body
    def _poll(self, timeout_ms: int, max_records: int | None = None) -> dict:
        """The input consumer's ``poll``; while no broker answers (:data:`BROKER_AWAY`), no
        records after the poll's wait. The outage is bounded by :meth:`_check_broker`, which
        ends the loop with BrokerLost once no broker answered for ``broker_timeout``.

        No record is lost so: kafka-python raises these from its group coordinator's part
        of the poll, before any fetched record is returned, and moves a position only past
        records it returns.
        """
        assert self.consumer is not None
        start = time.monotonic()
        try:
            return self.consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
        except (OffsetOutOfRangeError, LogTruncationError) as err:
            raise self._out_of_range(err) from None
        except BROKER_AWAY as err:
            # once per outage (a broker answered since the last note), then quietly
            (log.warning if self._away_noted < self._broker_seen else log.debug)(
                "no broker answered the poll, waiting up to --broker-timeout %g s: %s",
                self.config.broker_timeout, err)
            self._away_noted = time.monotonic()
            wait_out(timeout_ms, start)
            return {}

    def _poll_once(self) -> None:
        batch = self._poll(int(self.config.poll_timeout * 1000), self.config.max_poll_records)
        if batch:
            self._broker_seen = time.monotonic()
        self._rejoin_if_unassigned()
        epoch = self._epoch
        start = time.perf_counter()
        handled = 0
        for tp, records in batch.items():
            key, counters = tp_key(tp.topic, tp.partition), self._counters(tp)
            for record in records:
                if self._stopping or self._epoch != epoch:
                    break
                if self._handle(tp, key, counters, record):
                    handled += 1
                    # (while paused, a failed checkpoint is retried once per poll, below)
                    if self._since_checkpoint >= self.config.checkpoint_every and not self._paused:
                        self._set_paused(not self._checkpoint_and_commit())
        self._count()
        if self._epoch != epoch and not self._stopping:
            # A rebalance or rollback happened mid-batch (inside a dead-letter retry):
            # the rest of the batch is dropped and re-fetched from the known positions.
            self._resync()
        if handled:
            self._last_activity = time.monotonic()
            self.metrics.batch_seconds.observe(time.perf_counter() - start)
            self._observe_model()
        self._check_log_end()
        self._update_lag()
        due = time.monotonic() - self._last_checkpoint >= self.config.checkpoint_interval
        if self._dirty and due and not self._stopping and not self._paused:
            self._set_paused(not self._checkpoint_and_commit())
        self._backpressure()

    def _rejoin_if_unassigned(self) -> None:
        """When this worker, leading the group, assigned without a subscribed topic's
        partitions (:class:`_RangeAssignor`), ask for metadata until it holds them, then join
        the group again: the new assignment includes them. Without this the topic went unread
        for minutes (kafka-python's next periodic refresh, ``metadata_max_age_ms``) or for
        good (it rejoins on a change its snapshot does not show)."""
        missing = self._assignor.missing
        if not missing:
            return
        cluster = self._assignor.cluster
        if all(cluster.partitions_for_topic(topic) for topic in missing):
            log.warning("the group's last assignment left out %s (not yet in this worker's "
                        "metadata when it assigned): rejoining", ", ".join(sorted(missing)))
            self._assignor.missing = set()
            assert self.consumer is not None
            # Leave and join again as a new member: a rejoin of the same member was seen
            # answered with the old, empty assignment on Tansu (the generation stayed 0).
            # unsubscribe() drops the partitions of other topics without calling the
            # listener: they are revoked here (checkpoint, or rollback) as in a rebalance.
            if self._owned:
                self._on_revoked(set(self._owned))
            self._left_group()
            self.consumer.unsubscribe()
            self.consumer.subscribe(self.config.topics, listener=_Listener(self))
        elif time.monotonic() - self._metadata_asked >= 1.0:
            self._metadata_asked = time.monotonic()
            cluster.request_update()

    def _handle(self, tp: TopicPartition, key: str, counters: tuple[Any, Any],
                record: Any) -> bool:
        """Handle one record of ``tp`` (``key``: its ``tp_key``; ``counters``: its
        :meth:`_counters`); True if it was learned or dead-lettered now."""
        if tp not in self._owned:
            return False
        offset = record.offset
        expected = self._next.get(key)
        if expected is not None and offset < expected:
            return False  # already in the state: replayed after a seek
        source = _new_source(Source, (tp.topic, tp.partition, offset, record.timestamp,
                                      record.key, self.config.worker_id))
        origin = (key, offset)
        bad = self._refused.get(origin) if self._refused else None
        if bad is None:
            try:
                item = self.app.decode(record.value)
                result = self.app.process(item, source)
            except BadMessage as refusal:  # the application left no trace of the record
                bad = refusal
            except BaseException:
                # The application failed half-way: its state may hold part of this record,
                # which no checkpoint may cover while the offsets call it unprocessed
                # (not dirty: nothing is saved even if the rollback fails too).
                self._dirty = False
                self._rollback(f"the application failed on {key}@{offset}")
                raise
        if bad is not None:
            if not self._dead_letter(tp, record, bad):
                return False
            self._refused.pop(origin, None)
            self._dead[key] = self._dead.get(key, 0) + 1
        else:
            if not self._emit(origin, result):
                return False
            self._learned[key] = self._learned.get(key, 0) + 1
            self._tally[counters[1]] += 1
            if result.loss is not None:
                self._losses.append(result.loss)
        self._next[key] = offset + 1
        self.last_record_time = time.perf_counter()
        if self.first_record_time is None:
            self.first_record_time = self.last_record_time
        self._since_checkpoint += 1
        self._dirty = True
        self._tally[counters[0]] += 1
        return True

    def _count(self) -> None:
        """Add the batch's tallies to the Prometheus counters and its losses to the loss
        histogram (each inc or observe takes a lock: once per batch, not per record)."""
        for counter, n in self._tally.items():
            counter.inc(n)
        self._tally.clear()
        if self._losses:
            self.metrics.loss.observe_many(self._losses)
            self._losses.clear()

    # ----------------------------------------------------------------- outputs
    def _counters(self, tp: TopicPartition) -> tuple[Any, Any]:
        """The (records, learned) counters of a partition (labels() per record is costly)."""
        pair = self._children.get(tp)
        if pair is None:
            labels = {"topic": tp.topic, "partition": str(tp.partition)}
            pair = (self.metrics.records.labels(**labels), self.metrics.learned.labels(**labels))
            self._children[tp] = pair
        return pair

    def _emit(self, origin: tuple[str, int], result: Result) -> bool:
        """Send the outputs of the record at ``origin`` (learned already). False if one can
        never be sent: the state is then rolled back and the record will be dead-lettered.

        Once per record: the producer's limit is the one noted with the producer, and the
        send, the delivery bookkeeping and the output counters are inlined here (a method
        call per output cost more than the librdkafka ``produce`` itself)."""
        outputs = result.outputs
        limit = self._limit
        for topic, key, value in outputs:
            # (cheap test first: the record's own overhead is a few dozen bytes)
            if len(value) + len(key or b"") + 1024 > limit:
                size = record_size(key, value)
                if size > limit:
                    self._refuse(origin, BadMessage(
                        "oversize", f"its output record to {topic} would be {size} bytes, "
                        f"above the producer's limit of {limit} (--max-message-bytes)"))
                    return False
        assert self.producer is not None
        send, pending, tally = self.producer.send, self._pending, self._tally
        for topic, key, value in outputs:
            try:
                future = send(topic, key=key, value=value)
            except (MessageSizeTooLargeError, RecordListTooLargeError) as err:
                self._undelivered(origin, err)
                continue
            except KafkaError as err:  # e.g. no metadata within max_block_ms: redone after
                self._undelivered(None, err)  # the rollback
                continue
            pending.append((future, origin))
            if not len(pending) % 256:
                self._prune()
            counter = self._output_children.get(topic)
            if counter is None:
                counter = self._output_children[topic] = self.metrics.outputs.labels(topic=topic)
            tally[counter] += 1
        return True

    def _refuse(self, origin: tuple[str, int], bad: BadMessage) -> None:
        """The record at ``origin`` was learned but its output can never be delivered: back
        to the last checkpoint, and dead-letter the record when it is read again."""
        self._refused[origin] = bad
        self._rollback(f"{origin[0]}@{origin[1]}: {bad}")

    def _prune(self, everything: bool = False) -> None:
        """Forget acknowledged outputs (oldest first); count the failed ones."""
        pending = self._pending
        while pending and (everything or pending[0][0].is_done):
            future, origin = pending.popleft()
            if not future.is_done:
                self._undelivered(None, None)
            elif future.failed():
                too_large = (MessageSizeTooLargeError, RecordListTooLargeError)
                self._undelivered(origin if isinstance(future.exception, too_large) else None,
                                  future.exception)

    def _undelivered(self, origin: tuple[str, int] | None, err: Exception | None) -> None:
        """Count an output that was not delivered: the next checkpoint rolls back instead,
        and the records since the last one are redone. ``origin``: the record whose output
        the broker refused as too large, dead-lettered when redone (it would fail again)."""
        self._send_errors += 1
        self.metrics.output_errors.inc()
        if err is not None:
            log.warning("output record not delivered: %s", err)
        if origin is not None:
            self._refused[origin] = BadMessage(
                "oversize", f"its output record was refused as too large: {err}")

    def _replace_producer(self) -> None:
        # kafka-python producer errors can be sticky (a fatal idempotence state): start over.
        # Outputs still buffered in it are lost: count that as a delivery failure, so the
        # next checkpoint rolls back and the records that produced them are re-read.
        old, self.producer = self.producer, None
        self._prune()
        if self._pending:
            self._send_errors += 1
            self._pending.clear()
        if old is not None:
            try:
                old.close(timeout=1)
            except Exception as err:
                log.warning("closing a failed producer: %s", err)
        self.producer = self._new_producer()

    def _dlt_partition(self, dlt: str, partition: int) -> int | None:
        """Same partition as the source when the DLT has it (Spring's convention)."""
        if dlt not in self._dlt_partitions:
            assert self.producer is not None
            try:
                parts = self.producer.partitions_for(dlt)
            except KafkaError:
                parts = None
            self._dlt_partitions[dlt] = len(parts) if parts else None
        count = self._dlt_partitions[dlt]
        return partition if count is not None and partition < count else None

    def _dead_letter(self, tp: TopicPartition, record: Any, bad: BadMessage) -> bool:
        """Send the original bytes to ``<topic>.DLT`` and wait for the acknowledgement.

        The key and value are cut to fit the producer's ``max_request_size`` when they do
        not (:func:`dead_letter_record`), and cut further when the broker refuses the record
        as too large. Retries with input paused while the broker is unreachable. Returns
        False if a rebalance or stop intervened (the record stays unhandled and is re-read).
        """
        dlt = tp.topic + self.config.dlt_suffix
        cause = bad.__cause__ or bad.__context__ or bad
        reason = str(bad).encode("utf-8", "replace")
        if len(reason) > MAX_REASON_BYTES:
            reason = reason[: MAX_REASON_BYTES - 3] + b"..."
        headers = [
            ("kafka_dlt-original-topic", tp.topic.encode()),
            ("kafka_dlt-original-partition", str(tp.partition).encode()),
            ("kafka_dlt-original-offset", str(record.offset).encode()),
            ("kafka_dlt-original-timestamp", str(record.timestamp).encode()),
            ("kafka_dlt-original-consumer-group", self.config.group_id.encode()),
            ("kafka_dlt-exception-fqcn",
             f"{type(cause).__module__}.{type(cause).__qualname__}".encode()),
            ("kafka_dlt-exception-message", reason),
            ("onlinenmf-dlt-reason", bad.kind.encode()),
            ("onlinenmf-worker", self.config.worker_id.encode()),
        ]
        epoch, delay, failures = self._epoch, 0.2, 0
        limit = self._limit
        while True:
            assert self.producer is not None
            key, value, dl_headers = dead_letter_record(record.key, record.value, headers, limit)
            try:
                future = self.producer.send(
                    dlt, key=key, value=value, headers=dl_headers,
                    partition=self._dlt_partition(dlt, tp.partition),
                )
                future.get(timeout=self.config.flush_timeout)
            except (MessageSizeTooLargeError, RecordListTooLargeError) as err:
                if limit > _MIN_DEAD_LETTER_BYTES:  # the broker accepts less than we do
                    limit = max(limit // 2, _MIN_DEAD_LETTER_BYTES)
                    log.warning("dead letter for %s:%d@%d refused as too large (%s): cut to "
                                "%d bytes", tp.topic, tp.partition, record.offset, err, limit)
                    continue
                if not self._retry_dead_letter(tp, record, err, failures, delay, epoch):
                    return False
                failures, delay = failures + 1, min(delay * 2, 5.0)
                continue
            except KafkaError as err:
                if not self._retry_dead_letter(tp, record, err, failures, delay, epoch):
                    return False
                failures, delay = failures + 1, min(delay * 2, 5.0)
                continue
            self.metrics.dead_letters.labels(topic=tp.topic, reason=bad.kind).inc()
            log.info("dead letter %s:%d@%d (%s): %s", tp.topic, tp.partition, record.offset,
                     bad.kind, reason.decode("utf-8", "replace"))
            return True

    def _retry_dead_letter(self, tp: TopicPartition, record: Any, err: Exception,
                           failures: int, delay: float, epoch: int) -> bool:
        """Wait before the next attempt; False if a rebalance or stop intervened."""
        log.warning("dead letter for %s:%d@%d not acknowledged, retrying: %s",
                    tp.topic, tp.partition, record.offset, err)
        if (failures + 1) % 3 == 0:  # maybe a sticky fatal producer error: start over
            self._replace_producer()
        self._wait_paused(delay)
        return not (self._stopping or self._epoch != epoch)

    # ----------------------------------------------------------------- flow control
    def _set_paused(self, paused: bool) -> None:
        assert self.consumer is not None
        owned = sorted(self._owned)
        if paused and owned:
            self.consumer.pause(*owned)
        elif not paused and self._paused:
            assigned = self.consumer.assignment()
            self.consumer.resume(*[tp for tp in owned if tp in assigned])
        self._paused = paused and bool(owned)
        self.metrics.paused.set(1 if self._paused else 0)

    def _wait_paused(self, seconds: float) -> None:
        """Keep the group membership alive (poll) without taking new records."""
        assert self.consumer is not None
        self._check_broker()  # a retry loop waiting on the broker ends with BrokerLost
        was_paused = self._paused
        self._set_paused(True)
        leftovers = self._poll(int(seconds * 1000))
        if leftovers:  # only partitions assigned during this poll (not paused yet) can show up
            self._epoch += 1
        self._set_paused(was_paused)

    def _resync(self) -> None:
        """Point every owned partition back at the next offset to handle."""
        assert self.consumer is not None
        assigned = self.consumer.assignment()
        for tp in self._owned & assigned:
            offset = self._next.get(tp_key(tp.topic, tp.partition))
            if offset is None:
                self.consumer.seek_to_beginning(tp)
            else:
                self.consumer.seek(tp, offset)

    def _backpressure(self) -> None:
        self._prune()
        inflight = len(self._pending)
        if inflight > self.config.max_inflight and not self._paused:
            log.info("%d outputs await acknowledgement: pausing input", inflight)
            self._set_paused(True)
        elif self._paused and not self._dirty and inflight <= self.config.max_inflight // 2:
            self._set_paused(False)
        elif self._paused and inflight <= self.config.max_inflight // 2:
            # paused because a checkpoint failed: retry it before taking more input
            if self._checkpoint_and_commit():
                self._set_paused(False)

    def _update_lag(self) -> None:
        assert self.consumer is not None
        for tp in self._owned:
            key = tp_key(tp.topic, tp.partition)
            high = self.consumer.highwater(tp)
            nxt = self._next.get(key)
            if high is not None and nxt is not None:
                self.metrics.lag.labels(topic=tp.topic, partition=str(tp.partition)).set(
                    max(high - nxt, 0))

    def _observe_model(self) -> None:
        gauges = self.app.gauges()
        version = float(gauges.get("model_version", 0))
        if self._last_version is not None and version > self._last_version:
            self.metrics.refreshes.inc(version - self._last_version)
        self._last_version = version
        self.metrics.model_version.set(version)
        self.metrics.components.set(float(gauges.get("n_components", 0)))

    # ----------------------------------------------------------------- introspection
    @property
    def owned(self) -> set[TopicPartition]:
        """Partitions this loop currently owns."""
        return set(self._owned)

    @property
    def learned_counts(self) -> dict[str, int]:
        """Records learned per ``topic:partition`` (as of the current state)."""
        return dict(self._learned)

    @property
    def dead_letter_counts(self) -> dict[str, int]:
        """Records dead-lettered per ``topic:partition`` (as of the current state)."""
        return dict(self._dead)

    @property
    def next_offsets(self) -> dict[str, int]:
        """Next offset to handle per ``topic:partition``."""
        return dict(self._next)
