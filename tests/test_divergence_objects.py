"""The divergence objects' own formulas, each against an independent definition (fast, no model).

Every override of :class:`onlinenmf.divergences.Divergence` must agree with the one loss
definition, :func:`onlinenmf.beta_divergence`: its gradient with finite differences of the
loss, its normaliser with the loss's degree of homogeneity (the relative loss is
scale-free), its batch multiplicative-update terms with the general formula of Fevotte & Idier
(2011) at its beta. Found missing by mutation testing (``benchmarks/output/mutation.md``):
the model-level tests never reach ``gradient`` of the exact divergences, nor the exact value of
a normaliser.
"""

from __future__ import annotations

import numpy as np
import pytest

from onlinenmf import beta_divergence
from onlinenmf.divergences import Frobenius, GeneralBeta, ItakuraSaito, KullbackLeibler
from onlinenmf.divergences.base import Divergence

KINDS = [Frobenius(), KullbackLeibler(), ItakuraSaito(), GeneralBeta(0.5), GeneralBeta(1.5),
         GeneralBeta(3.0)]
IDS = [repr(kind) for kind in KINDS]


@pytest.fixture
def problem():
    """W (6 x 3), h and a sample v with zeros (so Itakura-Saito skips some entries)."""
    rng = np.random.default_rng(5)
    W = rng.uniform(0.1, 1.0, size=(6, 3))
    h = rng.uniform(0.5, 2.0, size=3)
    v = rng.poisson(W @ h * 3.0).astype(np.float64)
    v[[1, 4]] = 0.0
    return W, v, h


