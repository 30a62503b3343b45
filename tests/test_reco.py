"""The streaming recommender (onlinenmf.reco): optimality of the per-event solves, masking,
ranking, cold start, implicit feedback, bad input, snapshots."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import scipy.optimize

from onlinenmf import snapshot
from onlinenmf.reco import RecoNMF
from onlinenmf.snapshot import SnapshotError


def planted_ratings(n_users=60, n_items=40, k=2, density=0.5, seed=0):
    """Ratings 1..5 from a planted non-negative rank-k model (sparse tastes, so that biases
    cannot explain it), shuffled, with noise."""
    rng = np.random.default_rng(seed)
    P = rng.dirichlet([0.2] * k, n_users)
    Q = rng.dirichlet([0.2] * k, n_items)
    R = P @ Q.T
    R = 1 + 4 * (R - R.min()) / (R.max() - R.min())
    events = [(f"u{u}", f"i{i}", float(np.clip(R[u, i] + rng.normal(0, 0.2), 1, 5)))
              for u in range(n_users) for i in range(n_items) if rng.random() < density]
    order = rng.permutation(len(events))
    return [events[j] for j in order], R


def prequential_rmse(model, events):
    errors = []
    for user, item, value in events:
        errors.append(model.predict_one(user, item) - value)
        model.learn_one(user, item, value)
    return float(np.sqrt(np.mean(np.square(errors[len(errors) // 2:]))))


# ---------------------------------------------------------------- explicit: the solves
def _user_problem(model, user):
    """G, c of the user's masked least squares, rebuilt here from the public history."""
    u = model._users[user]
    length = model._hist_meta[u, 0]
    rows = model._hist_items[u, :length]
    values = model._hist_values[u, :length]
    Z = np.hstack([np.ones((length, 1)), model._I[rows, 1:]])
    y = values - model.global_mean - model._I[rows, 0]
    return Z.T @ Z, Z.T @ y, model._U[u]


def _assert_kkt(G, c, x, lam, atol=1e-6):
    gradient = (G + np.diag(lam)) @ x - c
    assert abs(gradient[0]) < atol  # the bias is free
    positive = x[1:] > 0
    assert np.all(np.abs(gradient[1:][positive]) < atol)
    assert np.all(gradient[1:][~positive] > -atol)
    assert np.all(x[1:] >= 0)


def _snapshot_arrays(model):
    """The model's state as its snapshot gives it (the public, versioned layout)."""
    return snapshot.loads(model.to_bytes(), "<test>")


def _masked_ridge_nnls(Z, y, lam):
    """min 1/2 |Z x - y|^2 + 1/2 sum lam_j x_j^2 with x[1:] >= 0 (x[0], the bias, free), by
    scipy's bounded least squares on the system stacked with sqrt(lam) rows."""
    n = Z.shape[1]
    A = np.vstack([Z, np.diag(np.sqrt(lam))])
    b = np.concatenate([y, np.zeros(n)])
    lower = np.r_[-np.inf, np.zeros(n - 1)]
    result = scipy.optimize.lsq_linear(A, b, bounds=(lower, np.inf), method="bvls", tol=1e-14)
    return result.x


def test_user_solve_is_the_masked_nnls_optimum():
    """After each event, the user's [b_u, p_u] in the model is the optimum of the user's masked
    ridge NNLS over the remembered ratings, against the item parameters as they were before the
    event (the event's own item is re-solved after the user), solved here by scipy. The state
    is read from snapshots (measured: one coordinate-descent sweep instead of a full solve
    leaves it up to 0.08 away)."""
    events, _ = planted_ratings(n_users=15, n_items=20)
    l2_bias, l2_factors = 2.0, 0.5
    model = RecoNMF(n_components=3, rating_range=(1, 5), l2_bias=l2_bias,
                    l2_factors=l2_factors, max_iter=2000, tol=1e-13)
    lam = np.r_[l2_bias, np.full(3, l2_factors)]
    checked = 0
    for n, (user, item, value) in enumerate(events):
        before = _snapshot_arrays(model)[0] if n % 5 == 0 else None
        model.learn_one(user, item, value)
        if before is None:
            continue
        arrays, meta = _snapshot_arrays(model)
        i = meta["items"].index(item)
        if i >= len(before["I"]):
            continue  # a new item: its parameters before the event are not in a snapshot
        items = arrays["I"].copy()
        items[i] = before["I"][i]  # the only item the event moved, after the user solve
        u = meta["users"].index(user)
        length = arrays["hist_meta"][u, 0]
        rated = arrays["hist_items"][u, :length]
        Z = np.hstack([np.ones((length, 1)), items[rated, 1:]])
        y = arrays["hist_values"][u, :length] - model.global_mean - items[rated, 0]
        want = _masked_ridge_nnls(Z, y, lam)
        np.testing.assert_allclose(arrays["U"][u], want, rtol=1e-7, atol=1e-9)
        _assert_kkt(Z.T @ Z, Z.T @ y, arrays["U"][u], lam)
        checked += 1
    assert checked > 20


