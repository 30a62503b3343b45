"""Memory at scale (issue 15, part 5): a consumer's RSS and checkpoint size over a long stream.

One ``onlinenmf consume microbiome`` process (with the subject tracker, the default) reads a
stream of synthetic samples whose subjects are drawn at random from a large population. Its
memory is bounded by the tracker's subject store: at most ``--max-subjects`` subjects and
``--max-history-bytes`` bytes of their histories (least recently seen evicted first), at most
``--max-history`` samples per subject and ``--max-events`` events; the model itself grows
only with the number of distinct taxa. Once the store is full, RSS and the checkpoint (which
holds the store) must stay flat: target, RSS growth < 5 % between 50 % and 100 % of the run.

Sampled at every checkpoint the consumer writes: records learned, the process's RSS
(``/proc/PID/status``), the checkpoint's size, the store's subjects and history bytes (from
the checkpoint header).

Run: ``python -m benchmarks memory`` (200,000 messages from 20,000 subjects, a 4 MiB
history budget: a few minutes) or ``python -m benchmarks memory --full`` (1,000,000 messages
from 120,000 subjects at the consumer's default bounds). Writes
``benchmarks/output/memory.md`` (``memory_full.md`` with ``--full``).
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks import _output
from benchmarks.bench_kafka import produce
from consumers.broker import EmbeddedBroker
from consumers.checkpoint import CheckpointStore
from consumers.microbiome import encode_sample

ROOT = Path(__file__).resolve().parents[1]
PARTITIONS = 4
TAXA = 300
CHUNK = 50_000


@dataclass(frozen=True)
class Size:
    messages: int
    subjects: int
    #: tracker bound flags given to the consumer (none: its defaults)
    bounds: tuple[str, ...]
    output: str


QUICK = Size(200_000, 20_000, ("--max-history-bytes", "4M"), "memory.md")
FULL = Size(1_000_000, 120_000, (), "memory_full.md")


def messages(size: Size, start: int, count: int, seed: int = 0):
    """Messages ``start`` .. ``start + count`` of the stream: a subject drawn at random from
    ``size.subjects`` (each sample its own random draw, reproducible per chunk), 4-20 of
    TAXA taxa with Poisson-like counts, time = the message's index (days)."""
    rng = np.random.default_rng([seed, start])
    subjects = rng.integers(0, size.subjects, count)
    widths = rng.integers(4, 21, count)
    for i in range(count):
        taxa = rng.choice(TAXA, widths[i], replace=False)
        counts = {f"t{t}": int(c) for t, c in zip(taxa, rng.integers(1, 300, taxa.size))}
        subject = f"s{subjects[i]}"
        yield subject.encode(), encode_sample(subject, float(start + i), f"x{start + i}",
                                              counts)


def produce_stream(bootstrap: str, topic: str, size: Size) -> None:
    chunks = (messages(size, start, min(CHUNK, size.messages - start))
              for start in range(0, size.messages, CHUNK))
    produce(bootstrap, topic, itertools.chain.from_iterable(chunks), PARTITIONS,
            linger_ms=20, flush_timeout=120)


def rss_bytes(pid: int) -> int:
    """Resident set size of process ``pid`` (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def consume(bootstrap: str, topic: str, size: Size, workdir: Path) -> list[dict]:
    """Run the consumer over the stream; one sample per checkpoint it writes. Its kernels
    are compiled beforehand (``onlinenmf compile`` into a numba cache of its own), as for a
    worker started after the install's compile: a process that compiles them itself keeps
    LLVM's memory (benchmarks/output/start.md: peak RSS with an empty cache)."""
    sys.path.insert(0, str(ROOT))  # the command line, as the tests run it
    from tests.kafka_broker import FAST_GROUP_FLAGS, cli, cli_env

    env = dict(cli_env(), NUMBA_CACHE_DIR=str(workdir / "numba-cache"))
    subprocess.run(cli("compile"), cwd=ROOT, env=env, check=True, capture_output=True)
    ckpt = workdir / "ckpt"
    cmd = cli("consume", "microbiome", "--bootstrap-servers", bootstrap, "--topic", topic,
              "--group", uuid.uuid4().hex, "--checkpoint-dir", str(ckpt), "--worker-id", "w",
              "--output-topic", topic + ".out", "--model-topic", topic + ".model",
              "--exit-when-idle", "5", *size.bounds, *FAST_GROUP_FLAGS)
    log = open(workdir / "consumer.log", "wb")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    store = CheckpointStore(ckpt, "w")
    samples, last_sequence, began = [], None, time.monotonic()
    try:
        while proc.poll() is None:
            time.sleep(0.2)
            try:
                header = store.read_header()
                rss = rss_bytes(proc.pid)
                file_size = store.path.stat().st_size
            except (OSError, RuntimeError, ValueError):
                continue  # between a rename and a read, or the process just ended
            if header is None or header["sequence"] == last_sequence:
                continue
            last_sequence = header["sequence"]
            summary = header["summary"]
            samples.append({"learned": summary["samples_learned"], "rss": rss,
                            "checkpoint": file_size, "subjects": summary["n_subjects"],
                            "history": summary.get("tracker_history_bytes", 0),
                            "seconds": time.monotonic() - began})
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        log.close()
    if proc.returncode != 0:
        raise RuntimeError(f"the consumer exited with {proc.returncode}: "
                           + (workdir / "consumer.log").read_text()[-2000:])
    return samples


