"""Compile the kernels once per installation, not once per process.

numba compiles each kernel the first time a process calls it and writes the machine code to
its on-disk cache (``NUMBA_CACHE_DIR`` when set, else ``__pycache__`` beside the source when
writable, else a directory in the user's cache); later processes load it from there. A
process that compiles pays for it twice: time before its first result, and memory that
LLVM does not give back. ``onlinenmf consume microbiome`` on ECAM's first 190 samples
(benchmarks/output/start.md, 2 cores): its first record after 2.4-2.7 s and a peak RSS of
371-372 MB with the kernels compiled beforehand, after 17.5-18.7 s and 544 MB with an empty
cache. Every worker started on a fresh host or container pays it.

:func:`compile_kernels` runs a few samples through each estimator that uses compiled code,
with the input types the public API passes them, so that every kernel they call is in the
cache before the first real sample: ``onlinenmf compile`` on the command line, run by
``make``'s install step and by the Docker image's build. A kernel called with argument types
not seen here is still compiled on first use (the cache is a speed-up, never a requirement).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from onlinenmf._jit import COMPILED, KERNELS

__all__ = ["CompileReport", "compile_kernels", "kernel_counts"]


@dataclass(frozen=True)
class CompileReport:
    """What :func:`compile_kernels` did: kernels defined, and of the type signatures the
    warm-up called, how many were compiled now and how many loaded from the cache."""

    kernels: int
    compiled: int
    loaded: int
    cache: str

    def __str__(self) -> str:
        if not COMPILED:
            return "numba is not in use (NUMBA_DISABLE_JIT or not installed): nothing to compile"
        return (f"{self.kernels} kernels, {self.compiled + self.loaded} signatures: "
                f"{self.compiled} compiled now, {self.loaded} already in the cache "
                f"({self.cache})")


def kernel_counts() -> tuple[int, int]:
    """(signatures compiled, signatures loaded from the cache) by every kernel so far in
    this process (numba's own counters; (0, 0) when numba is not in use)."""
    if not COMPILED:
        return 0, 0
    misses = sum(sum(kernel.stats.cache_misses.values()) for kernel in KERNELS)
    hits = sum(sum(kernel.stats.cache_hits.values()) for kernel in KERNELS)
    return misses, hits


def _counts(rng: np.random.Generator, n: int, features: int, width: int) -> list[dict]:
    """n samples of ``width`` of ``features`` named taxa, integer read counts as floats."""
    out = []
    for _ in range(n):
        taxa = rng.choice(features, width, replace=False)
        out.append({f"t{t}": float(c) for t, c in zip(taxa, rng.integers(1, 300, width))})
    return out


def _engine(rng: np.random.Generator) -> None:
    """OnlineNMF at each loss family through learn_one, learn_many (CSR and dense),
    transform_one, with a tracker on the β = 1 path (the microbiome consumer's), and the
    hyperparameter re-estimation (adapt_rank, adapt_forgetting)."""
    from onlinenmf import OnlineNMF, Tracker, beta_divergence

    samples = _counts(rng, 60, 40, 8)
    dense = rng.poisson(3.0, (30, 40)).astype(float)
    features = [f"t{j}" for j in range(40)]
    for beta in (0, 0.5, 1, 2):
        model = OnlineNMF(n_components=3, beta=beta, seed=0)
        for x in samples:
            model.learn_one(x)
        model.transform_one(samples[0])
        model.learn_many(sp.csr_matrix(dense), features=features)
        model.learn_many(dense, features=features)
        beta_divergence(dense, dense + 1.0, beta)
    tracker = Tracker(OnlineNMF(n_components=3, beta=1, adapt_rank=True,
                                adapt_forgetting=True, seed=0))
    for i, x in enumerate(samples * 3):
        tracker.learn_one(x, subject=f"s{i % 4}", time=float(i // 4))


def _reco(rng: np.random.Generator) -> None:
    """RecoNMF on explicit ratings (both solvers, refreshes in batches) and on implicit
    feedback: the reco consumer's paths."""
    from onlinenmf.reco import RecoNMF

    for settings in ({}, {"solver": "sgd"}, {"refresh_every": 5},
                     {"feedback": "implicit", "rating_range": None}):
        model = RecoNMF(n_components=3, **{"rating_range": (1, 5), "seed": 0, **settings})
        for _ in range(200):
            user, item = f"u{rng.integers(20)}", f"i{rng.integers(30)}"
            model.learn_one(user, item, float(rng.integers(1, 6)))
            model.predict_one(user, item)
        model.recommend("u1", n=3)


def _text(rng: np.random.Generator) -> None:
    """TopicModel on a few documents (the text consumer's path)."""
    from onlinenmf.text import TopicModel

    words = [f"w{j}" for j in range(50)]
    model = TopicModel(n_components=3, min_df=1, seed=0)
    for _ in range(80):
        model.learn_one(" ".join(rng.choice(words, 20)))


def _classifier(rng: np.random.Generator) -> None:
    """The supervised NMF (river classifier)."""
    from onlinenmf.river import NMFClassifier

    model = NMFClassifier(n_components=2, refresh_every=10, seed=0)
    for i, x in enumerate(_counts(rng, 60, 30, 6)):
        model.learn_one(x, "a" if i % 2 else "b")
        model.predict_proba_one(x)


#: The warm-ups, one per family of estimators.
WARM_UPS: tuple[Callable[[np.random.Generator], None], ...] = (_engine, _reco, _text,
                                                              _classifier)


def compile_kernels() -> CompileReport:
    """Call every kernel the estimators use, with the public API's input types, so that
    numba's on-disk cache holds them; return what was compiled and what was already there.

    Takes about 40 s when the cache is empty (2 cores), about 3 s when it is warm.
    """
    if not COMPILED:  # plain Python: nothing to compile, and the warm-ups would only cost
        return CompileReport(len(KERNELS), 0, 0, "none")
    import numba

    before = kernel_counts()
    rng = np.random.default_rng(0)
    for warm_up in WARM_UPS:
        warm_up(rng)
    compiled, loaded = (now - then for now, then in zip(kernel_counts(), before))
    cache = numba.config.CACHE_DIR or "numba's default: __pycache__ beside each module"
    return CompileReport(len(KERNELS), compiled, loaded, cache)