def test_user_parameters_satisfy_kkt_right_after_the_solve():
    events, _ = planted_ratings(n_users=10, n_items=12, density=0.7, seed=2)
    model = RecoNMF(n_components=3, rating_range=(1, 5), l2_factors=0.5, max_iter=5000,
                    tol=1e-14, refresh_every=10**9)  # items frozen between refreshes
    for user, item, value in events:
        model.learn_one(user, item, value)
        if model.events_learned % 7 == 0:
            G, c, x = _user_problem(model, user)
            _assert_kkt(G, c, x, model._lam)


def test_item_solve_is_the_optimum_of_its_statistics():
    events, _ = planted_ratings(n_users=12, n_items=8, density=0.8, seed=4)
    model = RecoNMF(n_components=2, rating_range=(1, 5), l2_factors=0.3, max_iter=5000,
                    tol=1e-14, forget_factor=0.995)
    for user, item, value in events:
        model.learn_one(user, item, value)
        i = model._items[item]
        S = model._S[i] * model._scale
        c = S[:, -1] - model.global_mean * S[:, 0]
        _assert_kkt(S[:, :-1], c, model._I[i], model._lam)


def test_item_statistics_take_the_users_parameters_from_before_the_rating():
    """The item learns from what was known of the user before the event: z = [1, p_u] and
    y = r - b_u of the user's row before its solve (the solved row has already fitted the
    rating, and fed back through the item it inflated the factors into noise)."""
    events, _ = planted_ratings(n_users=12, n_items=10, density=0.8, seed=8)
    model = RecoNMF(n_components=3, rating_range=(1, 5))
    checked = 0
    for user, item, value in events:
        before = _snapshot_arrays(model)
        model.learn_one(user, item, value)
        arrays, meta = _snapshot_arrays(model)
        u, i = meta["users"].index(user), meta["items"].index(item)
        if u >= len(before[0]["U"]) or i >= len(before[0]["S"]):
            continue
        row = before[0]["U"][u]
        z = np.r_[1.0, row[1:]]
        added = (arrays["S"][i] - before[0]["S"][i]) * meta["scalars"]["scale"]
        np.testing.assert_allclose(added[:, :-1], np.outer(z, z), atol=1e-12)
        np.testing.assert_allclose(added[:, -1], z * (value - row[0]), atol=1e-12)
        checked += 1
    assert checked > 30


def test_default_factor_penalty_follows_the_rating_scale():
    """l2_factors=None: 2.5 x the running standard deviation of the ratings (a penalty means
    the same on a 1-5 and a 0-10 scale), checked on the model's own solve by KKT."""
    events, _ = planted_ratings(n_users=10, n_items=12, density=0.7, seed=2)
    model = RecoNMF(n_components=3, rating_range=(1, 5), max_iter=5000, tol=1e-14,
                    refresh_every=10**9)
    values = []
    for user, item, value in events:
        model.learn_one(user, item, value)
        values.append(value)
        if len(values) % 9 == 0:
            lam = np.r_[model.l2_bias, np.full(3, 2.5 * np.std(values))]
            G, c, x = _user_problem(model, user)
            _assert_kkt(G, c, x, lam)
    np.testing.assert_allclose(model._lam[1:], 2.5 * np.std(values))


def test_periodic_refresh_solves_every_dirty_item():
    events, _ = planted_ratings(n_users=12, n_items=8, density=0.8, seed=5)
    model = RecoNMF(n_components=2, rating_range=(1, 5), refresh_every=5, max_iter=5000,
                    tol=1e-14)
    before = None
    for t, (user, item, value) in enumerate(events[:23], start=1):
        model.learn_one(user, item, value)
        if t == 20:
            before = model._I[: model.n_items].copy()
    assert model._dirty  # events 21..23 wait for the next refresh
    waiting = sorted(model._dirty)
    np.testing.assert_array_equal(model._I[waiting], before[waiting])
    model.refresh()
    assert not model._dirty
    for i in waiting:
        S = model._S[i] * model._scale
        c = S[:, -1] - model.global_mean * S[:, 0]
        _assert_kkt(S[:, :-1], c, model._I[i], model._lam)


