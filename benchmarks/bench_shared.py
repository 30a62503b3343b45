"""Shared dictionary (``consume microbiome --share-dictionary``): what two workers gain.

Two workers each learn the subjects of their own partitions; with sharing, each also adds
the other's latest statistics at every refresh (as the stats topic delivers them, here
in-process: export, encode to the stats-record bytes, decode, ``set_peer_statistics``).

* ``ECAM``: the 699 samples in time order, subjects split in two (at random, or by
  delivery mode: a non-iid split). KL per read (``loss_one``, the beta=1 divergence over the
  sample's total count) of each worker's final dictionary on its *own* subjects and on the
  *other* worker's, against one worker that learns every subject (the peer). Mean over
  seeds 0-2, both workers.
* ``planted``: subjects of worker 1 carry communities A..D only, worker 2's E..H
  (tests/test_sharing.py's stream, 600 samples each): the smallest Hungarian-matched cosine
  between the 8 planted communities and each worker's W.
* cost: one refresh with a peer's statistics (matching included) and one exchange (export,
  encode, decode, ``set_peer_statistics``) against a refresh alone, same model.

Run: ``python -m benchmarks shared`` (about 15 s). Writes ``benchmarks/output/shared.md``.
"""

from __future__ import annotations

import time
from copy import deepcopy

import numpy as np

from benchmarks import _output
from consumers.shared import decode_statistics, encode_statistics
from onlinenmf import OnlineNMF
from onlinenmf.datasets import load_ecam

PARAMS = {"n_components": 10, "beta": 1, "refresh_every": 50}


def _replay(halves: list[list[dict]], share: bool, seed: int, k: int = 10) -> tuple:
    models = [OnlineNMF(**{**PARAMS, "n_components": k}, seed=seed) for _ in range(2)]
    versions = [0, 0]
    order = sorted((r["time"], w, i) for w in (0, 1) for i, r in enumerate(halves[w]))
    start = time.perf_counter()
    for _, w, i in order:
        models[w].learn_one(halves[w][i]["counts"])
        if share and models[w].model_version != versions[w]:
            record = encode_statistics(models[w].export_statistics(), str(w), versions[w])
            models[1 - w].set_peer_statistics([decode_statistics(record)[2]])
        versions[w] = models[w].model_version
    return models, time.perf_counter() - start


def _kl_per_read(model: OnlineNMF, records: list[dict]) -> float:
    loss = sum(model.loss_one(r["counts"]) for r in records)
    return loss / sum(sum(r["counts"].values()) for r in records)


def _ecam() -> list[tuple[str, str, float, float]]:
    records = list(load_ecam().records())
    subjects = sorted({r["subject"] for r in records})
    delivery = {r["subject"]: r["meta"].get("delivery") for r in records}
    splits = {"random halves": lambda s: subjects.index(s) % 2,
              "by delivery": lambda s: int(delivery[s] == "Cesarean")}
    rows = []
    for name, side in splits.items():
        halves = [[r for r in records if side(r["subject"]) == w] for w in (0, 1)]
        for mode in ("alone", "shared", "one worker, all subjects"):
            own, other = [], []
            for seed in range(3):
                if mode == "one worker, all subjects":
                    single = OnlineNMF(**PARAMS, seed=seed)
                    for r in records:
                        single.learn_one(r["counts"])
                    models = [single, single]
                else:
                    models, _ = _replay(halves, mode == "shared", seed)
                for w in (0, 1):
                    own.append(_kl_per_read(models[w], halves[w]))
                    other.append(_kl_per_read(models[w], halves[1 - w]))
            rows.append((name, mode, float(np.mean(own)), float(np.mean(other))))
    return rows


def _cost(repeats: int = 30) -> tuple[float, float, float]:
    """Seconds per refresh: alone; with one peer (matching included); and the exchange
    (export, encode, decode, set_peer_statistics). Two workers trained on ECAM halves."""
    records = list(load_ecam().records())
    models, _ = _replay([records[0::2], records[1::2]], True, 0)
    model, peer = models
    stats = peer.export_statistics()
    alone = deepcopy(model)
    alone.set_peer_statistics([])
    timings = []
    for subject in (alone, model):
        start = time.perf_counter()
        for _ in range(repeats):
            subject.refresh()
        timings.append((time.perf_counter() - start) / repeats)
    start = time.perf_counter()
    for sequence in range(repeats):
        record = encode_statistics(peer.export_statistics(), "w", sequence)
        model.set_peer_statistics([decode_statistics(record)[2]])
    exchange = (time.perf_counter() - start) / repeats
    assert model.n_features >= len(stats["features"])
    return timings[0], timings[1], exchange


def _planted() -> list[tuple[str, float, float]]:
    from tests.test_sharing import matched_cosines, split_stream

    planted, first, second = split_stream(600)
    rows = []
    for share in (False, True):
        models, _ = _replay([[{"time": i, "counts": x} for i, x in enumerate(half)]
                             for half in (first, second)], share, seed=0, k=8)
        rows.append(("shared" if share else "alone",
                     *(float(matched_cosines(m, planted).min()) for m in models)))
    return rows


def main() -> None:
    header = _output.provenance("python -m benchmarks shared")
    rows = _ecam()
    params = ", ".join(f"{k}={v}" for k, v in PARAMS.items())
    lines = [f"ECAM, two workers, OnlineNMF({params}, seed): KL per read of each final "
             "dictionary (loss_one over the sample's reads), mean over seeds 0-2 and both "
             "workers.", "",
             "| split | mode | own subjects | other subjects |", "|---|---|---|---|"]
    lines += [f"| {name} | {mode} | {own:.2f} | {other:.2f} |" for name, mode, own, other in rows]
    alone, shared, exchange = _cost()
    per_record = (shared - alone + exchange) / PARAMS["refresh_every"]
    lines += ["", f"Cost per refresh (ECAM, {len(load_ecam().features):,} taxa x k = 10): refresh "
              f"alone {1e3 * alone:.2f} ms; with one peer {1e3 * shared:.2f} ms "
              f"({shared / alone:.1f}x); the exchange (export, encode, decode, set) "
              f"{1e3 * exchange:.2f} ms ({exchange / alone:.1f}x the refresh alone). Sharing's "
              f"cost per record (the peer's share of the refresh plus the exchange, over "
              f"refresh_every = {PARAMS['refresh_every']}): {1e6 * per_record:.0f} µs.", "",
              "Planted: worker 1 sees communities A..D only, worker 2 E..H (smallest matched "
              "cosine of the 8 planted communities).", "",
              "| mode | worker 1 | worker 2 |", "|---|---|---|"]
    lines += [f"| {mode} | {a:.2f} | {b:.2f} |" for mode, a, b in _planted()]
    print("\n".join(lines))
    _output.write("shared.md", ["# Shared dictionary (benchmarks/bench_shared.py)", "", header,
                                "", *lines])


if __name__ == "__main__":
    main()
