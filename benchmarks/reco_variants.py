"""Why RecoNMF's factors died, measured: variants of the explicit model, one change at a time.

``python -m benchmarks reco --parts findings`` writes ``benchmarks/output/reco_findings.md``.

:func:`replay` is a compact re-implementation of the explicit model as it was before issue 18
(per event: the user's ``[b_u, p_u]`` solved to the optimum over their last ``history``
ratings, the event added to the item's statistics, the item re-solved from them; verified to
give RecoNMF's numbers of the time, 1.5915 / 1.5916 on MovieTweetings) with one switch per
hypothesis:

* ``lam``: the factors' ridge penalty; ``per_count``: ``lam`` times the number of ratings in
  the solve (ALS-WR, Zhou et al. 2008) instead of a constant;
* ``init`` / ``init_mode``: the initial item factors (``"uniform"``: ``init * U(0.5, 1.5)``
  as RecoNMF; ``"exponential"``; ``"sparse"``: ``init`` on about 2 of k coordinates);
* ``center``: the user factors shrink toward the population mean instead of 0 (no zero fixed
  point: the gradient at p = 0 no longer vanishes);
* ``ratings``: the factors model the ratings themselves (no global mean: ``b_u + b_i + p.q``,
  Luo et al. 2014; scikit-surprise's NMF with biases) instead of the residual after biases;
* ``before``: the item learns from the user's parameters *before* the rating (not from the
  ones solved with it, which have already fitted it);
* ``uncertainty``: the solves add each factor's posterior variance ``s2 / (G_jj + lam)`` of
  the other side to the Gram diagonal (a mean-field variational Bayes correction);
* ``item_history``: the item is re-solved over its last raters' *current* parameters (ALS
  with bounded histories) instead of forgetful statistics;
* ``forget``: forgetting of the item statistics; ``history``: ratings remembered per user.

Then where the factors could help (:func:`warm_share`, the factors' change by bucket of the
user's earlier ratings), and :func:`batch_tuned`: scikit-surprise's biases, SVD, SVD++ and NMF
fitted on the first 80 % of MovieTweetings in time order and scored on the last 20 %, each
family's penalties chosen by validation inside the training part; the same on a random split,
and on the planted stream as a positive control: whether any factor model beats well
regularised biases on this data at all.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from onlinenmf._jit import njit
from onlinenmf.datasets import load_movietweetings
from onlinenmf.reco import RecoNMF
from onlinenmf.reco_kernels import cd_free_first

INIT_MODES = {"uniform": 0, "exponential": 1, "sparse": 2}


@njit
def _solve_centered(G, c, x, lam, center, max_iter, tol):
    """``min 1/2 x^T G x - c.x + 1/2 sum lam_j (x_j - center_j)^2`` with ``x[1:] >= 0``."""
    shifted = c + lam * center
    cd_free_first(G, shifted, x, lam, max_iter, tol)


@njit
def _remember(row, key, value, keys, values, lengths, nexts):
    """Ring buffer of (key, value) per row; a key already there is overwritten."""
    length = lengths[row]
    for t in range(length):
        if keys[row, t] == key:
            values[row, t] = value
            return length
    if length < keys.shape[1]:
        slot = length
        lengths[row] = length + 1
    else:
        slot = nexts[row]
        nexts[row] = (slot + 1) % keys.shape[1]
    keys[row, slot] = key
    values[row, slot] = value
    return lengths[row]


@njit
def _gram(rows, values, other, mu, G, c, variances, add_variance):
    """Masked normal equations over a history: ``z = [1, other factors]``, target
    ``value - mu - other bias``; optionally the other side's factor variances on the diagonal."""
    n = G.shape[0]
    G[:, :] = 0.0
    c[:] = 0.0
    z = np.empty(n)
    z[0] = 1.0
    for t in range(rows.shape[0]):
        j = rows[t]
        for a in range(1, n):
            z[a] = other[j, a]
        y = values[t] - mu - other[j, 0]
        for a in range(n):
            c[a] += z[a] * y
            for b in range(n):
                G[a, b] += z[a] * z[b]
        if add_variance:
            for a in range(1, n):
                G[a, a] += variances[j, a]