# ---------------------------------------------------------------- explicit: behaviour
def test_factors_learn_a_planted_low_rank_structure():
    events, _ = planted_ratings(n_users=80, n_items=50, density=0.6, seed=1)
    biases_only = prequential_rmse(RecoNMF(rating_range=(1, 5), l2_factors=1e9), events)
    nmf = prequential_rmse(RecoNMF(n_components=4, rating_range=(1, 5), l2_factors=1.0),
                           events)
    assert nmf < 0.8 * biases_only, (nmf, biases_only)
    sgd = prequential_rmse(RecoNMF(n_components=4, rating_range=(1, 5), solver="sgd",
                                   learning_rate=0.02, l2_factors=0.02), events)
    assert sgd < biases_only * 1.1, (sgd, biases_only)


def test_factors_earn_their_place_at_the_defaults_on_a_planted_stream():
    """The defaults, not a tuned penalty: the factors cut the prequential error of the same
    model without them (before, at l2_factors=10 on every solve, they stayed at ~0)."""
    events, _ = planted_ratings(n_users=80, n_items=50, density=0.6, seed=1)
    biases_only = prequential_rmse(RecoNMF(rating_range=(1, 5), l2_factors=1e12), events)
    model = RecoNMF(rating_range=(1, 5))
    default = prequential_rmse(model, events)
    assert default < 0.85 * biases_only, (default, biases_only)


def test_the_loss_is_masked_missing_entries_are_not_zeros():
    """Plain NMF (no biases) on all-high ratings: a zero-filled fit would predict ~0 for the
    pairs never rated; the masked fit predicts about the level it saw."""
    model = RecoNMF(n_components=2, biases=False, rating_range=(0, 5), l2_factors=0.01)
    rng = np.random.default_rng(0)
    for _ in range(3000):
        u, i = int(rng.integers(30)), int(rng.integers(30))
        if (u + i) % 3:  # a third of the pairs are never observed
            model.learn_one(u, i, 4.0 + float(rng.random()))
    unseen = [model.predict_one(u, i) for u in range(30) for i in range(30) if (u + i) % 3 == 0]
    assert 3.8 < np.mean(unseen) < 5.0


def test_predictions_are_clipped_and_cold_start_falls_back():
    model = RecoNMF(rating_range=(0, 10))
    assert model.predict_one("a", "x") == 5.0  # nothing learned: the middle of the range
    for user, item, value in [("c", "z", 7), ("a", "y", 2), ("a", "x", 10), ("b", "x", 9)]:
        model.learn_one(user, item, value)
    mu = model.global_mean
    assert mu == pytest.approx(7.0)
    assert model.predict_one("nobody", "nothing") == pytest.approx(mu)
    assert model.predict_one("nobody", "x") == pytest.approx(mu + model._I[2, 0])
    assert model.predict_one("a", "nothing") == pytest.approx(mu + model._U[1, 0])
    assert model._I[2, 0] > 0 > model._I[1, 0]  # x rated high, y low
    n_users, n_items = model.n_users, model.n_items
    model.predict_one("ghost", "phantom")
    model.recommend("ghost")
    assert (model.n_users, model.n_items) == (n_users, n_items)  # predictions create nothing
    high = RecoNMF(rating_range=(0, 1), l2_bias=0.0)
    for _ in range(5):
        high.learn_one("a", "x", 1.0)
    assert high.predict_one("a", "x") == 1.0  # clipped, whatever the raw score


def test_history_is_bounded_and_rerating_replaces():
    model = RecoNMF(history=3, rating_range=(1, 5))
    for item in ["a", "b", "c", "d", "e"]:
        model.learn_one("u", item, 3)
    assert sorted(model.items[i] for i in model.seen("u")) == ["c", "d", "e"]
    model.learn_one("u", "d", 5)  # a re-rating replaces the entry, nothing is evicted
    u = model._users["u"]
    assert sorted(model.items[i] for i in model.seen("u")) == ["c", "d", "e"]
    assert sorted(model._hist_values[u, :3].tolist()) == [3.0, 3.0, 5.0]


