"""The forgetful statistics and the dictionary refresh, recomputed by hand from the public API.

A sample of age ``a`` (``a`` samples learned after it) must weigh ``rho**a`` in every
statistic, on every divergence and through both ``learn_one`` and ``learn_many``. The sums are
rebuilt here from what the model returns (h per sample) and its dictionary ``W`` (fixed while
no refresh happens), and compared with :meth:`OnlineNMF.export_statistics`. The statistics are
those the docstrings define: beta = 2, Mairal et al. (2010) ``A = sum w h h^T``,
``B = sum w v h^T``; beta != 2, the majorisation-minimisation numerator and denominator of
Lefevre, Bach & Fevotte (2011), ``N = sum w W^(1/gamma) * (v (Wh)^(beta-2)) h^T`` (for KL: the
reads each component explains) and ``D = sum w (Wh)^(beta-1) h^T`` (beta = 0; for KL it is
``usage``, the forgetful sum of h). The refresh is then checked against the MM step computed
here from the exported statistics.
"""

from __future__ import annotations

import numpy as np
import pytest

from onlinenmf import OnlineNMF
from onlinenmf.datasets import make_poisson_stream

RHO = 0.9  # short memory: a sample 30 steps old weighs 0.04, so a missing rho**age shows


@pytest.fixture(scope="module")
def stream():
    return make_poisson_stream(n_features=30, n_components=3, n_samples=200, depth=100,
                               taxa_per_community=8, seed=7)


def dense_rows(stream, start, stop):
    return np.asarray(stream.X[start:stop].todense(), dtype=np.float64)


def expected_statistics(beta, W, V, H, rho):
    """The forgetful sums over the samples V (rows, oldest first) with activations H."""
    weights = rho ** np.arange(len(V) - 1, -1, -1, dtype=np.float64)
    k = W.shape[1]
    stats = {"usage": weights @ H, "n_eff": weights.sum(),
             "B": np.zeros_like(W), "A": np.zeros((k, k)), "D": np.zeros_like(W)}
    for w, v, h in zip(weights, V, H):
        nz = v > 0
        wh = W[nz] @ h
        if beta == 2:
            stats["A"] += w * np.outer(h, h)
            stats["B"][nz] += w * np.outer(v[nz], h)
        elif beta == 1:
            stats["B"][nz] += w * W[nz] * np.outer(v[nz] / wh, h)
        else:
            stats["B"][nz] += w * W[nz] ** 2 * np.outer(v[nz] / wh**2, h)
            stats["D"][nz] += w * np.outer(1.0 / wh, h)
    return stats


def learn(model, V, features, path):
    if path == "many":
        return model.learn_many(V, features=features)
    return np.array([list(model.learn_one(dict(zip(features, v))).values()) for v in V])


@pytest.mark.parametrize("path", ["one", "many"])
@pytest.mark.parametrize("beta", [0, 1, 2])
def test_statistics_weigh_each_sample_by_rho_to_its_age(beta, path, stream):
    """No refresh (refresh_every above the sample count): W stays as registered, and every
    exported statistic is the rho**age-weighted sum computed here (measured: equal to 1e-15;
    with rho forced to 1 on the KL path, usage comes out 4 to 12 times too large)."""
    V = dense_rows(stream, 0, 40)
    model = OnlineNMF(n_components=3, beta=beta, forget_factor=RHO, refresh_every=1000,
                      seed=2)
    H = learn(model, V, stream.features, path)
    assert model.model_version == 0 and model.samples_learned == 40
    stats = model.export_statistics()
    order = [stats["features"].index(name) for name in stream.features]  # V's columns
    W = stats["W"][order]
    want = expected_statistics(beta, W, V, H, RHO)
    np.testing.assert_allclose(stats["usage"], want["usage"], rtol=1e-10)
    np.testing.assert_allclose(stats["n_eff"], want["n_eff"], rtol=1e-12)
    np.testing.assert_allclose(stats["B"][order], want["B"], rtol=1e-10,
                               atol=1e-12 * np.abs(want["B"]).max())
    if beta == 2:
        np.testing.assert_allclose(stats["A"], want["A"], rtol=1e-10)
    if beta == 0:
        np.testing.assert_allclose(stats["D"][order], want["D"], rtol=1e-10,
                                   atol=1e-12 * want["D"].max())


@pytest.mark.parametrize("beta", [0, 1])
def test_refresh_is_the_mm_step_of_the_statistics(beta, stream):
    """After the data-driven first refresh, a refresh sets each column of W proportional to
    ``(N / D)**gamma`` (gamma = 1 for KL, 1/2 for IS) of the statistics just exported, on every
    row the statistics cover; rows they do not cover keep a negligible weight."""
    model = OnlineNMF(n_components=3, beta=beta, forget_factor=0.95, refresh_every=20,
                      reseed=False, seed=4)
    model.learn_many(stream.X[:130], features=stream.features)  # 6 refreshes, then 10 samples
    assert model.model_version == 6
    stats = model.export_statistics()
    model.refresh()
    assert model.features == stats["features"]
    W = np.array(model.W)
    N = stats["B"]
    D = stats["D"] if beta == 0 else np.broadcast_to(stats["usage"], N.shape)
    covered = (N > 0) & (D > 0)
    gamma = 1.0 if beta == 1 else 0.5
    target = np.where(covered, (N / np.where(covered, D, 1.0)) ** gamma, 0.0)
    for j in range(W.shape[1]):
        # (N / D)**gamma is floored at 1e-12 before normalising: compare the rows above it
        rows = covered[:, j] & (target[:, j] > 1e-6 * target[:, j].max())
        assert rows.sum() >= 10
        ratio = W[rows, j] / target[rows, j]
        np.testing.assert_allclose(ratio, ratio.mean(), rtol=1e-9)
    np.testing.assert_allclose(W.sum(axis=0), 1.0, rtol=1e-12)
    if beta == 1:  # KL: the denominator is one number per column, so every row is covered
        assert np.all(W[N == 0] <= 1e-9)
