"""Broker fixtures and helpers for the Kafka tests (owned by the Kafka consumer work).

Every Kafka test runs against both brokers: the embedded Tansu broker (the demo's) and a
local single-node Apache Kafka (``consumers/apache_kafka.py``, the broker users run).

- ``kafka_broker`` (session, one parameter per broker): shared by all Kafka tests. Tests
  use fresh, uniquely named topics and groups, so they do not see each other. pytest groups
  the tests by broker, so each broker starts once per run and only one runs at a time.
  ``ONLINENMF_TEST_BOOTSTRAP=host:port`` points them at an outside broker instead.
- ``private_broker`` (function, one parameter per broker): a broker of the test's own, for
  tests that stop, kill, freeze or restart it (see :class:`Broker`).

``ONLINENMF_TEST_BROKERS`` picks the brokers (``tansu``, ``apache`` or ``tansu,apache``,
the default). Without Java 17 (or without Maven and the jars not fetched yet) the Apache
Kafka cases skip, and the skip says why.

The test streams are produced with confluent-kafka (librdkafka), a client nobody here
wrote, so that the consumer is not only ever fed by its own producer code.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import confluent_kafka as ck
import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from consumers import apache_kafka
from consumers.broker import EMBEDDED_GROUP_SETTINGS, EmbeddedBroker
from consumers.broker_process import BrokerProcess, freeze
from consumers.checkpoint import CheckpointStore, tp_key

ROOT = Path(__file__).resolve().parents[1]

BROKER_KINDS = ("tansu", "apache")
BROKERS_ENV = "ONLINENMF_TEST_BROKERS"

#: Fast group settings for the tests: on Tansu a join takes about session_timeout_ms / 2.
#: Apache Kafka refuses sessions shorter than its group.min.session.timeout.ms (6 s by
#: default): the test broker lowers that (APACHE_TEST_SETTINGS). The consumer's production
#: defaults stay at real Kafka's limits.
#: The same as ``onlinenmf consume`` picks by itself on the embedded broker.
FAST_GROUP = dict(EMBEDDED_GROUP_SETTINGS)
FAST_GROUP_FLAGS = [arg for key, value in FAST_GROUP.items() for arg in ("-X", f"{key}={value}")]

#: kafka-python reconnecting to a lost broker every 10-20 ms (its default backs off up to
#: 30 s). In an outage, kafka-python 3.0.12 lets a connection error escape ``poll()`` when
#: the coordinator lookup and the metadata refresh it then waits for are both refused within
#: the poll's timeout: with the default backoff only in an outage's first second or so (a
#: rare crash of tests/test_kafka_chaos.py, issue 15), with these at nearly every poll.
TIGHT_RECONNECT = {"reconnect_backoff_ms": 10, "reconnect_backoff_max_ms": 20}
TIGHT_RECONNECT_FLAGS = [arg for key, value in TIGHT_RECONNECT.items()
                         for arg in ("-X", f"{key}={value}")]

#: What the test Apache Kafka sets beyond `onlinenmf broker --apache` (test-only: a
#: production broker keeps Kafka's 6 s minimum).
APACHE_TEST_SETTINGS = {"group.min.session.timeout.ms": 1000}

#: Tansu 0.6's documented faults (DESIGN.md, Kafka), by name; Apache Kafka has none of them.
#: tests/test_apache_kafka.py checks each one on both brokers.
TANSU_FAULTS = frozenset({"latest_offset", "commit_metadata"})

_QUIET = {"log_level": 3}  # librdkafka: errors only (its disconnect notices are noise here)


def selected_brokers() -> list[str]:
    """The broker kinds named by ``ONLINENMF_TEST_BROKERS`` (default: all)."""
    raw = os.environ.get(BROKERS_ENV, ",".join(BROKER_KINDS))
    kinds = [k.strip().lower() for k in raw.split(",") if k.strip()]
    unknown = sorted(set(kinds) - set(BROKER_KINDS))
    if unknown or not kinds:
        raise pytest.UsageError(
            f"{BROKERS_ENV}={raw!r}: name one or more of {', '.join(BROKER_KINDS)}, "
            "comma-separated")
    return list(dict.fromkeys(kinds))


def apache_unavailable() -> str | None:
    """Why the Apache Kafka cases cannot run on this machine, or None."""
    return apache_kafka.unavailable()


class Broker:
    """What a broker fixture yields: its kind, address and, if we own it, the process.

    Broker control, the same on both brokers: :meth:`stop` (SIGTERM), :meth:`kill`
    (SIGKILL), :meth:`start` (on the same port), :meth:`restart`, :meth:`pause` (SIGSTOP)
    and :meth:`resume`. :attr:`persistent` says whether topics and committed offsets
    survive a stop or kill and a start: Apache Kafka keeps them in its data directory,
    Tansu (memory storage) loses them; ``start(empty=True)`` brings either back empty.
    """

    def __init__(self, kind: str, bootstrap: str, process: BrokerProcess | None = None) -> None:
        self.kind = kind
        self.bootstrap = bootstrap
        self.process = process

    @property
    def faults(self) -> frozenset[str]:
        """Names of the known broker faults the consumer must work around here."""
        return TANSU_FAULTS if self.kind == "tansu" else frozenset()

    @property
    def persistent(self) -> bool:
        return self._owned().persistent

    def _owned(self) -> BrokerProcess:
        if self.process is None:
            pytest.skip(f"{self.bootstrap} is an outside broker: the test cannot control it")
        return self.process

    def stop(self) -> None:
        self._owned().stop()

    def kill(self) -> None:
        self._owned().kill()

    def start(self, empty: bool = False) -> None:
        """Start the stopped broker on its port again; ``empty``: with nothing stored, as a
        broker that lost its disk (Tansu always comes back empty)."""
        process = self._owned()
        if empty and isinstance(process, apache_kafka.ApacheBroker):
            process.wipe()
        process.start()
        assert process.bootstrap == self.bootstrap  # back on the same address

    def restart(self) -> None:
        self.stop()
        self.start()

    def pause(self) -> None:
        self._owned().pause()

    def resume(self) -> None:
        self._owned().resume()

    def __repr__(self) -> str:
        return f"Broker({self.kind!r}, {self.bootstrap!r})"


def start_broker(kind: str, where: Path) -> BrokerProcess:
    """Start a test broker of ``kind`` with its files under ``where`` (skips the test when
    this machine cannot run Apache Kafka)."""
    if kind == "tansu":
        return EmbeddedBroker(log_path=where / "tansu.log").start()
    problem = apache_unavailable()
    if problem is not None:
        pytest.skip(f"Apache Kafka case not run: {problem}")
    return apache_kafka.ApacheBroker(data_dir=where / "kafka",
                                     settings=APACHE_TEST_SETTINGS).start()


@pytest.fixture(scope="session",
                params=["external"] if os.environ.get("ONLINENMF_TEST_BOOTSTRAP")
                else selected_brokers())
def kafka_broker(request: pytest.FixtureRequest,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    if request.param == "external":
        yield Broker("external", os.environ["ONLINENMF_TEST_BOOTSTRAP"])
        return
    process = start_broker(request.param, tmp_path_factory.mktemp(request.param))
    try:
        yield Broker(request.param, process.bootstrap, process)
    finally:
        process.stop()


@pytest.fixture(params=selected_brokers())
def private_broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Broker]:
    process = start_broker(request.param, tmp_path)
    try:
        yield Broker(request.param, process.bootstrap, process)
    finally:
        process.stop()


def unique(prefix: str) -> str:
    """A fresh topic or group name."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def create_topic(bootstrap: str, name: str, partitions: int = 1) -> str:
    """Create ``name`` with ``partitions`` partitions (confluent-kafka admin) and return it."""
    admin = AdminClient({"bootstrap.servers": bootstrap, **_QUIET})
    futures = admin.create_topics([NewTopic(name, num_partitions=partitions,
                                            replication_factor=1)])
    futures[name].result(timeout=30)
    return name


