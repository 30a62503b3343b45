"""ECAM infant gut cohort through river pipelines: communities from OnlineNMF feeding a river
model, against the same pipelines with river's preprocessing.LDA at the same k, in one run.

Tasks, each scored prequentially (predict, then learn, sample by sample):

- age: is the infant older than six months (day of life > 182)? LogisticRegression.
- day of life (regression, "microbiota age"): KNNRegressor, and LinearRegression.
- diet: breast- (bd) vs formula-dominated (fd) in the first three months, a label of the
  infant that holds for all its samples. LogisticRegression. Also scored on the samples of the
  first three months of life only, where the diet acts.

Stream order: the calendar date each sample was collected (ties by day of life), the order in
which a lab would have received them; infants of different ages are interleaved. Features: the
raw read counts ``{ASV: reads}`` (about 56 non-zero of 3,347 ASVs per sample). river's LDA
uses only which ASVs are present (its ``learn_transform_one`` reads the keys, not the counts);
OnlineNMF is given the counts, their log1p, and, like LDA, presence (1.0 per present ASV).

Each decomposition is followed by ``composition`` (community weights -> composition,
so sequencing depth drops out) and ``StandardScaler``. A prior baseline (no features) gives the
floor. Run: ``python examples/ecam_river_pipelines.py [--k 10] [--seed 0]``.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable, Iterator

import pandas as pd
from river import compose, dummy, linear_model, metrics, neighbors, preprocessing, stats

from onlinenmf.datasets import load_ecam
from onlinenmf.river import OnlineNMF

SIX_MONTHS = 182.0
THREE_MONTHS = 92.0


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


def decompositions(k: int, seed: int, with_lda: bool = True) -> dict[str, Callable]:
    """Fresh decomposition steps by name (a new instance for every pipeline)."""

    def nmf():
        return OnlineNMF(n_components=k, refresh_every=25, seed=seed)

    steps = {
        f"OnlineNMF(k={k}) counts": nmf,
        f"OnlineNMF(k={k}) log1p": lambda: compose.FuncTransformer(log_counts) | nmf(),
        f"OnlineNMF(k={k}) presence": lambda: compose.FuncTransformer(presence) | nmf(),
    }
    if with_lda:
        steps[f"river LDA(k={k})"] = lambda: preprocessing.LDA(n_components=k, seed=seed)
    return steps


def composition(h: dict) -> dict:
    """Weights -> shares (river's Normalizer divides by zero on the all-zero h of a fresh model)."""
    total = sum(h.values())
    return {c: v / total for c, v in h.items()} if total > 0 else h


def features(step) -> object:
    return step | compose.FuncTransformer(composition) | preprocessing.StandardScaler()


def classify(samples, label: Callable, subset: Callable | None, k: int, seed: int,
             with_lda: bool = True) -> list[dict]:
    models = {"prior (no features)": dummy.PriorClassifier()}
    for name, make in decompositions(k, seed, with_lda).items():
        models[name] = features(make()) | linear_model.LogisticRegression()
    rows = []
    for name, model in models.items():
        acc, auc, acc_sub, auc_sub = (metrics.Accuracy(), metrics.ROCAUC(),
                                      metrics.Accuracy(), metrics.ROCAUC())
        start = time.perf_counter()
        for x, meta in samples:
            y = label(meta)
            proba = model.predict_proba_one(x)
            p = proba.get(True, 0.0)
            y_pred = p > 0.5 if proba else False
            for metric in (acc, auc) + ((acc_sub, auc_sub) if subset and subset(meta) else ()):
                metric.update(y, p if isinstance(metric, metrics.ROCAUC) else y_pred)
            model.learn_one(x, y)
        row = {"model": name, "accuracy": acc.get(), "ROC AUC": auc.get()}
        if subset:
            row.update({"accuracy (subset)": acc_sub.get(), "ROC AUC (subset)": auc_sub.get()})
        rows.append({**row, "seconds": time.perf_counter() - start})
    return rows


def regress(samples, k: int, seed: int, with_lda: bool = True) -> list[dict]:
    models = {"mean (no features)": dummy.StatisticRegressor(stats.Mean())}
    for name, make in decompositions(k, seed, with_lda).items():
        models[f"{name} | KNN(5)"] = features(make()) | neighbors.KNNRegressor(n_neighbors=5)
        models[f"{name} | Linear"] = features(make()) | linear_model.LinearRegression()
    rows = []
    for name, model in models.items():
        mae, rmse, r2 = metrics.MAE(), metrics.RMSE(), metrics.R2()
        start = time.perf_counter()
        for x, meta in samples:
            y = float(meta["time"])
            y_pred = model.predict_one(x)
            y_pred = 0.0 if y_pred is None or not math.isfinite(y_pred) else y_pred
            for metric in (mae, rmse, r2):
                metric.update(y, y_pred)
            model.learn_one(x, y)
        rows.append({"model": name, "MAE (days)": mae.get(), "RMSE (days)": rmse.get(),
                     "R2": r2.get(), "seconds": time.perf_counter() - start})
    return rows


def main(k: int = 10, seed: int = 0, n_samples: int | None = None,
         with_lda: bool = True) -> dict[str, pd.DataFrame]:
    samples = list(ecam_stream())[:n_samples]
    young = [meta["time"] <= THREE_MONTHS for _, meta in samples]
    print(f"ECAM: {len(samples)} samples of {len({m['subject'] for _, m in samples})} infants, "
          f"collection order; {sum(m['time'] > SIX_MONTHS for _, m in samples)} older than six "
          f"months; {sum(m['diet'] == 'fd' for _, m in samples)} formula-dominated; "
          f"{sum(young)} of the first three months. k={k}, seed={seed}.")
    results = {
        "age > 6 months": classify(samples, lambda m: m["time"] > SIX_MONTHS, None, k, seed,
                                   with_lda),
        "day of life": regress(samples, k, seed, with_lda),
        "diet fd vs bd (subset: first 3 months)": classify(
            samples, lambda m: m["diet"] == "fd", lambda m: m["time"] <= THREE_MONTHS, k, seed,
            with_lda),
    }
    tables = {}
    for task, rows in results.items():
        table = pd.DataFrame(rows).set_index("model")
        tables[task] = table
        print(f"\n{task}, prequential:")
        print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    return tables


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    main(args.k, args.seed)