# ---------------------------------------------------------------- ranking
def test_recommend_is_the_sorted_prediction_over_all_items():
    events, _ = planted_ratings(n_users=30, n_items=25, seed=3)
    model = RecoNMF(n_components=3, l2_factors=1.0)  # no range: scores are unclipped
    for user, item, value in events:
        model.learn_one(user, item, value)
    for user in ("u1", "u5", "nobody"):
        predictions = np.array([model.predict_one(user, item) for item in model.items])
        top = model.recommend(user, n=7)
        assert [item for item, _ in top] == [model.items[i] for i in
                                             np.argsort(-predictions, kind="stable")[:7]]
        np.testing.assert_allclose([s for _, s in top], np.sort(predictions)[::-1][:7])
    seen = {model.items[i] for i in model.seen("u1")}
    unseen_top = model.recommend("u1", n=100, exclude_seen=True)
    assert len(unseen_top) == model.n_items - len(seen)
    assert not seen & {item for item, _ in unseen_top}
    assert model.recommend("u1", n=0) == []
    with pytest.raises(ValueError, match="n must be"):
        model.recommend("u1", n=-1)


def test_score_items_matches_predict_one_including_unknown_items():
    events, _ = planted_ratings(n_users=10, n_items=10, seed=6)
    model = RecoNMF(n_components=2)
    for user, item, value in events:
        model.learn_one(user, item, value)
    items = ["i3", "unknown", "i1", 17]
    np.testing.assert_allclose(model.score_items("u2", items),
                               [model.predict_one("u2", item) for item in items])


# ---------------------------------------------------------------- implicit
def two_taste_purchases(seed=0, n_events=3000):
    """Users 0-19 buy items a0-a9, users 20-39 buy b0-b9 (counts 1-5), in random order."""
    rng = np.random.default_rng(seed)
    events = []
    for _ in range(n_events):
        user = int(rng.integers(40))
        group = "a" if user < 20 else "b"
        events.append((user, f"{group}{int(rng.integers(10))}", int(rng.integers(1, 6))))
    return events


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_implicit_ranks_the_users_taste_first(seed):
    """Every user's top 10 is their own block. (With refreshes every 20 events instead of the
    default 100, the dictionary often settles in a mixed local minimum on this stream.)"""
    model = RecoNMF(n_components=2, feedback="implicit", seed=seed)
    for user, item, value in two_taste_purchases(seed=seed):
        model.learn_one(user, item, value)
    for user in range(40):
        group, other = ("a", "b") if user < 20 else ("b", "a")
        top = [item for item, _ in model.recommend(user, n=10)]
        assert all(item.startswith(group) for item in top), (user, top)
        assert model.predict_one(user, f"{group}0") > model.predict_one(user, f"{other}0")


def test_implicit_scores_use_h_solved_against_the_current_dictionary():
    model = RecoNMF(n_components=2, feedback="implicit", refresh_every=7, cooccurrence=0)
    events = two_taste_purchases(n_events=200)
    for user, item, value in events:
        model.learn_one(user, item, value)
    engine = model._engine
    for user in range(40):
        u = model._users[user]
        sample = model._user_sample(u, int(model._hist_meta[u, 0]))
        h = np.array(list(engine.transform_one(sample).values()))
        if model._U[u, 0] == engine.model_version:  # learned since the last refresh
            np.testing.assert_allclose(model._U[u, 1:], h, rtol=1e-3, atol=1e-9)
        scores = model.score_all(user)
        np.testing.assert_allclose(scores, engine.W @ h, rtol=1e-6, atol=1e-6 * scores.max())


def test_implicit_row_weighs_items_by_their_recency():
    """The user's row: log1p(units) summed per item, times recency ** (the user's events since
    the item's last purchase); scores are W h of that row, built here from the events."""
    events = [("u", "a", 3), ("u", "b", 1), ("v", "a", 2), ("u", "c", 5), ("u", "a", 1),
              ("v", "d", 1), ("u", "d", 2)] * 3
    model = RecoNMF(n_components=2, feedback="implicit", recency=0.5, refresh_every=4,
                    cooccurrence=0)
    for user, item, value in events:
        model.learn_one(user, item, value)
    mine = [(item, value) for user, item, value in events if user == "u"]
    units, age = {}, {}
    for events_since, (item, value) in enumerate(reversed(mine)):
        units[item] = units.get(item, 0.0) + math.log1p(value)
        age.setdefault(item, events_since)
    sample = {item: units[item] * 0.5 ** age[item] for item in model.items if item in units}
    h = np.array(list(model._engine.transform_one(sample).values()))
    np.testing.assert_allclose(model.score_all("u"), model._engine.W @ h, rtol=1e-6,
                               atol=1e-9)
    flat = RecoNMF(n_components=2, feedback="implicit", recency=1.0, refresh_every=4,
                   cooccurrence=0)
    for user, item, value in events:
        flat.learn_one(user, item, value)
    assert not np.allclose(flat.score_all("u"), model.score_all("u"))


