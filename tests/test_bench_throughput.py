"""benchmarks/bench_throughput.py: what the two-workers-over-one table is computed from.

The group's rate spans its first record to its last; the per-worker facts say how much of that
span had only one worker working (the head before the second worker's first record, the tail
after the first worker's last) and the rate while both worked. Pure functions on record
instants: no broker.
"""

from __future__ import annotations

import math

import pytest

from benchmarks.bench_throughput import GroupRun, best_group, busy_table, group_spans, main


def test_a_late_start_and_an_early_finish_are_the_head_and_the_tail():
    # worker a: 1 record/s from 0 to 10 s; worker b: 2 records/s from 2 to 7 s
    a = [float(t) for t in range(11)]
    b = [2 + i / 2 for i in range(11)]
    spans = group_spans([a, b])
    assert spans.head == 2.0 and spans.tail == 3.0
    assert spans.rate == 22 / 10
    # from 2 s to 7 s: a's records at 2..7 (6), all 11 of b's, over 5 s
    assert spans.busy_rate == 17 / 5


def test_one_worker_is_busy_over_its_whole_span():
    spans = group_spans([[0.0, 0.5, 1.0, 2.0]])
    assert (spans.head, spans.tail) == (0.0, 0.0)
    assert spans.rate == spans.busy_rate == 2.0


def test_workers_that_never_work_together_have_no_busy_rate():
    spans = group_spans([[0.0, 1.0], [2.0, 3.0]])
    assert spans.rate == 4 / 3 and math.isnan(spans.busy_rate)


def run(rate: float, busy: float, head: float, tail: float, share: float) -> GroupRun:
    return GroupRun(rate=rate, worker_us=90.0, broker_us=5.0, producer_us=1.0,
                    busy_rate=busy, head_ms=head, tail_ms=tail, top_share=share,
                    idle_cores=0.1, idle_cores_busy=0.02, other_cores=0.3)


def test_the_busy_table_gives_each_rows_share_edges_and_busy_ratio():
    one = run(10_000, 10_000, 0, 0, 1.0)
    two = run(16_000, 18_500, 40, 150, 0.5)
    lines = busy_table([("tansu", False, one, two, 1.0)])
    row = lines[-1].rstrip(" |").split(" | ")
    assert row[1:10] == ["no", "50.0%", "40", "150", "18,500", "1.85x", "0.10", "0.10 / 0.02",
                         "0.30 / 0.30"]


def test_an_unknown_part_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--parts", "scaling,speed"])
    assert exit_.value.code == 2
    assert "--parts scaling,speed: choose among ratios, scaling" in capsys.readouterr().err


def test_the_best_of_runs_keeps_the_fastest_runs_own_facts():
    slow = run(12_000, 17_000, 20, 900, 0.5)._replace(worker_us=80.0)
    fast = run(16_000, 16_500, 30, 60, 0.5)
    best = best_group([slow, fast])
    assert (best.rate, best.worker_us) == (16_000, 80.0)  # best of runs
    assert (best.busy_rate, best.head_ms, best.tail_ms) == (16_500, 30, 60)  # the fast run's


def test_each_broker_is_warmed_before_anything_is_measured(monkeypatch):
    """A fresh JVM broker spends its first minutes compiling its request paths (30-50 µs of
    CPU per record over the first runs): a production broker is long-running, so the
    benchmark streams WARM_RECORDS through each broker, unmeasured, before its first run."""
    from contextlib import contextmanager

    import benchmarks.bench_throughput as bench

    calls = []

    @contextmanager
    def broker(kind):
        calls.append(("start", kind))
        yield type("Broker", (), {"bootstrap": "127.0.0.1:1", "pid": 1})()

    monkeypatch.setattr(bench, "running_broker", broker)
    monkeypatch.setattr(bench, "warm_broker", lambda bootstrap: calls.append(("warm",)))
    monkeypatch.setattr(bench, "synthetic", lambda n: [(b"k", b"v")] * n)
    monkeypatch.setattr(bench, "group_rate", lambda broker, messages, workers, track: (
        calls.append(("run", workers, track)), run(1.0, 1.0, 0, 0, 1.0))[1])
    bench.measure_broker("apache", 10, {"scaling"})
    assert calls[:3] == [("start", "apache"), ("warm",), ("run", 1, False)]
    assert calls.count(("warm",)) == 1
    header = bench.report([], [], 10, "header", "librdkafka")[2]
    assert f"warmed first by {bench.WARM_RECORDS:,} messages" in header


def test_a_group_finds_the_topics_it_writes_created_before_it_starts(monkeypatch, tmp_path):
    """Two workers' first outputs to a topic the broker creates on their demand stalled both
    on Apache Kafka (group_rate's docstring says how much): a run creates every topic its
    workers read and write, as a deployment has them, before any worker starts."""
    import benchmarks.bench_throughput as bench

    created = {}

    class Started(Exception):
        pass

    def no_workers(*args, **kwargs):
        raise Started

    monkeypatch.setattr(bench, "ensure_topics",
                        lambda bootstrap, topics, broker_timeout: created.update(topics))
    monkeypatch.setattr(bench.mp, "get_context", lambda method: type(
        "Ctx", (), {"Queue": staticmethod(lambda: None), "Process": staticmethod(no_workers)})())
    monkeypatch.setattr(bench, "CpuClock", lambda read: __import__("contextlib").nullcontext())
    broker = type("Broker", (), {"bootstrap": "127.0.0.1:1", "pid": 1})()
    with pytest.raises(Started):
        bench.group_rate(broker, [], 2, False)
    (topic,) = (name for name, parts in created.items() if parts == bench.PARTITIONS)
    loop = bench._loop("127.0.0.1:1", topic, "g", tmp_path, "w0", False, idle=1.0)
    written = set(loop.app.topics_written())
    assert written <= set(created), f"{written - set(created)} left to the broker to create"
