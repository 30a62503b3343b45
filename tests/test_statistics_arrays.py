"""onlinenmf.statistics' array bookkeeping, each against what its docstring promises (fast, no
model): the paths the model-level tests reach only through rank adaptation, batch statistics
or a divergence with a per-feature denominator. Found untested by mutation testing
(``benchmarks/output/mutation.md``)."""

from __future__ import annotations

import numpy as np
import pytest

from onlinenmf.divergences import for_beta
from onlinenmf.statistics import INITIAL_ROWS, BatchSums, Statistics


def filled(beta: float, m: int = 5, k: int = 3, seed: int = 0) -> Statistics:
    """Statistics of a divergence's layout with every array holding distinct values."""
    rng = np.random.default_rng(seed)
    stats = Statistics(for_beta(beta).layout, k)
    stats.add_rows(rng.uniform(0.1, 1.0, size=(m, k)))
    for name in stats.layout.rows:
        getattr(stats, name)[:m] = rng.uniform(1.0, 2.0, size=(m, k))
    if stats.layout.gram:
        stats.A = rng.uniform(1.0, 2.0, size=(k, k))
    stats.usage = rng.uniform(1.0, 2.0, size=k)
    stats.window_usage = rng.uniform(1.0, 2.0, size=k)
    stats.recompute_caches()
    return stats


def sums(beta: float, m: int, k: int, count: int, seed: int) -> BatchSums:
    rng = np.random.default_rng(seed)
    layout = for_beta(beta).layout
    return BatchSums(
        B=rng.uniform(size=(m, k)),
        D=rng.uniform(size=(m, k)) if "D" in layout.rows else np.zeros((0, 0)),
        A=rng.uniform(size=(k, k)) if layout.gram else np.zeros((0, 0)),
        usage=rng.uniform(size=k), count=count, loss=float(rng.uniform()),
        relative_loss=float(rng.uniform()))


@pytest.mark.parametrize("beta", [0, 2])
def test_batch_sums_add_field_by_field(beta):
    """Partition sums add up to the sums of both partitions, every field."""
    a, b = sums(beta, 4, 3, 5, seed=1), sums(beta, 4, 3, 7, seed=2)
    both = a + b
    for name in ("B", "D", "A", "usage"):
        np.testing.assert_array_equal(getattr(both, name), getattr(a, name) + getattr(b, name))
    assert both.count == 12
    assert both.loss == a.loss + b.loss and both.relative_loss == a.relative_loss + b.relative_loss


@pytest.mark.parametrize("beta", [0, 1, 1.5, 2])
def test_install_scales_every_statistic_to_n_eff_samples(beta):
    """Installed batch sums of ``count`` samples weigh ``n_eff``: each statistic times
    ``n_eff / count``; the window's usage is the batch's own; the lazy scale is reset."""
    stats = filled(beta)
    stats.scale = 0.5
    batch = sums(beta, stats.m, stats.k, count=8, seed=3)
    stats.install(batch, n_eff=20.0)
    c = 20.0 / 8
    m = stats.m
    np.testing.assert_allclose(stats.B[:m], c * batch.B, rtol=1e-15)
    if "D" in stats.layout.rows:
        np.testing.assert_allclose(stats.D[:m], c * batch.D, rtol=1e-15)
    if stats.layout.gram:
        np.testing.assert_allclose(stats.A, c * batch.A, rtol=1e-15)
    np.testing.assert_allclose(stats.usage, c * batch.usage, rtol=1e-15)
    np.testing.assert_array_equal(stats.window_usage, batch.usage)
    assert stats.n_eff == 20.0 and stats.scale == 1.0


def test_rows_grow_by_doubling():
    """Adding features one at a time reallocates only when the arrays fill, to twice their
    size (amortised O(1) per feature), keeping every row learned so far."""
    stats = Statistics(for_beta(0).layout, 2)
    capacities = set()
    for i in range(4 * INITIAL_ROWS + 1):
        stats.add_rows(np.full((1, 2), float(i + 1)))
        capacities.add(stats.W.shape[0])
        assert stats.B.shape[0] == stats.D.shape[0] == stats.W.shape[0]
    assert capacities == {INITIAL_ROWS, 2 * INITIAL_ROWS, 4 * INITIAL_ROWS, 8 * INITIAL_ROWS}
    np.testing.assert_array_equal(stats.W[: stats.m, 0], np.arange(1, stats.m + 1))


@pytest.mark.parametrize("beta", [0, 2])
def test_resize_columns_keeps_the_chosen_columns_in_order_and_appends_zeros(beta):
    stats = filled(beta)
    before = {name: np.array(getattr(stats, name)) for name in
              ("W", *stats.layout.rows, "colsum", "usage", "window_usage")}
    if stats.layout.gram:
        before.update(A=stats.A.copy(), G=stats.G.copy())
    keep = np.array([2, 0])
    stats.resize_columns(keep, 2)
    assert stats.k == 4
    for name, old in before.items():
        new = getattr(stats, name)
        if name in ("A", "G"):
            np.testing.assert_array_equal(new[:2, :2], old[np.ix_(keep, keep)])
            assert not new[2:].any() and not new[:, 2:].any()
        elif old.ndim == 1:
            np.testing.assert_array_equal(new, np.concatenate([old[keep], np.zeros(2)]))
        else:
            np.testing.assert_array_equal(new[:, :2], old[:, keep])
            assert not new[:, 2:].any()