def produce(
    bootstrap: str,
    topic: str,
    records: Iterable[tuple[bytes | None, bytes]],
    partition: int | None = None,
) -> list[tuple[int, int]]:
    """Produce ``(key, value)`` records with confluent-kafka, in order; return their
    ``(partition, offset)`` as acknowledged by the broker."""
    producer = ck.Producer({
        "bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5,
        "message.max.bytes": 8_000_000, **_QUIET,
    })
    acked: list[tuple[int, int] | None] = []
    errors: list[Any] = []

    def report(index: int):
        def on_delivery(err: Any, msg: Any) -> None:
            if err is not None:
                errors.append(err)
            else:
                acked[index] = (msg.partition(), msg.offset())
        return on_delivery

    for i, (key, value) in enumerate(records):
        acked.append(None)
        kwargs = {} if partition is None else {"partition": partition}
        while True:
            try:
                producer.produce(topic, key=key, value=value, on_delivery=report(i), **kwargs)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    left = producer.flush(60)
    assert left == 0 and not errors, f"produce failed: {left} unflushed, errors {errors[:3]}"
    assert all(a is not None for a in acked)
    return [a for a in acked if a is not None]


def caught_up(consumer: ck.Consumer, topic: str, partitions: Iterable[int]) -> bool:
    """Has ``consumer`` read each partition to the end its fetches reported? False until a
    fetch of every partition has answered: a reader's first fetch can take over a second
    (about 1.1 s on a quiet machine, more on a loaded one), so an idle timer alone ended a
    drain before it began (the dead-letter topic read empty, 0 of 12, in a loaded CI run).
    The high watermark is the one the fetch responses carry (cached): Tansu answers
    ListOffsets for the latest offset wrongly. A partition nothing was read from has no
    position: it is read to its end when it is empty."""
    tps = [ck.TopicPartition(topic, p) for p in partitions]
    for tp in consumer.position(tps):
        low, high = consumer.get_watermark_offsets(tp, cached=True)
        if high < 0 or (tp.offset < high if tp.offset >= 0 else low < high):
            return False
    return True


