"""Chaos at scale (issue 15, part 3): worker processes SIGKILLed at random moments and
restarted, a worker frozen (SIGSTOP) past its session, the broker SIGKILLed and restarted
on its data directory, the broker frozen for 15 s, all over one stream consumed by a group
of workers.

Checked from the checkpoints and the output topic at the end: every input offset learned
exactly once per partition (the learned counts of all the workers' checkpoints add up to
each partition's record count, and the models' sample counts to the stream's), each
checkpoint frontier at the log end, the group's committed offsets at the log end, every
input offset reflected in an output record; with one partition and one worker, W equal bit
for bit to an uninterrupted run.

:func:`run_chaos` is the driver; the test runs a small plan (under two minutes on Apache
Kafka), ``python -m benchmarks chaos`` the issue's (50,000 messages, >= 20 kills). Killing
the broker needs a broker that keeps its data (Apache Kafka): Tansu's memory storage comes
back empty, which tests/test_kafka_broker_loss.py covers (the consumer refuses to go on).
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import confluent_kafka as ck
import numpy as np
import pytest

from consumers.checkpoint import CheckpointStore
from consumers.microbiome import model_from_blobs
from tests.kafka_broker import (
    FAST_GROUP_FLAGS,
    TIGHT_RECONNECT_FLAGS,
    TopicReader,
    create_topic,
    exit_story,
    produce,
    reference_app,
    spawn,
    synthetic_messages,
    unique,
    wait_for,
)

#: the model of every worker (and of the uninterrupted reference run)
PARAMS = {"n_components": 4, "refresh_every": 50, "seed": 3}
MODEL_FLAGS = ["--components", "4", "--refresh-every", "50", "--seed", "3", "--beta", "1",
               "--no-track"]


@dataclass
class ChaosPlan:
    """What :func:`run_chaos` does: the stream, the group, and the faults injected.

    The stream is produced at ``rate`` messages per second while the faults come, each at a
    random moment of its span, the broker's kill and freeze among the worker kills. With
    several workers, the first killed worker is restarted only once another has taken its
    partitions over (so that ownership surely moves); the others after ``restart_delay``.
    """

    messages: int
    partitions: int = 4
    workers: int = 2
    worker_kills: int = 6
    #: workers frozen (SIGSTOP) until another has taken their partitions over, then thawed
    #: (SIGCONT); after them, ``frozen_stops`` more, each stopped (SIGTERM) while frozen,
    #: thawed, and restarted once it exited
    worker_freezes: int = 0
    frozen_stops: int = 0
    broker_kills: int = 1
    broker_pause: float = 15.0  # seconds of SIGSTOP; 0: no freeze
    rate: float = 200.0  # messages per second
    seed: int = 0
    #: SIGKILL to restart of a worker, at random in this range (s): some restarts come
    #: before the group has noticed the death, some after its partitions moved
    restart_delay: tuple[float, float] = (0.0, 3.0)
    #: more command-line flags for every worker (e.g. ``-X`` client settings)
    worker_flags: tuple[str, ...] = ()


@dataclass
class ChaosResult:
    """What happened and what the checkpoints and outputs say."""

    events: list[str] = field(default_factory=list)
    produced: list[tuple[int, int]] = field(default_factory=list)
    learned: Counter = field(default_factory=Counter)  # per "topic:partition", all workers
    samples_learned: int = 0
    frontier: dict[str, int] = field(default_factory=dict)
    committed: dict[int, int | None] = field(default_factory=dict)
    outputs: Counter = field(default_factory=Counter)  # (partition, offset) -> records
    seconds: float = 0.0
    #: one partition, one worker: its model equals an uninterrupted run's (None: not checked)
    same_model: bool | None = None

    @property
    def end_offsets(self) -> dict[int, int]:
        return {p: max(o for q, o in self.produced if q == p) + 1
                for p in {p for p, _ in self.produced}}

    @property
    def kills(self) -> int:
        """Worker SIGKILLs."""
        return sum(e.startswith("SIGKILL worker") for e in self.events)

    def problems(self, topic: str) -> list[str]:
        """Every way the run broke the contract (empty: none)."""
        out = []
        per_partition = Counter(p for p, _ in self.produced)
        expected = {f"{topic}:{p}": n for p, n in per_partition.items()}
        if dict(self.learned) != expected:
            out.append(f"learned per partition {dict(self.learned)} != records {expected}")
        if self.samples_learned != len(self.produced):
            out.append(f"the models learned {self.samples_learned} samples, the stream has "
                       f"{len(self.produced)}")
        ends = {f"{topic}:{p}": end for p, end in self.end_offsets.items()}
        if self.frontier != ends:
            out.append(f"checkpoint frontier {self.frontier} != log ends {ends}")
        if self.committed != self.end_offsets:
            out.append(f"committed offsets {self.committed} != log ends {self.end_offsets}")
        missing = set(self.produced) - set(self.outputs)
        if self.same_model is False:
            out.append("the model differs from an uninterrupted run's")
        if missing:
            out.append(f"{len(missing)} input offsets without an output record, e.g. "
                       f"{sorted(missing)[:5]}")
        extra = set(self.outputs) - set(self.produced)
        if extra:
            out.append(f"output records for offsets never produced: {sorted(extra)[:5]}")
        return out


def _worker_args(bootstrap: str, topic: str, group: str, ckpt: Path, worker: str,
                 flags: tuple[str, ...] = ()) -> list[str]:
    return ["consume", "microbiome", "--bootstrap-servers", bootstrap, "--topic", topic,
            "--group", group, "--checkpoint-dir", str(ckpt), "--worker-id", worker,
            "--output-topic", topic + ".out", "--model-topic", "",
            "--checkpoint-every", "400", "--checkpoint-interval", "0.5",
            "--log-level", "INFO", *MODEL_FLAGS, *FAST_GROUP_FLAGS, *flags]


def committed_offsets(bootstrap: str, group: str, topic: str,
                      partitions: int) -> dict[int, int | None]:
    """The group's committed offset of every partition (None: none committed)."""
    consumer = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                            "enable.auto.commit": False, "log_level": 3})
    try:
        found = consumer.committed([ck.TopicPartition(topic, p) for p in range(partitions)],
                                   timeout=30)
    finally:
        consumer.close()
    return {tp.partition: (tp.offset if tp.offset >= 0 else None) for tp in found}


