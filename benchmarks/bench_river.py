"""River adapter benchmark (issue 3): ``learn_one`` + ``transform_one`` through the river API on
ECAM samples (about 56 non-zero of 3,347 ASVs each), against river's ``preprocessing.LDA`` at
the same k, measured side by side in the same run (steady state: each fresh model first
learns 200 samples untimed). Nothing is asserted.

Rows: the river adapter (``onlinenmf.river.OnlineNMF``), the same with
``learn_transform_one`` (one solve instead of two), the engine called directly (the adapter's
overhead), and river's LDA. The ECAM stream (699 samples, collection order) is cycled to reach
the sample counts; LDA gets fewer samples because it is much slower.

Run: ``python -m benchmarks river``.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

from river import preprocessing

from onlinenmf import OnlineNMF as Engine
from onlinenmf.datasets import load_ecam
from onlinenmf.river import OnlineNMF

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


def main() -> None:
    samples = ecam_dicts()
    nnz = sum(map(len, samples)) / len(samples)
    warm = OnlineNMF(n_components=10, seed=0)  # compile the numba solvers outside the timings
    for x in samples[:200]:
        warm.learn_one(x)
        warm.transform_one(x)
    print(f"ECAM: {len(samples)} samples (cycled), {nnz:.0f} non-zero of 3,347 taxa per sample; "
          f"best of {REPEATS}; samples/s of learn_one + transform_one after {WARMUP} untimed")
    print(f"  {'k':>3}  {'model':<46} {'samples':>7} {'samples/s':>10} {'vs LDA':>7}")
    for k in (10, 20):
        rows = [
            ("onlinenmf.river.OnlineNMF", N_NMF,
             lambda k=k: learn_then_transform(OnlineNMF(n_components=k, seed=0))),
            ("onlinenmf.river.OnlineNMF.learn_transform_one", N_NMF,
             lambda k=k: OnlineNMF(n_components=k, seed=0).learn_transform_one),
            ("engine OnlineNMF (no river adapter)", N_NMF,
             lambda k=k: learn_then_transform(Engine(n_components=k, seed=0))),
            ("river preprocessing.LDA", N_LDA,
             lambda k=k: learn_then_transform(preprocessing.LDA(n_components=k, seed=0))),
        ]
        measured = rates(rows, samples)
        lda = measured["river preprocessing.LDA"]
        for name, n, _ in rows:
            print(f"  {k:>3}  {name:<46} {n:>7} {measured[name]:>10,.0f} "
                  f"{measured[name] / lda:>6.1f}x", flush=True)


if __name__ == "__main__":
    main()
