"""Non-negative matrix completion for recommender streams: one rating event at a time.

A rating event ``(user, item, value)`` observes one entry of a huge, mostly empty user x item
matrix. :class:`RecoNMF` keeps non-negative factors for users and items and learns them from
the stream, in one of two modes:

``feedback="explicit"`` (ratings in a bounded range)
    ``r_ui ~ mu + b_u + b_i + p_u . q_i`` with ``p_u, q_i >= 0`` (the biased NMF of Surprise;
    ``biases=False`` gives plain masked NMF ``r_ui ~ p_u . q_i``). The loss is masked: only
    observed entries count, never the zeros. Per event, the user's ``[b_u, p_u]`` is re-solved
    to the optimum (NNLS by coordinate descent, warm-started) over the user's bounded history
    of observed entries; the event is added to the item's forgetful statistics
    (``sum w [1,p_u][1,p_u]^T``, ``sum w [1,p_u] (r - b_u)`` with the user's parameters from
    *before* the event; mu is subtracted at solve time) from which ``[b_i, q_i]`` is
    re-solved every ``refresh_every`` events (1: at once). The factors' default penalty is
    proportional to the running standard deviation of the ratings.
    ``solver="sgd"`` replaces both solves by one projected stochastic-gradient step (kept for
    comparison: it measured worse, see :class:`RecoNMF` Notes).
    Predictions are clipped to ``rating_range``.

``feedback="implicit"`` (counts, purchases)
    Unobserved entries are *not* missing here: a zero means "not bought", and a loss masked to
    the observed (all positive) entries would learn that everything is liked. Each user is a
    sample of the engine :class:`onlinenmf.OnlineNMF` (KL divergence, the Poisson likelihood of
    counts): ``x_u = {item: sum of transformed values x recency ** (user's events since
    the item's last one)}`` over the user's bounded history,
    ``h_u`` solved at each of the user's events, the item dictionary ``W`` refreshed from the
    engine's forgetful statistics. The factors' scores are ``(W h_u)_i``, with ``h_u``
    re-solved against the current ``W`` when it was refreshed since the user's last event.
    Beside the factors, a sparse item-item co-occurrence memory: each purchase pairs with
    the user's earlier items, weighted ``basket_recency ** (events between them)`` (the rest
    of a basket); a user's co-occurrence scores sum the rows of their last items. The two
    are blended, ``f / max f + cooccurrence * c / max c`` (``cooccurrence=0``: the factors
    alone, ``W h_u``).

Cold start: an unknown user gets ``mu + b_i`` (explicit) or item popularity (implicit); an
unknown item gets ``mu + b_u``; before any event, predictions are the middle of the rating
range (or 0). Nothing is created by a prediction.

Examples
--------
>>> from onlinenmf.reco import RecoNMF
>>> model = RecoNMF(n_components=2, rating_range=(1, 5), seed=0)
>>> for user, item, r in [("ann", "matrix", 5), ("bob", "matrix", 4), ("ann", "up", 2),
...                       ("bob", "alien", 5), ("cid", "up", 1), ("cid", "matrix", 4)]:
...     model.learn_one(user, item, r)
>>> 1.0 <= model.predict_one("bob", "up") <= 5.0
True
>>> [item for item, _ in model.recommend("ann", n=2, exclude_seen=True)]
['alien']
>>> model.predict_one("nobody", "nothing")     # cold start: the running mean
3.5
"""

from __future__ import annotations

import hashlib
import math
import numbers
import os
from collections.abc import Hashable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from onlinenmf import reco_kernels as kernels
from onlinenmf import snapshot
from onlinenmf.engine import OnlineNMF
from onlinenmf.parameters import RECO
from onlinenmf.validation import MAX_SAMPLE_SUM

__all__ = ["RecoNMF"]

#: Renormalise the lazily-forgotten item statistics before the running scale underflows.
_SCALE_FLOOR = 1e-150
#: Default ridge penalty of the explicit factors, per unit of the ratings' running standard
#: deviation. A penalty must grow linearly with the rating scale to mean the same thing (ratings
#: x s: factors x sqrt(s), the squared error x s^2, |p|^2 x s); 2.5 is the middle of the range
#: where the factors neither die nor overfit (benchmarks/output/reco_findings.md).
FACTOR_PENALTY_PER_STD = 2.5

#: Implicit co-occurrence: a remembered item whose basket weight falls below this neither
#: pairs with a new purchase nor scores (0.1 ** 5 on the default basket_recency of 0.1).
_PAIR_FLOOR = 1e-5

