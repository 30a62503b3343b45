"""The golden streams: what the engine answered before the core redesign, to the last bit.

Run ONLY on the pre-redesign commit f93f672 (the model core as it was before issue 11; its
engine, solvers, hyper, sharing and snapshot modules are those of f546680)::

    git worktree add --detach /tmp/golden f93f672
    cp tests/data/golden/make_golden.py /tmp/golden/tests/data/golden/
    cd /tmp/golden && PYTHONPATH=. python tests/data/golden/make_golden.py --write

Without ``--write`` it only prints what each scenario went through. It writes, beside this file,

* ``streams.npz``: the input stream (Poisson counts with a drift and features that appear
  late), stored so that the golden test does not depend on today's data generators;
* ``golden.npz``: per scenario, a 64-bit digest of every per-sample output (h of each
  ``learn_one``, H of each ``learn_many``, with the component ids), every prequential loss,
  the final W and the transforms of held-out samples;
* ``golden.json``: per scenario, the final features, component ids, events (without
  wall-clock times), counters, hyperparameters in force and ``loss_one`` of held-out samples;
* ``snapshot_v1_<scenario>.npz``: the snapshot each scenario writes half-way, in the format of
  that commit (version 1): ``tests/test_golden.py`` loads them with today's code (migration)
  and continues the stream from there, expecting the same outputs.

``tests/test_golden.py`` replays :func:`run` with today's code and compares with
``np.array_equal`` / exact equality: the redesign must not change a single bit.

A deliberate change of behaviour (a bug fix) re-records the scenarios it changes, and only
those, with today's code (``--rerecord NAME``, from the working tree)::

    PYTHONPATH=. python tests/data/golden/make_golden.py --rerecord b2_fixed

This replaces the scenario's entries in ``golden.npz`` and ``golden.json`` and records, as
``NAME.resumed.*`` and ``resumed_final``, what today's code answers when it continues the
scenario's old v1 snapshot (kept: it is what the old code wrote, and still tests migration).
Re-recorded so far (see ``RERECORDED``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

HERE = Path(__file__).resolve().parent
#: Scenario -> constructor parameters. "fixed": a fixed rank with re-seeding (dead components,
#: loss alarms after the drift); "adaptive": rank, sparsity and forgetting re-estimated (prunes,
#: drift, refits; Itakura-Saito supports no rank adaptation); "rank": rank and sparsity only
#: (births after the drift, then prunes); "shared": two workers exchanging statistics.
COMMON = {"forget_factor": 0.99, "refresh_every": 25, "buffer_size": 40, "seed": 0}
ADAPT = {"adapt_rank": True, "adapt_sparsity": True, "adapt_forgetting": True}
SCENARIOS: dict[str, dict[str, Any]] = {
    "b1_fixed": {"beta": 1, "n_components": 8, "l1_h": 0.5, **COMMON},
    "b1_adaptive": {"beta": 1, "n_components": 8, "k_max": 9, **ADAPT, **COMMON},
    "b1_rank": {"beta": 1, "n_components": 6, "k_max": 9, "adapt_rank": True,
                "adapt_sparsity": True, **COMMON},
    "b2_fixed": {"beta": 2, "n_components": 5, "l2_h": 0.1, "l1_w": 0.01, "l2_w": 0.01,
                 "refresh_sweeps": 2, "init": "core", **COMMON},
    "b2_adaptive": {"beta": 2, "n_components": 9, "k_max": 11, **ADAPT, **COMMON},
    "b2_rank": {"beta": 2, "n_components": 6, "k_max": 9, "adapt_rank": True,
                "adapt_sparsity": True, **COMMON},
    "b0_fixed": {"beta": 0, "n_components": 5, **COMMON},
    "b0_adaptive": {"beta": 0, "n_components": 5, "adapt_sparsity": True,
                    "adapt_forgetting": True, **COMMON},
    "b1_shared": {"beta": 1, "n_components": 6, **COMMON},
    "b2_shared": {"beta": 2, "n_components": 6, **COMMON},
}
#: Defaults changed since the golden streams were recorded (issue 13: drift detection on by
#: default), pinned to the values they had then: the recorded outputs stay those of these runs.
#: (Today's code only: the recording commit has no such parameter.)
PINNED = {"drift_threshold": None}
#: Why the beta = 1 scenarios without peers were re-recorded (a peer's statistics are not
#: restated, so b1_shared is unchanged).
RESTATED = ("a beta = 1 refresh re-solves the latest samples (up to buffer_size, at most 8 per "
            "sample since the previous refresh) against the new W, replaces their part of the "
            "statistics and takes the M-step again (issue 13: stale h; ECAM document "
            "completion at the defaults -3.558 -> -3.494 nats per held-out read)")
#: Why the scenarios under adapt_rank were re-recorded again (their buffer of 40 fills).
GROWN = ("adapt_rank also grows without a loss step: at each re-estimation with a full buffer, "
         "columns seeded from the residuals of every other recent sample are kept if they lower "
         "the others' loss by 0.5 % and take 1 % of their activation (issue 13: ECAM with "
         "adapt_rank from k = 10, -3.503 -> -3.273 nats per held-out read)")
#: Why the restating scenarios were re-recorded again (issue 13: restating's cost).
CHEAPER = ("restating rebuilds the statistics from the closed part and the open samples (none "
           "subtracted), re-solves with 2 sweeps, keeps up to 16 per sample since the previous "
           "refresh open (at most buffer_size) and scales that by how far W moved (none once "
           "settled): bench_engine's beta = 1 learn_one 892 -> 8,763 samples/s")
#: Scenarios re-recorded with later code, and why (each commit message says by how much).
RERECORDED = {
    "b2_fixed": "l2_w now penalises W in the beta = 2 refresh (issue 12: the column step left "
                "l2_w * W_j out of its gradient, so l2_w only damped the step)",
    "b1_fixed": f"{RESTATED}; then: {CHEAPER}",
    **dict.fromkeys(("b1_adaptive", "b1_rank"), f"{RESTATED}; then: {GROWN}; then: {CHEAPER}"),
    **dict.fromkeys(("b2_adaptive", "b2_rank"), GROWN),
}
#: The schedule: learn_one (warm-started every other sample) up to ONE, learn_many chunks up
#: to HALF, a snapshot round trip (to_bytes / from_bytes), learn_many then learn_one to the end.
ONE, HALF, CHUNK = 150, 450, 60
HELD_OUT = 12


def make_stream(seed: int = 7) -> tuple[sp.csr_matrix, list[str]]:
    """Poisson counts: 6 planted communities over 50 taxa, 2 replaced at sample 500, and 8
    taxa that first appear after the drift (a seventh community on new features)."""
    from onlinenmf.datasets import make_poisson_stream

    n = 900
    base = make_poisson_stream(n_features=50, n_components=6, n_samples=n, depth=1500,
                               active=2, taxa_per_community=10, drift_at=500, seed=seed)
    rng = np.random.RandomState(seed)
    late = np.zeros((n, 8))
    late[500:] = rng.poisson(rng.dirichlet(np.ones(8)) * 400, size=(n - 500, 8))
    late[500:][rng.rand(n - 500) < 0.5] = 0.0
    X = sp.hstack([base.X, sp.csr_matrix(late)]).tocsr()
    X.sort_indices()
    return X, list(base.features) + [f"late_{i}" for i in range(8)]


def row_dict(X: sp.csr_matrix, features: list[str], i: int) -> dict[str, float]:
    start, stop = X.indptr[i], X.indptr[i + 1]
    return {features[c]: float(v) for c, v in zip(X.indices[start:stop], X.data[start:stop])}


def events_of(model) -> list[dict[str, Any]]:
    """The model's events, without wall-clock times (the keys every event kind shares)."""
    return [{"kind": e["kind"], "sample": e.get("sample"), "component": e.get("component"),
             "old": e.get("old"), "new": e.get("new"), "reason": e.get("reason")}
            for e in model.events]


