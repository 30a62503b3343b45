"""NMF on Dask (issue 16): batch passes of onlinenmf.distributed against scikit-learn.

* ``ECAM`` (699 x 3,347, k = 10, KL, 30 passes): the loss per pass of
  :func:`onlinenmf.distributed.fit` (h solved exactly against the W a pass starts from, so the
  loss of that W) on a ``LocalCluster`` of 1 and of 2 worker processes (the same W to 1e-6?),
  from its default first dictionary (NNDSVDa computed on the cluster) and from the stream's
  (``start="stream"``), against scikit-learn's batch ``NMF`` (KL, multiplicative updates; CD
  does not fit KL) after 30 and 500 iterations from its default start (nndsvda) and
  ``MiniBatchNMF`` (KL) after 30 epochs, each scored as ``D_KL(X | W H)`` with its own H.
  Also how many passes each start needs to come within 1.03 of NMF's 500 iterations.
* ``synthetic``: a sparse count matrix generated on the workers, partition by partition
  (never on the client): 10 communities of 400 taxa (Zipf weights) over 5,000 taxa,
  Dirichlet(0.3) mixtures, Poisson(150) reads per sample; 1,000,000 rows in 40 partitions by
  default. The partitions are generated once per cluster, kept on the workers (``persist``)
  and spread evenly over them (``rebalance``), so a pass times the fit, not the generator
  (whose time is reported). 1 and 2 worker processes: seconds per pass, samples per second,
  memory per worker (the data it holds; its peak resident memory during the fit, VmHWM
  reset when the fit starts: the whole process, Python, numpy, numba, Dask, the data it
  holds and the fit's work; and ``ru_maxrss``, the peak since the process started, which
  includes generating the data), where a pass's time goes (Dask's task
  stream: the partitions' compute per worker, transfers, the rest), against
  ``MiniBatchNMF.partial_fit`` (KL, its default 1,024-row mini-batches) over about 200,000 of
  the rows in this process; KL per read of both dictionaries on the first partition. The
  synthetic fits start from the stream's first dictionary (``start="stream"``: on this data
  both starts end alike, and NNDSVDa's 8 extra product passes would only lengthen the run;
  passes are timed after the start either way).

``uptime`` and the load average are written with every timing: this machine's 2 cores are
shared with other sessions, so wall times and the 1-vs-2-worker ratio are those of a machine
as loaded as they say.

On a real cluster: ``python -m benchmarks distributed --scheduler tcp://HOST:8786`` runs the
synthetic part on that scheduler's workers (``--workers`` is then ignored: it uses them all;
untested here, no cluster is reachable from this machine). Every worker needs onlinenmf
installed (``pip install 'onlinenmf[distributed]'``).

Run: ``python -m benchmarks distributed [--part ecam|synthetic] [--rows N] [--partitions P]
[--passes P] [--scheduler ADDRESS]``. Writes ``benchmarks/output/distributed.md``; a run of
one part keeps the other part's section of the file as it was.

Memory only (opt-in, not part of ``make bench``: about 6.5 minutes at load 8-16 here):
``python -m benchmarks distributed --memory-rows 1000000 [--partitions P] [--passes P]``
measures the peak per worker of 2 worker processes fitting the synthetic rows as the
synthetic part does (the same generation, placement and peaks), nothing else, and writes
``benchmarks/output/distributed_memory.md``.
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import subprocess
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from benchmarks._output import provenance, write

OUT = Path(__file__).parent / "output" / "distributed.md"
#: Where the memory-only mode (``--memory-rows``) writes.
MEMORY_OUT = OUT.with_name("distributed_memory.md")
#: Worker processes of the memory-only mode (the target's: peak per worker with 2 workers).
MEMORY_WORKERS = 2
K = 10
ECAM_PASSES = 30
SYNTH_FEATURES, SYNTH_TAXA, SYNTH_DEPTH = 5000, 400, 150
SYNTH_ROWS, SYNTH_PARTITIONS = 1_000_000, 40
#: Samples generated at a time within a partition (bounds the generator's temporary arrays).
GENERATE_ROWS = 2_000
#: Rows of the synthetic data MiniBatchNMF is timed on (whole partitions, about this many).
MINIBATCH_ROWS = 200_000
#: Per worker: one worker holds all of the persisted 1M rows (about 750 MB as float32), which
#: must not spill to disk (Dask spills from 60 % of the limit).
MEMORY_LIMIT = "4GiB"
#: The headings that start the two parts' sections of the output.
ECAM_HEADING, SYNTH_HEADING = "## ECAM", "## Synthetic"


def load() -> str:
    return "load average " + " / ".join(f"{x:.1f}" for x in os.getloadavg())


def uptime() -> str:
    """``uptime``'s line (the load of the shared machine, with the time of day)."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return load()