class _Group:
    """The worker processes of one consumer group (restartable by name)."""

    def __init__(self, bootstrap: str, topic: str, ckpt: Path, logs: Path, workers: int,
                 flags: tuple[str, ...] = ()):
        self.group = unique("chaos")
        self.bootstrap, self.topic, self.ckpt, self.logs = bootstrap, topic, ckpt, logs
        self.flags = flags
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.names = [f"w{i}" for i in range(workers)]
        self._log_start: dict[str, int] = {}  # where the current process's log lines begin

    def _log(self, name: str) -> str:
        """What the running process of worker ``name`` has logged."""
        with open(self.logs / f"{name}.log", "rb") as log:
            log.seek(self._log_start[name])
            return log.read().decode(errors="replace")

    def start(self, name: str) -> None:
        args = _worker_args(self.bootstrap, self.topic, self.group, self.ckpt, name, self.flags)
        log = self.logs / f"{name}.log"
        self._log_start[name] = log.stat().st_size if log.exists() else 0
        self.procs[name] = spawn(*args, log=log)

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            assert proc.poll() is None, (
                f"worker {name} exited by itself with status {proc.returncode}: "
                + exit_story(self._log(name)))

    def send(self, name: str, signum: int) -> None:
        """Send signal ``signum`` to the running process of worker ``name``."""
        self.procs[name].send_signal(signum)

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def assignments(self, name: str) -> list[str]:
        """The assignments the running process of worker ``name`` has logged."""
        return [line for line in self._log(name).splitlines() if " assigned [" in line]

    def owns_all(self, name: str, partitions: int) -> bool:
        """True when worker ``name``'s latest assignment holds every partition."""
        lines = self.assignments(name)
        return bool(lines) and lines[-1].count(f"('{self.topic}', ") == partitions

    def stop_all(self, partitions: int, timeout: float = 60) -> dict[str, int]:
        """SIGTERM the workers one at a time, as an operator would (each leaves after a last
        checkpoint and commit); the last once it owns every partition, so that its final
        commit is not refused by a rebalance under way. Their exit statuses."""
        statuses = {}
        names = sorted(self.procs)
        for name in names:  # each is up (its SIGTERM handler installed: it has joined)
            wait_for(lambda n=name: self.assignments(n), timeout=timeout,
                     what=f"{name} to join the group")
        for name in names[:-1]:
            proc = self.procs[name]
            proc.send_signal(signal.SIGTERM)
            statuses[name] = proc.wait(timeout=timeout)
        last = names[-1]
        wait_for(lambda: self.owns_all(last, partitions), timeout=timeout,
                 what=f"{last} to own every partition")
        self.procs[last].send_signal(signal.SIGTERM)
        statuses[last] = self.procs[last].wait(timeout=timeout)
        return statuses

    def kill_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _schedule(plan: ChaosPlan, rng: random.Random) -> list[str]:
    """The faults in order: worker kills and freezes, with the broker's kills and freeze
    among them."""
    events = (["worker"] * plan.worker_kills + ["worker-freeze"] * plan.worker_freezes
              + ["worker-freeze-stop"] * plan.frozen_stops)
    if plan.workers > 1 and plan.worker_kills:
        events[0] = "worker-away"  # one kill whose partitions surely move to another worker
    broker = ["broker-kill"] * plan.broker_kills + (["broker-pause"] if plan.broker_pause
                                                     else [])
    for i, fault in enumerate(broker):  # spread evenly, away from the ends
        events.insert(round((i + 1) * len(events) / (len(broker) + 1)) + i, fault)
    return events


