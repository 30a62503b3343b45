"""Itakura-Saito (beta = 0) against oracles that share no code with the engine.

The IS objective of one sample given a fixed dictionary, on its non-zero entries,
``sum_f v_f / (W h)_f - log(v_f / (W h)_f) - 1``, is written out here; its optimum is found by
scipy's L-BFGS-B and its KKT conditions are checked from W, v and h. The engine is read through
its public API only (``W``, ``features``, ``transform_one``, ``loss_one``, ``learn_one``,
``last_loss``), so these checks hold whatever the solver or the loss code looks like inside.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize

from onlinenmf import OnlineNMF
from onlinenmf.datasets import make_poisson_stream


@pytest.fixture(scope="module")
def stream():
    return make_poisson_stream(n_features=40, n_components=3, n_samples=300, depth=200,
                               taxa_per_community=10, seed=3)


@pytest.fixture(scope="module")
def model(stream):
    model = OnlineNMF(n_components=3, beta=0, refresh_every=25, seed=1)
    model.learn_many(stream.X[:250], features=stream.features)
    return model


def samples(stream, start, stop):
    X = stream.X.tocsr()
    for i in range(start, stop):
        row = X.getrow(i)
        yield {stream.features[c]: float(v) for c, v in zip(row.indices, row.data)}


def problem(model, x):
    """The sample's rows of W and its values: IS is defined on the non-zero entries only."""
    position = {name: i for i, name in enumerate(model.features)}
    names = [name for name, value in x.items() if value > 0]
    return np.array(model.W)[[position[name] for name in names]], np.array([x[n] for n in names])


def is_loss(h, W, v):
    ratio = v / (W @ h)
    return float(np.sum(ratio - np.log(ratio) - 1.0))


def is_gradient(h, W, v):
    wh = W @ h
    return W.T @ (1.0 / wh - v / wh**2)


def is_optimum(W, v, starts):
    """The smallest IS loss L-BFGS-B reaches from the given starts (h >= 0, floored at 1e-12
    so that W h stays positive)."""
    best = np.inf
    for start in starts:
        result = scipy.optimize.minimize(
            is_loss, np.maximum(start, 1e-6), args=(W, v), jac=is_gradient, method="L-BFGS-B",
            bounds=[(1e-12, None)] * W.shape[1],
            options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 10000},
        )
        best = min(best, result.fun)
    return best


def assert_is_kkt(W, v, h, rtol=1e-4):
    """KKT of min_h IS(v | W h), h >= 0: the gradient, relative to its natural scale
    sum_f W_fj / (W h)_f, vanishes where h_j > 0 and is non-negative where h_j ~ 0."""
    gradient = is_gradient(h, W, v)
    scale = (W / (W @ h)[:, None]).sum(axis=0)
    relative = gradient / scale
    assert np.all(relative >= -rtol), relative
    # complementarity, weighted by h_j / max h so that a component on its way to 0 counts less
    assert np.all(np.abs(relative) * h / h.max() <= rtol), relative


def test_transform_reaches_the_scipy_optimum_of_the_is_loss(model, stream):
    """transform_one with a fixed dictionary: h is the IS optimum (KKT and scipy agree), and
    the loss the model reports is the IS loss of that h (measured gap ~1e-13; with beta = 0
    solved as KL on the non-zero entries it is 1e-2 and the reported loss 5x off)."""
    for x in samples(stream, 250, 262):
        W, v = problem(model, x)
        h = np.array(list(model.transform_one(x).values()))
        assert_is_kkt(W, v, h)
        ours = is_loss(h, W, v)
        best = is_optimum(W, v, [h, np.full(W.shape[1], v.sum() / W.sum())])
        assert ours <= best * (1 + 1e-7) + 1e-12, (ours, best)
        np.testing.assert_allclose(model.loss_one(x), ours, rtol=1e-9)


def test_learned_samples_are_solved_and_scored_as_is(model, stream):
    """learn_one: h is the IS optimum against the dictionary before the sample, and
    ``last_loss`` (the prequential loss) is its IS loss."""
    learner = OnlineNMF.from_bytes(model.to_bytes())
    for x in samples(stream, 262, 290):
        W, v = problem(learner, {n: x[n] for n in x if n in learner.features})
        if len(v) < len(x):  # a feature new to the model: it gets a row only now
            continue
        h = np.array(list(learner.learn_one(x).values()))
        assert_is_kkt(W, v, h)
        np.testing.assert_allclose(learner.last_loss, is_loss(h, W, v), rtol=1e-9)