def floats(a) -> list:
    """Exact floats (JSON writes the shortest repr that reads back to the same double)."""
    return np.asarray(a, dtype=np.float64).tolist()


def digest(ids, values) -> int:
    """64 bits of the SHA-256 of one output's component ids and float64 bytes."""
    payload = np.asarray(ids, dtype=np.int64).tobytes() + np.ascontiguousarray(
        values, dtype=np.float64).tobytes()
    return int.from_bytes(hashlib.sha256(payload).digest()[:8], "little")


class Recorder:
    """Per-sample outputs of one model, in order: a digest of each output (h of a learn_one
    call, H of a learn_many call, with the component ids) and every prequential loss."""

    def __init__(self) -> None:
        self.digests: list[int] = []
        self.losses: list[np.ndarray] = []

    def one(self, model, x, warm) -> dict:
        h = model.learn_one(x, warm_start=warm)
        self.digests.append(digest(list(h), list(h.values())))
        self.losses.append(np.array(model.last_losses, dtype=np.float64))
        return h

    def many(self, model, X, features) -> None:
        H = model.learn_many(X, features=features)
        self.digests.append(digest(model.component_ids, H))
        self.losses.append(np.array(model.last_losses, dtype=np.float64))

    def result(self) -> dict[str, np.ndarray]:
        return {"digests": np.array(self.digests, dtype=np.uint64),
                "losses": np.concatenate(self.losses)}