def at(samples: list[dict], fraction: float, total: int) -> dict:
    """The first sample at or past ``fraction`` of the stream."""
    return next(s for s in samples if s["learned"] >= fraction * total)


def report(samples: list[dict], size: Size, header: str, loads: tuple[float, float]) -> list[str]:
    total = size.messages
    half, end = at(samples, 0.5, total), samples[-1]
    growth = end["rss"] / half["rss"] - 1
    ckpt_growth = end["checkpoint"] / half["checkpoint"] - 1
    bounds = " ".join(size.bounds) or "the defaults (--max-subjects 100000, " \
        "--max-history-bytes 64M, --max-history 128, --max-events 10000)"
    lines = [header, "",
             f"{total:,} messages from {size.subjects:,} subjects (each message's subject drawn "
             f"at random), 4-20 of {TAXA} taxa each, {PARTITIONS} partitions, embedded broker; "
             f"one `onlinenmf consume microbiome` process with the tracker, its kernels "
             f"compiled beforehand (`onlinenmf compile`), bounds: {bounds}; "
             f"load average {loads[0]:.1f} at the start, {loads[1]:.1f} at the end.", "",
             f"**RSS growth from 50 % to 100 % of the stream: {growth:+.1%}** (target < 5 %); "
             f"checkpoint size {ckpt_growth:+.1%}. The subject store is bounded by "
             "`--max-history-bytes` (bytes of histories, default 64M) and `--max-subjects` "
             "(default 100,000), also `ONLINENMF_MAX_HISTORY_BYTES` / "
             "`ONLINENMF_MAX_SUBJECTS`; least recently seen subjects are evicted first.", "",
             "| share of stream | records learned | RSS MB | checkpoint MB | subjects held | "
             "history MB | seconds |",
             "|---|---|---|---|---|---|---|"]
    for fraction in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0):
        s = at(samples, fraction, total) if fraction < 1 else end
        lines.append(f"| {fraction:.0%} | {s['learned']:,} | {s['rss'] / 1e6:.1f} | "
                     f"{s['checkpoint'] / 1e6:.1f} | {s['subjects']:,} | "
                     f"{s['history'] / 1e6:.1f} | {s['seconds']:.0f} |")
    return lines


#: Samples per subject of the capacity table, and the budget it is measured at (the bytes
#: counted are a sum over subjects, so a budget of B holds B / (bytes per subject) of them).
CAPACITY_SAMPLES = (1, 2, 8, 128)
CAPACITY_BUDGET = 4 * 2**20


def capacity(samples: int, seed: int = 0) -> tuple[int, float]:
    """A Tracker (every default but a CAPACITY_BUDGET history budget, k = 10) fed subjects of
    ``samples`` samples each (drawn as the stream's messages) until it has evicted as many
    subjects as it holds: (subjects held, history bytes per subject)."""
    from onlinenmf import OnlineNMF, Tracker

    rng = np.random.default_rng(seed)
    tracker = Tracker(OnlineNMF(n_components=10, beta=1, seed=seed),
                      max_history_bytes=CAPACITY_BUDGET)
    subject = 0
    while tracker.metrics["evicted_budget"] < max(len(tracker), 100):
        for t in range(samples):
            taxa = rng.choice(TAXA, rng.integers(4, 21), replace=False)
            counts = {f"t{x}": float(c) for x, c in zip(taxa, rng.integers(1, 300, taxa.size))}
            tracker.learn_one(counts, subject=f"s{subject}", time=float(t))
        subject += 1
    held = len(tracker)
    return held, tracker.history_bytes / held


def capacity_lines() -> list[str]:
    from onlinenmf.parameters import TRACKER

    default = TRACKER["max_history_bytes"].default
    rows = [(n, *capacity(n)) for n in CAPACITY_SAMPLES]
    return [
        "## Subjects a history budget holds",
        "",
        f"A Tracker alone (k = 10, every default but `max_history_bytes` = "
        f"{CAPACITY_BUDGET // 2**20} MiB), fed subjects of n samples each (4-20 of {TAXA} "
        "taxa, as the stream above) until it had evicted as many as it holds. The budget counts "
        f"a sum over subjects, so the default {default // 2**20} MiB holds "
        f"{default / CAPACITY_BUDGET:g} times as many.",
        "",
        f"| samples per subject | subjects held | bytes per subject | the default "
        f"{default // 2**20} MiB holds |",
        "|---|---|---|---|",
        *(f"| {n} | {held:,} | {per:,.0f} | {default / per:,.0f} |" for n, held, per in rows),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks memory")
    parser.add_argument("--full", action="store_true",
                        help="the issue's size: 1,000,000 messages from 120,000 subjects")
    args = parser.parse_args(argv or [])
    size = FULL if args.full else QUICK
    header = _output.provenance("python -m benchmarks memory" + (" --full" if args.full
                                                                   else ""))
    start_load = os.getloadavg()[0]
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        topic = f"memory-{uuid.uuid4().hex[:8]}"
        produce_stream(broker.bootstrap, topic, size)
        samples = consume(broker.bootstrap, topic, size, Path(tmp))
    assert samples and samples[-1]["learned"] == size.messages, samples[-1:]
    lines = report(samples, size, header, (start_load, os.getloadavg()[0]))
    lines += ["", *capacity_lines()]
    print("\n".join(lines))
    _output.write(size.output, ["# Memory at scale (benchmarks/bench_memory.py)", "", *lines])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