def cluster(workers: int):
    from distributed import Client, LocalCluster

    c = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                     memory_limit=MEMORY_LIMIT, dashboard_address=":0",
                     silence_logs=logging.ERROR)
    return c, Client(c)


def cpu_seconds() -> float:
    """This process's CPU time so far, user + system (run on each worker)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss() -> int:
    """This process's peak resident memory since it started, bytes (run on each worker)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak() -> None:
    """Start this process's peak resident memory (Linux's VmHWM) again from its current
    resident memory (run on each worker before a fit: the fit's own peak, not the
    generator's)."""
    Path("/proc/self/clear_refs").write_text("5")


def peak_since_reset() -> int:
    """This process's peak resident memory since :func:`reset_peak`, bytes (VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return peak_rss()


def held_bytes(dask_worker) -> int:
    """Bytes of the data a worker holds (Dask's own estimate, ``sizeof``)."""
    from dask.sizeof import sizeof

    return sum(sizeof(value) for value in dask_worker.data.values())


def kl(X, W, H) -> float:
    from onlinenmf import beta_divergence

    return float(beta_divergence(X, H @ W, 1))


# ---------------------------------------------------------------------- ECAM
def ecam(lines: list[str]) -> None:
    import dask.array as da
    from sklearn.decomposition import NMF, MiniBatchNMF

    from onlinenmf import distributed
    from onlinenmf.datasets import load_ecam

    table = load_ecam()
    X = table.counts.toarray()
    features = list(table.features)
    data = da.from_array(X, chunks=(175, -1))  # 4 partitions
    params = {"n_components": K, "beta": 1, "seed": 0}
    runs = {}
    for workers in (1, 2):
        c, client = cluster(workers)
        try:
            losses: list[float] = []
            start, before = time.perf_counter(), uptime()
            model = distributed.fit(data, params, passes=ECAM_PASSES, client=client,
                                    features=features,
                                    progress=lambda r, out=losses: out.append(r.loss))
            seconds = time.perf_counter() - start
        finally:
            client.close()
            c.close()
        runs[workers] = (model, losses, score(model, X, features), seconds, before)
    losses = []
    start, before = time.perf_counter(), uptime()
    stream = distributed.fit(data, params, passes=ECAM_PASSES, features=features,
                             start="stream", progress=lambda r: losses.append(r.loss))
    runs["stream"] = (stream, losses, score(stream, X, features),
                      time.perf_counter() - start, before)
    sk = {}
    for iterations in (30, 500):
        start, before = time.perf_counter(), uptime()
        nmf = NMF(n_components=K, beta_loss="kullback-leibler", solver="mu",
                  max_iter=iterations, tol=0, random_state=0)
        H = nmf.fit_transform(X)
        sk[iterations] = (kl(X, nmf.components_, H), time.perf_counter() - start, before)
    start, before = time.perf_counter(), uptime()
    mb = MiniBatchNMF(n_components=K, beta_loss="kullback-leibler", max_iter=ECAM_PASSES,
                      tol=0, max_no_improvement=None, random_state=0)
    H = mb.fit_transform(X)
    mini = (kl(X, mb.components_, H), time.perf_counter() - start, before)
    reference = sk[500][0]
    reach = {}
    for first in distributed.STARTS:
        losses = []
        distributed.fit(data, params, passes=200, features=features, start=first,
                        progress=lambda r, out=losses: out.append(r.loss))
        within = np.flatnonzero(np.array(losses) <= 1.03 * reference)
        reach[first] = (int(within[0]) + 1 if within.size else None, losses[-1] / reference)

    same = float(np.abs(runs[1][0].W - runs[2][0].W).max())
    final = runs[1][2] / reference
    lines += [
        f"{ECAM_HEADING} (699 x 3,347, k = 10, KL)", "",
        provenance("python -m benchmarks distributed --part ecam"), "",
        f"Loss = D_KL(X | W H), each method with its own H (ours: h solved exactly against "
        f"its W). Reference: scikit-learn NMF(solver='mu', 500 iterations, nndsvda start) = "
        f"{reference:.6g}.", "",
        f"**Target: loss <= 1.03 x the reference after {ECAM_PASSES} passes: "
        f"{final:.4f} x, {'met' if final <= 1.03 else 'missed'}. Same W for 1 and 2 workers "
        f"(1e-6): max |W1 - W2| = {same:.3g}, {'met' if same <= 1e-6 else 'missed'}.**", "",
        "| method | loss | / NMF 500 it | wall s | conditions (uptime before) |",
        "|---|---|---|---|---|",
    ]
    for key, (model, losses, loss, seconds, before) in runs.items():
        what = (f"{key} worker process{'es' if key != 1 else ''} (LocalCluster), NNDSVDa start"
                if key != "stream" else "Dask's local threads, start='stream'")
        lines.append(f"| onlinenmf.distributed.fit, {ECAM_PASSES} passes, {what} | {loss:.6g} "
                     f"| {loss / reference:.4f} | {seconds:.1f} | {before} |")
    for iterations, (loss, seconds, before) in sk.items():
        lines.append(f"| sklearn NMF MU, {iterations} iterations | {loss:.6g} | "
                     f"{loss / reference:.4f} | {seconds:.1f} | {before} |")
    lines.append(f"| sklearn MiniBatchNMF KL, {ECAM_PASSES} epochs | {mini[0]:.6g} | "
                 f"{mini[0] / reference:.4f} | {mini[1]:.1f} | {mini[2]} |")
    lines += [
        "", "Equal work: a pass is one W update (the KL majorisation step, as one MU step of "
        "W) from the h of every sample solved to convergence (up to 200 inner sweeps), so "
        f"{ECAM_PASSES} passes make as many W updates as scikit-learn's {ECAM_PASSES} MU "
        "iterations but more work on H; NNDSVDa adds 8 passes of two sparse products each "
        "(7 power iterations and the left vectors' norms), no h solve. The stream's start "
        "(k diverse samples among 128 seeding rows, fitted by 100 MU iterations on them) "
        "lands in a worse basin: the same passes from it end 4 % higher.", "",
        "Loss per pass (of the W the pass starts from), relative to NMF's 500 iterations:", "",
        "| pass | 1 | 2 | 3 | 5 | 10 | 15 | 20 | 25 | 30 |", "|---|" + "---|" * 9,
    ]
    for key, run in runs.items():
        label = f"{key} worker(s)" if key != "stream" else "start='stream'"
        lines.append(f"| {label} | " + " | ".join(
            f"{run[1][p - 1] / reference:.3f}" for p in (1, 2, 3, 5, 10, 15, 20, 25, 30)) + " |")
    lines += [
        "", "Passes to come within 1.03 of NMF's 500 iterations (200 at most, Dask's local "
        "threads):", "",
        "| first dictionary | passes to <= 1.03 | ratio after 200 passes |", "|---|---|---|",
    ]
    for first, (passes, ratio) in reach.items():
        lines.append(f"| start='{first}' | {passes if passes else 'not within 200'} | "
                     f"{ratio:.4f} |")
    lines.append("")


def score(model, X, features) -> float:
    """KL of the data from the model's W with h solved exactly."""
    W = model.W[[model.features.index(f) for f in features]]
    return kl(X, W.T, model.transform_many(X, features=features))


# ---------------------------------------------------------------------- synthetic
def communities(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The taxa of each community and the cumulative Zipf weights within one."""
    rng = np.random.default_rng(seed)
    taxa = np.stack([rng.choice(SYNTH_FEATURES, SYNTH_TAXA, replace=False) for _ in range(K)])
    weights = 1.0 / np.arange(1, SYNTH_TAXA + 1) ** 1.1
    return taxa, np.cumsum(weights) / weights.sum()


def synthetic_partition(index: int, rows: int, seed: int = 0) -> sp.csr_matrix:
    """Partition ``index``: ``rows`` samples of reads drawn from mixtures of the communities
    (one read at a time, vectorised: a community by the sample's mixture, a taxon by the
    community's weights), ``GENERATE_ROWS`` samples at a time so that the generator's
    temporary arrays stay small next to the partition. The counts are float32 (exact:
    integers below 2**24) with int32 column indices, 8 bytes per non-zero where float64
    takes 12: the persisted partitions are most of a worker's memory, and the fit reads a
    partition as float64 only for the task that solves it."""
    return sp.vstack([_synthetic_rows(index, start, min(rows, start + GENERATE_ROWS), seed)
                      for start in range(0, rows, GENERATE_ROWS)], format="csr")


def _synthetic_rows(index: int, start: int, stop: int, seed: int) -> sp.csr_matrix:
    taxa, cdf = communities(seed)
    rng = np.random.default_rng([seed, index, start])
    rows = stop - start
    h = rng.dirichlet(np.full(K, 0.3), size=rows)
    depth = rng.poisson(SYNTH_DEPTH, size=rows)
    row = np.repeat(np.arange(rows), depth)
    community = (np.cumsum(h, axis=1)[row] < rng.random(row.size)[:, None]).sum(axis=1)
    taxon = taxa[np.minimum(community, K - 1), np.searchsorted(cdf, rng.random(row.size))]
    X = sp.csr_matrix((np.ones(row.size, dtype=np.float32), (row, taxon)),
                      shape=(rows, SYNTH_FEATURES))
    X.sum_duplicates()
    return X


def synthetic_array(rows: int, partitions: int):
    import dask.array as da
    from dask import delayed

    size = rows // partitions
    blocks = [da.from_delayed(delayed(synthetic_partition)(i, size), (size, SYNTH_FEATURES),
                              dtype=np.float32, meta=sp.csr_matrix((0, 0), dtype=np.float32))
              for i in range(partitions)]
    return da.concatenate(blocks, axis=0), size


def held_on_workers(client, rows: int, partitions: int):
    """The synthetic array generated on the client's workers and kept there (``persist``),
    spread evenly over them (``rebalance``: as many partitions per worker as can be)."""
    from distributed import wait

    data, _ = synthetic_array(rows, partitions)
    data = client.persist(data)
    wait(data)
    client.rebalance(data)
    return data


def anatomy(stream: list[dict], passes: list) -> dict:
    """Where the passes' time went, from Dask's task stream: per worker, the seconds its
    partitions computed (``_partition_sums``) over the timed passes; transfers between
    workers; the number of partition tasks each worker ran."""
    computed, tasks, transfer = defaultdict(float), defaultdict(int), 0.0
    start = min(r.started for r in passes)
    for task in stream:
        key = task["key"] if isinstance(task["key"], str) else task["key"][0]
        for step in task["startstops"]:
            if step["start"] < start:
                continue
            if step["action"] == "transfer":
                transfer += step["stop"] - step["start"]
            elif step["action"] == "compute" and "_partition_sums" in key:
                computed[task["worker"]] += step["stop"] - step["start"]
                tasks[task["worker"]] += 1
    return {"computed": dict(computed), "tasks": dict(tasks), "transfer": transfer}


class Timed:
    """A pass report with its wall-clock start (for the task stream)."""

    def __init__(self, report, ended: float):
        self.report, self.started = report, ended - report.seconds
        self.seconds, self.mean_loss = report.seconds, report.mean_loss


def synthetic(lines: list[str], rows: int, partitions: int, passes: int,
              scheduler: str | None) -> None:
    from distributed import Client, get_task_stream
    from sklearn.decomposition import MiniBatchNMF

    from onlinenmf import distributed

    features = list(range(SYNTH_FEATURES))
    params = {"n_components": K, "beta": 1, "seed": 0}
    rows = rows // partitions * partitions
    size = rows // partitions
    results = {}
    configurations = [("scheduler", scheduler)] if scheduler else [(w, None) for w in (1, 2)]
    for workers, address in configurations:
        if address:
            c, client = None, Client(address)
        else:
            c, client = cluster(workers)
        try:
            start = time.perf_counter()
            data = held_on_workers(client, rows, partitions)
            generation = time.perf_counter() - start
            held = sorted(len(keys) for keys in client.has_what().values())
            memory = {w: [b] for w, b in client.run(held_bytes).items()}
            for w, b in client.run(peak_rss).items():
                memory[w].append(b)
            client.run(reset_peak)  # the fit's own peak from here
            reports: list[Timed] = []
            marks: list[dict] = []  # each worker's CPU seconds after each pass

            def on_pass(report, client=client, reports=reports, marks=marks) -> None:
                reports.append(Timed(report, time.time()))
                marks.append(client.run(cpu_seconds))

            before = uptime()
            fit_start = time.perf_counter()
            with get_task_stream(client) as stream:
                model = distributed.fit(
                    data, params, passes=passes, client=client, features=features,
                    start="stream", progress=on_pass)
            fit_seconds = time.perf_counter() - fit_start
            after = uptime()
            for w, b in client.run(peak_since_reset).items():
                memory[w].append(b)
            for w, b in client.run(peak_rss).items():
                memory[w].append(b)
            count = len(client.scheduler_info()["workers"])
            where = anatomy(stream.data, reports[1:] or reports)
            where["cpu"] = {w: marks[-1][w] - marks[0][w] for w in marks[-1] if w in marks[0]}
        finally:
            client.close()
            if c is not None:
                c.close()
        results[workers] = (model, reports, generation, sorted(memory.values()), before, after,
                            count, held, where, fit_seconds)
    # MiniBatchNMF over about MINIBATCH_ROWS rows (whole partitions), in this process
    chunks = [synthetic_partition(i, size).astype(np.float64)  # as MiniBatchNMF had them
              for i in range(max(1, min(partitions, MINIBATCH_ROWS // size)))]
    mb = MiniBatchNMF(n_components=K, beta_loss="kullback-leibler", random_state=0)
    batch = mb.batch_size
    start, before = time.perf_counter(), uptime()
    for chunk in chunks:
        for s in range(0, chunk.shape[0], batch):
            mb.partial_fit(chunk[s : s + batch])
    mb_seconds, mb_rows = time.perf_counter() - start, sum(c.shape[0] for c in chunks)
    mb_load = (before, uptime())
    first = chunks[0]
    reads = float(first.sum())

    lines += [
        f"{SYNTH_HEADING} sparse counts ({rows:,} x {SYNTH_FEATURES:,}, k = {K}, KL, "
        f"{partitions} partitions of {size:,} rows)", "",
        provenance(f"python -m benchmarks distributed --part synthetic --rows {rows} "
                   f"--partitions {partitions} --passes {passes}"), "",
        f"Generated on the workers ({SYNTH_DEPTH} reads per sample on average, "
        f"{first.nnz / first.shape[0]:.0f} non-zero taxa per sample), kept there between "
        f"passes, rebalanced over the workers (float32 counts, int32 indices). Pass 1 follows "
        f"the survey (features, seeding rows) and the first dictionary; the median is over "
        f"passes 2-{passes}. Memory per worker: the data it holds (Dask's estimate); its peak "
        f"resident memory during the fit (Linux's VmHWM, reset when the fit starts: the "
        f"process, the data it holds, the fit's work); and its peak since the process "
        f"started (``ru_maxrss``, which includes generating the data).", "",
        "| workers | generate s | fit s (all passes) | median s per pass | samples / s | "
        "per worker: data held / peak RSS in the fit / peak since start, MiB | partitions "
        "held per worker | uptime before / after |", "|---|---|---|---|---|---|---|---|",
    ]
    for workers, (model, reports, generation, memory, before, after, count, held,
                  where, fit_seconds) in results.items():
        per_pass = median_pass(reports)
        memory = ", ".join(f"{m[0] / 2**20:.0f} / {m[2] / 2**20:.0f} / {m[3] / 2**20:.0f}"
                           for m in memory)
        lines.append(f"| {workers if workers != 'scheduler' else f'{count} (cluster)'} | "
                     f"{generation:.1f} | {fit_seconds:.1f} | {per_pass:.1f} | "
                     f"{rows / per_pass:,.0f} | {memory} | {', '.join(map(str, held))} | "
                     f"{before} / {after} |")
    lines.append(f"| MiniBatchNMF.partial_fit, one process ({mb_rows:,} rows, mini-batches of "
                 f"{batch}) | - | - | {mb_seconds * rows / mb_rows:.1f} (scaled to {rows:,} "
                 f"rows) | {mb_rows / mb_seconds:,.0f} | - | - | {mb_load[0]} / "
                 f"{mb_load[1]} |")
    lines += ["", f"Where the timed passes' (2-{passes}) wall time went (Dask's task "
                  "stream): the partitions' compute per worker, and the rest of the wall time "
                  "(the client's refresh, the model's broadcast, scheduling, waiting for the "
                  "slower worker). A partition's compute time that grows with 2 workers is "
                  "the two processes competing for the cores (with other sessions), not "
                  "Dask's overhead; the CPU seconds each worker process got during those passes "
                  "(share of one core: 100 % is a core of its own) say how much of the machine "
                  "it had:", "",
              "| workers | wall s | partition compute s per worker (tasks) | compute s per "
              "task | transfers s | wall - busiest worker's compute s | CPU s per worker "
              "(share of a core) |",
              "|---|---|---|---|---|---|---|"]
    for workers, result in results.items():
        reports, where = result[1], result[8]
        timed = reports[1:] or reports
        wall = sum(r.seconds for r in timed)
        busy = ", ".join(f"{s:.1f} ({where['tasks'][w]})"
                         for w, s in sorted(where["computed"].items()))
        per_task = sum(where["computed"].values()) / max(sum(where["tasks"].values()), 1)
        cpu = ", ".join(f"{s:.1f} ({s / wall:.0%})" for _, s in sorted(where["cpu"].items()))
        lines.append(f"| {workers} | {wall:.1f} | {busy} | {per_task:.2f} | "
                     f"{where['transfer']:.1f} | "
                     f"{wall - max(where['computed'].values(), default=0.0):.1f} | {cpu} |")
    lines += ["", "Loss per pass (KL per sample, of the W each pass starts from):", ""]
    for workers, result in results.items():
        lines.append(f"- {workers} worker(s): " + ", ".join(
            f"{r.mean_loss:.2f}" for r in result[1]))
    if 1 in results and 2 in results:
        ratio = median_pass(results[1][1]) / median_pass(results[2][1])
        same = float(np.abs(results[1][0].W - results[2][0].W).max())
        memory = results[2][3]
        peak = max(m[2] for m in memory) / 2**30
        held = max(m[0] for m in memory)
        rest = max(m[2] - m[0] for m in memory)
        full = SYNTH_ROWS / rows * held
        mb_pass = mb_seconds * rows / mb_rows
        lines += [
            "", f"**Targets. 2 workers / 1 worker throughput: {ratio:.2f}x (target >= 1.6x; "
            f"{'met' if ratio >= 1.6 else 'missed'} on {rows:,} rows at the load written "
            f"above). Peak memory per worker with 2 workers during the fit: {peak:.2f} GiB, "
            f"{held / 2**20:.0f} MiB of it the data the worker holds (target < 1 GiB at "
            f"{SYNTH_ROWS:,} rows; " + (f"{'met' if peak < 1 else 'missed'})" if rows >= SYNTH_ROWS
                                        else f"not measured at that size in this run: "
            f"there the worker's data would be about {full / 2**20:.0f} MiB and, with the "
            f"rest as measured here ({rest / 2**20:.0f} MiB: the process, its libraries and "
            f"compiled kernels, one task's rows), the peak about {(full + rest) / 2**30:.2f} "
            f"GiB, an extrapolation; --memory-rows {SYNTH_ROWS} measures it: "
            f"{MEMORY_OUT.name})") + ". Per pass against MiniBatchNMF.partial_fit over "
            f"the same rows: "
            f"{median_pass(results[2][1]):.1f} s with 2 workers, "
            f"{median_pass(results[1][1]):.1f} s with 1, {mb_pass:.1f} s for MiniBatchNMF "
            f"(target: at least as fast; "
            f"{'met' if median_pass(results[1][1]) <= mb_pass else 'missed'} with 1 worker). "
            f"Same W: max |W1 - W2| = {same:.3g}.**", "",
            f"CPU seconds per timed pass, all workers: {cpu_per_pass(results[1]):.1f} with 1 "
            f"worker, {cpu_per_pass(results[2]):.1f} with 2 (the work Dask adds by splitting "
            f"it over two processes: the difference). With each worker on a core of its own "
            f"the ratio would be about 2 x {cpu_per_pass(results[1]):.1f} / "
            f"{cpu_per_pass(results[2]):.1f} = "
            f"{2 * cpu_per_pass(results[1]) / cpu_per_pass(results[2]):.2f}x; the measured "
            f"ratio is lower by the share of the cores the other sessions took."]
    model = next(iter(results.values()))[0]
    ours = model.batch_statistics(first, features=features).loss / reads
    mb_kl = kl(first.toarray(), mb.components_, mb.transform(first)) / reads
    lines += ["", f"KL per read on partition 0: ours after {passes} passes {ours:.4f}; "
                  f"MiniBatchNMF after one pass over {mb_rows:,} rows {mb_kl:.4f} (its own "
                  f"transform).", ""]


def memory(rows: int, partitions: int, passes: int, workers: int = MEMORY_WORKERS) -> Path:
    """Memory only: the peak resident memory per worker while ``workers`` worker processes
    (``LocalCluster``) fit ``rows`` synthetic rows, measured as :func:`synthetic` measures it
    (the data generated on the workers and held there, VmHWM reset when the fit starts,
    ``ru_maxrss``), without the timings, the 1-worker run or MiniBatchNMF. Writes
    :data:`MEMORY_OUT` and returns it."""
    from onlinenmf import distributed

    rows = rows // partitions * partitions
    origin = provenance(f"python -m benchmarks distributed --memory-rows {rows} "
                        f"--partitions {partitions} --passes {passes}")  # the load at the start
    c, client = cluster(workers)
    try:
        start, before = time.perf_counter(), uptime()
        data = held_on_workers(client, rows, partitions)
        generation = time.perf_counter() - start
        held = {w: len(keys) for w, keys in client.has_what().items()}
        memory = {w: {"held": b} for w, b in client.run(held_bytes).items()}
        for w, b in client.run(peak_rss).items():
            memory[w]["before"] = b
        client.run(reset_peak)  # the fit's own peak from here
        losses: list[float] = []
        start = time.perf_counter()
        distributed.fit(data, {"n_components": K, "beta": 1, "seed": 0}, passes=passes,
                        client=client, features=list(range(SYNTH_FEATURES)), start="stream",
                        progress=lambda r: losses.append(r.mean_loss))
        fit_seconds, after = time.perf_counter() - start, uptime()
        for w, b in client.run(peak_since_reset).items():
            memory[w]["fit"] = b
        for w, b in client.run(peak_rss).items():
            memory[w]["since start"] = b
    finally:
        client.close()
        c.close()
    peak = max(m["fit"] for m in memory.values()) / 2**30
    verdict = ("missed" if peak >= 1 else "met" if rows >= SYNTH_ROWS
               else "under 1 GiB, but at fewer rows than the target's")
    lines = [
        "# NMF on Dask: memory per worker (benchmarks/bench_distributed.py)", "",
        origin, "",
        f"Synthetic sparse counts, {rows:,} x {SYNTH_FEATURES:,} (k = {K}, KL, start='stream', "
        f"{passes} passes), in {partitions} partitions of {rows // partitions:,} rows "
        f"generated on {workers} worker processes of a `LocalCluster` (one thread each, memory "
        f"limit {MEMORY_LIMIT}), held there (float32 counts, int32 indices) and rebalanced, "
        f"as the synthetic part of `distributed.md` holds them. Per worker: the data it holds "
        f"(Dask's estimate, `sizeof`); its peak resident memory since it started, before the "
        f"fit (`ru_maxrss`: the process, generating and holding the data); its peak during "
        f"the fit (Linux's VmHWM, reset when the fit starts: the process, the data it holds, "
        f"the fit's work); its peak since it started, after the fit. Generating took "
        f"{generation:.1f} s, the fit {fit_seconds:.1f} s; uptime before: {before}; after: "
        f"{after}.", "",
        "| worker | partitions held | data held MiB | peak before the fit MiB | "
        "peak during the fit MiB | peak since start MiB |", "|---|---|---|---|---|---|",
    ]
    for n, (w, m) in enumerate(sorted(memory.items()), start=1):
        lines.append(f"| {n} | {held.get(w, 0)} | {m['held'] / 2**20:.0f} | "
                     f"{m['before'] / 2**20:.0f} | {m['fit'] / 2**20:.0f} | "
                     f"{m['since start'] / 2**20:.0f} |")
    lines += [
        "", "Loss per pass (KL per sample, of the W each pass starts from): "
        + ", ".join(f"{x:.2f}" for x in losses), "",
        f"**Target: peak memory per worker during the fit < 1 GiB at {SYNTH_ROWS:,} x "
        f"{SYNTH_FEATURES:,}: {peak:.2f} GiB with {workers} workers at {rows:,} rows, "
        f"{verdict}.**",
    ]
    return write(MEMORY_OUT.name, lines)


def cpu_per_pass(result: tuple) -> float:
    """CPU seconds of all workers per timed pass (passes 2..)."""
    reports, where = result[1], result[8]
    return sum(where["cpu"].values()) / max(len(reports) - 1, 1)


def median_pass(reports: list) -> float:
    return float(np.median([r.seconds for r in reports[1:]] or [reports[0].seconds]))


def merge(old: str, header: list[str], sections: dict[str, list[str]]) -> str:
    """The output file: the header, then each part's section, the new one where a part ran,
    else the one ``old`` (the file as it was) holds."""
    kept = {}
    for heading in (ECAM_HEADING, SYNTH_HEADING):
        at = old.find("\n" + heading)
        if at >= 0:
            ends = [old.find("\n" + other, at + 1) for other in (ECAM_HEADING, SYNTH_HEADING)]
            ends = [e for e in ends if e > at]
            kept[heading] = old[at + 1 : min(ends) if ends else len(old)].rstrip("\n")
    parts = []
    for heading in (ECAM_HEADING, SYNTH_HEADING):
        if heading in sections:
            parts.append("\n".join(sections[heading]).rstrip("\n"))
        elif heading in kept:
            parts.append(kept[heading])
    return "\n".join(header) + "\n" + "\n\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks distributed")
    parser.add_argument("--part", choices=("all", "ecam", "synthetic"), default="all")
    parser.add_argument("--rows", type=int, default=SYNTH_ROWS)
    parser.add_argument("--partitions", type=int, default=SYNTH_PARTITIONS)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--scheduler", default=None,
                        help="a running Dask scheduler (synthetic part only)")
    parser.add_argument("--memory-rows", type=int, default=None, metavar="N",
                        help="memory only: the peak per worker of 2 workers fitting N "
                             f"synthetic rows (writes {MEMORY_OUT.name}; --part ignored)")
    args = parser.parse_args(argv or [])
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    logging.getLogger("distributed").setLevel(logging.ERROR)
    if args.memory_rows is not None:
        print(memory(args.memory_rows, args.partitions, args.passes).read_text())
        return 0
    header = ["# NMF on Dask (benchmarks/bench_distributed.py)", "",
              f"Machine: {os.cpu_count()} cores shared with other sessions; every timing "
              f"states `uptime` (load average over 1 / 5 / 15 min) before it (and after, for "
              f"the synthetic fits). Worker processes have one thread each and a memory limit "
              f"of {MEMORY_LIMIT}. Each part's section says the command and commit it comes "
              f"from.", ""]
    sections = {}
    if args.part in ("all", "ecam"):
        sections[ECAM_HEADING] = []
        ecam(sections[ECAM_HEADING])
    if args.part in ("all", "synthetic"):
        sections[SYNTH_HEADING] = []
        synthetic(sections[SYNTH_HEADING], args.rows, args.partitions, args.passes,
                  args.scheduler)
    old = OUT.read_text() if OUT.exists() else ""
    OUT.write_text(merge(old, header, sections))
    print(OUT.read_text())
    return 0
