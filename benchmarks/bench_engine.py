"""Engine benchmark (issue 2): throughput against scikit-learn's MiniBatchNMF in the same run,
throughput flat in m, and held-out "document completion" likelihood on the ECAM cohort against
MiniBatchNMF and river's LDA at the same k.

Run: ``python -m benchmarks engine``.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import scipy.sparse as sp

from onlinenmf import COMPILED, OnlineNMF, beta_divergence
from onlinenmf.datasets import load_ecam

K = 10


def poisson_counts(m: int, n: int, seed: int = 0, support: int = 120, active: int = 3):
    """n samples over m features: ``active`` of K communities (each on ``support`` random
    features) mixed per sample, Poisson reads deep enough that nearly every supported feature
    is non-zero (nnz ~ 300-350, whatever m)."""
    rng = np.random.default_rng(seed)
    W = np.zeros((m, K))
    for j in range(K):
        W[rng.choice(m, support, replace=False), j] = rng.gamma(2.0, 1.0, support)
    W /= W.sum(axis=0)
    H = np.zeros((n, K))
    for i in range(n):
        H[i, rng.choice(K, active, replace=False)] = rng.dirichlet(np.ones(active)) * 60_000
    X = sp.csr_matrix(rng.poisson(H @ W.T).astype(np.float64))
    return X, [f"f{i}" for i in range(m)]


def as_dicts(X, names):
    return [{names[c]: v for c, v in zip(X.indices[X.indptr[i]:X.indptr[i + 1]],
                                          X.data[X.indptr[i]:X.indptr[i + 1]])}
            for i in range(X.shape[0])]


def rate_learn_one(beta: int, X, names, warmup: int = 300) -> float:
    samples = as_dicts(X, names)
    model = OnlineNMF(n_components=K, beta=beta, seed=0)
    for x in samples[:warmup]:  # compile, register features, first refreshes
        model.learn_one(x)
    start = time.perf_counter()
    for x in samples[warmup:]:
        model.learn_one(x)
    return (len(samples) - warmup) / (time.perf_counter() - start)


def rate_sklearn_partial_fit(beta: int, X, n: int = 150) -> float:
    from sklearn.decomposition import MiniBatchNMF

    loss = "frobenius" if beta == 2 else "kullback-leibler"
    model = MiniBatchNMF(K, beta_loss=loss, init="random", random_state=0)
    model.partial_fit(X[:50].toarray())
    rows = [X[i : i + 1].toarray() for i in range(50, 50 + n)]
    start = time.perf_counter()
    for row in rows:
        model.partial_fit(row)
    return n / (time.perf_counter() - start)


def throughput_table() -> None:
    X500, names500 = poisson_counts(500, 3300)
    print(f"numba compiled: {COMPILED}; m=500, k={K}, mean nnz={X500.getnnz(axis=1).mean():.0f}")
    print(f"{'beta':>4} {'learn_one/s':>12} {'sklearn partial_fit/s':>22} {'ratio':>7} "
          f"{'target':>8}")
    for beta, target in ((2, 10_000), (1, 5_000)):
        ours = rate_learn_one(beta, X500, names500)
        peer = rate_sklearn_partial_fit(beta, X500)
        print(f"{beta:>4} {ours:>12,.0f} {peer:>22,.0f} {ours / peer:>6.0f}x "
              f"{'>=' + format(target, ','):>8}/s, >=25x")
    X50k, names50k = poisson_counts(50_000, 3300)
    print(f"\nflat in m: m=50,000, mean nnz={X50k.getnnz(axis=1).mean():.0f}")
    print(f"{'beta':>4} {'m=500 /s':>10} {'m=50,000 /s':>12} {'ratio':>6} (target >= 0.5)")
    for beta in (2, 1):
        small = rate_learn_one(beta, X500, names500)
        large = rate_learn_one(beta, X50k, names50k)
        print(f"{beta:>4} {small:>10,.0f} {large:>12,.0f} {large / small:>6.2f}")


def batch_table() -> None:
    from sklearn.decomposition import MiniBatchNMF

    X, names = poisson_counts(500, 20_000, seed=1)
    dense = X.toarray()
    print(f"\nmini-batches: n=20,000, m=500, k={K}; final loss = mean per-sample divergence "
          "of the whole data under the final W")
    print(f"{'beta':>4} {'ours: s':>8} {'loss':>10} {'MiniBatchNMF.fit: s':>20} {'loss':>10} "
          f"{'speed-up':>9}")
    for beta in (2, 1):
        model = OnlineNMF(n_components=K, beta=beta, seed=0)
        model.learn_many(X[:256], features=names)  # compile outside the clock
        model = OnlineNMF(n_components=K, beta=beta, seed=0)
        start = time.perf_counter()
        for offset in range(0, X.shape[0], 256):
            model.learn_many(X[offset : offset + 256], features=names)
        ours_time = time.perf_counter() - start
        ours_loss = float(np.mean(
            [model.loss_one(x) for x in as_dicts(X[:2000], names)]))
        loss = "frobenius" if beta == 2 else "kullback-leibler"
        peer = MiniBatchNMF(K, beta_loss=loss, batch_size=1024, random_state=0, init="nndsvda")
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            H = peer.fit_transform(dense)
        peer_time = time.perf_counter() - start
        peer_loss = beta_divergence(dense[:2000], H[:2000] @ peer.components_, beta) / 2000
        print(f"{beta:>4} {ours_time:>8.2f} {ours_loss:>10.1f} {peer_time:>20.2f} "
              f"{peer_loss:>10.1f} {peer_time / ours_time:>8.1f}x")


def completion_scores(table, k: int = K, seed: int = 0) -> dict[str, float]:
    """Held-out log-likelihood per read by document completion, streamed in time order.

    Each arriving sample's reads are split in two halves at random (binomial thinning); each
    model solves the sample's mixture on the first half and scores the second half under its
    normalised reconstruction, *before* learning the sample. Probabilities are floored at 1e-9
    (then renormalised) for every model alike.
    """
    from river.preprocessing import LDA
    from sklearn.decomposition import MiniBatchNMF

    rng = np.random.default_rng(seed)
    counts = table.counts.tocsr()
    names = table.features
    m = len(names)
    ours = OnlineNMF(n_components=k, beta=1, seed=0, refresh_every=20, forget_factor=0.995)
    peer = MiniBatchNMF(k, beta_loss="kullback-leibler", init="random", random_state=0,
                        max_iter=50)
    lda = LDA(n_components=k, number_of_documents=counts.shape[0], seed=0)
    totals = {"onlinenmf": 0.0, "MiniBatchNMF": 0.0, "river LDA": 0.0}
    reads = 0.0
    fitted_peer = False

    def score(p: np.ndarray, held: np.ndarray, columns: np.ndarray) -> float:
        p = np.maximum(p, 1e-9)
        p = p / p.sum()
        return float(held @ np.log(p[columns]))

    for i in range(counts.shape[0]):
        start, stop = counts.indptr[i], counts.indptr[i + 1]
        columns, values = counts.indices[start:stop], counts.data[start:stop]
        first = rng.binomial(values.astype(np.int64), 0.5).astype(np.float64)
        held = values - first
        full = {names[c]: v for c, v in zip(columns, values)}
        half = {names[c]: v for c, v in zip(columns, first) if v > 0}
        if i > 0 and held.sum() > 0 and half:
            reads += held.sum()
            h = np.array(list(ours.transform_one(half).values()))
            p = np.zeros(m)
            rows = [ours._index.get(names[c]) for c in range(m)]
            known = np.array([r is not None for r in rows])
            p[known] = ours.W[[r for r in rows if r is not None]] @ h
            totals["onlinenmf"] += score(p, held, columns)
            if fitted_peer:
                vector = np.zeros((1, m))
                vector[0, columns] = first
                h_peer = peer.transform(vector)
                totals["MiniBatchNMF"] += score((h_peer @ peer.components_)[0], held, columns)
            else:
                totals["MiniBatchNMF"] += score(np.ones(m), held, columns)
            theta = np.array(list(lda.transform_one(half).values()))
            theta = theta / max(theta.sum(), 1e-300)
            weights, _ = LDA._compute_weights(k, lda.nu_1, lda.nu_2)
            p_lda = np.zeros(m)
            for c in range(m):
                index = lda.word_to_index.get(names[c])
                if index is not None and index - 1 < len(weights[0]):
                    p_lda[c] = sum(theta[t] * weights[t][index - 1] for t in range(k))
            totals["river LDA"] += score(p_lda, held, columns)
        ours.learn_one(full)
        vector = np.zeros((1, m))
        vector[0, columns] = values
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            peer.partial_fit(vector)
        fitted_peer = True
        lda.learn_one(full)
    return {name: total / reads for name, total in totals.items()}


def completion_table() -> None:
    table = load_ecam()
    print(f"\nECAM document completion (699 infant samples in time order, k={K}): "
          "held-out log-likelihood per read (higher is better)")
    start = time.perf_counter()
    scores = completion_scores(table)
    for name, value in scores.items():
        print(f"  {name:<14} {value:8.3f}")
    print(f"  ({time.perf_counter() - start:.0f} s; uniform over taxa would give "
          f"{np.log(1 / table.counts.shape[1]):.3f})")


def main() -> None:
    throughput_table()
    batch_table()
    completion_table()


if __name__ == "__main__":
    main()
