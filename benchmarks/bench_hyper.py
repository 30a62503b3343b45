"""Hyperparameters re-estimated while streaming (issue 6): forgetting, rank, sparsity.

1. Drift: a Poisson community stream whose 2 of 8 communities are replaced at sample 3000.
   Prequential loss per memory length after the drift, as a ratio to the post-drift batch
   oracle (scikit-learn NMF fitted on the post-drift samples), for automatic forgetting
   (Page-Hinkley on the loss), fixed rho = 0.998 (the user's memory of 500), fixed rho =
   0.9995 (a long memory), and shadow dictionaries (three models with rho in {0.99, 0.998,
   0.9995} run side by side; each refresh window is answered by the one with the lowest
   prequential loss over the previous window: the alternative named in the design, three
   times the cost). Frobenius (beta = 2) and KL (beta = 1).
   What does what in the automatic mode (ablations, by patching the re-estimator in the run:
   the detector's memory cut alone, without the refit of the recent buffer; the refit alone,
   with the memory left at the user's rho or with no forgetting at all, rho = 1).
2. Stationary stream, everything automatic, against the batch oracle.
   Planted rank 6 -> 8 -> 5 (tests/test_hyper.py's stream, memory 200 samples, ARD on): when
   the rank is within 1 of the planted one, and exact, for good after each change.
3. Swimmer (Tan & Fevotte's ARD test): streamed with k starting at 25; rank over time and the
   cosine of each of the 16 limb parts with its best component. And ``init="core"`` on a
   planted stream without a shared part: its rank and its match to the planted communities.
4. CBCL faces (Lee & Seung 1999: 2429 faces, k = 49, KL), streamed online (the default start
   and ``init="core"``) vs batch NMF: share of near-zero pixels in W and in h; montage of the
   default start's and the batch basis in benchmarks/output/cbcl_basis.png. CBCL is read
   from the staged copy (never shipped); skipped when absent.

Run: ``python -m benchmarks hyper`` (a few minutes on 2 cores). Writes
``benchmarks/output/hyper.md``.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from unittest import mock

import numpy as np
from sklearn.decomposition import NMF

from benchmarks import _output
from onlinenmf import OnlineNMF
from onlinenmf.datasets import load_cbcl, load_swimmer, make_poisson_stream, swimmer_parts
from onlinenmf.hyper import Reestimator
from onlinenmf.learner import Learner

OUTPUT = _output.OUTPUT
CHUNK = 50
MEMORY = 500


def row_losses(X, R, beta: int) -> np.ndarray:
    X = np.asarray(X.todense()) if hasattr(X, "todense") else np.asarray(X)
    if beta == 2:
        return 0.5 * ((X - R) ** 2).sum(axis=1)
    R = np.maximum(R, 1e-300)
    safe = np.where(X > 0, X, 1.0)
    return (np.where(X > 0, X * np.log(safe / R), 0.0) - X + R).sum(axis=1)


def oracle(X, k: int, beta: int, max_iter: int = 1000, planted=None) -> np.ndarray:
    """Per-sample loss of batch NMF fitted on X (in-sample, so a slightly optimistic bar).

    scikit-learn's KL solver can stop in a poor local optimum from its default start; when
    the planted (W, H) are given, a second fit starts there and the better of the two is
    the oracle.
    """
    options = {"max_iter": max_iter, "tol": 1e-6, "random_state": 0}
    if beta == 1:
        options.update(beta_loss="kullback-leibler", solver="mu")
    nmf = NMF(k, init="nndsvda", **options)
    H = nmf.fit_transform(X)
    best = row_losses(X, H @ nmf.components_, beta)
    if planted is not None:
        W0, H0 = planted
        nmf = NMF(k, init="custom", **options)
        H = nmf.fit_transform(X, W=np.ascontiguousarray(H0, dtype=np.float64) + 1e-6,
                              H=np.ascontiguousarray(W0.T, dtype=np.float64) + 1e-9)
        other = row_losses(X, H @ nmf.components_, beta)
        if other.sum() < best.sum():
            best = other
    return best


def prequential(model: OnlineNMF, X, features, chunk: int = CHUNK) -> np.ndarray:
    losses = []
    for start in range(0, X.shape[0], chunk):
        model.learn_many(X[start : start + chunk], features=features)
        losses.append(model.last_losses)
    return np.concatenate(losses)


def shadow(X, features, beta: int, rhos=(0.99, 0.998, 0.9995)) -> np.ndarray:
    """Shadow dictionaries: each window is answered by the model that did best on the last."""
    models = [OnlineNMF(8, beta=beta, seed=0, forget_factor=r, refresh_every=CHUNK)
              for r in rhos]
    out, best = [], 1
    for start in range(0, X.shape[0], CHUNK):
        window = []
        for model in models:
            model.learn_many(X[start : start + CHUNK], features=features)
            window.append(model.last_losses)
        out.append(window[best])
        best = int(np.argmin([w.sum() for w in window]))
    return np.concatenate(out)


#: Forgetting runs: the model's options, and what the run switches off in the re-estimator
#: (ablations: "memory" = the detector's memory cut and the doubling after it, "refit" = the
#: batch refit of the recent buffer while recovering).
FORGETTING = {
    "automatic": ({"forget_factor": 1 - 1 / MEMORY, "adapt_forgetting": True}, ()),
    "automatic, memory cut only (no refit)": (
        {"forget_factor": 1 - 1 / MEMORY, "adapt_forgetting": True}, ("refit",)),
    "automatic, refit only (rho stays 0.998)": (
        {"forget_factor": 1 - 1 / MEMORY, "adapt_forgetting": True}, ("memory",)),
    "automatic, refit only, no forgetting (rho = 1)": (
        {"forget_factor": 1.0, "adapt_forgetting": True}, ("memory",)),
    "all automatic": ({"forget_factor": 1 - 1 / MEMORY, "adapt_forgetting": True,
                       "adapt_rank": True, "adapt_sparsity": True}, ()),
    "fixed 0.998": ({"forget_factor": 0.998}, ()),
    "fixed 0.9995": ({"forget_factor": 0.9995}, ()),
    "fixed 1 (no forgetting)": ({"forget_factor": 1.0}, ()),
}


def switched_off(parts) -> contextlib.ExitStack:
    """Patch the re-estimator's parts named in ``parts`` to do nothing (for ablations)."""
    stack = contextlib.ExitStack()
    if "refit" in parts:
        stack.enter_context(mock.patch.object(Learner, "refit_recent", lambda self: None))
    if "memory" in parts:
        stack.enter_context(mock.patch.object(Reestimator, "_set_memory",
                                              lambda self, reason=None: None))
    return stack