@njit
def _replay(users, items, ratings, k, history, lam_bias, lam, per_count, init, init_mode,
            center, ratings_mode, before, uncertainty, noise, item_history, forget, low, high,
            tail, seed):
    n_events = users.shape[0]
    n_users = users.max() + 1
    n_items = items.max() + 1
    n = k + 1
    U = np.zeros((n_users, n))
    V = np.zeros((n_items, n))
    U_var = np.zeros((n_users, n))
    V_var = np.zeros((n_items, n))
    np.random.seed(seed)
    for i in range(n_items):
        for j in range(1, n):
            if init_mode == 0:
                V[i, j] = init * (0.5 + np.random.random())
            elif init_mode == 1:
                V[i, j] = init * np.random.exponential()
            else:
                V[i, j] = init if np.random.random() < 2.0 / k else 0.0
    user_seen = np.zeros(n_users, np.bool_)
    item_seen = np.zeros(n_items, np.bool_)
    h_items = np.zeros((n_users, history), np.int64)
    h_values = np.zeros((n_users, history))
    h_len = np.zeros(n_users, np.int64)
    h_next = np.zeros(n_users, np.int64)
    width = max(item_history, 1)
    r_users = np.zeros((n_items, width), np.int64)
    r_values = np.zeros((n_items, width))
    r_len = np.zeros(n_items, np.int64)
    r_next = np.zeros(n_items, np.int64)
    S = np.zeros((n_items, n, n + 1))
    user_sum = np.zeros(n)
    n_seen = 0
    errors = np.empty(n_events)
    interaction = 0.0
    counted = 0
    total = 0.0
    scale = 1.0
    G = np.empty((n, n))
    c = np.empty(n)
    x = np.empty(n)
    lam_vec = np.empty(n)
    prior = np.zeros(n)
    mean_user = np.zeros(n)
    for t in range(n_events):
        u, i, r = users[t], items[t], ratings[t]
        if n_seen > 0:
            mean_user[:] = user_sum / n_seen
        # ---- predict (prequential)
        if t == 0:
            prediction = (low + high) / 2
        elif ratings_mode and not item_seen[i]:
            prediction = total / t + (U[u, 0] if user_seen[u] else 0.0)
        else:
            prediction = total / t if not ratings_mode else 0.0
            if user_seen[u]:
                prediction += U[u, 0]
            if item_seen[i]:
                prediction += V[i, 0]
                for j in range(1, n):
                    if user_seen[u]:
                        prediction += U[u, j] * V[i, j]
                    elif center or ratings_mode:  # a new user: the population's mean
                        prediction += mean_user[j] * V[i, j]
        errors[t] = min(max(prediction, low), high) - r
        if t >= n_events - tail and user_seen[u] and item_seen[i]:
            s = 0.0
            for j in range(1, n):
                s += U[u, j] * V[i, j]
            interaction += abs(s)
            counted += 1
        # ---- learn
        total += r
        mu = 0.0 if ratings_mode else total / (t + 1)
        if not user_seen[u]:
            user_seen[u] = True
            n_seen += 1
            if center:
                U[u, 1:] = mean_user[1:]
            user_sum += U[u]
        item_seen[i] = True
        length = _remember(u, i, r, h_items, h_values, h_len, h_next)
        _gram(h_items[u, :length], h_values[u, :length], V, mu, G, c, V_var, uncertainty)
        lam_vec[0] = lam_bias
        lam_vec[1:] = lam * length if per_count else lam
        prior[:] = 0.0
        if center:
            prior[1:] = mean_user[1:]
        previous = U[u].copy()
        user_sum -= U[u]
        x[:] = U[u]
        _solve_centered(G, c, x, lam_vec, prior, 10, 1e-4)
        U[u] = x
        user_sum += x
        for a in range(1, n):
            U_var[u, a] = noise / (G[a, a] + lam_vec[a]) if x[a] > 0 else 0.0
        z = previous if before else U[u]
        prior[:] = 0.0
        if item_history > 0:
            count = _remember(i, u, r, r_users, r_values, r_len, r_next)
            _gram(r_users[i, :count], r_values[i, :count], U, mu, G, c, U_var, uncertainty)
        else:
            scale *= forget
            w = 1.0 / scale
            y = r - z[0]
            for a in range(n):
                za = 1.0 if a == 0 else z[a]
                S[i, a, n] += w * za * y
                for b in range(n):
                    S[i, a, b] += w * za * (1.0 if b == 0 else z[b])
                if uncertainty and a > 0:
                    S[i, a, a] += w * U_var[u, a]
            for a in range(n):
                c[a] = (S[i, a, n] - mu * S[i, a, 0]) * scale
                for b in range(n):
                    G[a, b] = S[i, a, b] * scale
            count = S[i, 0, 0] * scale
            if scale < 1e-150:
                S *= scale
                scale = 1.0
        lam_vec[1:] = lam * count if per_count else lam
        x[:] = V[i]
        _solve_centered(G, c, x, lam_vec, prior, 10, 1e-4)
        V[i] = x
        for a in range(1, n):
            V_var[i, a] = noise / (G[a, a] + lam_vec[a]) if x[a] > 0 else 0.0
    return errors, interaction / max(counted, 1)


