"""River adapter benchmark (issue 3): ``learn_one`` + ``transform_one`` through the river API on
ECAM samples (about 56 non-zero of 3,347 ASVs each), against river's ``preprocessing.LDA`` at
the same k, measured side by side in the same run (steady state: each fresh model first
learns 200 samples untimed). Nothing is asserted.

Rows: the river adapter (``onlinenmf.river.NMFTransformer``, its rows labelled by its former
name ``onlinenmf.river.OnlineNMF``), the same with
``learn_transform_one`` (one solve instead of two), the engine called directly (the adapter's
overhead), and river's LDA. The ECAM stream (699 samples, collection order) is cycled to reach
the sample counts; LDA gets fewer samples because it is much slower.

Also runs ``examples/ecam_river_pipelines.py`` (the ECAM prediction tasks through river
pipelines, OnlineNMF against river's LDA, each at the best point of a small grid chosen on the
first half of the stream and reported on the second).

Run: ``python -m benchmarks river`` (several minutes: river's LDA is slow). Writes
``benchmarks/output/river.md``.
"""

from __future__ import annotations

import importlib.util
import itertools
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from river import preprocessing

from benchmarks import _output
from onlinenmf import OnlineNMF as Engine
from onlinenmf.datasets import load_ecam
from onlinenmf.river import NMFTransformer

N_NMF = 3000
N_LDA = 200
REPEATS = 3
WARMUP = 200


def ecam_dicts() -> list[dict]:
    table = load_ecam()
    X, names = table.counts, table.features
    return [{names[c]: float(v) for c, v in zip(X.indices[X.indptr[i]:X.indptr[i + 1]],
                                                 X.data[X.indptr[i]:X.indptr[i + 1]])}
            for i in range(X.shape[0])]


def learn_then_transform(model) -> Callable[[dict], object]:
    def step(x):
        model.learn_one(x)
        return model.transform_one(x)
    return step


def timed(step: Callable[[dict], object], stream: list[dict]) -> float:
    start = time.perf_counter()
    for x in stream:
        step(x)
    return len(stream) / (time.perf_counter() - start)


def rates(rows, samples: list[dict]) -> dict[str, float]:
    """Best samples/s of REPEATS rounds, each on a fresh model. The rows take turns within a
    round, so a load spike from other users of the machine hits all of them alike."""
    best = dict.fromkeys((name for name, _, _ in rows), 0.0)
    for _ in range(REPEATS):
        for name, n, make in rows:
            stream = list(itertools.islice(itertools.cycle(samples), WARMUP + n))
            step = make()
            for x in stream[:WARMUP]:  # first refreshes (and the engine's one-off batch init)
                step(x)
            best[name] = max(best[name], timed(step, stream[WARMUP:]))
    return best


def speed_section() -> list[str]:
    samples = ecam_dicts()
    nnz = sum(map(len, samples)) / len(samples)
    warm = NMFTransformer(n_components=10, seed=0)  # compile the numba solvers outside the timings
    for x in samples[:200]:
        warm.learn_one(x)
        warm.transform_one(x)
    lines = [f"ECAM: {len(samples)} samples (cycled), {nnz:.0f} non-zero of 3,347 taxa per "
             f"sample; best of {REPEATS} interleaved rounds; samples/s of learn_one + "
             f"transform_one after {WARMUP} untimed; every model at its defaults but "
             "n_components and seed=0.", "",
             "| k | model | samples timed | samples/s | vs LDA |", "|---|---|---|---|---|"]
    for k in (10, 20):
        rows = [
            ("onlinenmf.river.OnlineNMF", N_NMF,
             lambda k=k: learn_then_transform(NMFTransformer(n_components=k, seed=0))),
            ("onlinenmf.river.OnlineNMF.learn_transform_one", N_NMF,
             lambda k=k: NMFTransformer(n_components=k, seed=0).learn_transform_one),
            ("engine OnlineNMF (no river adapter)", N_NMF,
             lambda k=k: learn_then_transform(Engine(n_components=k, seed=0))),
            ("river preprocessing.LDA", N_LDA,
             lambda k=k: learn_then_transform(preprocessing.LDA(n_components=k, seed=0))),
        ]
        measured = rates(rows, samples)
        lda = measured["river preprocessing.LDA"]
        for name, n, _ in rows:
            lines.append(f"| {k} | {name} | {n:,} | {measured[name]:,.0f} | "
                         f"{measured[name] / lda:.0f}× |")
    return lines


def pipelines_example():
    path = Path(__file__).resolve().parents[1] / "examples" / "ecam_river_pipelines.py"
    spec = importlib.util.spec_from_file_location("ecam_river_pipelines", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cell(value) -> str:
    if isinstance(value, float):  # MAE in days to 0.1, shares and scores to 0.001
        return "n/a" if value != value else f"{value:.1f}" if abs(value) >= 10 else f"{value:.3f}"
    return str(value)


def markdown(frame: pd.DataFrame) -> list[str]:
    return ["| " + " | ".join(map(str, frame.columns)) + " |", "|---" * len(frame.columns) + "|",
            *("| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(False))]


def pipelines_section(k: int = 10, seed: int = 0) -> list[str]:
    example = pipelines_example()
    tables = example.main(k, seed)
    results = tables["results"]
    lines = [f"examples/ecam_river_pipelines.py, k = {k}, seed {seed}: the 699 ECAM samples in "
             "collection order, prequential; each decomposition | composition | StandardScaler "
             "| model. Grids (every other argument at its default): "
             + "; ".join(f"{name}: " + " / ".join(example.settings_text(s) for s in grid)
                         for name, grid in example.GRIDS.items())
             + ". Per task, each decomposition's setting is chosen on the tuning half (samples "
             "0-348) and scored on the evaluation half (349-698). Metrics: scikit-learn's.", ""]
    for task in example.TASKS:
        part = results[results["task"] == task].drop(columns="task").dropna(axis=1, how="all")
        lines += [f"### {task}", "", *markdown(part), ""]
    speed = tables["speed"]
    lines += ["### Grid scores on the tuning half", "", *markdown(tables["grid"]), "",
              "### Decompositions' cost (transform, learn, transform per sample)", "",
              *markdown(speed)]
    return lines


def main() -> None:
    header = _output.provenance("python -m benchmarks river")
    report = ["# river adapter (benchmarks/bench_river.py)", "", header, ""]
    for title, run in (("Speed through the river API", speed_section),
                       ("ECAM prediction tasks through river pipelines", pipelines_section)):
        start = time.perf_counter()
        lines = run()
        print(f"\n## {title}\n" + "\n".join(lines), flush=True)
        report += [f"## {title}", "", *lines, "", f"({time.perf_counter() - start:.0f} s)", ""]
    _output.write("river.md", report)


if __name__ == "__main__":
    main()