def run_forgetting(name: str, s, beta: int) -> np.ndarray:
    if name == "shadow x3":
        return shadow(s.X, s.features, beta)
    options, off = FORGETTING[name]
    with switched_off(off):
        model = OnlineNMF(8, beta=beta, seed=0, refresh_every=CHUNK, **options)
        return prequential(model, s.X, s.features)


def drift_table(beta: int, seeds=(0, 1, 2), drift: int = 3000, n: int = 6000) -> list[str]:
    import river.drift  # noqa: F401  (imported once here, not timed inside the first run)

    names = [*FORGETTING, "shadow x3"]
    warm = make_poisson_stream(n_samples=1200, seed=99, drift_at=600)
    for name in names:  # compile and import everything before timing
        run_forgetting(name, warm, beta)
    ratios = {name: [] for name in names}
    seconds = dict.fromkeys(names, 0.0)
    for seed in seeds:
        s = make_poisson_stream(n_samples=n, seed=seed, drift_at=drift)
        best = oracle(s.X[drift:], 8, beta, planted=(s.W_after_drift, s.H_true[drift:]))
        for name in names:
            start = time.perf_counter()
            losses = run_forgetting(name, s, beta)[drift:]
            seconds[name] += time.perf_counter() - start
            ratios[name].append([losses[i : i + MEMORY].sum() / best[i : i + MEMORY].sum()
                                 for i in range(0, n - drift, MEMORY)])
    lines = [f"beta = {beta}: prequential loss / post-drift oracle, per memory length (500 "
             f"samples) after the drift, median over seeds {list(seeds)}; time relative to "
             "fixed 0.998. k = 8, refresh_every = 50 for every run.", "",
             "| forgetting | " + " | ".join(f"ML {i + 1}" for i in range((n - drift) // MEMORY))
             + " | first ML <= 1.05 (worst seed) | time |",
             "|---" * ((n - drift) // MEMORY + 3) + "|"]
    for name in names:
        table = np.array(ratios[name])
        median = np.median(table, axis=0)
        first = [next((i + 1 for i, r in enumerate(row) if r <= 1.05), None) for row in table]
        worst = "never" if None in first else str(max(first))
        lines.append(f"| {name} | " + " | ".join(f"{r:.3g}" for r in median)
                     + f" | {worst} | {seconds[name] / seconds['fixed 0.998']:.2f}x |")
    return lines


def planted_rank(seeds=(0, 1, 2), memory: int = 200) -> list[str]:
    """The planted rank changes of tests/test_hyper.py (seed 0 is the test's stream): how many
    memory lengths after each change the rank is within 1 of the planted rank, and exact, for
    good (until the next change)."""
    from tests.test_hyper import FEATURES, planted_rank_stream

    change = 6 * memory
    lines = [f"Planted rank 6 -> 8 -> 5 (300 features; 2,000 samples at 6, then {change:,} at "
             f"8 and {change:,} at 5; memory {memory} samples): OnlineNMF(n_components=8, "
             f"beta=1, forget_factor={1 - 1 / memory}, refresh_every={CHUNK}, adapt_rank=True, "
             f"seed). Memory lengths after the change until the rank is within 1 of the planted "
             "rank, and equal to it, for good (targets: within 1 by 3, exact by 6).", "",
             "| seed | 6 -> 8: within 1 | 6 -> 8: exact | 8 -> 5: within 1 | 8 -> 5: exact | "
             "rank at 2,000 |", "|---|---|---|---|---|---|"]
    for seed in seeds:
        X = planted_rank_stream([(range(6), 2000), (range(8), change),
                                 ([0, 2, 4, 6, 7], change)], seed=seed)
        model = OnlineNMF(n_components=8, beta=1, seed=seed, forget_factor=1 - 1 / memory,
                          refresh_every=CHUNK, adapt_rank=True)
        ranks = []
        for start in range(0, X.shape[0], CHUNK):
            model.learn_many(X[start : start + CHUNK], features=FEATURES)
            ranks.append(model.n_components_)
        ranks = np.array(ranks)
        at = np.arange(CHUNK, X.shape[0] + 1, CHUNK)  # samples learned after each chunk
        cells = []
        for begin, truth in ((2000, 8), (2000 + change, 5)):
            part = (at > begin) & (at <= begin + change)
            after, error = (at[part] - begin) / memory, np.abs(ranks[part] - truth)
            for tolerance in (1, 0):
                bad = np.flatnonzero(error > tolerance)
                if bad.size == 0:
                    cells.append(f"{after[0]:.2f}")
                elif bad[-1] + 1 < after.size:
                    cells.append(f"{after[bad[-1] + 1]:.2f}")
                else:
                    cells.append("never")
        lines.append(f"| {seed} | " + " | ".join(cells) + f" | {ranks[at == 2000][0]} |")
    return lines


def stationary() -> list[str]:
    s = make_poisson_stream(n_samples=6000, seed=3)
    evaluated = slice(3000, 6000)
    best = oracle(s.X[evaluated], 8, 1, planted=(s.W_true, s.H_true[evaluated])).sum()
    lines = ["| model | prequential / oracle (samples 3000-6000) | final rank | final rho |",
             "|---|---|---|---|"]
    for name, options in {"fixed (k=8, rho=0.998)": {"n_components": 8},
                          "all automatic (k starts at 10)": {
                              "n_components": 10, "adapt_rank": True,
                              "adapt_sparsity": True, "adapt_forgetting": True}}.items():
        model = OnlineNMF(beta=1, seed=0, refresh_every=CHUNK, **options)
        losses = prequential(model, s.X, s.features)
        lines.append(f"| {name} | {losses[evaluated].sum() / best:.4f} | "
                     f"{model.n_components_} | {model.current_forget_factor:.5g} |")
    return lines


def swimmer(ard_strength: float = 0.01, epochs: int = 60, start_rank: int = 25,
            init: str = "samples") -> list[str]:
    X, _ = load_swimmer()
    parts = swimmer_parts(X)
    rng = np.random.default_rng(0)
    model = OnlineNMF(start_rank, beta=1, seed=0, forget_factor=0.998, refresh_every=32,
                      adapt_rank=True, k_max=30, ard_strength=ard_strength, init=init)
    ranks = []
    for _ in range(epochs):
        model.learn_many(X[rng.permutation(len(X))], features=list(range(X.shape[1])))
        ranks.append(model.n_components_)
    W = model.W / np.linalg.norm(model.W, axis=0)

    def best_cosine(P):
        unit = P / np.linalg.norm(P, axis=1, keepdims=True)
        return (unit @ W).max(axis=1)

    cos = best_cosine(parts)
    # At rank 16 the only exact factorizations share the torso among the four limb groups;
    # a limb position carrying a quarter of the torso has cosine 3 / sqrt(3 (3 + 14/16)) =
    # 0.88 with its pure part, so cosine >= 0.9 for every limb needs a 17th (torso) component.
    quarter = best_cosine(parts[:16] + parts[16] / 4)
    return [f"OnlineNMF({start_rank}, beta=1, seed=0, forget_factor=0.998, refresh_every=32, "
            f"adapt_rank=True, k_max=30, ard_strength={ard_strength}, init={init!r}). Rank "
            f"after each of {epochs} epochs (256 images each, shuffled): "
            f"{' '.join(map(str, ranks))}",
            "",
            f"Limb parts matched with cosine >= 0.9: {int((cos[:16] >= 0.9).sum())} of 16 "
            f"(min {cos[:16].min():.3f}, median {np.median(cos[:16]):.3f}); torso best "
            f"cosine {cos[16]:.3f}.",
            "",
            f"Limb + a quarter of the torso (the exact rank-16 factorization): min cosine "
            f"{quarter.min():.3f}, median {np.median(quarter):.3f}."]


def init_without_shared_part(n: int = 4000) -> list[str]:
    """``init="core"`` against the default start on a stream with no part every sample shares
    (8 planted communities, make_poisson_stream seed 3), ARD on: the final rank and the
    smallest cosine of a planted community with its Hungarian-matched component."""
    from scipy.optimize import linear_sum_assignment

    s = make_poisson_stream(n_samples=n, seed=3)
    unit_true = s.W_true / np.linalg.norm(s.W_true, axis=0)
    lines = [f"make_poisson_stream(n_samples={n:,}, seed=3): 8 planted communities over "
             f"{len(s.features)} features. OnlineNMF(k, beta=1, seed=0, refresh_every={CHUNK}, "
             "adapt_rank=True, init).", "",
             "| init | starting k | final rank | smallest matched cosine |", "|---|---|---|---|"]
    for init in ("samples", "core"):
        for k in (8, 10):
            model = OnlineNMF(k, beta=1, seed=0, refresh_every=CHUNK, adapt_rank=True, init=init)
            prequential(model, s.X, s.features)
            order = {name: r for r, name in enumerate(model.features)}
            W = np.zeros((len(s.features), model.n_components_))
            for i, name in enumerate(s.features):
                if name in order:
                    W[i] = model.W[order[name]]
            cosines = unit_true.T @ (W / np.maximum(np.linalg.norm(W, axis=0), 1e-300))
            rows, cols = linear_sum_assignment(-cosines)
            lines.append(f"| {init!r} | {k} | {model.n_components_} | "
                         f"{cosines[rows, cols].min():.3f} |")
    return lines


def swimmer_batch() -> list[str]:
    """The same criterion for batch NMF (scikit-learn, KL) at fixed ranks, as a reference."""
    X, _ = load_swimmer()
    parts = swimmer_parts(X)
    unit = parts / np.linalg.norm(parts, axis=1, keepdims=True)
    lines = ["| batch KL NMF (nndsvda, 2000 iterations) | limbs with cosine >= 0.9 | min limb "
             "cosine | torso cosine |", "|---|---|---|---|"]
    for k in (16, 17, 25):
        nmf = NMF(k, beta_loss="kullback-leibler", solver="mu", init="nndsvda", max_iter=2000,
                  tol=1e-8, random_state=0)
        nmf.fit_transform(X)
        W = nmf.components_.T
        cos = (unit @ (W / np.maximum(np.linalg.norm(W, axis=0), 1e-300))).max(axis=1)
        lines.append(f"| k = {k} | {int((cos[:16] >= 0.9).sum())} of 16 | {cos[:16].min():.3f} "
                     f"| {cos[16]:.3f} |")
    return lines


def near_zero(M: np.ndarray, axis: int, share: float = 0.01) -> float:
    """Share of entries under ``share`` times the largest of their column/row."""
    top = M.max(axis=axis, keepdims=True)
    return float((M < share * np.where(top > 0, top, 1.0)).mean())


def montage(W: np.ndarray, shape, grid: int = 7) -> np.ndarray:
    rows, cols = shape
    image = np.ones((grid * (rows + 1) - 1, grid * (cols + 1) - 1))
    for j in range(min(W.shape[1], grid * grid)):
        r, c = divmod(j, grid)
        tile = W[:, j].reshape(shape)
        image[r * (rows + 1) : r * (rows + 1) + rows, c * (cols + 1) : c * (cols + 1) + cols] = (
            1.0 - tile / max(tile.max(), 1e-300))
    return image


def cbcl(epochs: int = 20, k: int = 49) -> list[str]:
    try:
        X, shape = load_cbcl(normalize=True)
    except FileNotFoundError as error:
        return [f"CBCL skipped: {error}"]
    features = list(range(X.shape[1]))
    online = {}
    for init in ("samples", "core"):
        rng = np.random.default_rng(0)
        # a memory of about one pass (2429 faces): the faces are a fixed set, not a stream
        model = OnlineNMF(k, beta=1, seed=0, forget_factor=0.9996, refresh_every=50, init=init)
        start = time.perf_counter()
        for _ in range(epochs):
            model.learn_many(X[rng.permutation(len(X))], features=features)
        seconds = time.perf_counter() - start
        online[init] = (model.W.copy(), model.transform_many(X, features=features), seconds)
    start = time.perf_counter()
    nmf = NMF(k, beta_loss="kullback-leibler", solver="mu", init="nndsvda", max_iter=500,
              tol=1e-5, random_state=0)
    H_b = nmf.fit_transform(X)
    batch_s = time.perf_counter() - start
    sums = nmf.components_.sum(axis=1)
    W_b = (nmf.components_ / sums[:, None]).T
    H_b = H_b * sums
    loss_b = row_losses(X, H_b @ W_b.T, 1).sum()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 4.8))
    for ax, W, title in ((axes[0], online["samples"][0], f"online, {epochs} passes"),
                         (axes[1], W_b, "batch (scikit-learn)")):
        ax.imshow(montage(W, shape), cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"CBCL k={k}, KL: {title}", fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    OUTPUT.mkdir(exist_ok=True)
    fig.savefig(OUTPUT / "cbcl_basis.png", dpi=110)
    plt.close(fig)
    lines = [
        f"{len(X):,} faces of {shape[0]} x {shape[1]} pixels. Online: OnlineNMF({k}, beta=1, "
        f"forget_factor=0.9996, refresh_every=50, seed=0, init), {epochs} shuffled passes; h "
        "of every face solved against the final W. Batch: scikit-learn NMF(k, "
        "beta_loss='kullback-leibler', solver='mu', init='nndsvda', max_iter=500, tol=1e-5).",
        "",
        "| | near-zero W (< 1 % of column max) | near-zero h (< 1 % of sample max) | KL / batch "
        "| seconds |",
        "|---|---|---|---|---|"]
    for init, (W_on, H_on, seconds) in online.items():
        loss_on = row_losses(X, H_on @ W_on.T, 1).sum()
        lines.append(f"| online, init={init!r} ({epochs} passes) | {near_zero(W_on, 0):.0%} | "
                     f"{near_zero(H_on, 1):.0%} | {loss_on / loss_b:.2f} | {seconds:.0f} |")
    lines += [f"| batch NMF | {near_zero(W_b, 0):.0%} | {near_zero(H_b, 1):.0%} | 1 | "
              f"{batch_s:.0f} |",
              "", "Montage (init='samples' and batch): benchmarks/output/cbcl_basis.png (dark = "
              "high weight)."]
    return lines


def main() -> None:
    header = _output.provenance("python -m benchmarks hyper")
    warnings.filterwarnings("ignore", message="Maximum number of iterations")
    sections = [
        ("Drift, Frobenius", lambda: drift_table(2)),
        ("Drift, KL", lambda: drift_table(1)),
        ("Stationary, KL", stationary),
        ("Planted rank, KL", planted_rank),
        ("Swimmer, KL, ARD from k = 25 (default strength)", swimmer),
        ("Swimmer, KL, ARD from k = 25 (strength 0.1)", lambda: swimmer(0.1)),
        ("Swimmer, KL, ARD from k = 25, init='core'", lambda: swimmer(init="core")),
        ("Swimmer, KL, ARD from k = 25, init='core' (strength 0.1)",
         lambda: swimmer(0.1, init="core")),
        ("Swimmer, batch reference", swimmer_batch),
        ("init='core' on a stream without a shared part", init_without_shared_part),
        ("CBCL faces, KL, k = 49", cbcl),
    ]
    report = ["# Hyperparameter re-estimation (benchmarks/bench_hyper.py)", "", header, ""]
    for title, run in sections:
        start = time.perf_counter()
        lines = run()
        print(f"\n## {title}\n" + "\n".join(lines), flush=True)
        report += [f"## {title}", "", *lines, "",
                   f"({time.perf_counter() - start:.0f} s)", ""]
    _output.write("hyper.md", report)


if __name__ == "__main__":
    main()