def codes(df: pd.DataFrame) -> tuple:
    return (df["user"].astype("category").cat.codes.to_numpy(np.int64),
            df["item"].astype("category").cat.codes.to_numpy(np.int64),
            df["value"].to_numpy(np.float64))


def replay(data: tuple, low: float, high: float, *, k: int = 10, history: int = 50,
           lam_bias: float = 2.0, lam: float = 10.0, per_count: bool = False,
           init: float = 0.1, init_mode: str = "uniform", center: bool = False,
           ratings: bool = False, before: bool = False, uncertainty: bool = False,
           noise: float = 2.5, item_history: int = 0, forget: float = 1.0,
           seed: int = 0) -> dict:
    """Prequential RMSE of one variant, and the mean |p.q| over its last 5,000 events."""
    errors, interaction = _replay(
        *data, k, history, lam_bias, lam, per_count, init, INIT_MODES[init_mode], center,
        ratings, before, uncertainty, noise, item_history, forget, low, high, 5000, seed)
    return {"rmse": float(np.sqrt(np.mean(errors**2))), "pq": float(interaction)}


def reconmf(df: pd.DataFrame, low: float, high: float, **params) -> dict:
    """The shipped RecoNMF, scored the same way; also each event's error and how many
    ratings its user had given before it."""
    model = RecoNMF(rating_range=(low, high), **params)
    events = list(zip(df["user"].tolist(), df["item"].tolist(), df["value"].tolist()))
    errors, interaction = np.empty(len(events)), []
    prior = df.groupby("user", sort=False).cumcount().to_numpy()
    for t, (user, item, value) in enumerate(events):
        errors[t] = model.predict_one(user, item) - value
        if t >= len(events) - 5000:
            u, i = model._users.get(user), model._items.get(item)
            if u is not None and i is not None:
                interaction.append(abs(model._U[u, 1:] @ model._I[i, 1:]))
        model.learn_one(user, item, value)
    return {"rmse": float(np.sqrt(np.mean(errors**2))), "pq": float(np.mean(interaction)),
            "errors": errors, "prior": prior}


#: Buckets of the user's ratings before the event (where a factor model can help).
PRIOR_BUCKETS = [(0, 1), (1, 20), (20, 100), (100, None)]


