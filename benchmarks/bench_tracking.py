"""Subject tracker cost per sample (issue 5 / the Kafka consumer's tracking overhead).

The Tracker's work per sample is bookkeeping plus one growth fit (Theil-Sen slopes of log
abundance per component over the subject's history window). This measures that work alone
with :meth:`Tracker.observe` (activations precomputed, so the engine's solve is not in it)
against the peer the consumer pays anyway: the engine's own ``learn_one`` on the same samples,
measured in the same run.

* ``history`` rows: subjects whose history already holds n-1 samples receive their n-th one;
  the time of that observe, per sample (k = 10, activations of real ECAM samples).
* ``ECAM replay``: the 699 samples of the cohort in time order (histories up to 29 samples),
  tracker alone, then engine + tracker (``Tracker.learn_one``) against the engine alone.

Run: ``python -m benchmarks tracking`` (about 20 s).
"""

from __future__ import annotations

import time
from copy import deepcopy

import numpy as np

from onlinenmf import OnlineNMF, Tracker
from onlinenmf.datasets import load_ecam

K = 10
HISTORIES = (5, 10, 30, 60, 128)
SUBJECTS = 200  # subjects timed per history length


def _activations() -> tuple[list[dict], list[dict[int, float]]]:
    records = list(load_ecam().records())
    model = OnlineNMF(n_components=K, beta=1, refresh_every=100, seed=0)
    for record in records:  # a trained dictionary, then the activations it gives
        model.learn_one(record["counts"])
    return records, [model.transform_one(r["counts"]) for r in records]


def _per_history(hs: list[dict[int, float]]) -> list[tuple[int, float]]:
    rows = []
    for n in HISTORIES:
        tracker = Tracker(OnlineNMF(n_components=K, beta=1, seed=0), max_history=max(HISTORIES))
        draw = iter(range(10**9))
        for s in range(SUBJECTS):  # fill each subject with n - 1 samples (not timed)
            for day in range(n - 1):
                tracker.observe(s, float(day), hs[next(draw) % len(hs)])
        best = np.inf
        for repeat in range(3):  # the n-th sample of every subject, timed; best of 3
            copy = deepcopy(tracker)  # each repeat starts from histories of n - 1
            start = time.perf_counter()
            for s in range(SUBJECTS):
                copy.observe(s, float(n - 1), hs[(s * 7 + repeat) % len(hs)])
            best = min(best, (time.perf_counter() - start) / SUBJECTS)
        rows.append((n, best))
    return rows


def _ecam(records: list[dict], hs: list[dict[int, float]]) -> dict[str, float]:
    n = len(records)
    best_observe = best_engine = best_both = np.inf
    for _ in range(3):
        tracker = Tracker(OnlineNMF(n_components=K, beta=1, seed=0))
        start = time.perf_counter()
        for record, h in zip(records, hs):
            tracker.observe(record["subject"], record["time"], h)
        best_observe = min(best_observe, (time.perf_counter() - start) / n)
        model = OnlineNMF(n_components=K, beta=1, refresh_every=100, seed=0)
        last: dict = {}
        start = time.perf_counter()
        for record in records:  # the engine alone, warm-started like the consumer does
            last[record["subject"]] = model.learn_one(record["counts"],
                                                      warm_start=last.get(record["subject"]))
        best_engine = min(best_engine, (time.perf_counter() - start) / n)
        tracker = Tracker(OnlineNMF(n_components=K, beta=1, refresh_every=100, seed=0))
        start = time.perf_counter()
        for record in records:
            tracker.learn_one(record["counts"], subject=record["subject"], time=record["time"])
        best_both = min(best_both, (time.perf_counter() - start) / n)
    return {"observe": best_observe, "engine": best_engine, "both": best_both}


def main() -> None:
    records, hs = _activations()
    # warm up (compiled kernels, caches) before timing
    warm = Tracker(OnlineNMF(n_components=K, beta=1, seed=0))
    for day, h in enumerate(hs[:50]):
        warm.observe("w", float(day), h)
    ecam = _ecam(records, hs)
    print(f"Tracker cost per sample, k={K}, best of 3 (engine learn_one per ECAM sample: "
          f"{ecam['engine'] * 1e6:.0f} us)")
    print(f"{'history n':>10} {'tracker us/sample':>18} {'/ engine':>9}")
    for n, seconds in _per_history(hs):
        print(f"{n:>10} {seconds * 1e6:>18.1f} {seconds / ecam['engine']:>9.2f}")
    print(f"ECAM replay (699 samples, histories <= 29): tracker alone "
          f"{ecam['observe'] * 1e6:.1f} us/sample ({ecam['observe'] / ecam['engine']:.2f} x the "
          f"engine); engine + tracker {ecam['both'] * 1e6:.0f} us vs engine alone "
          f"{ecam['engine'] * 1e6:.0f} us ({ecam['both'] / ecam['engine']:.2f} x)")


if __name__ == "__main__":
    main()
