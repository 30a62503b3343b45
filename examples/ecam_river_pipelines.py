"""ECAM infant gut cohort through river pipelines: communities from OnlineNMF feeding a river
model, against the same pipelines with river's preprocessing.LDA at the same k, in one run.

Tasks, each scored prequentially (predict, then learn, sample by sample):

- age: is the infant older than six months (day of life > 182)? LogisticRegression.
- day of life (regression, "microbiota age"): KNNRegressor(5), and LinearRegression.
- diet: breast- (bd) vs formula-dominated (fd) in the first three months, a label of the
  infant that holds for all its samples. LogisticRegression. Also scored on the samples of the
  first three months of life only, where the diet acts.

Stream order: the calendar date each sample was collected (ties by day of life), the order in
which a lab would have received them; infants of different ages are interleaved. Features: the
raw read counts ``{ASV: reads}`` (about 56 non-zero of 3,347 ASVs per sample). river's LDA
uses only which ASVs are present (its ``learn_transform_one`` reads the keys, not the counts);
OnlineNMF is given the counts, their log1p, and, like LDA, presence (1.0 per present ASV).

Each decomposition is followed by ``composition`` (community weights -> composition, so
sequencing depth drops out), ``StandardScaler`` and the task's model: the river pipeline
``decomposition | composition | StandardScaler | model``. The decomposition learns without
labels, so it is run once per sample for all tasks, as a river pipeline runs it: its features
before learning the sample feed ``predict``, then it learns the sample, then its features
after learning feed the downstream ``learn_one`` (river 0.26's ``Pipeline.learn_one`` learns
an unsupervised step before transforming). A prior baseline (no features) gives the floor.

Fair tuning: each decomposition has a small grid (:data:`GRIDS`); for every task its setting
is chosen by the score on the first half of the stream (the tuning part) and reported on the
second half (the evaluation part); the whole stream is reported too. Scores: scikit-learn's
accuracy, ROC AUC, MAE and R² over the part's prequential predictions.

Run: ``python examples/ecam_river_pipelines.py [--k 10] [--seed 0]`` (a few minutes: LDA is
slow); ``python -m benchmarks river`` runs it and writes benchmarks/output/river.md.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable, Iterator
from typing import NamedTuple

import numpy as np
import pandas as pd
from river import compose, dummy, linear_model, neighbors, preprocessing, stats
from sklearn import metrics

from onlinenmf.datasets import load_ecam
from onlinenmf.river import NMFTransformer

SIX_MONTHS = 182.0
THREE_MONTHS = 92.0

#: Each decomposition's grid: constructor arguments beyond (n_components, seed); an empty dict
#: is every default. OnlineNMF: the dictionary's refresh interval and memory; river's LDA: the
#: document-topic prior and the corpus size its learning rate is scaled by (its default 1e6,
#: or the stream's 699 samples).
GRIDS = {
    "OnlineNMF": [{}, {"refresh_every": 25}, {"forget_factor": 0.99},
                  {"refresh_every": 25, "forget_factor": 0.99}],
    "river LDA": [{}, {"alpha_theta": 0.1}, {"number_of_documents": 699},
                  {"alpha_theta": 0.1, "number_of_documents": 699}],
}


def ecam_stream() -> Iterator[tuple[dict, dict]]:
    """``(x, meta)`` per sample in collection order; x = {ASV id: reads} (non-zeros only)."""
    table = load_ecam()
    meta = table.metadata.copy()
    meta["collected"] = pd.to_datetime(meta["collection_timestamp"], format="%m/%d/%y")
    order = meta.sort_values(["collected", "time"], kind="stable").index
    X, features = table.counts, table.features
    for i in order:
        start, stop = X.indptr[i], X.indptr[i + 1]
        x = {features[c]: float(v) for c, v in zip(X.indices[start:stop], X.data[start:stop])}
        yield x, meta.loc[i].to_dict()


def log_counts(x: dict) -> dict:
    return {name: math.log1p(value) for name, value in x.items()}


def presence(x: dict) -> dict:
    """What river's LDA reads of a sample: which features are present."""
    return {name: 1.0 for name in x}


def decompositions(k: int, seed: int, with_lda: bool = True) -> dict[str, tuple[str, Callable]]:
    """The decompositions by name: (grid name, maker of a fresh step given grid settings)."""

    def nmf(transform=None):
        def make(**settings):
            step = NMFTransformer(n_components=k, seed=seed, **settings)
            return step if transform is None else compose.FuncTransformer(transform) | step
        return make

    steps = {
        f"OnlineNMF(k={k}), counts": ("OnlineNMF", nmf()),
        f"OnlineNMF(k={k}), log1p": ("OnlineNMF", nmf(log_counts)),
        f"OnlineNMF(k={k}), presence": ("OnlineNMF", nmf(presence)),
    }
    if with_lda:
        steps[f"river LDA(k={k}) (reads presence only)"] = (
            "river LDA", lambda **settings: preprocessing.LDA(n_components=k, seed=seed,
                                                              **settings))
    return steps


def composition(h: dict) -> dict:
    """Weights -> shares (river's Normalizer divides by zero on the all-zero h of a fresh model)."""
    total = sum(h.values())
    return {c: v / total for c, v in h.items()} if total > 0 else h


class Features(NamedTuple):
    """A decomposition's features of every sample: before it learned it (for predict) and
    after (for the downstream learn_one), and the seconds it took."""

    before: list[dict]
    after: list[dict]
    seconds: float


def features_of(step, xs: list[dict]) -> Features:
    before, after = [], []
    start = time.perf_counter()
    for x in xs:
        before.append(step.transform_one(x))
        step.learn_one(x)
        after.append(step.transform_one(x))
    return Features(before, after, time.perf_counter() - start)