def _bucket_rows(label: str, ours: dict, without: dict) -> list[str]:
    """The factors' change of RMSE per bucket of the user's earlier ratings."""
    rows = []
    for lo, hi in PRIOR_BUCKETS:
        sel = (ours["prior"] >= lo) & (ours["prior"] < (hi or np.inf))
        a, b = (float(np.sqrt(np.mean(r["errors"][sel] ** 2))) for r in (ours, without))
        span = f"{lo}+" if hi is None else str(lo) if hi == lo + 1 else f"{lo}-{hi - 1}"
        rows.append(f"| {label} | {span} | {sel.mean():.0%} | {a:.4f} | {b:.4f} | "
                    f"{100 * (a - b) / b:+.2f} % |")
    return rows


def warm_share(df: pd.DataFrame, least: int = 20) -> float:
    """Share of events whose user and item both had ``least`` earlier ratings."""
    users = df.groupby("user", sort=False).cumcount().to_numpy()
    items = df.groupby("item", sort=False).cumcount().to_numpy()
    return float(np.mean((users >= least) & (items >= least)))


def planted(seed: int = 0, n_users: int = 943, n_items: int = 1682, n_events: int = 100_000,
            k: int = 5, signal: float = 0.45, noise: float = 0.8) -> pd.DataFrame:
    """A 1-5 star stream shaped like MovieLens 100K (943 users with >= 20 ratings, 1,682
    items with Zipf popularity, users arriving over time) whose ratings hold a planted
    non-negative rank-5 taste structure (standardised to ``signal``) besides biases and noise:
    a stream where factors have something to find. Not a substitute for real data."""
    rng = np.random.default_rng(seed)
    activity = np.maximum(20, rng.lognormal(4.2, 0.9, n_users))
    activity = np.round(activity * n_events / activity.sum()).astype(int)
    popularity = rng.permutation(1.0 / np.arange(1, n_items + 1) ** 0.9)
    popularity /= popularity.sum()
    tastes = rng.dirichlet([0.3] * k, n_users) @ rng.dirichlet([0.3] * k, n_items).T
    tastes = (tastes - tastes.mean()) / tastes.std() * signal
    user_bias = rng.normal(0, 0.4, n_users)
    item_bias = rng.normal(0, 0.5, n_items) - 0.18 * np.log(popularity * n_items)
    start = np.sort(rng.uniform(0, 1, n_users))
    frames = []
    for u in range(n_users):
        m = min(activity[u], n_items - 1)
        rated = rng.choice(n_items, size=m, replace=False, p=popularity)
        times = start[u] + rng.exponential(0.05, m).cumsum() * (1 - start[u]) / 2
        values = np.clip(np.round(3.5 + user_bias[u] + item_bias[rated] + tastes[u, rated]
                                  + rng.normal(0, noise, m)), 1, 5)
        frames.append(pd.DataFrame({"user": u, "item": rated.astype(str), "value": values,
                                    "time": times}))
    return pd.concat(frames).sort_values("time", kind="stable", ignore_index=True)