def _paced(messages: list[tuple[bytes, bytes]], rate: float):
    start = time.monotonic()
    for i, message in enumerate(messages):
        ahead = i / rate - (time.monotonic() - start)
        if ahead > 0:
            time.sleep(ahead)
        yield message


def _frontier_complete(group: _Group, ends: dict[str, int]) -> bool:
    return CheckpointStore(group.ckpt, "w0").frontier() == ends


def run_chaos(broker: Any, workdir: Path, plan: ChaosPlan) -> tuple[str, ChaosResult]:
    """Consume a stream of ``plan.messages`` records through the faults of ``plan``.

    ``broker`` is a broker under our control (``bootstrap``, ``kill``, ``start``,
    ``pause``, ``resume``: tests/kafka_broker.py's Broker or a BrokerProcess); killing it
    needs one that keeps its data. Returns the input topic and what happened.
    """
    rng = random.Random(plan.seed)
    began = time.monotonic()
    bootstrap = broker.bootstrap
    topic = create_topic(bootstrap, unique("chaos"), partitions=plan.partitions)
    messages = synthetic_messages(plan.messages, seed=plan.seed, subjects=200)
    result = ChaosResult()

    def note(event: str) -> None:
        result.events.append(f"{event} ({time.monotonic() - began:.0f} s)")
        print(f"{time.monotonic() - began:6.1f} s  {event}", flush=True)

    ckpt, logs = workdir / "ckpt", workdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    group = _Group(bootstrap, topic, ckpt, logs, plan.workers, plan.worker_flags)
    outputs = TopicReader(bootstrap, topic + ".out")
    # the stream flows in while the faults come (a thread of confluent-kafka, which waits
    # out the broker's outages); the faults at random moments of its span
    stream = threading.Thread(target=lambda: result.produced.extend(
        produce(bootstrap, topic, _paced(messages, plan.rate))), daemon=True)
    span = plan.messages / plan.rate
    faults = _schedule(plan, rng)
    moments = sorted(rng.uniform(0.05, 0.95) * span for _ in faults)
    try:
        for name in group.names:
            group.start(name)
        wait_for(lambda: all(group.assignments(n) for n in group.names), timeout=120,
                 what="every worker to join")
        began = time.monotonic()
        stream.start()
        for fault, moment in zip(faults, moments):
            time.sleep(max(0.0, moment - (time.monotonic() - began)))
            group.check_alive()
            if fault == "worker":
                name = rng.choice(group.names)
                group.kill(name)
                delay = rng.uniform(*plan.restart_delay)
                note(f"SIGKILL worker {name} at {outputs.poll()} outputs read, restarted after "
                     f"{delay:.1f} s")
                time.sleep(delay)
                group.start(name)
            elif fault == "worker-away":
                name = rng.choice(group.names)
                group.kill(name)
                other = next(n for n in group.names if n != name)
                wait_for(lambda o=other: group.owns_all(o, plan.partitions), timeout=120,
                         what=f"{other} to take over every partition")
                time.sleep(2.0)  # records arrive for the partitions taken over
                note(f"SIGKILL worker {name} at {outputs.poll()} outputs read, restarted once "
                     f"{other} had taken its partitions over")
                group.start(name)
            elif fault in ("worker-freeze", "worker-freeze-stop"):
                name = rng.choice(group.names)
                group.send(name, signal.SIGSTOP)
                other = next(n for n in group.names if n != name)
                wait_for(lambda o=other: group.owns_all(o, plan.partitions), timeout=120,
                         what=f"{other} to take over every partition")
                time.sleep(2.0)  # records arrive for the partitions taken over
                if fault == "worker-freeze-stop":  # an operator's stop, seen once thawed
                    group.send(name, signal.SIGTERM)
                group.send(name, signal.SIGCONT)
                note(f"SIGSTOP worker {name}, SIGCONT once {other} had taken its partitions "
                     f"over, at {outputs.poll()} outputs read")
                if fault == "worker-freeze-stop":
                    status = group.procs.pop(name).wait(timeout=60)
                    assert status == 0, exit_story(group._log(name))
                    note(f"worker {name}, stopped while frozen, exited with status 0")
                    group.start(name)
            elif fault == "broker-kill":
                read = outputs.poll()  # (while the broker is up: the reader may be unassigned)
                broker.kill()
                note(f"SIGKILL broker at {read} outputs read")
                time.sleep(rng.uniform(0.5, 3.0))
                broker.start()
                note("broker restarted on its data directory")
            else:
                read = outputs.poll()
                broker.pause()
                note(f"SIGSTOP broker at {read} outputs read, for "
                     f"{plan.broker_pause:g} s")
                time.sleep(plan.broker_pause)
                broker.resume()
        stream.join(timeout=600)
        assert not stream.is_alive() and len(result.produced) == plan.messages
        ends = {f"{topic}:{p}": end for p, end in result.end_offsets.items()}
        wait_for(lambda: _frontier_complete(group, ends) and group.check_alive() is None,
                 timeout=600, interval=0.5, what="every record in a checkpoint")
        statuses = group.stop_all(plan.partitions)
        assert all(s == 0 for s in statuses.values()), (statuses, logs, {
            name: exit_story(group._log(name)) for name, s in statuses.items() if s})
        outputs.drain(idle=1.0)
    finally:
        group.kill_all()
        outputs.close()
    result.seconds = time.monotonic() - began
    for msg in outputs.messages:
        source = json.loads(msg.value())["source"]
        result.outputs[(source["partition"], source["offset"])] += 1
    for name in group.names:
        saved = CheckpointStore(ckpt, name).read()
        if saved is None:
            continue
        result.learned.update(saved.learned)
        model = model_from_blobs(saved.blobs)
        result.samples_learned += int(model.samples_learned)
        if plan.workers == 1 and plan.partitions == 1:
            reference = reference_app([v for _, v in messages], model_params=PARAMS,
                                      track=False).model
            result.same_model = bool(np.array_equal(model.W, reference.W)
                                     and model == reference)
    result.learned = Counter({k: n for k, n in result.learned.items() if n})
    result.frontier = CheckpointStore(ckpt, "w0").frontier()
    result.committed = committed_offsets(bootstrap, group.group, topic, plan.partitions)
    return topic, result


