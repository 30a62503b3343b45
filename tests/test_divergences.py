"""The divergence objects (onlinenmf.divergences): one loss definition, the solvers at their
optimum, and any beta >= 0 against scikit-learn's batch NMF at the same ``beta_loss``.

(``tests/test_divergence.py`` checks the definition itself, ``onlinenmf.beta_divergence``.)"""

from __future__ import annotations

import copy

import numpy as np
import pytest
from sklearn.decomposition import NMF

from onlinenmf import OnlineNMF, beta_divergence
from onlinenmf.datasets import make_poisson_stream
from onlinenmf.divergences import (
    Frobenius,
    GeneralBeta,
    ItakuraSaito,
    KullbackLeibler,
    Solver,
    for_beta,
)
from onlinenmf.statistics import Statistics

#: The exact solvers, and other betas: inside (0, 1) (compound Poisson-gamma, Tweedie power
#: 2 - beta in (1, 2)), between KL and Frobenius, above 2.
BETAS = (0, 1, 2, 0.5, 1.5, 3)


@pytest.fixture(scope="module")
def stream():
    return make_poisson_stream(n_features=50, n_components=4, n_samples=500, depth=500,
                               taxa_per_community=15, seed=3)


def dense_rows(model, X, features):
    """X's rows over the model's features (the model's row order)."""
    index = {name: i for i, name in enumerate(model.features)}
    out = np.zeros((X.shape[0], model.n_features))
    dense = X.toarray()
    for c, name in enumerate(features):
        out[:, index[name]] = dense[:, c]
    return out


def test_each_beta_gets_its_object_and_keeps_its_parameter():
    kinds = [(0, ItakuraSaito), (1, KullbackLeibler), (2, Frobenius), (1.0, KullbackLeibler),
             (np.float64(2.0), Frobenius), (0.5, GeneralBeta), (1.5, GeneralBeta),
             (3, GeneralBeta)]
    for beta, kind in kinds:
        assert type(for_beta(beta)) is kind
        model = OnlineNMF(n_components=2, beta=beta)
        assert model.beta == beta and type(model.beta) is type(beta)  # stored verbatim


@pytest.mark.parametrize("beta", BETAS)
def test_the_model_loss_is_the_one_definition(beta, stream):
    """loss_one and the prequential loss are ``beta_divergence(v, W h)``, zeros included (but
    for Itakura-Saito, which scores the non-zero entries)."""
    model = OnlineNMF(n_components=4, beta=beta, refresh_every=50, seed=1)
    model.learn_many(stream.X[:200], features=stream.features)
    V = dense_rows(model, stream.X[200:210], stream.features)
    H = model.transform_many(stream.X[200:210], features=stream.features)
    for v, h, i in zip(V, H, range(200, 210)):
        x = {stream.features[c]: float(value) for c, value in
             zip(stream.X[i].indices, stream.X[i].data)}
        want = beta_divergence(v[None], (model.W @ h)[None], beta)
        assert model.loss_one(x) == pytest.approx(want, rel=1e-9)
    model.learn_many(stream.X[200:201], features=stream.features)
    assert model.last_loss == pytest.approx(
        beta_divergence(V[:1], (model.W @ H[0])[None], beta), rel=1e-9) or model.model_version


@pytest.mark.parametrize("beta", [0.5, 1.5, 3])
def test_general_solver_meets_the_kkt_conditions(beta, stream):
    """At the h the model returns, the gradient of D_beta(v | W h) is non-negative and
    complementary to h (~0 where h is not): the KKT conditions, to a relative tolerance
    (multiplicative updates approach a bound linearly, so an entry headed for zero is small
    rather than zero)."""
    model = OnlineNMF(n_components=4, beta=beta, refresh_every=50, seed=1)
    model.learn_many(stream.X[:300], features=stream.features)
    divergence = for_beta(beta)
    V = dense_rows(model, stream.X[300:320], stream.features)
    H = model.transform_many(stream.X[300:320], features=stream.features)
    W = np.array(model.W)
    for v, h in zip(V, H):
        gradient = divergence.gradient(W, v, h)
        scale = np.abs(W.T @ (np.maximum(W @ h, 1e-300) ** (beta - 1))).max()
        assert np.all(gradient >= -1e-4 * scale), gradient / scale
        assert np.all(np.abs(h * gradient) <= 1e-4 * scale * h.max()), h * gradient / scale