def read_topic(
    bootstrap: str, topic: str, min_count: int = 0, idle: float = 1.5, timeout: float = 60.0
) -> list[Any]:
    """Read a topic from the beginning with confluent-kafka: every message, once at least
    ``min_count`` have arrived, every partition is read to the end its broker reported
    (:func:`caught_up`) and nothing new came for ``idle`` seconds."""
    consumer = ck.Consumer({
        "bootstrap.servers": bootstrap, "group.id": unique("reader"),
        "auto.offset.reset": "earliest", "enable.auto.commit": False, **_QUIET,
    })
    # assign(), not subscribe(): a group join costs session.timeout.ms / 2 on Tansu.
    partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
    consumer.assign([ck.TopicPartition(topic, p, ck.OFFSET_BEGINNING) for p in partitions])
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    last = time.monotonic()
    try:
        while time.monotonic() < deadline:
            batch = consumer.consume(num_messages=1000, timeout=0.2)
            real = [m for m in batch if m.error() is None]
            out.extend(real)
            if real or not caught_up(consumer, topic, partitions):
                last = time.monotonic()
            elif len(out) >= min_count and time.monotonic() - last > idle:
                break
    finally:
        consumer.close()
    assert len(out) >= min_count, f"{topic}: only {len(out)} of {min_count} records in {timeout}s"
    return out


