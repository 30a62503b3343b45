"""Subject tracker cost per sample (issue 5 / the Kafka consumer's tracking overhead).

The Tracker's work per sample is bookkeeping plus one growth fit (Theil-Sen slopes of log
abundance per component over the subject's history window). This measures that work alone
with :meth:`Tracker.observe` (activations precomputed, so the engine's solve is not in it).
Peers measured in the same run: the same tracker with the growth fit written plainly in
numpy (sort of all pairwise slopes, :func:`onlinenmf.tracking.theil_sen`, the data rebuilt
from the history each sample: the tracker's first implementation; same results), and the
engine's own ``learn_one``, which the consumer pays anyway.

* ``history`` rows: subjects whose history already holds n-1 samples receive their n-th one;
  the time of that observe, per sample (k = 10, activations of real ECAM samples).
* ``ECAM replay``: the 699 samples of the cohort in time order (histories up to 29 samples),
  tracker alone, then engine + tracker (``Tracker.learn_one``) against the engine alone.

Run: ``python -m benchmarks tracking`` (about 40 s).
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Hashable
from copy import deepcopy

import numpy as np

from onlinenmf import OnlineNMF, Tracker
from onlinenmf.datasets import load_ecam
from onlinenmf.tracking import theil_sen

K = 10
HISTORIES = (5, 10, 30, 60, 128)
SUBJECTS = 200  # subjects timed per history length


class NumpyTracker(Tracker):
    """The tracker with its growth fit in plain numpy (the peer; bit-identical results)."""

    def _growth_fit(self, subject: Hashable) -> tuple[list, list, list, list, list]:
        state = self._state_of(subject)
        self._reproject(subject, state)
        times = np.asarray(state.times)
        start = 0 if self.window is None else bisect.bisect_left(state.times,
                                                                  times[-1] - self.window)
        times = times[start:]
        if len(times) < self.min_points:
            return [], [], [], [], []
        window = [state.row(i) for i in range(start, len(state))]  # the history as dicts
        ids = sorted(set().union(*window))
        column = {c: j for j, c in enumerate(ids)}
        values = np.full((len(window), len(ids)), np.nan)
        for i, h in enumerate(window):
            for c, w in h.items():
                values[i, column[c]] = w
        totals = np.nansum(values, axis=1)
        if self.growth_of == "composition":
            values = values / np.where(totals > 0, totals, 1.0)[:, None]
            floor = self.detection
        else:
            floor = self.detection * float(totals.mean())
        if not floor > 0:
            return [], [], [], [], []
        alive = ~np.isnan(values)
        above = (np.where(alive, values, 0.0) > floor).sum(axis=0)
        logs = np.log(np.maximum(np.nan_to_num(values, nan=floor), floor))
        full = alive.all(axis=0)
        chosen = [j for j in range(len(ids)) if above[j] >= self.min_points]
        together = [j for j in chosen if full[j]]
        out = {}
        if together:  # components present throughout: one vectorised call
            slope, low, high = theil_sen(times, logs[:, together])
            for i, j in enumerate(together):
                if np.isfinite(slope[i]):
                    out[ids[j]] = (float(slope[i]), float(low[i]), float(high[i]), len(times))
        for j in chosen:
            rows = alive[:, j]
            if full[j] or rows.sum() < self.min_points:
                continue
            slope, low, high = theil_sen(times[rows], logs[rows, j][:, None])
            if np.isfinite(slope[0]):
                out[ids[j]] = (float(slope[0]), float(low[0]), float(high[0]), int(rows.sum()))
        fits = [out[c] for c in sorted(out)]
        return (sorted(out), [f[0] for f in fits], [f[1] for f in fits],
                [f[2] for f in fits], [f[3] for f in fits])


def _activations() -> tuple[list[dict], list[dict[int, float]]]:
    records = list(load_ecam().records())
    model = OnlineNMF(n_components=K, beta=1, refresh_every=100, seed=0)
    for record in records:  # a trained dictionary, then the activations it gives
        model.learn_one(record["counts"])
    return records, [model.transform_one(r["counts"]) for r in records]


def _per_sample(kind: type[Tracker], hs: list[dict[int, float]], n: int) -> float:
    tracker = kind(OnlineNMF(n_components=K, beta=1, seed=0), max_history=max(HISTORIES))
    draw = 0
    for s in range(SUBJECTS):  # fill each subject with n - 1 samples (not timed)
        for day in range(n - 1):
            tracker.observe(s, float(day), hs[draw % len(hs)])
            draw += 1
    best = np.inf
    for repeat in range(3):  # the n-th sample of every subject, timed; best of 3
        copy = deepcopy(tracker)  # each repeat starts from histories of n - 1
        start = time.perf_counter()
        for s in range(SUBJECTS):
            copy.observe(s, float(n - 1), hs[(s * 7 + repeat) % len(hs)])
        best = min(best, (time.perf_counter() - start) / SUBJECTS)
    return best


def _ecam(records: list[dict], hs: list[dict[int, float]]) -> dict[str, float]:
    n = len(records)
    best = {"observe": np.inf, "numpy": np.inf, "engine": np.inf, "both": np.inf}
    for _ in range(3):
        for key, kind in (("observe", Tracker), ("numpy", NumpyTracker)):
            tracker = kind(OnlineNMF(n_components=K, beta=1, seed=0))
            start = time.perf_counter()
            for record, h in zip(records, hs):
                tracker.observe(record["subject"], record["time"], h)
            best[key] = min(best[key], (time.perf_counter() - start) / n)
        model = OnlineNMF(n_components=K, beta=1, refresh_every=100, seed=0)
        last: dict = {}
        start = time.perf_counter()
        for record in records:  # the engine alone, warm-started like the consumer does
            last[record["subject"]] = model.learn_one(record["counts"],
                                                      warm_start=last.get(record["subject"]))
        best["engine"] = min(best["engine"], (time.perf_counter() - start) / n)
        tracker = Tracker(OnlineNMF(n_components=K, beta=1, refresh_every=100, seed=0))
        start = time.perf_counter()
        for record in records:
            tracker.learn_one(record["counts"], subject=record["subject"], time=record["time"])
        best["both"] = min(best["both"], (time.perf_counter() - start) / n)
    return best


def main() -> None:
    records, hs = _activations()
    warm = Tracker(OnlineNMF(n_components=K, beta=1, seed=0))  # compile before timing
    for day, h in enumerate(hs[:50]):
        warm.observe("w", float(day), h)
    print(f"Tracker cost per sample (observe), k={K}, best of 3; peer: the same tracker with "
          "the growth fit in plain numpy")
    print(f"{'history n':>10} {'tracker us':>11} {'numpy peer us':>14} {'speed-up':>9}")
    for n in HISTORIES:
        ours, peer = _per_sample(Tracker, hs, n), _per_sample(NumpyTracker, hs, n)
        print(f"{n:>10} {ours * 1e6:>11.1f} {peer * 1e6:>14.1f} {peer / ours:>8.1f}x")
    ecam = _ecam(records, hs)
    print(f"ECAM replay (699 samples, histories <= 29): tracker {ecam['observe'] * 1e6:.1f} us"
          f"/sample, numpy peer {ecam['numpy'] * 1e6:.1f} us "
          f"({ecam['numpy'] / ecam['observe']:.1f}x); engine + tracker "
          f"{ecam['both'] * 1e6:.0f} us vs engine alone {ecam['engine'] * 1e6:.0f} us "
          f"({ecam['both'] / ecam['engine']:.2f}x)")


if __name__ == "__main__":
    main()