def learn_range(model, recorder: Recorder, X, features, start: int, stop: int,
                single: bool, warm: dict) -> None:
    if single:
        for i in range(start, stop):
            h = recorder.one(model, row_dict(X, features, i), warm.get("h") if i % 2 else None)
            warm["h"] = h
    else:
        for chunk in range(start, stop, CHUNK):
            recorder.many(model, X[chunk : min(stop, chunk + CHUNK)], features)


def final_state(model, X, features) -> dict[str, Any]:
    """The model at the end: arrays (``W``, transforms of held-out samples) and JSON facts."""
    held = X[-HELD_OUT:]
    return {
        "W": np.array(model.W), "transform": model.transform_many(held, features=features),
        "features": model.features, "ids": model.component_ids,
        "events": events_of(model), "samples_learned": int(model.samples_learned),
        "model_version": int(model.model_version),
        "loss_one": [float(model.loss_one(row_dict(X, features, X.shape[0] - 1 - i)))
                     for i in range(3)],
        "hyperparameters": {key: value for key, value in model.hyperparameters.items()
                            if key != "relevance"},
        "relevance": floats(list(model.hyperparameters["relevance"].values())),
    }


def run(name: str, X: sp.csr_matrix, features: list[str], model_class,
        snapshot: Callable[[str, bytes], Any] | None = None) -> dict[str, Any]:
    """One scenario from the start; ``snapshot(name, data)`` receives the half-way snapshot
    and returns the model to continue with (default: ``model_class.from_bytes(data)``)."""
    params = SCENARIOS[name]
    if name.endswith("_shared"):
        return run_shared(name, X, features, model_class)
    model = model_class(**params)
    recorder, warm = Recorder(), {}
    learn_range(model, recorder, X, features, 0, ONE, True, warm)
    learn_range(model, recorder, X, features, ONE, HALF, False, warm)
    data = model.to_bytes()
    model = (snapshot or (lambda _, b: model_class.from_bytes(b)))(name, data)
    first = recorder.result()
    second = continue_from(model, X, features, warm)
    return {"first": first, "second": second["outputs"], "final": second["final"],
            "snapshot": data}


def continue_from(model, X, features, warm: dict | None = None) -> dict[str, Any]:
    """The second half of :func:`run`, from the model restored at the half-way point (with
    the warm start of the last learn_one of the first half)."""
    recorder, warm = Recorder(), {} if warm is None else warm
    learn_range(model, recorder, X, features, HALF, X.shape[0] - 200, False, warm)
    learn_range(model, recorder, X, features, X.shape[0] - 200, X.shape[0] - HELD_OUT, True,
                warm)
    return {"outputs": recorder.result(), "final": final_state(model, X, features)}


def run_shared(name: str, X: sp.csr_matrix, features: list[str], model_class) -> dict:
    """Two workers: even samples to the first, odd to the second; after each refresh a worker
    publishes its statistics and the other takes them."""
    models = [model_class(**SCENARIOS[name]) for _ in range(2)]
    recorders = [Recorder(), Recorder()]
    versions = [0, 0]
    for i in range(X.shape[0] - HELD_OUT):
        me = i % 2
        recorders[me].one(models[me], row_dict(X, features, i), None)
        for worker in range(2):
            if models[worker].model_version != versions[worker]:
                models[1 - worker].set_peer_statistics([models[worker].export_statistics()])
                versions[worker] = models[worker].model_version
    return {"first": recorders[0].result(), "second": recorders[1].result(),
            "final": final_state(models[0], X, features),
            "final_peer": final_state(models[1], X, features)}


