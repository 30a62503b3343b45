"""One dictionary for a consumer group: workers gossip their statistics through Kafka.

Opt-in (``onlinenmf consume microbiome --share-dictionary``). Without it, each worker learns
its own dictionary from the partitions it owns, so a worker whose subjects never carry a
community never learns it. With it:

- every ``--share-every`` dictionary refreshes, a worker publishes its own forgetful
  statistics (:meth:`onlinenmf.OnlineNMF.export_statistics`: rows keyed by feature name) to
  the single-partition *stats topic* (``<input topic>.stats``, created if missing), key =
  worker id, value = an :mod:`onlinenmf.snapshot` archive (npz + JSON + sha256, no pickle)
  with the worker id and a per-worker sequence number. It goes out through the loop's
  producer like any output record, so it is acknowledged before the next checkpoint;
- every worker follows the whole stats topic (its own consumer, ``assign`` + seek to the
  beginning, no group) and keeps, per other worker, the statistics with the highest
  sequence number. After each refresh the latest ones are handed to the model
  (:meth:`~onlinenmf.OnlineNMF.set_peer_statistics`), whose next refresh computes W from
  its own statistics plus theirs (columns matched by :mod:`onlinenmf.sharing`).

Why this is replay-safe: a worker's statistics are a *state*, not a delta. A follower holds
one state per worker and replaces it, never adds two of them (a replayed or older record,
sequence not above the one held, is ignored); its own statistics never absorb a peer's. A
worker restarted after a crash resumes its numbering above the highest of its own records on
the topic, so its next state (restored from its checkpoint, then re-learning what the crash
lost) replaces the one it published before the crash: the re-learned records are in one
state only.

A worker that leaves the group for good stays in the others' dictionaries with its last
state, frozen (it is no longer forgotten), and the records it learned after its last
checkpoint are learned again by the partitions' new owner. ``--share-max-age S`` drops a
peer whose latest state is more than S seconds old (record timestamps); set it to several
times the interval between two publications.

Peer statistics are *not* in the checkpoint: on start the worker re-reads the stats topic
from the beginning, before its first record. The topic holds each worker's latest state,
fresher than any checkpoint could; checkpoints stay small; a rollback keeps the peers (they
are a view of the topic, not this worker's state). On Kafka, give the stats topic
``cleanup.policy=compact`` so that only the latest state per worker is kept.

>>> stats = {"features": ["a", "b"], "beta": 1, "W": np.eye(2), "B": np.eye(2),
...          "usage": np.ones(2), "n_eff": 2.0, "samples_learned": 2, "component_ids": [0, 1]}
>>> worker, sequence, back = decode_statistics(encode_statistics(stats, "w1", 7))
>>> worker, sequence, back["features"], bool(np.array_equal(back["B"], stats["B"]))
('w1', 7, ['a', 'b'], True)
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from consumers.outcomes import BROKER_AWAY, BROKER_TIMEOUT, answered, wait_out
from consumers.topics import ensure_topics
from onlinenmf import snapshot

__all__ = ["SharedDictionary", "encode_statistics", "decode_statistics"]

log = logging.getLogger("onlinenmf.shared")

KIND = "onlinenmf.statistics"
_ARRAYS = ("W", "B", "usage", "A", "D")
_SCALARS = ("beta", "n_eff", "samples_learned", "component_ids", "features")


def encode_statistics(stats: dict[str, Any], worker: str, sequence: int) -> bytes:
    """One stats-topic record: the arrays in an npz, the rest in its checksummed JSON."""
    arrays = {name: np.asarray(stats[name], dtype=np.float64) for name in _ARRAYS
              if name in stats}
    meta = {"kind": KIND, "worker": worker, "sequence": int(sequence),
            **{name: stats[name] for name in _SCALARS}}
    return snapshot.dumps(arrays, meta)


def decode_statistics(value: bytes) -> tuple[str, int, dict[str, Any]]:
    """``(worker, sequence, statistics)`` of a stats-topic record; ValueError if unusable."""
    arrays, meta = snapshot.loads(value, source="stats record")
    if meta.get("kind") != KIND:
        raise ValueError(f"stats record: kind {meta.get('kind')!r} is not {KIND!r}")
    stats = {name: meta[name] for name in _SCALARS}
    stats.update(arrays)
    return str(meta["worker"]), int(meta["sequence"]), stats


def _now_ms() -> int:
    return int(time.time() * 1000)


class SharedDictionary:
    """The Kafka side of a shared dictionary, for one worker (see the module notes).

    Parameters
    ----------
    bootstrap_servers, topic, worker_id
        The cluster, the stats topic, and this worker's id (its records' key).
    share_every
        Refreshes between two publications of this worker's statistics.
    consumer_config
        Extra kafka-python settings of the stats consumer (security settings, ...).
    catch_up_timeout
        Seconds to wait, on start, for the stats topic to be read to its end.
    max_age
        Peers whose latest state is older than this many seconds are left out (None: kept).
    broker_timeout
        The loop's ``--broker-timeout``: how long the stats clients wait for a broker on
        start before :class:`~consumers.outcomes.BrokerLost` (later outages are the loop's to
        bound: a stats poll that no broker answers takes no records).
    """

    def __init__(self, bootstrap_servers: str, topic: str, worker_id: str,
                 share_every: int = 1, consumer_config: dict[str, Any] | None = None,
                 catch_up_timeout: float = 30.0, max_age: float | None = None,
                 broker_timeout: float = BROKER_TIMEOUT) -> None:
        if share_every < 1:
            raise ValueError(f"share_every must be a positive integer, got {share_every!r}")
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.worker_id = worker_id
        self.share_every = share_every
        self.consumer_config = dict(consumer_config or {})
        self.catch_up_timeout = catch_up_timeout
        self.max_age = max_age
        self.broker_timeout = broker_timeout
        self._away_noted = False  # a stats poll found no broker (logged once per outage)
        #: worker id -> (sequence, statistics, timestamp in ms): every other worker's latest
        self.latest: dict[str, tuple[int, dict[str, Any], int]] = {}
        self.sequence = 0  # of this worker's last publication
        self.rejected = 0  # unusable stats records (logged, skipped)
        self._consumer: Any = None
        self._tp: Any = None

    # ------------------------------------------------------------------ following
    def start(self) -> None:
        """Create the stats topic if missing, then read it to its end (once per process)."""
        if self._consumer is not None:
            return
        from kafka import KafkaConsumer, TopicPartition

        self._ensure_topic()
        config = {"bootstrap_servers": self.bootstrap_servers, "group_id": None,
                  "client_id": f"onlinenmf-{self.worker_id}-stats",
                  "enable_auto_commit": False, "auto_offset_reset": "earliest",
                  "max_partition_fetch_bytes": 16 * 1024 * 1024,
                  # peers' states should arrive within a refresh or so, not a fetch timeout
                  "fetch_max_wait_ms": 100,
                  # the first connection waits as long as the loop's (KafkaTimeoutError)
                  "bootstrap_timeout_ms": int(self.broker_timeout * 1000)}
        config.update(self.consumer_config)
        self._consumer = answered(lambda: KafkaConsumer(**config), "the stats consumer",
                                  self.bootstrap_servers, self.broker_timeout)
        self._tp = TopicPartition(self.topic, 0)
        self._consumer.assign([self._tp])
        self._consumer.seek_to_beginning(self._tp)
        deadline = time.monotonic() + self.catch_up_timeout
        while time.monotonic() < deadline:
            self.poll(timeout_ms=200)
            try:
                high = self._consumer.highwater(self._tp)
                if high is not None and self._consumer.position(self._tp) >= high:
                    break
            except BROKER_AWAY:  # the loop bounds an outage; a stats topic unread is logged
                continue
        else:
            log.warning("stats topic %s not read to its end in %.0f s: starting with %d peers",
                        self.topic, self.catch_up_timeout, len(self.latest))
        log.info("stats topic %s: %d peers, own sequence %d", self.topic, len(self.latest),
                 self.sequence)

    def _ensure_topic(self) -> None:
        # one partition: one order of the states, whoever reads them
        ensure_topics(self.bootstrap_servers, {self.topic: 1}, self.broker_timeout,
                      self.consumer_config)

    def poll(self, timeout_ms: int = 0) -> bool:
        """Take the stats records that arrived; True if some peer's latest state changed."""
        if self._consumer is None:
            return False
        changed = False
        start = time.monotonic()
        try:
            batch = self._consumer.poll(timeout_ms=timeout_ms)
        except BROKER_AWAY as err:
            # a silent broker's, as for the loop's input poll (whose broker timeout bounds
            # the outage): no peer's state changed, after the poll's wait
            if not self._away_noted:
                log.warning("no broker answered the stats poll: %s", err)
            self._away_noted = True
            wait_out(timeout_ms, start)
            return False
        self._away_noted = False
        for records in batch.values():
            for record in records:
                changed |= self.accept(record.value, record.timestamp)
        return changed

    def accept(self, value: bytes, timestamp: int | None = None) -> bool:
        """Keep one stats record if it is a newer state of its worker; True if kept.

        >>> shared = SharedDictionary("unused:9092", "t.stats", "w1")
        >>> stats = {"features": ["a"], "beta": 1, "W": np.ones((1, 1)), "B": np.ones((1, 1)),
        ...          "usage": np.ones(1), "n_eff": 1.0, "samples_learned": 1,
        ...          "component_ids": [0]}
        >>> [shared.accept(encode_statistics(stats, w, s)) for w, s in
        ...  [("w2", 1), ("w2", 3), ("w2", 2), ("w2", 3), ("w1", 5)]]
        [True, True, False, False, False]
        >>> shared.latest["w2"][0], shared.sequence, len(shared.peers())
        (3, 5, 1)
        >>> shared.max_age = 60.0  # w3's state is from 1970: left out
        >>> shared.accept(encode_statistics(stats, "w3", 1), timestamp=0), len(shared.peers())
        (True, 1)
        """
        try:
            worker, sequence, stats = decode_statistics(value)
        except (ValueError, KeyError, TypeError) as err:
            self.rejected += 1
            log.warning("skipping an unusable stats record: %s", err)
            return False
        if worker == self.worker_id:  # ours: only where our numbering resumes after a crash
            self.sequence = max(self.sequence, sequence)
            return False
        if worker in self.latest and self.latest[worker][0] >= sequence:
            return False  # a replayed or older state: the newer one stays
        stamp = int(timestamp) if timestamp is not None and timestamp >= 0 else _now_ms()
        self.latest[worker] = (sequence, stats, stamp)
        return True

    def peers(self) -> list[dict[str, Any]]:
        """The latest statistics of every other worker (not older than ``max_age``), in
        worker-id order."""
        oldest = -1 if self.max_age is None else _now_ms() - 1000 * self.max_age
        return [self.latest[w][1] for w in sorted(self.latest) if self.latest[w][2] >= oldest]

    # ------------------------------------------------------------------ publishing
    def publication(self, model: Any) -> tuple[str, bytes, bytes] | None:
        """After a refresh: the record to publish, when one is due (every ``share_every``)."""
        if model.model_version % self.share_every:
            return None
        self.sequence += 1
        value = encode_statistics(model.export_statistics(), self.worker_id, self.sequence)
        return self.topic, self.worker_id.encode(), value

    def close(self) -> None:
        if self._consumer is not None:
            try:
                self._consumer.close()
            except Exception as err:  # closing must not mask the real outcome
                log.warning("closing the stats consumer: %s", err)
            self._consumer = None
