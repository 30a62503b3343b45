"""onlinenmf.dictionary's edge cases, each found untested by mutation testing
(``benchmarks/output/mutation.md``): a dead column during a beta = 2 refresh, an all-zero
column at normalisation, ``init="core"`` with one component or identical samples, how the
first columns are chosen and scaled, and what the batch NMF of the first dictionary
(``batch_fit``) must not depend on: the units of the data, the size of its starting columns,
for beta = 0 the entries it does not observe."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize

from onlinenmf import dictionary
from onlinenmf.divergences import for_beta


def test_a_dead_column_is_left_for_reseeding_and_the_others_still_converge():
    """A column whose ``A_jj`` is a tiny fraction of the largest (a component nobody used) keeps
    its W: a step divided by ~0 would throw it anywhere. The columns after it are refreshed to
    the surrogate's optimum all the same (the dead one first, so that skipping it must not stop
    the sweep)."""
    rng = np.random.default_rng(0)
    H = rng.uniform(0.0, 50.0, size=(40, 2))
    A_live = H.T @ H
    W_true = rng.uniform(0.0, 1.0, size=(6, 2))
    B_live = W_true @ A_live
    A = np.zeros((3, 3))
    A[0, 0] = 1e-14 * A_live.max()  # dead: below 1e-12 of the largest A_jj
    A[1:, 1:] = A_live
    B = np.zeros((6, 3))
    B[:, 0] = rng.uniform(0.0, 1.0, size=6) * A[0, 0]
    B[:, 1:] = B_live
    W = rng.uniform(0.0, 1.0, size=(6, 3))
    dead = W[:, 0].copy()
    dictionary.refresh_frobenius(W, A, B, 0.0, 0.0, 300)
    np.testing.assert_array_equal(W[:, 0], dead)
    np.testing.assert_allclose(W[:, 1:], W_true, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("size", [2.0**-60, 2.0**40])
def test_the_refresh_depends_on_the_statistics_ratio_not_their_size(size):
    """A and B shrink together under forgetting (and are tiny for data in small units): the
    surrogate's minimiser, so the refreshed W, is the same at any common scale of A and B
    (without penalties, which the caller scales). A dead-column threshold that is absolute
    rather than relative to the largest ``A_jj`` would freeze every column of small
    statistics."""
    rng = np.random.default_rng(2)
    H = rng.uniform(0.0, 3.0, size=(30, 3))
    A = H.T @ H
    B = rng.uniform(0.0, 2.0, size=(8, 30)) @ H
    start = rng.uniform(0.0, 1.0, size=(8, 3))
    expected = start.copy()
    dictionary.refresh_frobenius(expected, A, B, 0.0, 0.0, 20)
    W = start.copy()
    dictionary.refresh_frobenius(W, size * A, size * B, 0.0, 0.0, 20)
    np.testing.assert_allclose(W, expected, rtol=1e-14, atol=0.0)
    assert not np.allclose(expected, start)


def test_normalising_leaves_an_emptied_column_at_zero():
    """An L1 penalty can empty a beta = 2 column: normalisation must keep it at 0 (the engine
    re-seeds it), not divide 0 by 0, and report its sum as 0."""
    W = np.array([[1.0, 0.0, 2.0], [3.0, 0.0, 2.0]])
    sums = dictionary.normalise_columns(W)
    np.testing.assert_array_equal(sums, [4.0, 0.0, 4.0])
    np.testing.assert_array_equal(W, [[0.25, 0.0, 0.5], [0.75, 0.0, 0.5]])


@pytest.mark.parametrize("unit", [1.0, 1e-3])  # counts, or proportions (norms below one)
def test_farthest_first_measures_similarity_by_direction_not_size(unit):
    """After the largest sample, the next is the one least alike in *composition* (cosine): a
    small sample with the same profile as the first is a near-duplicate however small, a large
    sample of another profile is new however large its overlap in raw counts."""
    profiles = unit * np.array([
        [1.0, 0.1, 0.0],  # the first one's profile, a hundredth of its depth
        [1.0, 20.0, 20.0],  # another profile (cosine 0.1 with the first, raw overlap 300)
        [100.0, 10.0, 0.0],  # the largest total: chosen first
    ])
    np.testing.assert_array_equal(dictionary.farthest_first(profiles, 2), [2, 1])


@pytest.mark.parametrize("unit", [1.0, 1e-3])  # counts, or rates below one
def test_sample_columns_are_the_chosen_samples_scaled_to_sum_one(unit):
    V = unit * np.array([[2.0, 2.0, 0.0], [0.0, 1.0, 3.0], [4.0, 4.0, 0.0]])
    columns = dictionary.sample_columns(V, 2)
    chosen = dictionary.farthest_first(V, 2)
    np.testing.assert_allclose(columns, (V[chosen] / V[chosen].sum(axis=1, keepdims=True)).T,
                               rtol=1e-15)


def test_an_empty_sample_is_never_a_starting_column():
    """The buffer the first dictionary starts from keeps empty samples. An empty row has no
    direction: farthest-first must not take it for the most different sample (its cosine with
    anything reads 0), or a start column is lost to it and a real community never gets one
    (here: two samples of one community, one of another, one empty, k = 2)."""
    V = np.array([[10.0, 9.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0],
                  [9.0, 10.0, 1.0, 0.0]])
    np.testing.assert_array_equal(dictionary.farthest_first(V, 3), [0, 2, 3])
    np.testing.assert_array_equal(dictionary.sample_columns(V, 2), V[[0, 2]].T / [20.0, 1.0])


def test_core_columns_pass_over_a_sample_below_the_mean_everywhere():
    """A shallow sample lies below the mean profile in every feature: its residual is empty,
    and the columns come from the residuals that set samples apart instead."""
    V = np.array([[1.0, 1.0, 1.0, 1.0], [50.0, 40.0, 0.0, 10.0], [0.0, 10.0, 45.0, 45.0],
                  [40.0, 50.0, 10.0, 0.0]])
    residual = np.maximum(V - V.mean(axis=0), 0.0)
    assert not residual[0].any()
    expected = np.vstack([V.mean(axis=0), residual[[2, 1, 3]]]).T
    np.testing.assert_allclose(dictionary.core_columns(V, 4), expected / expected.sum(axis=0),
                               rtol=1e-15)


def test_core_columns_with_one_component_or_nothing_to_set_samples_apart():
    """k = 1: one column (a distribution over the features); identical samples: no residual to
    start from, so the columns are the samples themselves, never an all-zero column."""
    V = np.array([[5.0, 1.0, 0.0], [5.0, 0.0, 1.0], [5.0, 1.0, 0.0]])
    one = dictionary.core_columns(V, 1)
    assert one.shape == (3, 1)
    np.testing.assert_allclose(one.sum(axis=0), 1.0)
    same = np.tile([[2.0, 1.0, 1.0]], (4, 1))
    columns = dictionary.core_columns(same, 2)
    assert columns.shape == (3, 2)
    np.testing.assert_allclose(columns, np.tile([[0.5], [0.25], [0.25]], (1, 2)), rtol=1e-15)


def test_refresh_with_both_penalties_is_the_rowwise_nnls_optimum():
    """l1 and l2 together (small k, exact): each row of W minimises
    ``1/2 w^T (A + l2 I) w - (b - l1) . w`` over w >= 0."""
    rng = np.random.default_rng(1)
    H = rng.uniform(0.0, 3.0, size=(30, 3))
    A = H.T @ H
    B = rng.uniform(0.0, 2.0, size=(8, 30)) @ H
    l1, l2 = 2.0, 5.0
    W = rng.uniform(0.0, 1.0, size=(8, 3))
    dictionary.refresh_frobenius(W, A, B, l1, l2, 500)
    R = np.linalg.cholesky(A + l2 * np.eye(3)).T
    for w, b in zip(W, B):
        want = scipy.optimize.nnls(R, np.linalg.solve(R.T, b - l1))[0]
        np.testing.assert_allclose(w, want, rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------- batch_fit (the first dictionary)
def _planted_batch(seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """A rarefied batch (20 samples of 1,000 reads each over 12 features, 5 planted
    communities; no zero entry, so no floor is reached) and the engine's kind of start: 5
    diverse samples scaled to sum 1, plus a little of everything."""
    rng = np.random.default_rng(seed)
    mixture = rng.gamma(2.0, size=(20, 5)) @ rng.gamma(2.0, size=(12, 5)).T
    V = np.array([rng.multinomial(1000, p / p.sum()) for p in mixture], dtype=float)
    assert V.all()
    start = dictionary.sample_columns(V, 5)
    return V, start + 1e-3 * start.mean()


@pytest.mark.parametrize("beta", [0, 1, 2])
@pytest.mark.parametrize("unit", [2.0**-20, 2.0**20])
def test_batch_fit_does_not_depend_on_the_units_of_the_data(beta, unit):
    """Counts or proportions, reads or millions of reads: the batch NMF finds the same W. Its
    multiplicative steps are ratios of sums homogeneous in V (H takes the units, W none), so
    with a power-of-two change of units, exact in floating point, W is the same to the bit. A
    guard against a zero denominator that is not negligible at every scale breaks this, and so
    does a start that is not proportional to the data (rarefied samples, all of 1,000 reads,
    must not meet a start that vanishes for a depth divisible by k)."""
    V, start = _planted_batch()
    divergence = for_beta(beta)
    expected = dictionary.batch_fit(V, start.copy(), divergence)
    got = dictionary.batch_fit(unit * V, start.copy(), divergence)
    np.testing.assert_allclose(got / got.sum(axis=0), expected / expected.sum(axis=0),
                               rtol=1e-12)


@pytest.mark.parametrize("beta", [0, 1, 2])
@pytest.mark.parametrize("size", [2.0**-10, 2.0**10])
def test_batch_fit_takes_the_directions_of_the_starting_columns_not_their_sizes(beta, size):
    """Starting columns scaled by any constant give the same communities (W's columns up to
    their scale, which the engine normalises away); for beta in [1, 2], where each step is a
    plain ratio (gamma = 1), W is exactly that constant times the other fit."""
    V, start = _planted_batch()
    divergence = for_beta(beta)
    expected = dictionary.batch_fit(V, start.copy(), divergence)
    got = dictionary.batch_fit(V, size * start, divergence)
    np.testing.assert_allclose(got / got.sum(axis=0), expected / expected.sum(axis=0),
                               rtol=1e-12)
    if beta >= 1:
        np.testing.assert_allclose(got, size * expected, rtol=1e-13)


def test_itakura_saito_batch_fit_ignores_an_empty_sample_and_an_unseen_feature():
    """For beta = 0 a zero entry is missing, not observed (its loss is not defined): a sample
    with no entry (the engine's buffer keeps empty samples) and a feature no sample of the
    batch has carry no information. The other rows of W come out as without them (up to
    their columns' scale), the unseen feature's row at the floor, nothing NaN."""
    V, start = _planted_batch()
    V[np.random.default_rng(4).random(V.shape) < 0.3] = 0.0  # observed in part
    divergence = for_beta(0)
    expected = dictionary.batch_fit(V, start.copy(), divergence)
    padded = np.insert(np.insert(V, 7, 0.0, axis=0), 5, 0.0, axis=1)  # sample 7, feature 5
    got = dictionary.batch_fit(padded, np.insert(start, 5, 0.05, axis=0), divergence)
    assert np.isfinite(got).all()
    np.testing.assert_array_equal(got[5], dictionary.W_FLOOR)
    seen = np.delete(got, 5, axis=0)
    np.testing.assert_allclose(seen / seen.sum(axis=0), expected / expected.sum(axis=0),
                               rtol=1e-12)
