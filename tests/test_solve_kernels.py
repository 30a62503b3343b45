"""onlinenmf.solve's kernels against reference implementations written here (fast, no model).

HALS (beta = 2) is cyclic coordinate descent with an exact step per coordinate: given the same
start, penalties and number of sweeps it must give the same h as the textbook loop below, sweep
for sweep (a bound on the sweeps that is not honoured, or a step that is not the exact
coordinate minimiser, shows before convergence hides it). Found by mutation testing
(``benchmarks/output/mutation.md``): the model-level tests run the solver to convergence only.
"""

from __future__ import annotations

import numpy as np
import pytest

from onlinenmf import solve


def hals_reference(W, v, h, l1, l2, sweeps):
    """``sweeps`` cyclic passes of exact coordinate minimisation of
    ``1/2 |v - W h|^2 + l1 . h + l2/2 |h|^2`` over h >= 0."""
    G, b = W.T @ W, W.T @ v
    h = h.copy()
    for _ in range(sweeps):
        for j in range(h.size):
            gradient = G[j] @ h - b[j] + l1[j] + l2 * h[j]
            h[j] = max(0.0, h[j] - gradient / (G[j, j] + l2))
    return h


@pytest.mark.parametrize("sweeps", [1, 2, 5, 12])
@pytest.mark.parametrize("penalties", [(0.0, 0.0), (0.3, 0.05)])
def test_hals_makes_exactly_the_sweeps_it_is_given(sweeps, penalties):
    """With tol = 0 (never converged early) HALS makes ``max_iter`` sweeps, each the exact
    coordinate step: on correlated columns (slow to converge) h after 1, 2, 5, 12 sweeps is the
    reference loop's."""
    rng = np.random.default_rng(0)
    base = rng.uniform(0.0, 1.0, size=8)
    W = np.column_stack([base + 0.05 * rng.uniform(size=8) for _ in range(3)])  # near-collinear
    v = W @ np.array([3.0, 0.5, 2.0]) + rng.uniform(0.0, 0.1, size=8)
    l1, l2 = np.full(3, penalties[0]), penalties[1]
    rows = np.arange(8)
    h = np.zeros(3)
    wh, work_a, work_b = np.empty(8), np.empty(3), np.empty(3)
    solve.solve_sample(solve.HALS, 2.0, 1.0, W, 8, rows, v, W.T @ W, W.sum(axis=0), h, l1, l2,
                       sweeps, 0.0, wh, work_a, work_b, np.zeros(0))
    want = hals_reference(W, v, np.zeros(3), l1, l2, sweeps)
    np.testing.assert_allclose(h, want, rtol=1e-12, atol=1e-14)
    assert sweeps == 12 or np.abs(hals_reference(W, v, want, l1, l2, 1) - want).max() > 1e-6


def is_mu_reference(W, v, h, l1, l2, max_iter, tol):
    """Multiplicative updates for Itakura-Saito on the sample's entries (Fevotte & Idier 2011,
    exponent 1/2), h floored at 1e-12, stopped at the first sweep whose largest change is at
    most ``0.01 tol`` times the largest entry of h; return (h, sweeps made)."""
    h = np.maximum(h, 1e-12)
    for sweep in range(1, max_iter + 1):
        wh = np.maximum(W @ h, 1e-300)
        numerator = W.T @ (v / wh**2)
        denominator = l1 + l2 * h + W.T @ (1.0 / wh)
        new = np.maximum(h * np.sqrt(numerator / denominator), 1e-12)
        change, h = np.abs(new - h).max(), new
        if change <= 0.01 * tol * h.max():
            break
    return h, sweep


@pytest.mark.parametrize("tol", [1e-3, 1e-6])
def test_itakura_saito_updates_stop_when_the_steps_are_small(tol):
    """The IS kernel makes the reference's updates and stops at the same sweep, well inside
    its budget: not earlier (far from the optimum), not later (wasted sweeps)."""
    rng = np.random.default_rng(1)
    W = rng.uniform(0.1, 1.0, size=(10, 3))
    v = W @ np.array([2.0, 0.5, 1.0]) * rng.gamma(4.0, 0.25, size=10)
    l1, l2 = np.full(3, 0.01), 0.001
    h0 = np.full(3, 1.0)
    want, want_sweeps = is_mu_reference(W, v, h0, l1, l2, 5000, tol)
    assert want_sweeps < 2500
    h = h0.copy()
    sweeps = solve._is_mu(W, np.arange(10), v, h, l1, l2, 5000, tol, np.empty(10), np.empty(3),
                          np.empty(3))
    assert sweeps == want_sweeps
    np.testing.assert_allclose(h, want, rtol=1e-9)