def cli(*args: str) -> list[str]:
    """Command line of ``onlinenmf ...`` run with this interpreter."""
    return [sys.executable, "-m", "consumers.cli", *args]


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def spawn(*args: str, log: Path | None = None) -> subprocess.Popen[bytes]:
    """Start ``onlinenmf ...`` as a subprocess (output to ``log`` when given)."""
    out = open(log, "ab") if log is not None else subprocess.DEVNULL
    try:
        return subprocess.Popen(cli(*args), cwd=ROOT, env=cli_env(), stdout=out,
                                stderr=subprocess.STDOUT)
    finally:
        if log is not None:
            out.close()


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``onlinenmf ...`` to completion and return its output."""
    return subprocess.run(cli(*args), cwd=ROOT, env=cli_env(), capture_output=True,
                          text=True, timeout=timeout)


_TRACEBACK = "Traceback (most recent call last)"
_CHAINED = ("During handling of the above exception, another exception occurred:",
            "The above exception was the direct cause of the following exception:")


def exit_story(log: str, tail: int = 3000) -> str:
    r"""What a process that died logged about it: its last traceback with the ones chained
    to it (from the first's "Traceback (most recent call last)" line to the end: the first
    holds the frames of our code that called the library), else the last ``tail``
    characters. Earlier tracebacks (kafka-python logs the errors it handles with theirs)
    are left out.

    >>> exit_story("Traceback (most recent call last):\nOSError\nhandled\n"
    ...            "Traceback (most recent call last):\nKeyError\n\nDuring handling of the "
    ...            "above exception, another exception occurred:\n\n"
    ...            "Traceback (most recent call last):\nValueError\n").count("Traceback")
    2
    >>> exit_story("no traceback here", tail=4)
    'here'
    """
    start = log.rfind(_TRACEBACK)
    if start < 0:
        return log[-tail:]
    while log[:start].rstrip().endswith(_CHAINED):
        earlier = log.rfind(_TRACEBACK, 0, start)
        if earlier < 0:
            break
        start = earlier
    return log[start:]


def wait_for(predicate, timeout: float, interval: float = 0.1, what: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def synthetic_messages(n: int, seed: int = 0, subjects: int = 30, taxa: int = 150,
                       start: int = 0) -> list[tuple[bytes, bytes]]:
    """``n`` small valid microbiome messages ``(key, value)``: subjects cycling, 4-20 taxa
    each with Poisson-like counts, times increasing."""
    import numpy as np

    from consumers.microbiome import encode_sample

    rng = np.random.default_rng(seed)
    out = []
    for i in range(start, start + n):
        chosen = rng.choice(taxa, int(rng.integers(4, 21)), replace=False)
        counts = {f"t{t}": int(c) for t, c in zip(chosen, rng.integers(1, 300, chosen.size))}
        subject = f"s{i % subjects}"
        out.append((subject.encode(), encode_sample(subject, float(i), f"x{i}", counts)))
    return out


class TopicReader:
    """Incremental reader of a whole topic (confluent-kafka, assign from the beginning)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.consumer = ck.Consumer({
            "bootstrap.servers": bootstrap, "group.id": unique("reader"),
            "auto.offset.reset": "earliest", "enable.auto.commit": False, **_QUIET,
        })
        self.topic = topic
        self.partitions: set[int] = set()
        self.messages: list[Any] = []
        self._assign()

    def _assign(self) -> None:
        meta = self.consumer.list_topics(self.topic, timeout=30).topics[self.topic]
        parts = set(meta.partitions)
        if parts != self.partitions:
            self.partitions = parts
            self.consumer.assign([ck.TopicPartition(self.topic, p, ck.OFFSET_BEGINNING)
                                  for p in sorted(parts)])

    def poll(self, seconds: float = 0.2) -> int:
        """Read what arrived within ``seconds``; return the total count read so far."""
        if not self.partitions:
            self._assign()
        for msg in self.consumer.consume(num_messages=5000, timeout=seconds):
            if msg.error() is None:
                self.messages.append(msg)
        return len(self.messages)

    def drain(self, idle: float = 1.0, timeout: float = 60.0) -> list[Any]:
        """Read every partition to its end (:func:`caught_up`), then until nothing new
        arrives for ``idle`` seconds."""
        deadline, last, count = time.monotonic() + timeout, time.monotonic(), len(self.messages)
        while time.monotonic() < deadline:
            if (self.poll() != count
                    or not caught_up(self.consumer, self.topic, self.partitions)):
                count, last = len(self.messages), time.monotonic()
            elif time.monotonic() - last > idle:
                break
        return self.messages

    def close(self) -> None:
        self.consumer.close()


def reference_app(values: Iterable[bytes], topic: str = "ref", **app_kwargs: Any):
    """The microbiome application fed ``values`` in order, in-process (no Kafka): what an
    uninterrupted consumer over one partition must end with. Refused messages are skipped,
    as the consumer dead-letters them."""
    from consumers.application import Source
    from consumers.messages import BadMessage
    from consumers.microbiome import MicrobiomeApp

    app = MicrobiomeApp(**app_kwargs)
    app.restore(None)
    for offset, value in enumerate(values):
        try:
            app.process(app.decode(value), Source(topic, 0, offset, None, None, "ref"))
        except BadMessage:
            pass
    return app