#: (label, replay switches); MovieTweetings penalties, the planted stream's scaled by the
#: ratio of the two streams' rating standard deviations where a row says "scaled".
VARIANTS = [
    ("before issue 18: lam 10, item statistics from the user's solved row", {}),
    ("  same, no factors (lam 1e12)", {"lam": 1e12}),
    ("  lam 5", {"lam": 5.0}),
    ("  lam 3", {"lam": 3.0}),
    ("  lam 1", {"lam": 1.0}),
    ("  init 1.0 instead of 0.1", {"init": 1.0}),
    ("  exponential init 0.5", {"init": 0.5, "init_mode": "exponential"}),
    ("  sparse init 0.5", {"init": 0.5, "init_mode": "sparse"}),
    ("  sparse init 0.5, lam 3", {"init": 0.5, "init_mode": "sparse", "lam": 3.0}),
    ("  penalty per rating count (ALS-WR), lam 0.3", {"per_count": True, "lam": 0.3}),
    ("  penalty per rating count (ALS-WR), lam 1", {"per_count": True, "lam": 1.0}),
    ("  user factors shrink to the population mean, lam 10", {"center": True}),
    ("  user factors shrink to the population mean, lam 3", {"center": True, "lam": 3.0}),
    ("  factors model the ratings (b_u + b_i + p.q), lam 10", {"ratings": True}),
    ("  factors model the ratings (b_u + b_i + p.q), lam 1, init 1", {"ratings": True,
                                                                      "lam": 1.0, "init": 1.0}),
    ("  posterior variances in the solves (VB), lam 1", {"uncertainty": True, "lam": 1.0,
                                                         "before": True}),
    ("  item re-solved over its last 200 raters' current rows, lam 10", {"item_history": 200}),
    ("  item re-solved over its last 200 raters' current rows, lam 3",
     {"item_history": 200, "lam": 3.0}),
    ("  item re-solved over its last 200 raters' current rows, lam 4.7 (the default's scale)",
     {"item_history": 200, "lam": 4.7}),
    ("  item re-solved over its last 50 raters' current rows, lam 4.7",
     {"item_history": 50, "lam": 4.7}),
    ("  item re-solved over its last 200 raters' current rows, no factors",
     {"item_history": 200, "lam": 1e12}),
    ("  forgetting 0.9999 of the item statistics", {"forget": 0.9999}),
    ("item learns from the user's row before the rating, lam 10", {"before": True}),
    ("  same, no factors", {"before": True, "lam": 1e12}),
    ("  lam 5", {"before": True, "lam": 5.0}),
    ("  lam 3", {"before": True, "lam": 3.0}),
    ("  lam 1", {"before": True, "lam": 1.0}),
    ("  history 20 ratings, lam 4.7", {"before": True, "lam": 4.7, "history": 20}),
    ("  history 200 ratings, lam 4.7", {"before": True, "lam": 4.7, "history": 200}),
    ("  forgetting 0.9999, lam 4.7", {"before": True, "lam": 4.7, "forget": 0.9999}),
]