def kl_solve(W, v, h, max_iter=1000, tol=1e-10):
    """The KL kernel on a dense sample (every entry a row); return (h, loss)."""
    h = h.copy()
    rows = np.arange(W.shape[0])
    k = W.shape[1]
    loss = solve.solve_sample(solve.KL_NEWTON, 1.0, 1.0, W, W.shape[0], rows, v,
                              np.zeros((k, k)), W.sum(axis=0), h, np.zeros(k), 0.0, max_iter,
                              tol, np.empty(rows.size), np.empty(k), np.empty(k), np.zeros(0))
    return h, loss


def test_kl_newton_overshoot_never_zeroes_the_only_support_of_a_count():
    """Started ten times past the optimum, the Newton step overshoots below zero; a component
    that alone explains a non-zero count must then shrink (to a tenth), not drop to zero (an
    infinite loss it cannot leave). Separate columns: the optimum is h = v."""
    W = np.eye(2)
    v = np.array([1.0, 3.0])
    h, loss = kl_solve(W, v, 10.0 * v)
    np.testing.assert_allclose(h, v, rtol=1e-8)
    assert np.isfinite(loss) and loss == pytest.approx(0.0, abs=1e-12)


def test_kl_newton_stops_once_converged():
    """Newton converges in a few sweeps: the kernel stops long before a large budget, at the
    optimum (its KKT conditions)."""
    rng = np.random.default_rng(2)
    W = rng.dirichlet(np.ones(12), size=3).T
    v = rng.poisson(W @ np.array([40.0, 10.0, 25.0])).astype(np.float64) + 1.0
    h = np.full(3, v.sum() / 3)
    rows, k = np.arange(12), 3
    wh = np.empty(12)
    sweeps = solve._kl_newton(W, rows, v, W.sum(axis=0), h, np.zeros(k), 0.0, 1000, 1e-10, wh)
    assert sweeps < 100
    gradient = W.sum(axis=0) - W.T @ (v / (W @ h))
    assert np.all(np.abs(gradient[h > 0]) < 1e-7) and np.all(gradient[h == 0] >= -1e-7)


def test_hals_gives_a_dead_column_zero_and_still_solves_the_others():
    """A column of W that is all zero (no curvature, G_jj + l2 = 0) gets h_j = 0, and the
    coordinates after it are still solved: h is the nnls optimum on the live columns."""
    import scipy.optimize

    rng = np.random.default_rng(3)
    W = rng.uniform(0.0, 1.0, size=(8, 3))
    W[:, 0] = 0.0
    v = W @ np.array([0.0, 2.0, 1.0]) + rng.uniform(0.0, 0.2, size=8)
    h = np.full(3, 5.0)
    solve.solve_sample(solve.HALS, 2.0, 1.0, W, 8, np.arange(8), v, W.T @ W, W.sum(axis=0), h,
                       np.zeros(3), 0.0, 500, 1e-12, np.empty(8), np.empty(3), np.empty(3),
                       np.zeros(0))
    assert h[0] == 0.0
    np.testing.assert_allclose(h[1:], scipy.optimize.nnls(W[:, 1:], v)[0], rtol=1e-8)


@pytest.mark.parametrize("budget", [1, 2, 7])
def test_itakura_saito_makes_exactly_its_budget_when_not_converged(budget):
    """With tol = 0 the IS kernel makes exactly ``max_iter`` updates, the reference's."""
    rng = np.random.default_rng(4)
    W = rng.uniform(0.1, 1.0, size=(6, 2))
    v = rng.uniform(0.5, 3.0, size=6)
    want, want_sweeps = is_mu_reference(W, v, np.ones(2), np.zeros(2), 0.0, budget, 0.0)
    h = np.ones(2)
    sweeps = solve._is_mu(W, np.arange(6), v, h, np.zeros(2), 0.0, budget, 0.0, np.empty(6),
                          np.empty(2), np.empty(2))
    assert sweeps == want_sweeps == budget
    np.testing.assert_allclose(h, want, rtol=1e-12)


@pytest.mark.parametrize("beta", [2, 1, 0, 1.5])
def test_the_compiled_normaliser_is_the_divergence_s(beta):
    """learn_sample's per-sample scale of the relative loss (compiled) is the divergence
    object's ``normalisers`` (numpy): one definition, two implementations that must agree."""
    from onlinenmf.divergences import for_beta

    divergence = for_beta(beta)
    v = np.array([3.0, 0.5, 2.0, 7.0])
    want = divergence.normalisers(np.array([0, v.size]), v)[0]
    assert solve._normaliser(divergence.kernel, divergence.beta, v) == pytest.approx(want,
                                                                                    rel=1e-14)
