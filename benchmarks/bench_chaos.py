"""Chaos at scale on Apache Kafka (issue 15, part 3): the long run of tests/test_kafka_chaos.py.

1. 50,000 messages produced at 250/s into 4 partitions, consumed by 2 worker processes in
   one group: 20 SIGKILLs of a worker at random moments (each restarted), 4 freezes of a
   worker (SIGSTOP until the other owns every partition, then SIGCONT; the last one also
   SIGTERMed while frozen, and restarted), the broker SIGKILLed and restarted on its data
   directory, the broker frozen (SIGSTOP) for 15 s.
2. 20,000 messages into 1 partition, 1 worker: 8 SIGKILLs, the broker killed and frozen the
   same way; its W must equal, bit for bit, an uninterrupted run's.

Checked at the end of each, from the checkpoints and the output topic
(:meth:`tests.test_kafka_chaos.ChaosResult.problems`): every input offset learned exactly
once per partition, the checkpoint frontier and the group's committed offsets at the log end,
every input offset reflected in an output record. The third fault of the issue (a broker
that never comes back: a bounded, one-line, non-zero exit) is
tests/test_kafka_broker_loss.py, on both brokers.

Run: ``python -m benchmarks chaos [--scale F]`` (F < 1 shrinks the messages and the kills,
for a quick look). Needs Java 17 for Apache Kafka; without it, runs on Tansu without the
broker kill (its memory storage comes back empty) and says so. Writes
``benchmarks/output/chaos.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from benchmarks import _output
from consumers import apache_kafka
from consumers.broker import EmbeddedBroker

ROOT = Path(__file__).resolve().parents[1]


def plans(scale: float):
    from tests.test_kafka_chaos import ChaosPlan

    group = ChaosPlan(messages=50_000, rate=250, partitions=4, workers=2, worker_kills=20,
                      worker_freezes=3, frozen_stops=1, broker_kills=1, broker_pause=15.0,
                      seed=101)
    single = ChaosPlan(messages=20_000, rate=250, partitions=1, workers=1, worker_kills=8,
                       broker_kills=1, broker_pause=15.0, seed=102)
    if scale != 1:
        group = replace(group, messages=int(group.messages * scale),
                        worker_kills=max(2, int(group.worker_kills * scale)))
        single = replace(single, messages=int(single.messages * scale),
                         worker_kills=max(2, int(single.worker_kills * scale)))
    return {"2 workers, 4 partitions": group, "1 worker, 1 partition": single}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks chaos")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="shrink the plans (messages and kills) by this factor")
    args = parser.parse_args(argv or [])
    sys.path.insert(0, str(ROOT))  # the driver lives with the tests
    from tests.kafka_broker import APACHE_TEST_SETTINGS
    from tests.test_kafka_chaos import ChaosResult, run_chaos

    header = _output.provenance("python -m benchmarks chaos" + (
        f" --scale {args.scale:g}" if args.scale != 1 else ""))
    problem = apache_kafka.unavailable()
    rows, notes = [], []
    with tempfile.TemporaryDirectory() as tmp:
        if problem is None:
            broker = apache_kafka.ApacheBroker(data_dir=Path(tmp) / "kafka",
                                               settings=APACHE_TEST_SETTINGS)
            kind = f"Apache Kafka {apache_kafka.kafka_version()}"
        else:
            broker = EmbeddedBroker(log_path=Path(tmp) / "tansu.log")
            kind = "Tansu"
            notes.append(f"Apache Kafka not available ({problem}): Tansu, without the broker "
                         "kill.")
        broker.start()
        try:
            for name, plan in plans(args.scale).items():
                if not broker.persistent:
                    plan = replace(plan, broker_kills=0)
                try:
                    topic, result = run_chaos(broker, Path(tmp) / name.replace(" ", "-"),
                                              plan)
                except AssertionError as err:  # a worker died, or a wait timed out: say so
                    result = ChaosResult(events=[f"run aborted: {str(err)[:500]}"])
                    rows.append((name, plan, result, ["the run did not finish"],
                                 os.getloadavg()[0]))
                    continue
                rows.append((name, plan, result, result.problems(topic), os.getloadavg()[0]))
        finally:
            broker.stop()
    lines = [header, "", f"Broker: {kind}, single node (its data directory kept across the "
             "kill). Workers: `onlinenmf consume microbiome --no-track` processes, checkpoints "
             "every 400 records or 0.5 s, session timeout 2 s. Each fault at a random moment "
             "of the stream; a killed worker restarted after 0-3 s; a frozen worker thawed "
             "2 s after the other took its partitions over (the last one SIGTERMed first, "
             "then restarted).", *notes, "",
             "| run | messages | rate msg/s | worker SIGKILLs | worker SIGSTOPs | broker "
             "SIGKILLs | broker SIGSTOP | seconds | output records (redone) | learned once per "
             "partition, frontier and commits at the log end, an output per offset | W as an "
             "uninterrupted run | load |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, plan, result, problems, load in rows:
        outputs = sum(result.outputs.values())
        same = {None: "-", True: "bit-equal", False: "**differs**"}[result.same_model]
        lines.append(
            f"| {name} | {len(result.produced):,} | {plan.rate:g} | {result.kills} | "
            f"{sum(e.startswith('SIGSTOP worker') for e in result.events)} | "
            f"{sum(e.startswith('SIGKILL broker') for e in result.events)} | "
            f"{plan.broker_pause:g} s | {result.seconds:.0f} | {outputs:,} "
            f"({outputs - len(result.produced):,}) | "
            f"{'yes' if not problems else '**no**: ' + '; '.join(problems)} | {same} | "
            f"{load:.1f} |")
    for name, _, result, _, _ in rows:
        lines += ["", f"Faults of '{name}', in order: " + "; ".join(result.events) + "."]
    print("\n".join(lines))
    _output.write("chaos.md", ["# Chaos at scale (benchmarks/bench_chaos.py)", "", *lines])
    return 1 if any(problems for _, _, _, problems, _ in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