#: What the table says (kept beside the code that measures it; the rows are named).
READING = [
    "What the rows say:",
    "",
    "- **The zero fixed point is real but not the cause.** At p = 0 the gradient of the "
    "factors is -sum q_j y_j: with near-constant initial q it is collinear with the bias's, "
    "the free bias takes it, p stays 0 and the item, fed p = 0, keeps q at 0. But other "
    "initialisations (scale 1, exponential, sparse) leave the result unchanged: the penalty "
    "decides.",
    "- **The penalty: dead or overfitting, never useful, because of in-sample feedback.** "
    "Before issue 18 the item's statistics received the user's row solved *with* the rating "
    "it was learning: that row has fitted the rating, so the item learned the user's "
    "residual back through it. Penalties low enough for the factors to live made "
    "MovieTweetings worse at lam 5, 3 and 1 and the planted stream at 3 and 1 (split by "
    "bucket, in an exploration of the item-history "
    "variant, which also feeds rows solved with the rating, the loss hit users with 100+ "
    "ratings and items with 100+ raters more than new ones: feedback, not small-sample "
    "noise). Fed the user's row from *before* the rating, lam 5 and 3 make the factors pay "
    "on the planted stream and cost nothing (5) or little (3) on MovieTweetings; lam 1 still "
    "overfits both.",
    "- **A penalty per rating count (ALS-WR)** either kills the factors or overfits, on both "
    "streams; a constant penalty per solve (a Gaussian prior, which does not grow with the "
    "data) is the Bayesian choice. It must scale with the ratings (ratings x s: factors x "
    "sqrt(s), squared error x s^2, |p|^2 x s): RecoNMF's default is now 2.5 x the running "
    "standard deviation of the ratings (4.7 on MovieTweetings, 2.7 on a 1-5 scale).",
    "- **Factors modelling the ratings themselves** (b_u + b_i + p.q without the mean, as "
    "Luo et al. 2014 and scikit-surprise's NMF with biases) are far worse in a stream: the "
    "penalty pulls every thinly-rated user or item toward a prediction of 0.",
    "- **Shrinking toward the population mean** instead of 0 (no zero fixed point) and "
    "**posterior variances in the solves** (variational Bayes) change nothing, make it "
    "worse (a lower penalty) or kill the factors (VB).",
    "- **Re-solving the item over its last 200 raters' current rows** (bounded-history ALS) "
    "is the best variant on both streams at lam 10, but on MovieTweetings by its biases (the "
    "item sees its raters' current biases; without factors it scores the same): at the "
    "default's penalty scale (4.7) its factors overfit MovieTweetings, with 50 raters "
    "too. It costs 200 (k+1)^2 per event and 200 entries per item, and replaces the "
    "forgetful statistics behind forget_factor and refresh_every: measured, not adopted.",
    "- **Forgetting** the item statistics hurts on both streams; a history of 50 ratings per "
    "user is as good as 200, 20 is worse.",
    "- **MovieTweetings holds almost no low-rank signal beyond the biases** (tables below). "
    "Most of its events have no history to factor: its users are many and rate little, so "
    "events whose user and item both had 20 earlier ratings are a small share; even for "
    "users with 100+ earlier ratings the factors change RMSE by about a tenth of a per cent "
    "(on the planted stream over twenty times more). In batch, with each family's "
    "penalties (biases and factors apart) chosen by validation inside the training part, "
    "validation pushes the factor penalties of SVD (k 10, 50) and NMF to the strong end of "
    "their grids on the time split, and no factor model beats the biases by more than a "
    "fraction of a per cent, on the time split, on its warm ratings, or on a random split "
    "without cold start; SVD++ (implicit feedback: which items a user rated, where "
    "MovieTweetings' signal might have been) does worse than the biases. The same harness "
    "finds the planted stream's factors (the positive control). The issue's target there "
    "(factors cut RMSE >= 1 % against the same model without them) is out of reach of a "
    "factor model on this stream.",
]


def _grid(biases: tuple, factors: tuple, implicit: bool = False) -> list[dict]:
    """Separate penalties for the biases and the factors (``reg_all`` would tie them)."""
    return [{"reg_bu": b, "reg_bi": b, "reg_pu": f, "reg_qi": f, **({"reg_yj": f} if implicit
                                                                    else {})}
            for b in biases for f in factors]


#: Batch models on the time split, each family's penalties chosen by validation inside the
#: training part: (label, scikit-surprise class, fixed parameters, grid of penalties).
BATCH_FAMILIES = [
    ("biases only (BaselineOnly, SGD, 40 epochs)", "BaselineOnly", {},
     [{"reg": r} for r in (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)]),
    ("SVD k 10 (40 epochs)", "SVD", {"n_factors": 10, "n_epochs": 40},
     _grid((0.02, 0.05, 0.1), (0.02, 0.05, 0.1, 0.2, 0.5, 1.0))),
    ("SVD k 50 (40 epochs)", "SVD", {"n_factors": 50, "n_epochs": 40},
     _grid((0.02, 0.05, 0.1), (0.02, 0.05, 0.1, 0.2, 0.5, 1.0))),
    ("SVD++ k 10 (implicit feedback: which items a user rated)", "SVDpp", {"n_factors": 10},
     _grid((0.02, 0.05, 0.1), (0.05, 0.1, 0.2, 0.5, 1.0), implicit=True)),
    ("NMF with biases k 10 (50 epochs)", "NMF", {"n_factors": 10, "biased": True,
                                                 "n_epochs": 50},
     _grid((0.02, 0.05, 0.1), (0.06, 0.5, 2.0, 8.0, 32.0, 128.0))),
]
#: Test ratings whose user and whose item both have at least this many training ratings:
#: where a factor model has what it needs (a new user or item can only get biases).
WARM = 20