class PacedProducer:
    """A background thread producing synthetic messages at ``rate`` per second (confluent-
    kafka) until :meth:`stop`; ``acked`` collects their ``(partition, offset)``."""

    def __init__(self, bootstrap: str, topic: str, rate: float, seed: int = 0,
                 start: int = 0) -> None:
        import threading

        self.bootstrap, self.topic, self.rate = bootstrap, topic, rate
        self.seed, self.start_index = seed, start
        self.acked: list[tuple[int, int]] = []
        self.errors: list[Any] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> PacedProducer:
        self._thread.start()
        return self

    def _run(self) -> None:
        producer = ck.Producer({"bootstrap.servers": self.bootstrap, "enable.idempotence": True,
                                "linger.ms": 5, **_QUIET})

        def on_delivery(err: Any, msg: Any) -> None:
            if err is not None:
                self.errors.append(err)
            else:
                self.acked.append((msg.partition(), msg.offset()))

        began, sent, chunk = time.monotonic(), 0, 50
        while not self._stop.is_set():
            batch = synthetic_messages(chunk, seed=self.seed + sent,
                                       start=self.start_index + sent)
            for key, value in batch:
                producer.produce(self.topic, key=key, value=value, on_delivery=on_delivery)
            sent += chunk
            producer.poll(0)
            ahead = sent / self.rate - (time.monotonic() - began)
            if ahead > 0:
                self._stop.wait(ahead)
        if producer.flush(60) != 0:
            self.errors.append("unflushed messages")

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> list[tuple[int, int]]:
        """Stop, wait for every acknowledgement, return the acknowledged positions."""
        self._stop.set()
        self._thread.join(timeout=90)
        assert not self._thread.is_alive() and not self.errors, self.errors[:3]
        return self.acked


def kill_and_drain(outputs: TopicReader, consume_args: Callable[..., list[str]], expected: int,
                   kills: int, seed: int, between: tuple[int, int], log: Path,
                   store: CheckpointStore | None = None) -> list:
    """Run ``onlinenmf consume consume_args()`` and SIGKILL it ``kills`` times, each after a
    random number (in ``between``) of new records on ``outputs``, then let a last run drain
    the topic and exit; return every output record. A kill point counts as reached once every
    one of the ``expected`` input records (partition and offset) has an output (a loaded
    machine lets the consumer run far past a target before the reader sees it: kill it anyway).

    With ``store`` (the consumer's checkpoints) every kill leaves work to redo, so that a test
    may count on records being redone: at a kill point the consumer is frozen (SIGSTOP), and
    killed only if it has output, since it started, a record of an input offset that its
    checkpoint on disk does not cover (a frozen process writes none, so that offset is redone
    after the restart); otherwise it goes on (SIGCONT) to its next output. (A consumer that
    caught up is killed once it has output something.) It must then checkpoint by
    ``--checkpoint-every`` alone (a long ``--checkpoint-interval``), and ``expected`` must not
    be a multiple of it: the consumer may reach the end of the stream before the reader sees
    the kill point, and a checkpoint on an idle stream, or at its last record, covers every
    output."""
    rng = random.Random(seed)
    sources: list[tuple[str, int]] = []  # (partition, input offset) of each output read
    done: set[tuple[str, int]] = set()  # the distinct ones

    def read() -> int:
        count = outputs.poll()
        for message in outputs.messages[len(sources):count]:
            source = json.loads(message.value())["source"]
            sources.append((tp_key(source["topic"], source["partition"]), source["offset"]))
            done.add(sources[-1])
        return count

    def progress(target: int, since: int, proc) -> bool:
        caught_up = len(done) == expected and (store is None or len(sources) > since)
        return read() >= target or caught_up or proc.poll() is not None

    def leaves_work(proc, since: int) -> bool:
        """Freeze the consumer; True if it output, since ``since``, a record of an input
        offset its checkpoint does not cover."""
        assert freeze(proc), f"consumer exited early, see {log}"
        outputs.drain(idle=0.5)  # every output it had delivered
        read()
        header = store.read_header()
        frontier = header["offsets"] if header is not None else {}
        return any(offset >= frontier.get(key, 0) for key, offset in sources[since:])

    for _ in range(kills):
        proc = spawn(*consume_args(), log=log)
        since = read()
        target = since + rng.randint(*between)
        while True:
            wait_for(lambda p=proc, t=target, s=since: progress(t, s, p),
                     timeout=120, interval=0, what="consumer progress")
            assert proc.poll() is None, f"consumer exited early, see {log}"
            if store is None or leaves_work(proc, since):
                break
            proc.send_signal(signal.SIGCONT)
            if len(done) == expected:  # it caught up and checkpointed: nothing more comes
                proc.kill()
                proc.wait()
                raise AssertionError(
                    "every output is covered by the consumer's checkpoint: a kill now leaves "
                    "nothing to redo (a checkpoint on an idle stream, or a stream that ends on a "
                    f"multiple of --checkpoint-every?), see {log}")
            target = len(sources) + 1
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    last = spawn(*consume_args("--exit-when-idle", "2"), log=log)
    assert last.wait(timeout=180) == 0, f"final consumer failed, see {log}"
    return outputs.drain(idle=1.0)