def test_chaos_group_of_two_learns_each_record_once(private_broker, tmp_path):
    """2 workers, 4 partitions: 6 worker SIGKILLs, and on Apache Kafka the broker SIGKILLed
    and restarted on its data; the broker frozen for 15 s on both."""
    plan = ChaosPlan(messages=12_000, rate=200, worker_kills=6,
                     broker_kills=1 if private_broker.persistent else 0, seed=5)
    topic, result = run_chaos(private_broker, tmp_path, plan)
    assert result.kills == plan.worker_kills, result.events
    assert any("SIGSTOP" in e for e in result.events), result.events
    if plan.broker_kills:
        assert any("SIGKILL broker" in e for e in result.events), result.events
    assert result.problems(topic) == [], result.events
    # work was redone after the kills (outputs are at least once), none of it learned twice
    assert sum(result.outputs.values()) > len(result.produced), "were the kills effective?"


def test_a_worker_frozen_past_its_session_claims_nothing_its_successor_learned(
        kafka_broker, tmp_path):
    """A worker frozen past its session (a long pause of its process or machine) is
    expelled, and the other resumes its partitions from the checkpoints. Thawed, the frozen
    one learns on from its fetched records until a heartbeat tells it, no outage in sight:
    its checkpoint then claimed records the other learned too (before the group was asked
    before every checkpoint). The second is stopped (SIGTERM) while frozen: it exits 0
    without a final checkpoint, its work left to the new owner. Every record is learned
    once."""
    plan = ChaosPlan(messages=2000, rate=150, worker_kills=0, worker_freezes=1, frozen_stops=1,
                     broker_kills=0, broker_pause=0, seed=21)
    topic, result = run_chaos(kafka_broker, tmp_path, plan)  # the broker is not touched
    assert sum("SIGSTOP worker" in e for e in result.events) == 2, result.events
    assert sum("exited with status 0" in e for e in result.events) == 1, result.events
    assert result.problems(topic) == [], result.events