def load_stream() -> tuple[sp.csr_matrix, list[str]]:
    with np.load(HERE / "streams.npz", allow_pickle=False) as data:
        X = sp.csr_matrix((data["data"].astype(np.float64), data["indices"].astype(np.int64),
                           data["indptr"].astype(np.int64)), shape=tuple(data["shape"]))
        return X, [str(f) for f in data["features"]]


def flatten(name: str, record: dict[str, Any]) -> tuple[dict[str, np.ndarray], dict]:
    """Split a scenario's record into arrays (for the .npz) and JSON facts."""
    arrays, facts = {}, {}
    for part in ("first", "second"):
        for key, value in record[part].items():
            arrays[f"{name}.{part}.{key}"] = value
    for part in ("final", "final_peer", "resumed_final"):
        if part not in record:
            continue
        facts[part] = {}
        for key, value in record[part].items():
            if isinstance(value, np.ndarray):
                arrays[f"{name}.{part}.{key}"] = value
            else:
                facts[part][key] = value
    return arrays, facts


def rerecord(name: str) -> None:
    """Replace one scenario's golden entries by what today's code answers (see the module
    docstring); the other scenarios' entries are left as they are, bit for bit."""
    from onlinenmf import OnlineNMF

    if name not in RERECORDED:
        raise SystemExit(f"--rerecord {name}: say why in RERECORDED first")
    SCENARIOS[name].update(PINNED)
    X, features = load_stream()
    arrays, facts = flatten(name, run(name, X, features, OnlineNMF))
    snapshot = HERE / f"snapshot_v1_{name}.npz"
    if snapshot.exists():
        model = OnlineNMF.from_bytes(snapshot.read_bytes(), source=snapshot.name)
        resumed = continue_from(model, X, features)
        for key, value in resumed["outputs"].items():
            arrays[f"{name}.resumed.{key}"] = value
        more, resumed_facts = flatten(name, {"first": {}, "second": {},
                                             "resumed_final": resumed["final"]})
        arrays.update(more)
        facts.update(resumed_facts)
    with np.load(HERE / "golden.npz", allow_pickle=False) as data:
        kept = {key: data[key] for key in data.files if not key.startswith(f"{name}.")}
    np.savez_compressed(HERE / "golden.npz", **kept, **arrays)
    everything = json.loads((HERE / "golden.json").read_text())
    everything[name] = facts
    (HERE / "golden.json").write_text(json.dumps(everything, allow_nan=False, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="write the golden files")
    parser.add_argument("--rerecord", metavar="NAME", help="re-record one scenario with "
                        "today's code (a deliberate change of behaviour)")
    args = parser.parse_args()
    if args.rerecord:
        rerecord(args.rerecord)
        return
    from onlinenmf import OnlineNMF

    X, features = make_stream()
    assert np.array_equal(X.data, np.round(X.data)) and X.data.max() < 2**31
    if args.write:
        np.savez_compressed(HERE / "streams.npz", data=X.data.astype(np.int32),
                            indices=X.indices.astype(np.int16), indptr=X.indptr.astype(np.int32),
                            shape=np.array(X.shape), features=np.array(features))
    X, features = load_stream()
    arrays, facts = {}, {}
    for name in SCENARIOS:
        record = run(name, X, features, OnlineNMF)
        data = record.pop("snapshot", None)
        if args.write and data is not None:
            (HERE / f"snapshot_v1_{name}.npz").write_bytes(data)
        more, facts[name] = flatten(name, record)
        arrays.update(more)
        final = record["final"]
        kinds = sorted({e["kind"] for e in final["events"]})
        print(f"{name}: k={len(final['ids'])} m={len(final['features'])} "
              f"version={final['model_version']} events={len(final['events'])} {kinds}")
    if args.write:
        np.savez_compressed(HERE / "golden.npz", **arrays)
        (HERE / "golden.json").write_text(json.dumps(facts, allow_nan=False, indent=1) + "\n")


if __name__ == "__main__":
    main()
