"""How long `onlinenmf consume microbiome` takes to its first output record on the embedded
broker, and where the time goes (issue 14, part 2: "fast start").

A broker (Tansu) is started and ECAM's first 190 samples are produced into it with the real
commands; then `onlinenmf consume microbiome` is started as a user would (no timeout flags)
and timed from its start to:

- ``imports``: the command's modules loaded (``onlinenmf consume --help``, run apart, wall
  clock and CPU);
- ``assigned``: the consumer's "assigned" log line (the group joined, partitions owned);
- ``first record``: the broker's timestamp of the first output record;
- ``exit``: every sample consumed and ``--exit-when-idle 1`` passed;
- ``peak RSS``: the consumer process's largest resident set.

Each run is given a numba cache directory of its own (``NUMBA_CACHE_DIR``): an empty one, as
on the first start after an install, or one filled beforehand by ``onlinenmf compile``
(onlinenmf.compiled), as on every later start; the kernels a process compiles itself cost
it time and memory it keeps.

Writes ``benchmarks/output/start.md``. Wall-clock times move with the load of the machine
(stated in the provenance line); several runs give the spread.
"""

from __future__ import annotations

import datetime
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import _output

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = 190
RUNS = 3
#: Runs with an empty numba cache (each compiles every kernel it calls: 15 s or more).
COLD_RUNS = 2
_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .* assigned ")


def _env(cache: str | None = None) -> dict[str, str]:
    """The commands' environment; ``cache``: their numba cache directory."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    if cache is not None:
        env["NUMBA_CACHE_DIR"] = cache
    return env


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "consumers.cli", *args]


def import_time() -> tuple[float, float]:
    """(wall, CPU) seconds of ``onlinenmf consume --help`` (every module the command loads
    to build its options) in a fresh interpreter."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(_cli("consume", "--help"), env=_env(), check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _first_output(bootstrap: str, topic: str, deadline: float) -> float | None:
    """The broker timestamp (epoch seconds) of the first record on ``topic``."""
    import confluent_kafka as ck

    consumer = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-start-reader",
                            "enable.auto.commit": False, "log_level": 0})
    try:
        while time.monotonic() < deadline:
            meta = consumer.list_topics(topic, timeout=5).topics.get(topic)
            if meta is not None and meta.error is None and meta.partitions:
                break
            time.sleep(0.05)
        else:
            return None
        consumer.assign([ck.TopicPartition(topic, p, ck.OFFSET_BEGINNING)
                         for p in meta.partitions])
        while time.monotonic() < deadline:
            msg = consumer.poll(0.05)
            if msg is not None and msg.error() is None:
                return msg.timestamp()[1] / 1000.0
        return None
    finally:
        consumer.close()


def _assigned_at(log: Path) -> float | None:
    for line in log.read_text(errors="replace").splitlines():
        found = _STAMP.match(line)
        if found:
            stamp = datetime.datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f")
            return stamp.timestamp()
    return None


def one_run(extra: list[str], cache: str) -> dict[str, float | None]:
    """Start a broker, produce, consume with numba's cache in ``cache``; the phases in
    seconds and the consumer's peak RSS in MB."""
    from consumers.broker import EmbeddedBroker

    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        address = broker.bootstrap
        subprocess.run(_cli("produce", "microbiome", "--bootstrap-servers", address,
                            "--limit", str(SAMPLES), "--no-progress"), env=_env(), check=True,
                       capture_output=True)
        log = Path(tmp) / "consume.log"
        start = time.time()
        with open(log, "wb") as out:
            proc = subprocess.Popen(_cli("consume", "microbiome", "--bootstrap-servers",
                                         address, "--checkpoint-dir", f"{tmp}/ck",
                                         "--exit-when-idle", "1", *extra),
                                    env=_env(cache), stdout=out, stderr=subprocess.STDOUT)
        first = _first_output(address, "microbiome.communities", time.monotonic() + 120)
        _, status, usage = os.wait4(proc.pid, 0)  # its own peak RSS, not the children's max
        proc.returncode = os.waitstatus_to_exitcode(status)
        done = time.time()
        assigned = _assigned_at(log)
    if proc.returncode != 0:
        raise RuntimeError(f"the consumer exited with {proc.returncode}: "
                           + log.read_text(errors="replace")[-2000:])
    return {"assigned": None if assigned is None else assigned - start,
            "first record": None if first is None else first - start,
            "exit": done - start, "peak RSS": usage.ru_maxrss / 1024}  # KiB on Linux


def _cell(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


#: kafka-python's own group timing: what the consumer used on the embedded broker before it
#: recognised it (issue 14), passed explicitly here to show the difference in the same run
OLD_TIMING = ["-X", "session_timeout_ms=45000", "-X", "heartbeat_interval_ms=3000"]


def main() -> int:
    walls, cpus = zip(*(import_time() for _ in range(RUNS)))
    with tempfile.TemporaryDirectory() as caches:
        compiled = f"{caches}/compiled"
        subprocess.run(_cli("compile"), env=_env(compiled), check=True, capture_output=True)
        rows = [("as started by a user (no flags), kernels compiled beforehand",
                 one_run([], compiled)) for _ in range(RUNS)]
        rows += [("first start after an install: an empty numba cache",
                  one_run([], f"{caches}/empty-{run}")) for run in range(COLD_RUNS)]
        rows += [("kafka-python's default timing (before), kernels compiled beforehand",
                  one_run(OLD_TIMING, compiled)) for _ in range(RUNS)]
    lines = [
        "# Time to the first output record (`onlinenmf consume microbiome`, embedded broker)",
        "",
        _output.provenance("python -m benchmarks start"),
        "",
        f"ECAM's first {SAMPLES} samples produced first; seconds from the consumer's start, "
        "one row per run.",
        "",
        "| consumer | assigned | first record | exit (idle 1 s) | peak RSS (MB) |",
        "|---|---|---|---|---|",
        *(f"| {name} | {_cell(r['assigned'])} | {_cell(r['first record'])} | "
          f"{_cell(r['exit'])} | {r['peak RSS']:.0f} |" for name, r in rows),
        "",
        f"`onlinenmf consume --help` (the imports): {min(walls):.1f}-{max(walls):.1f} s "
        f"wall, {min(cpus):.1f}-{max(cpus):.1f} s CPU.",
    ]
    path = _output.write("start.md", lines)
    print("\n".join(lines))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