@pytest.mark.parametrize("kind", [Frobenius, KullbackLeibler])
def test_general_solver_agrees_with_the_exact_ones(kind, stream):
    """The generic multiplicative kernel, run at beta = 2 (and 1 + 1e-7), reaches the optima
    of HALS and of the KL Newton solver: two solvers, one definition."""
    model = OnlineNMF(n_components=4, beta=kind().beta, refresh_every=50, seed=1)
    model.learn_many(stream.X[:300], features=stream.features)
    exact = kind()
    general = GeneralBeta(2.0 if kind is Frobenius else 1.0 + 1e-7)
    stats = Statistics(exact.layout, 4)
    stats.add_rows(np.array(model.W))
    batch = model._matrix_rows(stream.X[300:320], stream.features, register=False)
    indptr, indices = batch.indptr.astype(np.int64), batch.indices.astype(np.int64)
    solver = Solver(np.zeros(4), 0.0, 2000, 1e-10)
    answers = []
    for divergence in (exact, general):
        H = np.zeros((20, 4))
        for s in range(20):
            divergence.initial_h(batch.data[indptr[s] : indptr[s + 1]], stats.colsum, H[s])
        losses = divergence.solve_batch(stats, indptr, indices, batch.data, H, solver)
        answers.append((H, losses))
    (H_exact, loss_exact), (H_general, loss_general) = answers
    np.testing.assert_allclose(loss_general, loss_exact, rtol=1e-5)
    np.testing.assert_allclose(H_general, H_exact, rtol=2e-2, atol=1e-3 * H_exact.max())


def test_beta_one_and_a_half_matches_scikit_learn_batch_nmf(stream):
    """Two passes of the stream reach a total loss within 2 % of scikit-learn's batch NMF at
    the same beta_loss (measured: 1.1 %)."""
    beta, X = 1.5, stream.X
    nmf = NMF(4, beta_loss=beta, solver="mu", init="nndsvda", max_iter=1000, tol=1e-6,
              random_state=0)
    H = nmf.fit_transform(X)
    oracle = beta_divergence(X, H @ nmf.components_, beta)
    model = OnlineNMF(n_components=4, beta=beta, seed=0, refresh_every=50, forget_factor=0.999)
    for _ in range(2):
        model.learn_many(X, features=stream.features)
    V = dense_rows(model, X, stream.features)
    online = beta_divergence(V, model.transform_many(X, features=stream.features) @ model.W.T,
                             beta)
    assert online <= 1.02 * oracle, online / oracle
    assert np.all(np.isfinite(model.W)) and np.allclose(model.W.sum(axis=0), 1.0)


def test_general_beta_round_trips_and_learns_the_same_in_batches(stream, tmp_path):
    rows = stream.X[:120].toarray()
    one = OnlineNMF(n_components=3, beta=1.5, refresh_every=40, seed=2)
    for row in rows:
        one.learn_one(dict(zip(stream.features, row)))
    many = OnlineNMF(n_components=3, beta=1.5, refresh_every=40, seed=2)
    for start in range(0, 120, 50):
        many.learn_many(rows[start : start + 50], features=stream.features)
    np.testing.assert_allclose(many.W, one.W, rtol=1e-8, atol=1e-10)
    path = tmp_path / "model.npz"
    one.save(path)
    loaded = OnlineNMF.load(path)
    assert loaded == one and loaded.beta == 1.5
    for model in (one, loaded, copy.deepcopy(one)):
        model.learn_many(rows[:30], features=stream.features)
    assert loaded == one
    stats = one.export_statistics()
    assert stats["beta"] == 1.5 and stats["D"].shape == stats["B"].shape


def test_river_adapter_takes_any_beta(stream):
    from onlinenmf.river import NMFTransformer as RiverNMF

    nmf = RiverNMF(n_components=3, beta=1.5, refresh_every=20, seed=0)
    for i in range(60):
        x = {stream.features[c]: float(v) for c, v in zip(stream.X[i].indices, stream.X[i].data)}
        nmf.learn_one(x)
    weights = nmf.transform_one(x)
    assert nmf.engine.beta == 1.5 and len(weights) == 3
    assert all(np.isfinite(w) and w >= 0 for w in weights.values())