#: The tasks: (kind, label of a sample's metadata, downstream model maker, subset or None).
TASKS = {
    "age > 6 months": ("classify", lambda m: m["time"] > SIX_MONTHS,
                       linear_model.LogisticRegression, None),
    "day of life, linear": ("regress", lambda m: float(m["time"]),
                            linear_model.LinearRegression, None),
    "day of life, KNN(5)": ("regress", lambda m: float(m["time"]),
                            lambda: neighbors.KNNRegressor(n_neighbors=5), None),
    "diet fd vs bd": ("classify", lambda m: m["diet"] == "fd",
                      linear_model.LogisticRegression, lambda m: m["time"] <= THREE_MONTHS),
}


def prequential(kind: str, model_of: Callable, label: Callable, metas: list[dict],
                features: Features | None) -> np.ndarray:
    """Predictions (probability of True, or the value) of a fresh pipeline, each made before
    the pipeline learns the sample. ``features`` None: the prior baseline, no features."""
    if features is None:
        model = dummy.PriorClassifier() if kind == "classify" else dummy.StatisticRegressor(
            stats.Mean())
    else:
        model = compose.FuncTransformer(composition) | preprocessing.StandardScaler() | model_of()
    out = np.zeros(len(metas))
    for i, meta in enumerate(metas):
        x_predict = {} if features is None else features.before[i]
        x_learn = {} if features is None else features.after[i]
        y = label(meta)
        if kind == "classify":
            out[i] = model.predict_proba_one(x_predict).get(True, 0.0)
        else:
            value = model.predict_one(x_predict)
            out[i] = 0.0 if value is None or not math.isfinite(value) else value
        model.learn_one(x_learn, y)
    return out


def scores(kind: str, y: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    if kind == "classify":
        auc = (metrics.roc_auc_score(y, predicted) if 0 < y.sum() < y.size else float("nan"))
        return {"accuracy": metrics.accuracy_score(y, predicted > 0.5), "ROC AUC": auc}
    return {"MAE": metrics.mean_absolute_error(y, predicted), "R²": metrics.r2_score(y, predicted)}


def parts(metas: list[dict], subset: Callable | None) -> dict[str, np.ndarray]:
    """Boolean masks of the scored parts: tuning (first half), evaluation (second), whole;
    with a subset, the evaluation part's samples in it."""
    n = len(metas)
    first = np.arange(n) < n // 2
    out = {"tuning": first, "evaluation": ~first, "whole": np.ones(n, bool)}
    if subset is not None:
        inside = np.array([bool(subset(m)) for m in metas])
        out["evaluation, first 3 months"] = ~first & inside
    return out


def settings_text(settings: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in settings.items()) or "defaults"


def main(k: int = 10, seed: int = 0, n_samples: int | None = None,
         with_lda: bool = True) -> dict[str, pd.DataFrame]:
    """Run every task; return {"results": best of grid per task and decomposition, "grid":
    every setting's tuning score, "speed": the decompositions' samples/s}."""
    samples = list(ecam_stream())[:n_samples]
    xs, metas = [x for x, _ in samples], [m for _, m in samples]
    print(f"ECAM: {len(samples)} samples of {len({m['subject'] for m in metas})} infants, "
          f"collection order; {sum(m['time'] > SIX_MONTHS for m in metas)} older than six "
          f"months; {sum(m['diet'] == 'fd' for m in metas)} formula-dominated; "
          f"{sum(m['time'] <= THREE_MONTHS for m in metas)} of the first three months. "
          f"k={k}, seed={seed}; tuning on samples 0-{len(metas) // 2 - 1}, evaluation on "
          f"{len(metas) // 2}-{len(metas) - 1}.")
    results, grid_rows, speed = [], [], []
    runs = {"no features (prior / mean)": [({}, None)]}
    for name, (grid, make) in decompositions(k, seed, with_lda).items():
        runs[name] = []
        for settings in GRIDS[grid]:
            features = features_of(make(**settings), xs)
            runs[name].append((settings, features))
            speed.append({"decomposition": name, "settings": settings_text(settings),
                          "samples/s (2 transforms + 1 learn)": len(xs) / features.seconds})
            print(f"  {name} [{settings_text(settings)}]: {features.seconds:.1f} s", flush=True)
    for task, (kind, label, model_of, subset) in TASKS.items():
        y = np.array([label(m) for m in metas], dtype=float)
        masks = parts(metas, subset)
        for name, candidates in runs.items():
            scored = []
            for settings, features in candidates:
                predicted = prequential(kind, model_of, label, metas, features)
                by_part = {part: scores(kind, y[mask], predicted[mask])
                           for part, mask in masks.items()}
                scored.append((settings, by_part))
                main_metric = "ROC AUC" if kind == "classify" else "MAE"
                grid_rows.append({"task": task, "model": name,
                                  "settings": settings_text(settings),
                                  f"tuning {main_metric}": by_part["tuning"][main_metric]})
            sign = -1.0 if kind == "classify" else 1.0  # AUC: higher is better; MAE: lower
            key = "ROC AUC" if kind == "classify" else "MAE"
            settings, by_part = min(scored, key=lambda s: sign * s[1]["tuning"][key])
            row = {"task": task, "model": name, "chosen settings": settings_text(settings)}
            for part, values in by_part.items():
                row.update({f"{part}: {metric}": value for metric, value in values.items()})
            results.append(row)
    tables = {"results": pd.DataFrame(results), "grid": pd.DataFrame(grid_rows),
              "speed": pd.DataFrame(speed)}
    for name, table in tables.items():
        print(f"\n{name}:")
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return tables


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    main(args.k, args.seed)