def _surprise(name: str, fixed: dict, penalties: dict):
    import surprise

    if name == "BaselineOnly":
        options = {"method": "sgd", "learning_rate": 0.005, "n_epochs": 40, **penalties}
        return surprise.BaselineOnly(bsl_options=options, verbose=False)
    return getattr(surprise, name)(**fixed, **penalties, random_state=0)


def _fit_predict(algo, train: pd.DataFrame, test: pd.DataFrame, low: float,
                 high: float) -> np.ndarray:
    """Squared errors of a batch fit on ``train`` over ``test``."""
    from surprise import Dataset, Reader

    data = Dataset.load_from_df(train[["user", "item", "value"]],
                                Reader(rating_scale=(low, high)))
    algo.fit(data.build_full_trainset())
    pairs = zip(test["user"], test["item"], test["value"])
    return np.array([(algo.predict(u, i).est - r) ** 2 for u, i, r in pairs])


def batch_tuned(df: pd.DataFrame, low: float, high: float, shuffle: int | None = None
                ) -> list[str]:
    """Batch models on the time split (first 80 % in time order -> last 20 %), each family's
    penalties chosen on the training part alone (its first 80 % -> the rest), then refit on
    the whole training part and scored once on the test part, on all test ratings and on the
    warm ones (user and item with >= :data:`WARM` training ratings); the gain of the best
    factor model over the best biases-only model. ``shuffle``: a random split instead (the
    rows shuffled with that seed): the signal a factor model finds without the stream's cold
    start."""
    try:
        import surprise  # noqa: F401
    except ImportError:
        return ["(scikit-surprise not installed: no batch table)"]
    if shuffle is not None:
        df = df.sample(frac=1.0, random_state=shuffle, ignore_index=True)
    cut = int(0.8 * len(df))
    train, test = df.iloc[:cut], df.iloc[cut:]
    inner = int(0.8 * cut)
    fit, valid = train.iloc[:inner], train.iloc[inner:]
    users, items = train["user"].value_counts(), train["item"].value_counts()
    warm = (test["user"].map(users).fillna(0).to_numpy() >= WARM) & (
        test["item"].map(items).fillna(0).to_numpy() >= WARM)
    split = "time split" if shuffle is None else f"random split, seed {shuffle}"
    lines = [f"| model (batch, {split}) | penalties chosen on validation | validation RMSE "
             f"| test RMSE | test RMSE, warm ({warm.sum():,} ratings) |", "|---|---|---|---|---|"]
    scores = {}
    for label, name, fixed, grid in BATCH_FAMILIES:
        valid_rmse = [float(np.sqrt(np.mean(_fit_predict(_surprise(name, fixed, g), fit, valid,
                                                         low, high)))) for g in grid]
        best = int(np.argmin(valid_rmse))
        errors = _fit_predict(_surprise(name, fixed, grid[best]), train, test, low, high)
        scores[label] = (float(np.sqrt(errors.mean())), float(np.sqrt(errors[warm].mean())))
        chosen = ", ".join(f"{k} {v}" for k, v in grid[best].items())
        lines.append(f"| {label} | {chosen} (of {len(grid)}) | {valid_rmse[best]:.4f} | "
                     f"{scores[label][0]:.4f} | {scores[label][1]:.4f} |")
    biases = scores[BATCH_FAMILIES[0][0]]
    factor_label = min(list(scores)[1:], key=lambda label: scores[label][0])
    gain, gain_warm = (100 * (b - f) / b for b, f in zip(biases, scores[factor_label]))
    lines += ["", f"Best factor model on the test part ({factor_label}) against biases only: "
              f"RMSE {gain:+.2f} % lower on all test ratings, {gain_warm:+.2f} % on the warm "
              "ones (the streaming target: 1 %)."]
    return lines