@pytest.mark.parametrize("divergence", KINDS, ids=IDS)
def test_gradient_is_the_derivative_of_the_loss(divergence, problem):
    """``gradient(W, v, h)`` equals central differences of ``D_beta(v | W h)`` in h."""
    W, v, h = problem
    step = 1e-6
    numeric = np.empty(h.size)
    for k in range(h.size):
        up, down = h.copy(), h.copy()
        up[k] += step
        down[k] -= step
        numeric[k] = (divergence.loss(v[None], (W @ up)[None])
                      - divergence.loss(v[None], (W @ down)[None])) / (2 * step)
    np.testing.assert_allclose(divergence.gradient(W, v, h), numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("divergence", KINDS, ids=IDS)
def test_relative_loss_is_scale_free(divergence):
    """D_beta is homogeneous of degree beta (``D(c v | c x) = c^beta D(v | x)``; Itakura-Saito
    of degree 0): so must the normaliser be, per sample of a CSR batch, empty samples (first,
    middle, last) included, so that loss / normaliser does not depend on the sequencing depth.
    """
    rng = np.random.default_rng(2)
    indptr = np.array([0, 0, 3, 3, 7, 9, 9])
    values = rng.uniform(0.5, 5.0, size=indptr[-1])
    predictions = values * rng.uniform(0.5, 2.0, size=values.size)
    base = divergence.normalisers(indptr, values)
    assert base.shape == (indptr.size - 1,)
    assert np.all(base[np.diff(indptr) == 0] == 0) and np.all(base[np.diff(indptr) > 0] > 0)
    for c in (0.1, 7.0):
        scaled = divergence.normalisers(indptr, c * values)
        np.testing.assert_allclose(scaled, c ** divergence.beta * base, rtol=1e-12)
        for start, stop, norm, norm_c in zip(indptr[:-1], indptr[1:], base, scaled):
            if stop == start:
                continue
            v, x = values[start:stop][None], predictions[start:stop][None]
            relative = divergence.loss(v, x) / norm
            assert divergence.loss(c * v, c * x) / norm_c == pytest.approx(relative, rel=1e-9)


def test_frobenius_normaliser_is_the_loss_of_predicting_zero():
    """beta = 2: the normaliser is ``D(v | 0) = |v|^2 / 2``, so the relative loss is the share of
    the sample's energy the model leaves unexplained."""
    indptr, values = np.array([0, 2, 5]), np.array([3.0, 4.0, 1.0, 2.0, 2.0])
    expected = [beta_divergence(values[None, :2], np.zeros((1, 2)), 2),
                beta_divergence(values[None, 2:], np.zeros((1, 3)), 2)]
    np.testing.assert_allclose(Frobenius().normalisers(indptr, values), expected, rtol=1e-15)


def test_kl_and_itakura_saito_normalisers_are_the_reads_and_the_observed_entries():
    """beta = 1: the sample's total count (the Poisson deviance per read); beta = 0: the number
    of entries it scores (its non-zero ones)."""
    indptr, values = np.array([0, 2, 5]), np.array([3.0, 4.0, 1.0, 2.0, 2.0])
    np.testing.assert_array_equal(KullbackLeibler().normalisers(indptr, values), [7.0, 5.0])
    np.testing.assert_array_equal(ItakuraSaito().normalisers(indptr, values), [2.0, 3.0])


@pytest.mark.parametrize("divergence", [Frobenius(), KullbackLeibler(), ItakuraSaito()],
                         ids=["Frobenius", "KullbackLeibler", "ItakuraSaito"])
def test_batch_terms_are_the_general_mu_terms_at_their_beta(divergence):
    """The exact divergences' shortcuts in the batch MU step of the first dictionary equal the
    general terms ``(V WH^(beta-2), WH^(beta-1))`` (Itakura-Saito: on the observed entries), and
    their step is ``ratio ** gamma``."""
    rng = np.random.default_rng(3)
    V = rng.poisson(2.0, size=(4, 5)).astype(np.float64)
    V[0, 0] = 0.0
    WH = rng.uniform(0.5, 3.0, size=V.shape)
    general = Divergence(divergence.beta)
    numerator, weight = divergence.batch_terms(V, WH, divergence.batch_context(V))
    want_numerator, want_weight = general.batch_terms(V, WH, None)
    observed = divergence.observed(V)
    np.testing.assert_allclose(numerator, np.where(observed, want_numerator, 0.0), rtol=1e-14)
    np.testing.assert_allclose(weight, np.where(observed, want_weight, 0.0), rtol=1e-14)
    ratio = rng.uniform(0.2, 5.0, size=7)
    np.testing.assert_allclose(divergence.mu_step(ratio), ratio**general.gamma, rtol=1e-15)


@pytest.mark.parametrize("beta", [0, 1, 0.5, 1.5, 3])
def test_a_refresh_without_new_samples_leaves_w_as_it_is(beta):
    """The multiplicative refresh is an exact M-step, ``W = (N / D)^gamma`` then columns scaled
    to sum 1 with the scale moved into the statistics: refreshing again from the same
    statistics must give the same W (the exponents of the rescaling itself are checked below,
    on the accumulation)."""
    from onlinenmf import OnlineNMF
    from onlinenmf.datasets import make_poisson_stream

    stream = make_poisson_stream(n_features=20, n_components=3, n_samples=120, depth=200,
                                 taxa_per_community=6, seed=4)
    model = OnlineNMF(n_components=3, beta=beta, forget_factor=0.99, refresh_every=30,
                      reseed=False, seed=0)
    model.learn_many(stream.X[:100], features=stream.features)
    model.refresh()
    once = np.array(model.W)
    model.refresh()
    np.testing.assert_allclose(np.array(model.W), once, rtol=1e-9, atol=1e-14)


def test_ard_scale_of_the_general_family_is_the_gradient_scale():
    """``ard_scale`` (the L1 weight per unit of ARD relevance) is the size of the loss gradient
    in h at activations ``relevance``: ``mean_k sum_f W_fk (W lambda)_f^(beta - 1)``."""
    from types import SimpleNamespace

    rng = np.random.default_rng(6)
    W = rng.uniform(0.0, 1.0, size=(7, 3))
    stats = SimpleNamespace(W=np.vstack([W, np.full((2, 3), 9.0)]), m=7)  # rows past m unused
    relevance = np.array([2.0, 0.5, 1.0])
    for beta in (0.5, 1.5, 3.0):
        want = np.mean([sum(W[f, k] * (W[f] @ relevance) ** (beta - 1.0) for f in range(7))
                        for k in range(3)])
        assert GeneralBeta(beta).ard_scale(stats, relevance) == pytest.approx(want, rel=1e-12)


#: gamma of the MM update (Fevotte & Idier 2011, Table 2): 1/(2 - beta) below 1, 1 from 1 to 2,
#: 1/(beta - 1) above 2.
MM_EXPONENTS = [(0, 0.5), (0.5, 2 / 3), (1, 1), (1.5, 1), (2, 1), (3, 0.5), (5, 0.25)]


def test_mm_exponent_is_fevotte_and_idiers():
    from onlinenmf.divergences.base import mu_exponent

    for beta, gamma in MM_EXPONENTS:
        assert mu_exponent(beta) == pytest.approx(gamma, rel=1e-15)


@pytest.mark.parametrize("beta, gamma", MM_EXPONENTS)
def test_the_batch_mu_step_raises_the_ratio_to_gamma(beta, gamma):
    """The first dictionary's multiplicative step of every divergence is ``ratio ** gamma``."""
    from onlinenmf.divergences import for_beta

    ratio = np.random.default_rng(13).uniform(0.2, 5.0, size=7)
    np.testing.assert_allclose(for_beta(beta).mu_step(ratio), ratio**gamma, rtol=1e-14)


@pytest.mark.parametrize("divergence", KINDS, ids=IDS)
def test_a_seeded_column_is_what_its_pseudo_statistics_refresh_to(divergence):
    """A re-seeded column gets pseudo-statistics (a small weight) from which the refresh gives
    that column back: the seed is the column's own fixed point, whatever the weight."""
    from types import SimpleNamespace

    from onlinenmf.divergences import Totals

    rng = np.random.default_rng(7)
    m, k, j = 5, 3, 1
    stats = SimpleNamespace(m=m, W=rng.uniform(0.1, 1.0, size=(m, k)),
                            usage=rng.uniform(1.0, 2.0, size=k), A=np.zeros((k, k)),
                            B=rng.uniform(0.1, 1.0, size=(m, k)),
                            D=rng.uniform(0.1, 1.0, size=(m, k)))
    column = rng.dirichlet(np.ones(m))
    divergence.seed(stats, j, column, 0.3, 0.7)
    np.testing.assert_array_equal(stats.W[:, j], column)
    W = rng.uniform(0.1, 1.0, size=(m, k))
    W[:, j] = 0.5
    totals = Totals(stats.A, stats.B, stats.D, stats.usage, 10.0)
    divergence.update_dictionary(W, totals, 0.0, 0.0, 1)
    np.testing.assert_allclose(W[:, j], column, rtol=1e-12)


@pytest.mark.parametrize("divergence", KINDS, ids=IDS)
def test_a_warm_start_lifts_zeros_for_the_solvers_that_need_it(divergence):
    """Multiplicative and Newton steps cannot move an entry of h away from 0: a warm start
    lifts every entry to at least a thousandth of the cold start's level (HALS takes h as is)."""
    rng = np.random.default_rng(8)
    values, colsum = rng.uniform(1.0, 9.0, size=6), rng.uniform(0.5, 1.5, size=3)
    h = np.array([0.0, 50.0, 1e-9])
    cold = np.empty(3)
    divergence.initial_h(values, colsum, cold)
    assert np.all(cold > 0) or not divergence.positive_h
    warm = divergence.warm_h(h, values, colsum)
    want = np.maximum(h, 1e-3 * cold) if divergence.positive_h else h
    np.testing.assert_allclose(warm, want, rtol=1e-15)
    assert warm is not h  # a copy: the caller's h is not the solver's scratch


@pytest.mark.parametrize("divergence", KINDS, ids=IDS)
def test_a_seed_weighs_a_small_share_of_the_live_statistics(divergence):
    """The pseudo-statistics of a re-seeded column are a share (1 %) of the mean live ones, so
    they scale with them: twice the statistics, twice the seed's weight."""
    from types import SimpleNamespace

    from onlinenmf.divergences.base import SEED_SHARE

    rng = np.random.default_rng(9)
    usage, D = rng.uniform(1.0, 50.0, size=3), rng.uniform(1.0, 5.0, size=(6, 3))
    H = rng.uniform(0.0, 4.0, size=(10, 3))

    def stats(c):
        return SimpleNamespace(m=6, usage=c * usage, D=c * D, A=c * H.T @ H)

    one, two = divergence.seed_weights(stats(1.0)), divergence.seed_weights(stats(2.0))
    np.testing.assert_allclose(two, 2 * np.array(one), rtol=1e-14)
    assert one[0] == pytest.approx(SEED_SHARE * usage.mean(), rel=1e-14)
    if divergence.layout.gram:  # the seed's A_jj
        live = (H.T @ H).diagonal().mean()
    elif "D" in divergence.layout.rows:  # its rows of the MU denominator
        live = D.mean()
    else:  # KL: its denominator is the usage
        live = usage.mean()
    assert one[1] == pytest.approx(SEED_SHARE * live, rel=1e-14)


@pytest.mark.parametrize("divergence", [Frobenius(), GeneralBeta(1.5)], ids=["2", "1.5"])
def test_noise_scale_is_the_mean_deviance_per_entry(divergence):
    """The dispersion adapt_sparsity divides by: the mean deviance ``2 D_beta`` per feature
    (a model with no feature yet counts one)."""
    for mean_loss, n_features in [(31.3, 10), (7.25, 1), (5.5, 0)]:
        assert divergence.noise_scale(mean_loss, n_features) == pytest.approx(
            2.0 * mean_loss / max(n_features, 1), rel=1e-15)


@pytest.mark.parametrize("divergence", KINDS, ids=IDS)
def test_ard_scale_is_homogeneous_of_degree_beta_minus_one(divergence):
    """The gradient of D_beta in h at activations lambda scales as lambda^(beta - 1): so must
    the ARD scale (Frobenius and KL by their shortcuts, Itakura-Saito by its own)."""
    from types import SimpleNamespace

    rng = np.random.default_rng(10)
    W = rng.dirichlet(np.ones(8), size=3).T  # columns sum to 1, as the model keeps them
    stats = SimpleNamespace(W=W, m=8, G=W.T @ W)
    relevance = np.array([3.0, 1.0, 0.5])
    one = divergence.ard_scale(stats, relevance)
    assert one > 0
    for c in (0.25, 4.0):
        assert divergence.ard_scale(stats, c * relevance) == pytest.approx(
            c ** (divergence.beta - 1.0) * one, rel=1e-12)


def test_frobenius_ard_scale_is_the_gradient_scale_for_separate_columns():
    """beta = 2: ``mean(diag G) mean(lambda)``, which is the general scale
    ``mean_k (W^T W lambda)_k`` when the columns do not overlap and lambda is flat."""
    from types import SimpleNamespace

    W = np.zeros((6, 3))
    W[0:2, 0], W[2:5, 1], W[5, 2] = [0.3, 0.7], [0.2, 0.3, 0.5], 1.0
    stats = SimpleNamespace(W=W, m=6, G=W.T @ W)
    relevance = np.full(3, 2.5)
    want = np.mean(W.T @ (W @ relevance))
    assert Frobenius().ard_scale(stats, relevance) == pytest.approx(want, rel=1e-14)
    assert GeneralBeta(2.0 + 1e-12).ard_scale(stats, relevance) == pytest.approx(want, rel=1e-9)


def test_kl_prior_leaves_a_column_nothing_was_learned_into():
    """beta = 1 with the pseudo-count prior: a column with no usage has no denominator and gets
    no prior, so the refresh keeps its W (finite), while the others gain the prior's mass."""
    from onlinenmf.divergences import Totals

    rng = np.random.default_rng(11)
    B = rng.uniform(1.0, 5.0, size=(6, 3))
    B[:, 2] = 0.0
    usage = np.array([4.0, 2.0, 0.0])
    W = rng.dirichlet(np.ones(6), size=3).T
    kept = W[:, 2].copy()
    plain, smoothed = W.copy(), W.copy()
    divergence = KullbackLeibler()
    divergence.update_dictionary(plain, Totals(None, B, None, usage, 10.0), 0.0, 0.0, 1)
    divergence.update_dictionary(smoothed, Totals(None, B, None, usage, 10.0, 2.0), 0.0, 0.0, 1)
    np.testing.assert_array_equal(smoothed[:, 2], kept)
    pseudo = 2.0 * B.sum() / (10.0 * 3 * 6)
    np.testing.assert_allclose(smoothed[:, :2], (B[:, :2] + pseudo) / usage[:2], rtol=1e-14)
    np.testing.assert_allclose(plain[:, :2], B[:, :2] / usage[:2], rtol=1e-14)


@pytest.mark.parametrize("divergence", [KullbackLeibler(), ItakuraSaito()], ids=["1", "0"])
def test_noise_scale_of_the_exact_likelihoods_is_one(divergence):
    """beta = 1 (Poisson counts) and beta = 0 (exponential power, Gamma of shape 1): the
    dispersion is fixed at 1 by the model, whatever the loss seen."""
    for mean_loss, n_features in [(31.3, 10), (0.2, 3)]:
        assert divergence.noise_scale(mean_loss, n_features) == 1.0


@pytest.mark.parametrize("divergence", KINDS, ids=IDS)
def test_layout_exponents_are_how_a_sample_s_statistics_scale(divergence):
    """The layout's claim, checked on the compiled accumulation itself: a sample's contribution
    to each per-feature statistic, under W / c and c h (the same W h), is its contribution under
    W and h times ``c ** exponent``, column by column (what the rescale after a refresh
    applies to the statistics learned so far)."""
    from onlinenmf import solve

    rng = np.random.default_rng(12)
    m, k = 6, 3
    W = rng.uniform(0.1, 1.0, size=(m, k))
    h = rng.uniform(0.5, 2.0, size=k)
    c = np.array([0.5, 2.0, 3.0])
    rows = np.array([0, 2, 3, 5])
    v = rng.uniform(1.0, 6.0, size=rows.size)
    contributions = []
    for W_, h_ in ((W, h), (W / c, h * c)):
        dense = W_ @ h_
        B, D = np.zeros((m, k)), np.zeros((m, k))
        solve.accumulate_sample(divergence.kernel, divergence.beta, divergence.gamma, W_, m,
                                rows, v, h_, dense[rows], dense, 1.0, B, D)
        contributions.append({"B": B, "D": D})
    before, after = contributions
    for name, exponent in divergence.layout.rows.items():
        assert np.any(before[name] != 0)
        np.testing.assert_allclose(after[name], before[name] * c**exponent, rtol=1e-12)
