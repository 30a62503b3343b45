"""Synthetic Poisson community streams with a planted dictionary, for tests and benchmarks.

Both generators plant W (features x communities; each column a Dirichlet profile over a few
taxa, summing to 1) and activations H, and draw read counts X ~ Poisson(H W^T) entry by
entry, so ``E[X] = H_true @ W_true.T`` exactly and generalized KL (beta = 1) is the matching
loss. ``X`` is a scipy.sparse CSR matrix (float64 holding integer counts): with a few dozen
taxa per community most entries are zero, and an engine takes sparse rows directly.
Everything is numpy only and deterministic for a given seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ._table import row_dict


def _names(n: int, prefix: str) -> list[str]:
    width = max(3, len(str(n - 1)))
    return [f"{prefix}{i:0{width}d}" for i in range(n)]


def _communities(
    rng: np.random.Generator, n_features: int, k: int, taxa: int | None, concentration: float
) -> np.ndarray:
    """k Dirichlet profiles, each over ``taxa`` randomly chosen features (all when None)."""
    if taxa is not None and not 1 <= taxa <= n_features:
        raise ValueError(f"taxa_per_community={taxa} must be in 1..n_features={n_features}")
    W = np.zeros((n_features, k))
    for j in range(k):
        support = np.arange(n_features) if taxa is None else rng.choice(n_features, taxa, False)
        W[support, j] = rng.dirichlet(np.full(len(support), concentration))
    return W


def _poisson_csr(rng: np.random.Generator, rate: np.ndarray) -> sp.csr_matrix:
    # Draw only where the rate is positive: zero rates give zero counts, and skipping them
    # keeps a 16k x 300 stream well under a second.
    rows, cols = np.nonzero(rate > 0)
    counts = rng.poisson(rate[rows, cols]).astype(np.float64)
    hit = counts > 0
    X = sp.csr_matrix((counts[hit], (rows[hit], cols[hit])), shape=rate.shape)
    X.sort_indices()
    return X


def _depths(rng: np.random.Generator, n: int, depth: float, spread: float) -> np.ndarray:
    if depth <= 0:
        raise ValueError(f"depth={depth} must be positive")
    if spread <= 0:
        return np.full(n, float(depth))
    # log-normal library sizes with mean ``depth``
    return depth * rng.lognormal(-0.5 * spread**2, spread, n)


@dataclass(frozen=True, eq=False)
class PoissonStream:
    """A planted community stream; see :func:`make_poisson_stream`.

    Attributes
    ----------
    X : scipy.sparse.csr_matrix
        n_samples x n_features read counts (float64 integers), in stream order.
    W_true : ndarray
        n_features x n_components community profiles before any drift (columns sum to 1).
    H_true : ndarray
        n_samples x n_components expected reads per community: ``E[X[i]] = W_at(i) @ H_true[i]``.
    features : list of str
        Column names ``taxon_000``, ``taxon_001``, ...
    W_after_drift : ndarray or None
        Profiles in force from sample ``drift_at`` on (None without drift).
    drift_at : int or None
        First sample drawn from ``W_after_drift``.
    replaced : list of int
        Columns of ``W_true`` replaced at the drift (empty without drift).
    """

    X: sp.csr_matrix
    W_true: np.ndarray
    H_true: np.ndarray
    features: list[str]
    W_after_drift: np.ndarray | None = None
    drift_at: int | None = None
    replaced: tuple[int, ...] = ()

    def W_at(self, i: int) -> np.ndarray:
        """The planted W in force for sample ``i``."""
        if self.drift_at is not None and i >= self.drift_at:
            return self.W_after_drift
        return self.W_true

    def sample(self, i: int) -> dict[str, float]:
        """Row ``i`` as a sparse dict {feature name: count}, the form ``learn_one`` takes."""
        return row_dict(self.X, self.features, i)


def make_poisson_stream(
    n_features: int = 300,
    n_components: int = 8,
    n_samples: int = 16000,
    depth: float = 5000,
    active: int = 3,
    taxa_per_community: int | None = 30,
    drift_at: int | None = None,
    n_replaced: int = 2,
    seed: int = 0,
    *,
    concentration: float = 1.0,
    depth_spread: float = 0.0,
) -> PoissonStream:
    """A stream of Poisson read counts from a planted community dictionary, optionally drifting.

    Each community (column of W) is a Dirichlet(``concentration``) profile over
    ``taxa_per_community`` randomly chosen taxa. Each sample mixes ``active`` distinct
    communities chosen at random, with Dirichlet(1) proportions, scaled to the sample's
    depth; reads are Poisson with mean ``H W^T``. At ``drift_at``, ``n_replaced`` randomly
    chosen communities are replaced by fresh ones (same columns, new profiles).

    Parameters
    ----------
    n_features, n_components, n_samples : int
        Taxa, planted communities, samples.
    depth : float
        Expected reads per sample.
    active : int
        Communities present in each sample (1..n_components).
    taxa_per_community : int or None
        Support size of each profile (None: every taxon). The share of zeros in X is roughly
        ``1 - active * taxa_per_community / n_features``; e.g. 5 taxa, active=1 and 300
        features give ~98% zeros, like a 16S table.
    drift_at : int or None
        First sample after the drift (None: stationary).
    n_replaced : int
        Communities replaced at the drift.
    seed : int
        Seed of ``numpy.random.default_rng``; the same arguments give the same stream.
    concentration : float
        Dirichlet concentration of the profiles (< 1: a few dominant taxa per community).
    depth_spread : float
        Sigma of log-normal per-sample depth variation (0: every sample has ``depth``).

    Returns
    -------
    PoissonStream
        Fields ``X`` (CSR), ``W_true``, ``H_true``, ``features``, ``W_after_drift``,
        ``drift_at``, ``replaced``; methods ``W_at(i)`` and ``sample(i)``.

    Examples
    --------
    >>> import numpy as np
    >>> from onlinenmf.datasets import make_poisson_stream
    >>> s = make_poisson_stream(n_samples=1000, drift_at=500, seed=1)
    >>> s.X.shape, s.W_true.shape, s.H_true.shape, len(s.replaced)
    ((1000, 300), (300, 8), (1000, 8), 2)
    >>> bool(np.allclose(s.W_true.sum(axis=0), 1.0)), s.features[0]
    (True, 'taxon_000')
    """
    k = n_components
    if not 1 <= active <= k:
        raise ValueError(f"active={active} must be in 1..n_components={k}")
    if drift_at is not None and not (0 <= drift_at <= n_samples and 0 <= n_replaced <= k):
        raise ValueError(f"drift_at={drift_at} / n_replaced={n_replaced} out of range")
    rng = np.random.default_rng(seed)
    W = _communities(rng, n_features, k, taxa_per_community, concentration)

    # `active` distinct communities per sample: the first columns of a random permutation
    chosen = np.argsort(rng.random((n_samples, k)), axis=1)[:, :active]
    props = rng.dirichlet(np.ones(active), size=n_samples)
    H = np.zeros((n_samples, k))
    np.put_along_axis(H, chosen, props, axis=1)
    H *= _depths(rng, n_samples, depth, depth_spread)[:, None]

    rate = H @ W.T
    W_after, replaced = None, ()
    if drift_at is not None:
        replaced = tuple(sorted(int(j) for j in rng.choice(k, n_replaced, replace=False)))
        W_after = W.copy()
        W_after[:, list(replaced)] = _communities(
            rng, n_features, n_replaced, taxa_per_community, concentration
        )
        rate[drift_at:] = H[drift_at:] @ W_after.T
    X = _poisson_csr(rng, rate)
    return PoissonStream(X, W, H, _names(n_features, "taxon_"), W_after, drift_at, replaced)


@dataclass(frozen=True, eq=False)
class LongitudinalStream:
    """Subjects whose communities grow or decline exponentially; see
    :func:`make_longitudinal_stream`.

    Attributes
    ----------
    X : scipy.sparse.csr_matrix
        n_samples x n_features read counts, rows in global time order.
    subjects : ndarray of str
        Subject of each row.
    times : ndarray of float
        Time of each row (non-decreasing).
    W_true : ndarray
        n_features x n_components community profiles (columns sum to 1).
    H_true : ndarray
        n_samples x n_components expected reads per community: ``E[X] = H_true @ W_true.T``;
        for subject s, ``H_true[i, k] = baseline[s, k] * exp(rates[s, k] * times[i])``
        (times the sample's library-size factor when ``depth_spread > 0``).
    rates : ndarray
        n_subjects x n_components planted growth rates per time unit; NaN where the subject
        does not carry the community.
    baseline : ndarray
        n_subjects x n_components expected reads at time 0 (0 where not carried).
    subject_ids : list of str
        Subject names, the row order of ``rates`` and ``baseline``.
    features : list of str
        Column names ``taxon_000``, ...
    """

    X: sp.csr_matrix
    subjects: np.ndarray
    times: np.ndarray
    W_true: np.ndarray
    H_true: np.ndarray
    rates: np.ndarray
    baseline: np.ndarray
    subject_ids: list[str]
    features: list[str]

    @property
    def metadata(self) -> pd.DataFrame:
        """One row per sample: ``sample_id`` (``<subject>.<visit>``), ``subject``, ``time``."""
        meta = pd.DataFrame({"subject": self.subjects, "time": self.times})
        visit = meta.groupby("subject").cumcount().astype(str)
        meta.insert(0, "sample_id", meta["subject"] + "." + visit)
        return meta

    def sample(self, i: int) -> dict[str, float]:
        """Row ``i`` as a sparse dict {feature name: count}."""
        return row_dict(self.X, self.features, i)


def make_longitudinal_stream(
    n_subjects: int = 40,
    n_times: int = 10,
    n_features: int = 300,
    n_components: int = 8,
    growth_scale: float = 0.02,
    seed: int = 0,
    *,
    duration: float = 100.0,
    depth: float = 5000,
    active: int | None = 4,
    taxa_per_community: int | None = 30,
    concentration: float = 1.0,
    depth_spread: float = 0.0,
) -> LongitudinalStream:
    """Per-subject exponential growth and decline of planted communities, sampled irregularly.

    Subject s carries ``active`` communities with starting abundances a_k (Dirichlet shares
    of ``depth`` reads) and rates r_k = ±``growth_scale``·U(0.5, 1.5), sign at random, so each
    community clearly grows or declines: abundance_k(t) = a_k exp(r_k t). Abundances are
    absolute (a sample's expected depth is their sum), so log H_true is exactly linear in t.
    Each subject is sampled ``n_times`` times in [0, ``duration``] on a jittered grid
    (one sample at a uniform random place in each of ``n_times`` equal cells, so gaps are
    irregular but never huge). Rows come in global time order,
    ties by subject.

    Parameters
    ----------
    n_subjects, n_times, n_features, n_components : int
        Subjects, samples per subject, taxa, planted communities.
    growth_scale : float
        Typical |rate| per time unit; over ``duration`` a community changes by about
        exp(growth_scale * duration) fold (default e^2).
    seed : int
        Seed of ``numpy.random.default_rng``.
    duration : float
        Time span of the study (e.g. days).
    depth : float
        Expected reads of a sample at time 0.
    active : int or None
        Communities each subject carries (None: all).
    taxa_per_community, concentration : see :func:`make_poisson_stream`.
    depth_spread : float
        Sigma of a log-normal per-sample library-size factor (0: none). It multiplies every
        community of the sample alike, adding noise to log abundance, not to the trend.

    Returns
    -------
    LongitudinalStream
        Fields ``X``, ``subjects``, ``times``, ``W_true``, ``H_true``, ``rates``,
        ``baseline``, ``subject_ids``, ``features``; property ``metadata``; ``sample(i)``.

    Examples
    --------
    >>> import numpy as np
    >>> from onlinenmf.datasets import make_longitudinal_stream
    >>> s = make_longitudinal_stream(n_subjects=5, n_times=8, seed=2)
    >>> s.X.shape, s.rates.shape, s.subject_ids[:2]
    ((40, 300), (5, 8), ['S000', 'S001'])
    >>> bool(np.all(np.diff(s.times) >= 0)), int(np.isfinite(s.rates).sum(axis=1)[0])
    (True, 4)
    """
    k = n_components
    act = k if active is None else active
    if not 1 <= act <= k:
        raise ValueError(f"active={active} must be in 1..n_components={k}")
    if n_times < 1 or duration <= 0:
        raise ValueError(f"n_times={n_times} and duration={duration} must be positive")
    rng = np.random.default_rng(seed)
    W = _communities(rng, n_features, k, taxa_per_community, concentration)

    chosen = np.argsort(rng.random((n_subjects, k)), axis=1)[:, :act]
    baseline = np.zeros((n_subjects, k))
    np.put_along_axis(baseline, chosen, rng.dirichlet(np.ones(act), size=n_subjects), axis=1)
    baseline *= depth
    magnitude = growth_scale * rng.uniform(0.5, 1.5, (n_subjects, k))
    rates = np.where(rng.random((n_subjects, k)) < 0.5, -magnitude, magnitude)
    rates[baseline == 0] = np.nan

    # jittered grid: one time per cell of width duration / n_times
    cell = duration / n_times
    t = (np.arange(n_times) + rng.uniform(0, 1, (n_subjects, n_times))) * cell
    subj = np.repeat(np.arange(n_subjects), n_times)
    t = t.ravel()
    order = np.lexsort((subj, t))
    subj, t = subj[order], t[order]

    H = baseline[subj] * np.exp(np.nan_to_num(rates[subj]) * t[:, None])
    H *= _depths(rng, len(t), 1.0, depth_spread)[:, None]
    X = _poisson_csr(rng, H @ W.T)
    ids = _names(n_subjects, "S")
    return LongitudinalStream(
        X=X,
        subjects=np.array(ids)[subj],
        times=t,
        W_true=W,
        H_true=H,
        rates=rates,
        baseline=baseline,
        subject_ids=ids,
        features=_names(n_features, "taxon_"),
    )