def paired_baskets(seed=0, n_pairs=15, n_customers=60, n_baskets=400):
    """Items come in fixed pairs (2m, 2m+1), always bought together, one pair per basket, by
    random customers: what goes with the last purchase is its partner, a structure of 15
    pairs that rank-2 factors cannot hold."""
    rng = np.random.default_rng(seed)
    events = []
    for _ in range(n_baskets):
        customer, pair = int(rng.integers(n_customers)), int(rng.integers(n_pairs))
        events += [(customer, f"p{2 * pair}", 1), (customer, f"p{2 * pair + 1}", 1)]
    return events


def test_implicit_recommends_the_rest_of_the_basket():
    """A new customer who just bought one item of a pair is recommended its partner first
    (the factors alone, cooccurrence=0, miss most of them: the test fails without the
    co-occurrence)."""
    model = RecoNMF(n_components=2, feedback="implicit", seed=0)
    factors = RecoNMF(n_components=2, feedback="implicit", seed=0, cooccurrence=0)
    for user, item, value in paired_baskets():
        model.learn_one(user, item, value)
        factors.learn_one(user, item, value)
    hits, factor_hits = 0, 0
    for pair in range(15):
        for m in (model, factors):
            m.learn_one(f"new{pair}", f"p{2 * pair}", 1)
        hits += model.recommend(f"new{pair}", n=1, exclude_seen=True)[0][0] == f"p{2 * pair + 1}"
        factor_hits += (factors.recommend(f"new{pair}", n=1, exclude_seen=True)[0][0]
                        == f"p{2 * pair + 1}")
    assert hits == 15
    assert factor_hits < 8


def test_implicit_scores_blend_the_factors_with_the_cooccurrence_built_by_hand():
    """scores = f / max f + cooccurrence * c / max c with f = W h and c the co-occurrence of
    the user's last items, built here from the events: a purchase pairs with each earlier
    one of the same customer with weight basket_recency ** (events between them), and c_j =
    sum_a v_a w_a C[a, j] + v_j w_j (v: log1p units summed, w: basket_recency ** age)."""
    events = [("u", "a", 3), ("u", "b", 1), ("v", "a", 2), ("u", "c", 5), ("u", "a", 1),
              ("v", "d", 1), ("u", "d", 2), ("v", "b", 4), ("w", "c", 1), ("w", "b", 2)] * 2
    model = RecoNMF(n_components=2, feedback="implicit", refresh_every=4, cooccurrence=3.0,
                    basket_recency=0.5)
    for user, item, value in events:
        model.learn_one(user, item, value)
    items = model.items
    C = np.zeros((len(items), len(items)))
    bought: dict = {}
    for user, item, _ in events:
        mine = bought.setdefault(user, [])
        last = {}  # item -> events since its last purchase
        for age, earlier in enumerate(reversed(mine)):
            last.setdefault(earlier, age)
        j = items.index(item)
        for earlier, age in last.items():
            a = items.index(earlier)
            C[j, a] += 0.5**age
            if a != j:
                C[a, j] += 0.5**age
        mine.append(item)
    v, w = np.zeros(len(items)), np.zeros(len(items))
    for age, (item, units) in enumerate(reversed([(i, x) for u, i, x in events if u == "u"])):
        j = items.index(item)
        v[j] += math.log1p(units)
        if w[j] == 0:
            w[j] = 0.5**age
    c = (v * w) @ C + v * w
    u = model._users["u"]
    h = model._activations(u)
    f = model._engine.W @ h
    expected = f / f.max() + 3.0 * c / c.max()
    np.testing.assert_allclose(model._implicit_scores(u), expected, rtol=1e-9)
    assert np.argmax(model.score_all("u")) == np.argmax(expected)