def test_a_worker_stopped_while_frozen_before_any_checkpoint_claims_nothing(
        kafka_broker, tmp_path):
    """As above, with checkpoints far apart: the frozen worker's partitions are in no
    checkpoint when the other takes them over (from their beginning), and the frozen one,
    stopped, meets the group's refusal with the log's beginning as its offsets."""
    plan = ChaosPlan(messages=1000, rate=150, worker_kills=0, frozen_stops=1, broker_kills=0,
                     broker_pause=0, seed=22,
                     worker_flags=("--checkpoint-every", "100000", "--checkpoint-interval",
                                   "20"))  # the stop comes before 20 s
    topic, result = run_chaos(kafka_broker, tmp_path, plan)
    assert sum("exited with status 0" in e for e in result.events) == 1, result.events
    assert result.problems(topic) == [], result.events


def test_group_of_two_outlives_broker_kills_with_connection_errors(private_broker, tmp_path):
    """The broker SIGKILLed and restarted on its data 3 times under 2 workers whose client
    reconnects every 10-20 ms: kafka-python's connection errors then come out of nearly every
    poll in an outage (issue 15: once, with the default backoff, one killed a worker with a
    traceback). The workers wait each outage out and learn every record once."""
    if not private_broker.persistent:
        pytest.skip("a killed Tansu comes back empty (memory storage): "
                    "tests/test_kafka_broker_loss.py covers its outage")
    plan = ChaosPlan(messages=4000, rate=150, worker_kills=0, broker_kills=3, broker_pause=0,
                     seed=15, worker_flags=tuple(TIGHT_RECONNECT_FLAGS))
    topic, result = run_chaos(private_broker, tmp_path, plan)
    assert sum("SIGKILL broker" in e for e in result.events) == 3, result.events
    assert result.problems(topic) == [], result.events