def findings() -> list[str]:
    start = time.perf_counter()
    movies = load_movietweetings()
    stream = planted()
    mt, syn = codes(movies), codes(stream)
    scale = float(stream["value"].std() / movies["value"].std())  # penalty scale 1-5 vs 0-10
    replay(mt, 0.0, 10.0, k=2)  # compile
    lines = [
        "Prequential RMSE (predict, then learn, in time order, clipped to the range) and the "
        "mean |p.q| of the predictions over the last 5,000 events, k = 10, for each variant of "
        "the explicit model (benchmarks/reco_variants.py: a re-implementation with one switch "
        "per hypothesis; its first row reproduces RecoNMF before issue 18). Two streams: "
        "MovieTweetings 100K (0-10) and a planted MovieLens-shaped 1-5 stream "
        "(`reco_variants.planted`: biases + a non-negative rank-5 taste structure + noise) "
        f"where factors have something to find; its penalties are MovieTweetings' x {scale:.2f} "
        "(the ratio of the rating standard deviations: a penalty scales with the ratings).",
        "",
        "| variant | MovieTweetings RMSE | mean \\|p.q\\| | planted RMSE | mean \\|p.q\\| |",
        "|---|---|---|---|---|",
    ]
    for label, switches in VARIANTS:
        a = replay(mt, 0.0, 10.0, **switches)
        scaled = {**switches, "lam": switches.get("lam", 10.0) * scale,
                  "noise": 2.5 * scale**2}
        b = replay(syn, 1.0, 5.0, **scaled)
        lines.append(f"| {label} | {a['rmse']:.4f} | {a['pq']:.2g} | {b['rmse']:.4f} | "
                     f"{b['pq']:.2g} |")
    now = {}  # (factors?, stream): RecoNMF's result
    for label, factors, params in [
            ("RecoNMF now: defaults (before + lam 2.5 x running std)", True, {}),
            ("  RecoNMF now, no factors", False, {"l2_factors": 1e12})]:
        a = now[factors, "mt"] = reconmf(movies, 0.0, 10.0, **params)
        b = now[factors, "planted"] = reconmf(stream, 1.0, 5.0, **params)
        lines.append(f"| {label} | {a['rmse']:.4f} | {a['pq']:.2g} | {b['rmse']:.4f} | "
                     f"{b['pq']:.2g} |")
    lines += ["", *READING, ""]
    lines += [
        "",
        "Where the factors could help: RecoNMF at its defaults against the same model without "
        "factors, by how many ratings the user had given before the event. Events whose user "
        f"and item both had 20 earlier ratings: {warm_share(movies):.0%} of MovieTweetings, "
        f"{warm_share(stream):.0%} of the planted stream (MovieTweetings has "
        f"{movies['user'].nunique():,} users, a median of "
        f"{movies.groupby('user').size().median():.0f} ratings each).",
        "",
        "| stream | user's earlier ratings | share of events | RMSE | no factors | change |",
        "|---|---|---|---|---|---|",
        *_bucket_rows("MovieTweetings", now[True, "mt"], now[False, "mt"]),
        *_bucket_rows("planted", now[True, "planted"], now[False, "planted"]),
        "",
        "Batch models on MovieTweetings, trained on the first 80 % of the stream in time "
        "order and scored on the last 20 % (no updates), every family's penalties (biases "
        "and factors apart) chosen on the training part alone (its first 80 % -> the rest): "
        "does any factor model beat well regularised biases on this data?",
        "",
        *batch_tuned(movies, 0.0, 10.0),
        "",
        "The same on a random split (the rows shuffled, seed 0: no cold start in time, the "
        "most a factor model could find in these ratings):",
        "",
        *batch_tuned(movies, 0.0, 10.0, shuffle=0),
        "",
        "A positive control: the same harness on the planted stream (time split), where "
        "factors have something to find:",
        "",
        *batch_tuned(stream, 1.0, 5.0),
        "",
        f"({time.perf_counter() - start:.0f} s)",
    ]
    print("\n".join(lines))
    return lines