def test_implicit_cold_user_gets_popularity():
    model = RecoNMF(n_components=2, feedback="implicit")
    for user, item in [(1, "x"), (2, "x"), (3, "x"), (1, "y"), (2, "y"), (4, "z")]:
        model.learn_one(user, item, 1)
    assert [item for item, _ in model.recommend("new", n=3)] == ["x", "y", "z"]
    assert model.predict_one("new", "never") == 0.0


def test_implicit_engine_rows_follow_the_item_index_with_zero_values():
    model = RecoNMF(n_components=2, feedback="implicit", implicit_transform="none")
    for user, item, value in [(1, "x", 0), (1, "y", 2), (2, "z", 0), (2, "x", 1)]:
        model.learn_one(user, item, value)
    assert model._engine.features == model.items == ["x", "y", "z"]


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("user, item, value, message", [
    ("u", "i", float("nan"), "not finite"),
    ("u", "i", float("inf"), "not finite"),
    ("u", "i", "5", "not a number"),
    ("u", "i", None, "not a number"),
    ("u", "i", 11, "outside rating_range"),
    (1.5, "i", 3, "user id 1.5"),
    ("u", ("tuple",), 3, "item id"),
    (True, "i", 3, "user id True"),
])
def test_bad_input_names_the_problem_and_leaves_no_trace(user, item, value, message):
    model = RecoNMF(rating_range=(0, 10))
    model.learn_one("a", "b", 5)
    before = model.to_bytes()
    with pytest.raises(ValueError, match=message):
        model.learn_one(user, item, value)
    assert model.to_bytes() == before


@pytest.mark.parametrize("value", [1e200, 1e308, -1e200])
def test_huge_rating_without_range_is_refused_and_leaves_no_trace(value):
    """A rating of 1e200 with no rating_range used to be learned and turn every prediction into
    NaN; it is refused in one line, before anything changes."""
    model = RecoNMF(n_components=3)
    for t in range(40):
        model.learn_one(t % 5, t % 7, float(t % 4 + 1))
    before = model.to_bytes()
    with pytest.raises(ValueError, match=r"too large: \|value\| must be at most") as err:
        model.learn_one(1, "new item", value)
    assert "\n" not in str(err.value)
    assert model.to_bytes() == before


def test_largest_accepted_ratings_keep_every_prediction_finite():
    from onlinenmf.validation import MAX_SAMPLE_SUM

    rng = np.random.default_rng(0)
    model = RecoNMF(n_components=3, l2_factors=0.1)
    for t in range(600):
        value = float(rng.choice([-1, 1])) * MAX_SAMPLE_SUM if t % 50 == 7 else t % 5 + 1.0
        model.learn_one(int(rng.integers(10)), int(rng.integers(10)), value)
    predictions = [model.predict_one(u, i) for u in range(10) for i in range(10)]
    assert np.all(np.isfinite(predictions))


def test_implicit_counts_summing_above_the_engine_limit_are_refused_without_trace():
    """Untransformed counts: the user's row is an engine sample, bounded in sum; the engine
    refused it only after the user's history had been changed."""
    model = RecoNMF(n_components=2, feedback="implicit", implicit_transform="none")
    model.learn_one("u", "a", 9e149)
    model.learn_one("v", "a", 1.0)
    before = model.to_bytes()
    with pytest.raises(ValueError, match="remembered counts"):
        model.learn_one("u", "b", 2e149)
    assert model.to_bytes() == before
    model.learn_one("v", "b", 2e149)  # another user's row has room


def test_consumer_dead_letters_a_huge_rating_with_the_model_unchanged():
    from consumers.application import Source
    from consumers.messages import BadMessage
    from consumers.reco import RecoApp, encode_rating

    app = RecoApp(model_params={"n_components": 2})
    app.restore(None)
    app.process(app.decode(encode_rating("a", "x", 4, 0)), Source("r", 0, 0, None, None, "w"))
    before = app.model.to_bytes()
    for offset, value in enumerate([1e200, 1e308], start=1):
        with pytest.raises(BadMessage) as err:
            app.process(app.decode(encode_rating("a", "y", value, 1)),
                        Source("r", 0, offset, None, None, "w"))
        assert err.value.kind == "bad_value" and "too large" in str(err.value)
    assert app.model.to_bytes() == before


