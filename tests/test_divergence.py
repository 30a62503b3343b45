"""``onlinenmf.beta_divergence`` against the divergences written out here and scikit-learn's.

Conventions (the module docstring): ``d(v|x)`` summed over entries, x floored at machine
epsilon; for KL a zero of v contributes x; for Itakura-Saito a zero of v is unobserved.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from onlinenmf import beta_divergence

EPS = np.finfo(np.float64).eps


def written_out(v, x, beta):
    """sum_f d_beta(v_f | x_f), entry by entry, straight from the definitions."""
    total = 0.0
    for vi, xi in zip(np.ravel(v), np.ravel(x)):
        xi = max(xi, EPS)
        if beta == 2:
            total += (vi - xi) ** 2 / 2
        elif beta == 1:
            total += vi * np.log(vi / xi) - vi + xi if vi > 0 else xi
        elif beta == 0:
            total += vi / xi - np.log(vi / xi) - 1 if vi > 0 else 0.0
        else:
            total += (vi**beta + (beta - 1) * xi**beta - beta * vi * xi ** (beta - 1)) / (
                beta * (beta - 1))
    return total


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    V = rng.poisson(2.0, (6, 7)).astype(np.float64)  # zeros included
    WH = rng.gamma(2.0, 1.0, (6, 7))
    return V, WH


@pytest.mark.parametrize("beta", [2, 1, 0, 0.5, 1.5, 3])
def test_matches_the_definitions_dense_and_sparse(beta, data):
    V, WH = data
    want = written_out(V, WH, beta)
    assert want > 0
    np.testing.assert_allclose(beta_divergence(V, WH, beta), want, rtol=1e-12)
    np.testing.assert_allclose(beta_divergence(sp.csr_matrix(V), WH, beta), want, rtol=1e-12)
    # ~0 at x = v (IS: on the observed entries; elsewhere a zero of v meets x = eps, which
    # costs up to 2 sqrt(eps) per entry for beta = 0.5)
    same = np.where(V > 0, V, WH) if beta == 0 else V + 0.0
    assert 0 <= beta_divergence(V, same, beta) <= 1e-6


@pytest.mark.parametrize("beta", [2, 1, 0, 0.5, 1.5, 3])
@pytest.mark.parametrize("v", [0.0, 0.5, 3.0])
def test_a_vanishing_reconstruction_is_floored_at_eps(beta, v):
    """x = 0 is read as eps (KL of v = 0 against it is eps, not NaN); alone in the sum, so
    that the floored entry's huge terms cannot hide an error elsewhere."""
    got = beta_divergence(np.array([[v]]), np.array([[0.0]]), beta)
    np.testing.assert_allclose(got, written_out([v], [0.0], beta), rtol=1e-12)


@pytest.mark.parametrize("beta", [2, 1, 0.5, 1.5, 3])
def test_same_scale_as_scikit_learn(beta):
    """On strictly positive data the total is scikit-learn's ``_beta_divergence`` (the scale a
    batch NMF fitted there is scored on)."""
    from sklearn.decomposition._nmf import _beta_divergence

    rng = np.random.default_rng(1)
    W, H = rng.gamma(2.0, 1.0, (5, 3)), rng.gamma(2.0, 1.0, (3, 4))
    V = rng.gamma(3.0, 1.0, (5, 4))
    np.testing.assert_allclose(beta_divergence(V, W @ H, beta), _beta_divergence(V, W, H, beta),
                               rtol=1e-10)


def test_itakura_saito_ignores_the_zeros_of_v(data):
    V, WH = data
    observed = V > 0
    assert not observed.all()
    moved = WH.copy()
    moved[~observed] *= 7.0  # the reconstruction of unobserved entries does not count
    assert beta_divergence(V, moved, 0) == beta_divergence(V, WH, 0)
    moved[observed] *= 1.1
    assert beta_divergence(V, moved, 0) != beta_divergence(V, WH, 0)


def test_mismatched_shapes_are_named(data):
    V, WH = data
    with pytest.raises(ValueError, match="V has 42 entries but WH has 36"):
        beta_divergence(V, WH[:, :6], 1)
    with pytest.raises(ValueError, match="V has 36 entries but WH has 42"):
        beta_divergence(V[:, :6], WH, 1)
