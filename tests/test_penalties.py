"""Penalties, checked numerically against oracles written here from W, v and h.

On h (every beta): ``D_beta(v | W h) + l1_h . h + l2_h / 2 |h|^2`` per sample; the model's h
must satisfy its KKT conditions and reach the optimum scipy's L-BFGS-B finds.

On W (beta = 2): a refresh minimises Mairal et al.'s surrogate plus the penalties per
remembered sample, ``1/2 tr(W^T W A) - tr(W^T B) + n_eff (l1_w |W|_1 + l2_w / 2 |W|^2)``,
given the statistics (``export_statistics``); it separates over the rows of W, and each row's
problem is a non-negative least squares solved here by ``scipy.optimize.nnls``.

The model is read through its public API only (``W``, ``features``, ``transform_one``,
``learn_one``, ``export_statistics``, ``refresh``).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import scipy.optimize

from onlinenmf import OnlineNMF
from onlinenmf.datasets import make_poisson_stream

#: (l1_h, l2_h) per beta, on the scale of each divergence's gradient for this stream (columns
#: of W sum to 1, h ~ 100): large enough to move h by several percent, l2_h for beta = 2 of the
#: order of the diagonal of W^T W (so that a wrong sign in the coordinate step shows).
PENALTIES = {2: (2.0, 0.1), 1: (1.0, 1e-2), 0: (1e-2, 1e-4)}


@pytest.fixture(scope="module")
def stream():
    return make_poisson_stream(n_features=30, n_components=3, n_samples=300, depth=100,
                               taxa_per_community=8, seed=7)


def samples(stream, start, stop):
    X = stream.X.tocsr()
    for i in range(start, stop):
        row = X.getrow(i)
        yield {stream.features[c]: float(v) for c, v in zip(row.indices, row.data)}


def dense(model, x):
    position = {name: i for i, name in enumerate(model.features)}
    v = np.zeros(model.n_features)
    for name, value in x.items():
        v[position[name]] = value
    return v


def objective(beta, W, v, l1, l2):
    """(f, gradient) of D_beta(v | W h) + l1 . h + l2/2 |h|^2 over the whole sample
    (Itakura-Saito: its non-zero entries)."""
    if beta == 0:
        W, v = W[v > 0], v[v > 0]

    def f(h):
        wh = W @ h
        penalty = l1 * h.sum() + 0.5 * l2 * h @ h
        if beta == 2:
            r = wh - v
            return 0.5 * r @ r + penalty, W.T @ r + l1 + l2 * h
        nz = v > 0
        if beta == 1:
            loss = wh.sum() + np.sum(v[nz] * np.log(v[nz] / wh[nz]) - v[nz])
            return loss + penalty, W.sum(axis=0) - W.T @ (v / wh) + l1 + l2 * h
        ratio = v / wh
        return (np.sum(ratio - np.log(ratio) - 1.0) + penalty,
                W.T @ (1.0 / wh - v / wh**2) + l1 + l2 * h)

    return f


def gradient_scale(beta, W, v, h):
    """The natural size of each coordinate of the gradient, to make KKT tolerances relative:
    W^T v (beta = 2), the column sums of W (beta = 1), sum_f W_fj / (W h)_f (beta = 0)."""
    if beta == 2:
        return np.abs(W.T @ v) + 1e-300
    if beta == 1:
        return W.sum(axis=0)
    W = W[v > 0]
    return (W / (W @ h)[:, None]).sum(axis=0)


def floor(beta):
    return 1e-12 if beta != 2 else 0.0  # KL and IS need W h > 0 on the non-zeros


def minimise(f, starts, floor):
    """The best point L-BFGS-B reaches from the given starts, h >= floor."""
    best = None
    for start in starts:
        result = scipy.optimize.minimize(
            f, np.maximum(start, 1e-6), jac=True, method="L-BFGS-B",
            bounds=[(floor, None)] * start.size,
            options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 10000},
        )
        best = result if best is None or result.fun < best.fun else best
    return best


def assert_optimal(beta, W, v, h, l1, l2, rtol=1e-5):
    """KKT (relative gradient ~0 where h > 0, >= 0 where h = 0) and no better point found by
    L-BFGS-B from h or from a flat start."""
    f = objective(beta, W, v, l1, l2)
    value, gradient = f(h)
    relative = gradient / gradient_scale(beta, W, v, h)
    assert np.all(relative >= -rtol), relative
    assert np.all(np.abs(relative) * h / h.max() <= rtol), relative
    best = minimise(f, [h, np.full(h.size, h.mean())], floor(beta))
    # multiplicative updates (beta = 0) approach a component pinned at 0 slowly: measured
    # 1.1e-7 relative above the optimum there, ~1e-13 elsewhere
    slack = 1e-6 if beta == 0 else 1e-9
    assert value <= best.fun + slack * abs(best.fun) + 1e-9, (value, best.fun)


@pytest.mark.parametrize("beta", [0, 1, 2])
def test_penalised_h_is_the_optimum_of_the_penalised_objective(beta, stream):
    """transform_one and learn_one with non-zero l1_h and l2_h: h is optimal for the
    penalised objective, and differs from the unpenalised optimum (the penalties bite)."""
    l1, l2 = PENALTIES[beta]
    model = OnlineNMF(n_components=3, beta=beta, l1_h=l1, l2_h=l2, refresh_every=20, seed=4)
    model.learn_many(stream.X[:200], features=stream.features)
    for x in samples(stream, 200, 215):
        W, v = np.array(model.W), dense(model, x)
        h = np.array(list(model.transform_one(x).values()))
        assert_optimal(beta, W, v, h, l1, l2)
        free = minimise(objective(beta, W, v, 0.0, 0.0), [h], floor(beta)).x
        assert np.abs(h - free).max() > 0.02 * h.max(), (h, free)  # the penalties bite
    for x in samples(stream, 215, 245):  # learn_one: h solved against W before the sample
        if not set(x) <= set(model.features):
            continue  # a new feature's row is only made by learn_one
        W, v = np.array(model.W), dense(model, x)
        h = np.array(list(model.learn_one(x).values()))
        assert_optimal(beta, W, v, h, l1, l2)


def penalised_refresh_oracle(stats, l1_w, l2_w):
    """argmin over W >= 0 of the penalised surrogate given the exported statistics, columns
    then scaled to sum 1 (as the model does after every refresh). Row by row:
    min_w 1/2 w^T (A + l2 I) w - (b - l1) . w = 1/2 |R w - R^-T (b - l1)|^2 + const
    with R^T R = A + l2 I (Cholesky), a non-negative least squares."""
    n = stats["n_eff"]
    k = stats["A"].shape[0]
    R = scipy.linalg.cholesky(stats["A"] + l2_w * n * np.eye(k))
    rows = [scipy.optimize.nnls(R, scipy.linalg.solve_triangular(R, b - l1_w * n, trans="T"))[0]
            for b in stats["B"]]
    W = np.array(rows)
    return W / W.sum(axis=0)


def refreshed(stream, **penalties):
    """(statistics exported just before a refresh, W just after it), for a beta = 2 model
    past its data-driven first refresh; enough sweeps for the refresh to converge."""
    model = OnlineNMF(n_components=3, beta=2, forget_factor=0.99, refresh_every=20,
                      reseed=False, refresh_sweeps=200, seed=4, **penalties)
    model.learn_many(stream.X[:130], features=stream.features)
    stats = model.export_statistics()
    model.refresh()
    assert model.features == stats["features"]
    return stats, np.array(model.W)


def test_w_refresh_is_the_optimum_of_the_l1_penalised_surrogate(stream):
    """l1_w: the refreshed W is the nnls optimum computed here (measured: equal to 2e-16;
    with the sign of l1_w flipped in the update, 0.08 away), and l1_w makes W sparser."""
    stats, W = refreshed(stream, l1_w=20.0)
    want = penalised_refresh_oracle(stats, 20.0, 0.0)
    np.testing.assert_allclose(W, want, rtol=1e-9, atol=1e-12)
    unpenalised = penalised_refresh_oracle(stats, 0.0, 0.0)
    assert np.abs(want - unpenalised).max() > 0.01
    assert (want == 0).sum() > (unpenalised == 0).sum()


def test_w_refresh_is_the_optimum_of_the_l2_penalised_surrogate(stream):
    """l2_w: the refreshed W is the nnls optimum of the ridge-penalised surrogate (with
    ``l2_w * W_j`` left out of the column step, as before issue 12's fix, W was the
    unpenalised optimum, 0.05 away)."""
    stats, W = refreshed(stream, l2_w=500.0)
    want = penalised_refresh_oracle(stats, 0.0, 500.0)
    assert np.abs(want - penalised_refresh_oracle(stats, 0.0, 0.0)).max() > 0.01
    np.testing.assert_allclose(W, want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("beta", [0, 1, 1.5])
@pytest.mark.parametrize("penalty", ["l1_w", "l2_w"])
def test_w_penalties_are_refused_where_the_refresh_cannot_apply_them(beta, penalty):
    """beta != 2 refreshes W by the multiplicative step, then scales its columns to sum 1: an
    L1 or L2 penalty there would only rescale W, so either is refused with a one-line error
    instead of being silently ignored."""
    with pytest.raises(ValueError, match=r"^l1_w and l2_w apply to beta=2 only: [^\n]*$"):
        OnlineNMF(n_components=3, beta=beta, **{penalty: 0.1})