def test_bad_implicit_value_and_bad_parameters():
    model = RecoNMF(feedback="implicit")
    with pytest.raises(ValueError, match="negative"):
        model.learn_one("u", "i", -1)
    assert model.n_users == model.n_items == 0
    for params, message in [({"feedback": "ratings"}, "feedback"), ({"solver": "als"}, "solver"),
                            ({"rating_range": (5, 1)}, "rating_range"),
                            ({"n_components": 0}, "n_components"),
                            ({"forget_factor": 0}, "forget_factor"),
                            ({"l2_factors": -1}, "l2_factors"), ({"history": 2.5}, "history"),
                            ({"recency": 0}, "recency"), ({"recency": 1.5}, "recency"),
                            ({"cooccurrence": -1}, "cooccurrence"),
                            ({"basket_recency": 0}, "basket_recency"),
                            ({"basket_recency": 1.5}, "basket_recency")]:
        with pytest.raises(ValueError, match=message):
            RecoNMF(**params)


# ---------------------------------------------------------------- state
@pytest.mark.parametrize("params", [
    {"rating_range": (1, 5)},
    {"rating_range": (1, 5), "refresh_every": 4, "forget_factor": 0.9},
    {"solver": "sgd"},
    {"feedback": "implicit", "refresh_every": 7},
])
def test_snapshot_round_trip_is_bit_exact_and_resumes_identically(params, tmp_path):
    events, _ = planted_ratings(n_users=15, n_items=12, seed=7)
    model = RecoNMF(n_components=3, **params)
    for user, item, value in events[:150]:
        model.learn_one(user, item, value)
    path = tmp_path / "reco.npz"
    model.save(path)
    copy = RecoNMF.load(path)
    assert copy == model
    for user, item, value in events[150:]:
        model.learn_one(user, item, value)
        copy.learn_one(user, item, value)
    assert copy == model
    assert copy.recommend("u1") == model.recommend("u1")