@pytest.mark.parametrize("beta", [0, 1, 1.5, 2])
def test_rescale_columns_applies_each_statistic_s_exponent(beta):
    """W <- W / c means h <- c h: usage times c, A times c c^T, each per-feature statistic
    column-wise times ``c ** exponent`` of the layout (KL's numerator: exponent 0, unchanged)."""
    stats = filled(beta)
    m = stats.m
    rows = {name: getattr(stats, name)[:m].copy() for name in stats.layout.rows}
    usage, A = stats.usage.copy(), stats.A.copy()
    c = np.array([0.5, 2.0, 4.0])
    stats.rescale_columns(c)
    np.testing.assert_allclose(stats.usage, usage * c, rtol=1e-15)
    if stats.layout.gram:
        np.testing.assert_allclose(stats.A, A * np.outer(c, c), rtol=1e-15)
    for name, exponent in stats.layout.rows.items():
        np.testing.assert_allclose(getattr(stats, name)[:m], rows[name] * c**exponent,
                                   rtol=1e-15)


@pytest.mark.parametrize("beta", [0, 2])
def test_set_learned_weighs_the_relearned_buffer(beta):
    """A re-learned buffer's k-sized statistics: usage ``w . H``, ``A = sum w h h^T`` (when
    the layout keeps it), ``n_eff = sum w``."""
    stats = filled(beta)
    rng = np.random.default_rng(4)
    H, weights = rng.uniform(size=(6, stats.k)), rng.uniform(0.5, 1.0, size=6)
    stats.set_learned(H, weights)
    np.testing.assert_allclose(stats.usage, weights @ H, rtol=1e-14)
    if stats.layout.gram:
        np.testing.assert_allclose(stats.A, sum(w * np.outer(h, h) for w, h in zip(weights, H)),
                                   rtol=1e-14)
    else:
        assert stats.A.size == 0
    assert stats.n_eff == pytest.approx(weights.sum(), rel=1e-15)


def test_install_refuses_sums_of_another_shape_in_one_line():
    stats = filled(2)
    batch = sums(2, stats.m + 1, stats.k, count=3, seed=5)
    with pytest.raises(ValueError, match=r"^statistics of 6 features x 3 components do not fit "
                                         r"this model \(5 x 3\): [^\n]*batch_statistics"):
        stats.install(batch, n_eff=3.0)


@pytest.mark.parametrize("beta", [0, 2])
def test_reset_forgets_every_statistic(beta):
    stats = filled(beta)
    stats.n_eff, stats.scale = 12.0, 0.3
    stats.reset()
    assert not stats.B[: stats.m].any() and not stats.D.any() and not stats.A.any()
    assert not stats.usage.any() and stats.n_eff == 0.0 and stats.scale == 1.0


@pytest.mark.parametrize("twin", [False, True])
def test_move_columns_moves_the_statistics_and_the_twin_s(twin):
    """Column j's statistics go where ``M[j]`` says (merged columns add up); a twin (the other
    memory) follows the same plan, its W included; W and the caches stay the caller's."""
    stats = filled(2, seed=1)
    stats.twin = filled(2, seed=2) if twin else None
    M = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # 0 and 2 merge into 1
    plans = [(s, {"B": s.B[: s.m] @ M, "usage": s.usage @ M, "A": M.T @ s.A @ M,
                  "window_usage": s.window_usage @ M}, s.W[: s.m].copy())
             for s in filter(None, [stats, stats.twin])]
    stats.move_columns(M)
    np.testing.assert_array_equal(stats.W[: stats.m], plans[0][2])
    for s, expected, _ in plans:
        for name, value in expected.items():
            got = getattr(s, name)[: s.m] if name == "B" else getattr(s, name)
            np.testing.assert_allclose(got, value, rtol=1e-15)
    if twin:
        twin_stats, _, W = plans[1]
        np.testing.assert_allclose(twin_stats.W[: twin_stats.m], W @ M, rtol=1e-15)


@pytest.mark.parametrize("open_samples", [0, 2])
def test_open_samples_h_follows_k_through_prune_birth_reorder_and_restore(open_samples):
    """The open samples' h (``OpenSamples.H``) is as wide as k right after every change of
    rank or column order, in both memories, with samples open or none: a prune, a birth, a
    reorder (whose open h move with their columns) and a restore at another rank. So the
    M-step's rescale and a reorder apply to it as they are (commit 663bbb1: after ARD pruned
    columns, with none open, H kept its old width until the next sample opened, and
    refresh_from's rescale could not broadcast the new k-vector against it)."""
    stats = filled(1, k=4)
    stats.twin = filled(1, k=4, seed=1)
    both = (stats, stats.twin)
    for s in both:
        s.keep_recent(4)
    rng = np.random.default_rng(5)

    def open_some() -> None:
        for _ in range(open_samples):
            for s in both:
                s.remember(np.array([0, 3]), np.array([1.0, 2.0]), rng.uniform(size=s.k))

    def follows(k: int) -> None:
        for s in both:
            assert s.k == k and s.recent.H.shape == (4, k)
            opened = s.recent.H[: s.recent.count].copy()
            c = np.linspace(1.0, 2.0, k)
            s.rescale_columns(c)  # the M-step's
            np.testing.assert_array_equal(s.recent.H[: s.recent.count], opened * c)

    open_some()
    stats.resize_columns(np.array([3, 1]), 0)  # a prune (ARD), the twin's too
    follows(2)
    open_some()
    stats.resize_columns(np.arange(2), 2)  # two births
    follows(4)
    open_some()
    order = np.array([2, 0, 3, 1])
    for s in both:
        opened = s.recent.H[: s.recent.count].copy()
        s.permute_columns(order)  # a reorder (a memories' swap)
        np.testing.assert_array_equal(s.recent.H[: s.recent.count], opened[:, order])
    follows(4)
    other = filled(1, k=3, seed=2)
    other.keep_recent(4)
    stats.restore(*other.state())  # a snapshot at another rank
    assert stats.k == 3 and stats.recent.H.shape == (4, 3)