#: The constructor's parameter names (their types, defaults and checks:
#: :data:`onlinenmf.parameters.RECO`).
PARAMETERS = RECO.names


def _check_id(kind: str, name: Hashable) -> str | int:
    if isinstance(name, str):
        return name
    if isinstance(name, numbers.Integral) and not isinstance(name, bool | np.bool_):
        return int(name)
    raise ValueError(f"{kind} id {name!r} has type {type(name).__name__}; use str or int")


class RecoNMF:
    """Streaming non-negative matrix completion (see the module docstring for the model).

    Parameters
    ----------
    n_components
        Rank k of the user and item factors.
    feedback
        ``"explicit"`` (ratings, masked squared loss) or ``"implicit"`` (counts, KL NMF of
        the user x item matrix with zeros observed).
    rating_range
        ``(low, high)``: explicit values outside it are refused, predictions are clipped to it.
        ``None``: no bound (predictions of implicit scores are never clipped).
    biases
        Explicit only: model ``mu + b_u + b_i`` besides the factors.
    solver
        Explicit only: ``"cd"`` (per-event NNLS to the optimum, coordinate descent) or
        ``"sgd"`` (one projected gradient step per event).
    history
        Observed entries remembered per user (the latest ones; a re-rated item keeps one).
    l2_bias, l2_factors
        Ridge penalties of the biases and of the factors in each least-squares solve
        (``"sgd"``: the weight decay of the gradient step). Implicit: ``l2_factors`` is the
        engine's ``l2_h``. ``None``: explicit, ``2.5`` times the running standard deviation of
        the ratings (:data:`FACTOR_PENALTY_PER_STD`: the same meaning on any rating scale);
        implicit, 0.
    forget_factor
        Per event: the item statistics (explicit) or the engine's statistics (implicit)
        weigh an event of age ``a`` by ``forget_factor ** a``; 1 keeps everything.
    refresh_every
        Events between two refreshes of the item side. Explicit: 1 re-solves the rated item at
        once; n > 1 re-solves every item rated since the last refresh, every n events.
        Implicit: the engine's dictionary refresh period.
    learning_rate
        ``"sgd"`` solver: the step on the factors (the biases use twice that).
    max_iter, tol
        Coordinate-descent sweeps per solve and relative stopping tolerance.
    implicit_transform
        Implicit only: ``"log1p"`` (default: tames the bulk orders), ``"binary"`` or ``"none"``.
    recency
        Implicit only: in the user's row, an item weighs ``recency ** a``, ``a`` the user's
        events since they last bought it (1: all remembered items alike). What a customer
        buys next goes with what they bought last (the rest of a basket); chosen on Online
        Retail's tuning part (``benchmarks/bench_reco.py --parts retail-tuning``).
    cooccurrence
        Implicit only: weight of the co-occurrence scores against the factors' (each scaled
        to a largest score of 1); 0 turns the co-occurrence memory off (scores ``W h_u``).
        The memory holds one entry per pair of items bought close together by a user and
        is not forgotten (``forget_factor`` applies to the factors and to popularity).
    basket_recency
        Implicit only: a purchase co-occurs with the user's item bought ``a`` events earlier
        with weight ``basket_recency ** a``, and a user's scores sum the co-occurrence rows of
        their items with the same weights (pairs below 1e-5 are skipped: with 0.1, the last
        five items).
    init_scale
        Initial item factors are ``init_scale * U(0.5, 1.5)``, drawn from (seed, item id).
    seed
        Seeds the initial factors; a factor depends only on (seed, id), not on arrival order.

    Notes
    -----
    Why these choices (measured with ``benchmarks/bench_reco.py``, prequential, same run):

    * Per-event exact solves over the user's history beat projected SGD on MovieTweetings 100K
      (RMSE 1.592 vs 1.619 for SGD at the best point of a small learning-rate grid); the user
      is re-solved against the *current* item parameters, where SGD only nudges it.
    * Biases earn their place: without them masked NMF must carry the mean rating in
      ``p . q`` and a user with one rating is predicted near 0 (RMSE 4.4-4.8 on MovieTweetings
      for ``l2_factors`` 1-10).
    * Why the factors used to die, and what changed (``benchmarks/output/reco_findings.md``):
      a fixed penalty of 10 on a 0-10 and a 1-5 scale alike, and item statistics fed with
      the user's parameters solved *with* the rating (they have already fitted it: with a
      penalty low enough to let the factors live, the item learned its own residual back
      and the factors grew into noise). The item now learns from the user's parameters
      before the rating, and the default penalty follows the rating scale. On MovieTweetings
      even batch models (scikit-surprise SVD and SVD++, ALS, signed or not) gain < 0.6 % over
      well-regularised biases: the factors there stay small and cost nothing.
    * 10 coordinate-descent sweeps per solve give the same accuracy as 50 (warm starts), a
      history of 50 ratings the same as 100 or 200.
    * Implicit feedback needs the zeros (masked, every observed entry is positive): the KL
      engine on user rows, with h re-solved against the current dictionary at scoring time.
      Weighing the row by recency (0.7 per event) took Recall@10 on Online Retail from 0.055
      to 0.084 (settings chosen on events 20,000-150,000; from event 150,000 on: 0.089, against
      0.059 for the customer's own most-bought items and 0.084 for plain item-item
      co-occurrence). Co-occurrence of the *last* item bought (a recency of 0.1) scores 0.31
      there: the next purchase completes a basket, pairs a rank-20 model cannot hold
      (``benchmarks/output/reco_retail.md``). Hence the co-occurrence memory, built from
      pairs of purchases close in the user's sequence (weighted by their distance, not by
      "ever bought both") and scored by raw weight sums (normalising by item counts ranked
      worse): on the tuning part 0.37 against 0.29 for the best customer-level
      co-occurrence; the factors blended in do not add to it there (at every weight tried,
      ``benchmarks/output/reco_retail_tuning.md``).

    Cost per explicit event: O(history k^2 + sweeps k^2); per implicit event one engine
    ``learn_one`` on the user's row (O(history k + sweeps k^2)); ranking all items one
    ``items x k`` mat-vec and an ``argpartition``.
    """

    def __init__(
        self,
        n_components: int = 10,
        feedback: str = "explicit",
        *,
        rating_range: tuple[float, float] | None = None,
        biases: bool = True,
        solver: str = "cd",
        history: int = 50,
        l2_bias: float = 2.0,
        l2_factors: float | None = None,
        forget_factor: float = 1.0,
        refresh_every: int | None = None,
        learning_rate: float = 0.01,
        max_iter: int = 10,
        tol: float = 1e-4,
        implicit_transform: str = "log1p",
        recency: float = 0.7,
        cooccurrence: float = 10.0,
        basket_recency: float = 0.1,
        init_scale: float = 0.1,
        seed: int = 0,
    ):
        RECO.store(self, locals())  # checked, then stored verbatim
        self._init_state()

    # ------------------------------------------------------------------ parameters
    def _params(self) -> dict[str, Any]:
        params = {name: getattr(self, name) for name in PARAMETERS}
        if params["rating_range"] is not None:
            params["rating_range"] = [float(v) for v in params["rating_range"]]
        return params

    @property
    def explicit(self) -> bool:
        return self.feedback == "explicit"

    # ------------------------------------------------------------------ state
    def _init_state(self) -> None:
        k = int(self.n_components)
        self._users: dict[str | int, int] = {}
        self._user_ids: list[str | int] = []
        self._items: dict[str | int, int] = {}
        self._item_ids: list[str | int] = []
        self._n_users = 0
        self._n_items = 0
        self.events_learned = 0
        self._mean_sum = 0.0  # running sum of the (explicit) values
        self._square_sum = 0.0  # and of their squares (the default factor penalty's scale)
        self._since_refresh = 0
        self._dirty: set[int] = set()
        self._scale = 1.0  # forgetful statistics are stored divided by this running scale
        self._hist_items = np.zeros((16, self.history), dtype=np.int64)
        self._hist_values = np.zeros((16, self.history))
        self._hist_meta = np.zeros((16, 2), dtype=np.int64)  # (length, next ring slot)
        self._hist_last = np.zeros((16, self.history), dtype=np.int64)  # user event of entry
        self._user_events = np.zeros(16, dtype=np.int64)  # events of each user (implicit)
        self._U = np.zeros((16, k + 1))  # [b_u, p_u] (implicit: [0, h_u])
        self._I = np.zeros((16, k + 1))  # [b_i, q_i] (implicit: unused but the ids)
        self._popularity = np.zeros(16)  # forgetful event count per item, divided by scale
        self._S = np.zeros((16 if self.explicit else 0, k + 1, k + 2))  # item statistics
        # implicit: per item row, {other item row: co-occurrence weight} (sparse, symmetric)
        self._pairs: list[dict[int, float]] = []
        self._engine = None
        if not self.explicit:
            self._engine = OnlineNMF(
                n_components=k, beta=1, forget_factor=float(self.forget_factor),
                refresh_every=int(self.refresh_every or 100), l2_h=float(self.l2_factors or 0),
                max_iter=int(self.max_iter), tol=float(self.tol), seed=int(self.seed),
            )
        bias_penalty = float(self.l2_bias) if self.biases else 1e300  # biases pinned at 0
        factor_penalty = 0.0 if self.l2_factors is None else float(self.l2_factors)
        self._lam = np.concatenate([[bias_penalty], np.full(k, factor_penalty)])

    @property
    def n_users(self) -> int:
        return self._n_users

    @property
    def n_items(self) -> int:
        return self._n_items

    @property
    def items(self) -> list:
        """Known items, in order of first appearance (the order of :meth:`score_all`)."""
        return list(self._item_ids)

    @property
    def model_version(self) -> int:
        """Refreshes of the item side so far (explicit with ``refresh_every=1``: events)."""
        if self._engine is not None:
            return int(self._engine.model_version)
        return self.events_learned // int(self.refresh_every or 1)

    @property
    def global_mean(self) -> float:
        """mu: the running mean of the ratings (0 for implicit feedback or without biases)."""
        if self.events_learned == 0 or not self.explicit or not self.biases:
            return 0.0
        return self._mean_sum / self.events_learned

    @staticmethod
    def _grown(array: np.ndarray, needed: int) -> np.ndarray:
        capacity = max(needed, 2 * array.shape[0])
        grown = np.zeros((capacity,) + array.shape[1:], dtype=array.dtype)
        grown[: array.shape[0]] = array
        return grown

    def _user_row(self, user: str | int) -> int:
        row = self._users.get(user)
        if row is not None:
            return row
        row = self._n_users
        if row >= self._U.shape[0]:
            for name in ("_U", "_hist_items", "_hist_values", "_hist_meta", "_hist_last",
                         "_user_events"):
                setattr(self, name, self._grown(getattr(self, name), row + 1))
        self._users[user] = row
        self._user_ids.append(user)
        self._n_users += 1
        return row

    def _initial_factor(self, item: str | int) -> np.ndarray:
        key = f"{self.seed}|{type(item).__name__}|{item}".encode()
        entropy = int.from_bytes(hashlib.blake2b(key, digest_size=16).digest(), "little")
        rng = np.random.default_rng(entropy)
        return float(self.init_scale) * rng.uniform(0.5, 1.5, int(self.n_components))

    def _item_row(self, item: str | int) -> int:
        row = self._items.get(item)
        if row is not None:
            return row
        row = self._n_items
        if row >= self._I.shape[0]:
            for name in ("_I", "_popularity") + (("_S",) if self.explicit else ()):
                setattr(self, name, self._grown(getattr(self, name), row + 1))
        self._I[row, 1:] = self._initial_factor(item)
        if not self.explicit:
            self._pairs.append({})
        self._items[item] = row
        self._item_ids.append(item)
        self._n_items += 1
        return row

    # ------------------------------------------------------------------ validation
    def _check_value(self, value: Any) -> float:
        if type(value) is float or type(value) is int:  # the hot path
            number = float(value)
        elif isinstance(value, bool | np.bool_):
            number = float(value)
        elif isinstance(value, str) or not isinstance(value, numbers.Real):
            raise ValueError(f"value {value!r} is not a number")
        else:
            number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"value {number} is not finite")
        if abs(number) > MAX_SAMPLE_SUM:
            # the model squares values (statistics, Gram matrices) and sums them over events
            # in float64: a rating of 1e200 turned every prediction into NaN
            raise ValueError(f"value {number:g} is too large: |value| must be at most "
                             f"{MAX_SAMPLE_SUM:.0e}; rescale the values (or set rating_range)")
        if self.rating_range is not None:
            low, high = self.rating_range
            if not low <= number <= high:
                raise ValueError(
                    f"value {number} is outside rating_range {tuple(self.rating_range)}"
                )
        if not self.explicit and number < 0:
            raise ValueError(f"value {number} is negative; implicit feedback counts are >= 0")
        return number

    # ------------------------------------------------------------------ learning
    def learn_one(self, user: Hashable, item: Hashable, value: float) -> None:
        """Learn one event. Invalid ids or values raise ``ValueError`` and change nothing."""
        if type(user) is not str and type(user) is not int:  # the hot path skips the checks
            user = _check_id("user", user)
        if type(item) is not str and type(item) is not int:
            item = _check_id("item", item)
        value = self._check_value(value)
        if self.implicit_transform == "none" and not self.explicit:
            self._check_row_sum(user, value)
        u = self._user_row(user)
        i = self._item_row(item)
        if self.explicit:
            self._learn_explicit(u, i, value)
        else:
            self._learn_implicit(u, i, value)
        self.events_learned += 1

    def _check_row_sum(self, user: str | int, value: float) -> None:
        """Refuse an untransformed count that would take the user's row (an engine sample)
        above the engine's limit, before anything changes (the engine would refuse it only
        after the history had been updated)."""
        u = self._users.get(user)
        length = 0 if u is None else int(self._hist_meta[u, 0])
        total = value + (float(self._hist_values[u, :length].sum()) if length else 0.0)
        if total > MAX_SAMPLE_SUM:
            raise ValueError(f"value {value:g} would take user {user!r}'s remembered counts to "
                             f"{total:.3g}, above {MAX_SAMPLE_SUM:.0e}; rescale the values")

    def _forget(self) -> None:
        """Advance the lazy forgetting by one event; renormalise before underflow."""
        self._scale *= float(self.forget_factor)
        if self._scale < _SCALE_FLOOR:
            self._S[: self._n_items] *= self._scale
            self._popularity[: self._n_items] *= self._scale
            self._scale = 1.0

    def _rating_std(self, n: int) -> float:
        """Standard deviation of the first ``n`` explicit values (0 before two)."""
        if n < 2:
            return 0.0
        mean = self._mean_sum / n
        return math.sqrt(max(self._square_sum / n - mean * mean, 0.0))

    def _learn_explicit(self, u: int, i: int, value: float) -> None:
        self._mean_sum += value
        self._square_sum += value * value
        if self.l2_factors is None:  # this event included
            self._lam[1:] = FACTOR_PENALTY_PER_STD * self._rating_std(self.events_learned + 1)
        mu = self._mean_sum / (self.events_learned + 1) if self.biases else 0.0
        if self.forget_factor < 1.0:
            self._forget()
        self._popularity[i] += 1.0 / self._scale
        if self.solver == "sgd":
            lr = float(self.learning_rate)
            kernels.sgd_event(u, i, value, mu, self._U, self._I, 2 * lr if self.biases else 0.0,
                              lr, float(self._lam[0]) * lr, float(self._lam[1]) * lr)
            return
        every = int(self.refresh_every or 1)
        kernels.explicit_event(
            u, i, value, mu, self._U, self._I, self._hist_items, self._hist_values,
            self._hist_meta, self._S, 1.0 / self._scale, self._scale, self._lam,
            int(self.max_iter), float(self.tol), every == 1,
        )
        if every > 1:
            self._dirty.add(i)
            self._since_refresh += 1
            if self._since_refresh >= every:
                self.refresh()

    def refresh(self) -> None:
        """Re-solve every item rated since the last refresh from its statistics (explicit)."""
        if self._dirty:
            rows = np.fromiter(sorted(self._dirty), dtype=np.int64)
            kernels.refresh_items(rows, self._I, self._S, self.global_mean, self._scale, self._lam,
                                  int(self.max_iter), float(self.tol))
        self._dirty.clear()
        self._since_refresh = 0

    def _transform_value(self, value: float) -> float:
        if self.implicit_transform == "log1p":
            return math.log1p(value)
        if self.implicit_transform == "binary":
            return 1.0 if value > 0 else 0.0
        return value

    def _user_sample(self, u: int, length: int) -> dict:
        """The user's row: remembered items with their accumulated (transformed) values;
        zeros included, so that the engine registers every key and its rows follow ours."""
        ids = self._item_ids
        values = self._hist_values[u, :length]
        if self.recency < 1.0:
            age = self._user_events[u] - self._hist_last[u, :length]
            values = values * float(self.recency) ** age
        return {ids[j]: v for j, v in zip(self._hist_items[u, :length].tolist(),
                                          values.tolist())}

    def _activations(self, u: int) -> np.ndarray:
        """h_u against the current dictionary: the stored one, or re-solved (read-only) when
        the dictionary was refreshed since the user's last event (measured: +5% Recall@10
        on Online Retail over the stale h)."""
        if self._U[u, 0] == self._engine.model_version:
            return self._U[u, 1:]
        h = self._engine.transform_one(self._user_sample(u, int(self._hist_meta[u, 0])))
        return np.fromiter(h.values(), dtype=np.float64, count=len(h))

    def _basket(self, u: int) -> tuple[np.ndarray, np.ndarray]:
        """The user's remembered item rows whose co-occurrence weight ``basket_recency **
        (the user's events since the item's last one)`` is at least :data:`_PAIR_FLOOR`,
        and those weights (the latest item weighs 1)."""
        length = int(self._hist_meta[u, 0])
        age = self._user_events[u] - self._hist_last[u, :length]
        weights = float(self.basket_recency) ** age.astype(np.float64)
        keep = weights >= _PAIR_FLOOR
        return self._hist_items[u, :length][keep], weights[keep]

    def _learn_pairs(self, u: int, i: int) -> None:
        """Item i co-occurs with each of the user's last items (before this event) with the
        item's basket weight: the rest of a basket is bought next to it (the same item again
        adds to the diagonal: a repeat purchase)."""
        rows, weights = self._basket(u)
        pairs = self._pairs
        own = pairs[i]
        for a, w in zip(rows.tolist(), weights.tolist()):
            own[a] = own.get(a, 0.0) + w
            if a != i:
                other = pairs[a]
                other[i] = other.get(i, 0.0) + w

    def _cooccurrence_scores(self, u: int) -> np.ndarray:
        """``c_j = sum_a v_a w_a C[a, j] + v_j w_j``: the co-occurrence rows of the user's
        last items, weighted by basket weight w times remembered (transformed) units v, plus
        those items themselves (repeat purchases). Raw sums, not cosine-normalised: on Online
        Retail's tuning part normalising by (n_a n_j) ** 0.25 or 0.5 ranked worse."""
        scores = np.zeros(self._n_items)
        rows, weights = self._basket(u)
        if rows.size == 0:
            return scores
        length = int(self._hist_meta[u, 0])
        keep = np.isin(self._hist_items[u, :length], rows)
        weights = weights * self._hist_values[u, :length][keep]
        for a, w in zip(rows.tolist(), weights.tolist()):
            row = self._pairs[a]
            if row:
                keys = np.fromiter(row.keys(), dtype=np.int64, count=len(row))
                scores[keys] += w * np.fromiter(row.values(), dtype=np.float64, count=len(row))
        scores[rows] += weights
        return scores

    def _learn_implicit(self, u: int, i: int, value: float) -> None:
        if self.forget_factor < 1.0:
            self._forget()
        self._popularity[i] += 1.0 / self._scale
        if self.cooccurrence > 0:
            self._learn_pairs(u, i)
        binary = self.implicit_transform == "binary"
        length = kernels.remember(u, i, self._transform_value(value), self._hist_items,
                                  self._hist_values, self._hist_meta, not binary)
        self._user_events[u] += 1
        slot = int(np.flatnonzero(self._hist_items[u, :length] == i)[0])
        self._hist_last[u, slot] = self._user_events[u]
        engine = self._engine
        # Cold start: the loss is convex in h, so a warm start would only change rounding
        # (which, through later refreshes, can tip the dictionary into another local minimum)
        h = engine.learn_one(self._user_sample(u, length))
        # U[u] = [dictionary version h was solved against, h]: scores re-solve a stale h
        self._U[u, 0] = engine.model_version
        self._U[u, 1:] = np.fromiter(h.values(), dtype=np.float64, count=len(h))
        if engine.n_features != self._n_items:  # pragma: no cover - an invariant, not input
            raise RuntimeError("engine rows out of step with the item index")

    # ------------------------------------------------------------------ prediction
    @staticmethod
    def _lookup(index: dict, name: Any) -> int | None:
        try:
            return index.get(name)
        except TypeError:  # unhashable: certainly unknown
            return None

    def _clip(self, value: float) -> float:
        if self.rating_range is None:
            return value
        low, high = self.rating_range
        return float(min(max(value, low), high))

    def _item_scores(self, u: int | None, rows: np.ndarray | None = None) -> np.ndarray:
        """Unclipped scores of the given item rows (all items when ``rows`` is None)."""
        n = self._n_items
        if rows is None:
            rows = np.arange(n)
        if not self.explicit:
            scores = self._implicit_scores(u)[rows]
            # popularity breaks ties (and ranks alone for a cold user) without reordering
            # items whose model scores differ by more than 1e-9 of the largest
            popularity = self._popularity[rows]
            top = max(float(popularity.max(initial=0.0)), 1e-300)
            span = max(float(np.abs(scores).max(initial=0.0)), 1e-12)
            return scores + 1e-9 * span * popularity / top
        block = self._I[rows]
        scores = self.global_mean + block[:, 0]
        if u is not None:
            scores += self._U[u, 0] + block[:, 1:] @ self._U[u, 1:]
        return scores

    def _implicit_scores(self, u: int | None) -> np.ndarray:
        """Scores of every item: ``f / max f + cooccurrence * c / max c``, f = W h_u the
        factors' and c the co-occurrence scores (each scaled to a largest value of 1, so that
        ``cooccurrence`` weighs one against the other whatever the counts; ``cooccurrence=0``:
        f itself); 0 for a cold user.
        """
        scores = np.zeros(self._n_items)
        if u is None:
            return scores
        W = self._engine.W
        h = self._activations(u)
        if h.any():
            scores[: W.shape[0]] = W @ h
        if self.cooccurrence > 0:
            scores /= max(float(scores.max()), 1e-300)
            pairs = self._cooccurrence_scores(u)
            top = float(pairs.max(initial=0.0))
            if top > 0:
                scores += float(self.cooccurrence) / top * pairs
        return scores

    def predict_one(self, user: Hashable, item: Hashable) -> float:
        """The predicted value (explicit: clipped rating; implicit: score). Read-only.

        Unknown user or item (or an id of another type) falls back to what is known:
        ``mu + b_i``, ``mu + b_u`` or ``mu``; before any rating, the middle of the range.
        """
        u = self._lookup(self._users, user)
        i = self._lookup(self._items, item)
        if not self.explicit:
            if i is None:
                return 0.0
            return float(self._item_scores(u, np.array([i]))[0])
        if self.events_learned == 0:
            return 0.0 if self.rating_range is None else float(sum(self.rating_range)) / 2.0
        mu = self.global_mean
        if i is None:
            value = mu + (self._U[u, 0] if u is not None else 0.0)
        else:
            value = kernels.predict(-1 if u is None else u, i, mu, self._U, self._I)
        if self.rating_range is None:
            return float(value)
        low, high = self.rating_range
        return float(min(max(value, low), high))

    def score_items(self, user: Hashable, items: Iterable[Hashable]) -> np.ndarray:
        """Vectorised :meth:`predict_one` over ``items`` (unclipped, for ranking)."""
        items = list(items)
        u = self._lookup(self._users, user)
        rows = np.fromiter((self._items.get(i, -1) for i in items), np.int64, len(items))
        known = rows >= 0
        scores = np.empty(len(items))
        scores[known] = self._item_scores(u, rows[known])
        if (~known).any():
            cold = self.global_mean if self.explicit else 0.0
            if self.explicit and u is not None:
                cold += self._U[u, 0]
            scores[~known] = cold
        return scores

    def score_all(self, user: Hashable) -> np.ndarray:
        """Scores of every known item (in the order of :attr:`items`), one mat-vec."""
        u = self._lookup(self._users, user)
        return self._item_scores(u)

    def seen(self, user: Hashable) -> np.ndarray:
        """Item rows in the user's remembered history (the last ``history`` items)."""
        u = self._lookup(self._users, user)
        if u is None:
            return np.zeros(0, dtype=np.int64)
        return self._hist_items[u, : self._hist_meta[u, 0]].copy()

    def recommend(
        self, user: Hashable, n: int = 10, exclude_seen: bool = False
    ) -> list[tuple[str | int, float]]:
        """Top-``n`` known items for ``user`` with their scores, best first.

        Scores every known item with one matrix-vector product and selects with
        ``argpartition`` (O(items k)). ``exclude_seen`` drops the items of the user's
        remembered history. Ties are broken by first appearance.
        """
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        scores = self.score_all(user)
        if exclude_seen:
            scores[self.seen(user)] = -np.inf
        count = min(int(n), scores.size)
        if count == 0:
            return []
        if count < scores.size:
            top = np.argpartition(-scores, count - 1)[:count]
        else:
            top = np.arange(scores.size)
        top = top[np.lexsort((top, -scores[top]))]
        top = top[np.isfinite(scores[top])]
        clip = self._clip if self.explicit else float
        return [(self._item_ids[i], clip(float(scores[i]))) for i in top]

    # ------------------------------------------------------------------ persistence
    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        nu, ni = self._n_users, self._n_items
        arrays = {
            "U": self._U[:nu], "hist_items": self._hist_items[:nu],
            "hist_values": self._hist_values[:nu], "hist_meta": self._hist_meta[:nu],
            "hist_last": self._hist_last[:nu], "user_events": self._user_events[:nu],
            "I": self._I[:ni], "popularity": self._popularity[:ni], "S": self._S[:ni],
            "dirty": np.array(sorted(self._dirty), dtype=np.int64),
        }
        arrays = {name: array.copy() for name, array in arrays.items()}
        if self._engine is not None:
            arrays["engine"] = np.frombuffer(self._engine.to_bytes(), dtype=np.uint8)
            arrays.update(self._pair_arrays())
        meta = {
            "class": type(self).__name__, "params": self._params(),
            "users": self._user_ids, "items": self._item_ids,
            "scalars": {"events_learned": self.events_learned, "mean_sum": self._mean_sum,
                        "square_sum": self._square_sum,
                        "since_refresh": self._since_refresh, "scale": self._scale},
        }
        return arrays, meta

    def _pair_arrays(self) -> dict[str, np.ndarray]:
        """The co-occurrence rows flattened: entries per item, their items, their weights
        (each row in insertion order, so that a restored model sums in the same order)."""
        pairs = self._pairs
        return {
            "pair_counts": np.fromiter((len(row) for row in pairs), np.int64, len(pairs)),
            "pair_items": np.fromiter((a for row in pairs for a in row), np.int64),
            "pair_weights": np.fromiter((w for row in pairs for w in row.values()), np.float64),
        }

    def _restore_pairs(self, arrays: dict[str, np.ndarray]) -> None:
        if "pair_counts" not in arrays:  # (snapshots before the co-occurrence: none learned)
            return
        ends = np.cumsum(arrays["pair_counts"]).tolist()
        items, weights = arrays["pair_items"].tolist(), arrays["pair_weights"].tolist()
        start = 0
        for row, end in zip(self._pairs, ends):
            row.update(zip(items[start:end], weights[start:end]))
            start = end

    def to_bytes(self) -> bytes:
        """A checksummed snapshot (:mod:`onlinenmf.snapshot`), no pickle."""
        return snapshot.dumps(*self._state())

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "<bytes>") -> RecoNMF:
        """Rebuild a model from :meth:`to_bytes` output (bit-exact)."""
        arrays, meta = snapshot.loads(data, source)
        if meta.get("class") != cls.__name__:
            raise snapshot.SnapshotError(
                f"{source}: holds a {meta.get('class')}, not {cls.__name__}"
            )
        params = dict(meta["params"])
        if params["rating_range"] is not None:
            params["rating_range"] = tuple(params["rating_range"])
        model = cls(**params)
        for user in meta["users"]:
            model._user_row(_check_id("user", user))
        for item in meta["items"]:
            model._item_row(_check_id("item", item))
        nu, ni = model._n_users, model._n_items
        for name in ("U", "hist_items", "hist_values", "hist_meta", "hist_last", "user_events"):
            if name in arrays:  # (snapshots before recency have no hist_last, user_events)
                getattr(model, "_" + name)[:nu] = arrays[name]
        for name in ("I", "popularity") + (("S",) if model.explicit else ()):
            getattr(model, "_" + name)[:ni] = arrays[name]
        model._dirty = set(arrays["dirty"].tolist())
        if "engine" in arrays:
            model._engine = OnlineNMF.from_bytes(arrays["engine"].tobytes(), source)
            model._restore_pairs(arrays)
        scalars = meta["scalars"]
        model.events_learned = int(scalars["events_learned"])
        model._mean_sum = float(scalars["mean_sum"])
        model._square_sum = float(scalars.get("square_sum", 0.0))
        if model.explicit and model.l2_factors is None:
            model._lam[1:] = FACTOR_PENALTY_PER_STD * model._rating_std(model.events_learned)
        model._since_refresh = int(scalars["since_refresh"])
        model._scale = float(scalars["scale"])
        return model

    def save(self, path: str | os.PathLike) -> None:
        """Write a snapshot file atomically."""
        snapshot.write_atomic(path, self.to_bytes())

    @classmethod
    def load(cls, path: str | os.PathLike) -> RecoNMF:
        """Read a snapshot file written by :meth:`save`."""
        try:
            data = Path(path).read_bytes()
        except OSError as err:
            raise snapshot.SnapshotError(f"{path}: cannot read snapshot: {err}") from None
        return cls.from_bytes(data, str(path))

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return snapshot.same_state(self, other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (f"RecoNMF(n_components={self.n_components}, feedback={self.feedback!r}, "
                f"n_users={self._n_users}, n_items={self._n_items}, "
                f"events_learned={self.events_learned})")