def test_corrupted_snapshot_is_refused(tmp_path):
    model = RecoNMF()
    model.learn_one("u", "i", 3)
    data = bytearray(model.to_bytes())
    data[len(data) // 2] ^= 0xFF
    with pytest.raises(SnapshotError):
        RecoNMF.from_bytes(bytes(data))
    with pytest.raises(SnapshotError):
        RecoNMF.load(tmp_path / "missing.npz")


def test_initial_factors_depend_on_the_item_not_on_arrival_order():
    one, two = RecoNMF(seed=3), RecoNMF(seed=3)
    for user, item in [("a", "x"), ("b", "y"), ("c", "z")]:
        one.learn_one(user, item, 3)
    for user, item in [("c", "z"), ("b", "y"), ("a", "x")]:
        two.learn_one(user, item, 3)
    for item in "xyz":
        np.testing.assert_array_equal(one._initial_factor(item), two._initial_factor(item))
    assert not np.array_equal(one._initial_factor("x"), RecoNMF(seed=4)._initial_factor("x"))


def test_strong_forgetting_renormalises_without_overflow():
    model = RecoNMF(rating_range=(0, 10), forget_factor=0.5)
    rng = np.random.default_rng(0)
    for _ in range(1500):  # 0.5**1500 underflows without the renormalisation
        model.learn_one(int(rng.integers(20)), int(rng.integers(20)), float(rng.integers(11)))
    assert model._scale > 1e-150
    assert np.all(np.isfinite(model._S[: model.n_items]))
    assert all(0 <= model.predict_one(u, i) <= 10 for u in range(20) for i in range(20))


# ---------------------------------------------------------------- real data
def test_beats_online_bias_baselines_on_movietweetings_prefix():
    """First 20,000 MovieTweetings ratings, prequential: RecoNMF's RMSE is below river's
    online user+item-bias model and BiasedMF (tutorial settings) on the same events."""
    from river import optim, reco

    from onlinenmf.datasets import load_movietweetings

    df = load_movietweetings().iloc[:20_000]
    events = list(zip(df["user"].tolist(), df["item"].tolist(), df["value"].tolist()))
    ours = prequential_rmse(RecoNMF(rating_range=(0, 10)), events)

    def river_rmse(model):
        errors = []
        for user, item, value in events:
            errors.append(min(max(model.predict_one(user, item), 0), 10) - value)
            model.learn_one(user, item, value)
        return float(np.sqrt(np.mean(np.square(errors[len(errors) // 2:]))))

    baseline = river_rmse(reco.Baseline(optimizer=optim.SGD(0.05)))
    biased = river_rmse(reco.BiasedMF(bias_optimizer=optim.SGD(0.025),
                                      latent_optimizer=optim.SGD(0.05), seed=73))
    assert ours < baseline and ours < biased, (ours, baseline, biased)


@pytest.mark.skipif(not os.environ.get("ONLINENMF_MOVIELENS"),
                    reason="MovieLens 100K is not bundled; set ONLINENMF_MOVIELENS to u.data")
def test_movielens_progressive_error_is_in_the_documented_range():
    from onlinenmf.datasets import load_movielens

    df = load_movielens()
    events = list(zip(df["user"].tolist(), df["item"].tolist(), df["value"].tolist()))
    rmse = prequential_rmse(RecoNMF(rating_range=(1, 5)), events)
    assert math.isfinite(rmse) and rmse < 1.0  # river documents BiasedMF at 0.948 over all


def test_pure_python_kernels_give_the_same_model():
    """NUMBA_DISABLE_JIT=1 runs the same kernels interpreted: the same parameters."""
    import subprocess
    import sys

    script = (
        "import numpy as np, sys; from onlinenmf import COMPILED;"
        "from onlinenmf.reco import RecoNMF;"
        "rng = np.random.default_rng(0);"
        "m = RecoNMF(n_components=3, rating_range=(1, 5), solver=sys.argv[1], l2_factors=1.0,"
        " refresh_every=int(sys.argv[2]));"
        "[m.learn_one(int(rng.integers(15)), int(rng.integers(12)), float(rng.integers(1, 6)))"
        " for _ in range(300)];"
        "sys.stdout.buffer.write(m._U[:m.n_users].tobytes() + m._I[:m.n_items].tobytes()"
        " + bytes([COMPILED]))"
    )
    for solver, every in [("cd", "1"), ("cd", "7"), ("sgd", "1")]:
        outputs = []
        for disable in ("1", "0"):
            env = {**os.environ, "NUMBA_DISABLE_JIT": disable}
            result = subprocess.run([sys.executable, "-c", script, solver, every], env=env,
                                    capture_output=True, check=True, timeout=300)
            outputs.append(result.stdout)
        assert outputs[0][-1] == 0 and outputs[1][-1] == 1  # interpreted, then compiled
        interpreted, compiled = (np.frombuffer(o[:-1]) for o in outputs)
        np.testing.assert_allclose(interpreted, compiled, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("params", [{"rating_range": (0, 10)},
                                    {"feedback": "implicit", "refresh_every": 10}])
def test_consumer_app_restored_from_its_snapshot_continues_identically(params):
    """What a restart from a checkpoint relies on: restore(snapshot()) then the same records
    give the same outputs and the same model (explicit and implicit)."""
    from consumers.application import Source
    from consumers.reco import RecoApp, encode_rating

    rng = np.random.default_rng(1)
    values = [encode_rating(f"u{rng.integers(30)}", int(rng.integers(40)),
                            float(rng.integers(1, 11)), t) for t in range(400)]

    def feed(app, start, stop):
        out = []
        for offset in range(start, stop):
            src = Source("r", 0, offset, None, None, "w")
            out += app.process(app.decode(values[offset]), src).outputs
        return out

    kwargs = {"model_params": {"n_components": 3, **params}, "recommend_every": 50,
              "top_n": 4}
    straight = RecoApp(**kwargs)
    straight.restore(None)
    first = feed(straight, 0, 170)
    restarted = RecoApp(**kwargs)
    restarted.restore(straight.snapshot())
    assert feed(restarted, 170, 400) == feed(straight, 170, 400)
    assert restarted.model == straight.model
    assert any(topic == "reco.recommendations" for topic, _, _ in first)


def test_recommendations_on_an_event_time_schedule():
    from consumers.application import Source
    from consumers.reco import RecoApp, encode_rating

    app = RecoApp(model_params={"rating_range": (0, 10)}, recommend_every=0,
                  recommend_interval=100.0, top_n=2)
    app.restore(None)
    emitted = []
    for t in range(0, 400, 7):  # event times 0, 7, ..., 399 seconds
        result = app.process(app.decode(encode_rating(f"u{t % 5}", f"i{t % 9}", 5, t)),
                             Source("r", 0, t, None, None, "w"))
        if any(topic == "reco.recommendations" for topic, _, _ in result.outputs):
            emitted.append(t)
    assert emitted == [105, 210, 315]  # the first event at or after each 100 s step
