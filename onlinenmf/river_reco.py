"""River adapter of the streaming recommender: :class:`NMFRecommender`, a ``reco.base.Ranker``.

A thin wrapper: every number comes from :class:`onlinenmf.reco.RecoNMF`; this module only
translates river's calling conventions (``learn_one(user, item, y, x=None)`` returning
``None``, ``rank`` over a set of items, parameters stored verbatim for ``clone``). It
subclasses ``Ranker`` only: a Ranker that is also a ``Regressor`` is fed 3-tuples by river's
dataset checks. Re-exported as ``onlinenmf.river.NMFRecommender``.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from typing import Any

import numpy as np
from river.reco.base import Ranker

from onlinenmf.parameters import RECO, RIVER_RECO
from onlinenmf.reco import RecoNMF

__all__ = ["NMFRecommender"]


class NMFRecommender(Ranker):
    """Non-negative matrix completion from a stream of (user, item, rating) events.

    Explicit feedback (default): ``y ~ mu + b_u + b_i + p_u . q_i`` with non-negative factors,
    fitted on the observed entries only (masked loss): per event the user's parameters are
    re-solved over the user's recent ratings, the item's from forgetful statistics.
    ``feedback="implicit"`` treats ``y`` as a count (purchases, clicks, ``bool``) and learns a
    KL NMF of the user x item count matrix, where an unobserved entry is a zero, not a gap.
    See :class:`onlinenmf.reco.RecoNMF` for the model and every parameter.

    Parameters
    ----------
    n_components
        Rank of the factors.
    feedback
        ``"explicit"`` or ``"implicit"``.
    rating_range
        ``(low, high)``: ratings outside are refused, predictions clipped to it.
    biases
        Explicit: learn a global mean, user and item biases.
    solver
        Explicit: ``"cd"`` (exact per-event solves) or ``"sgd"`` (projected SGD).
    history
        Ratings remembered per user.
    l2_bias
        Ridge penalty of the biases.
    l2_factors
        Ridge penalty of the factors (None: explicit 2.5 x the running standard deviation of
        the ratings, implicit 0).
    forget_factor
        Per-event forgetting of the item statistics (1: none).
    refresh_every
        Events between two refreshes of the item side (None: 1 explicit, 100 implicit).
    learning_rate
        Step of the ``"sgd"`` solver.
    max_iter
        Coordinate-descent sweeps per solve.
    tol
        Relative stopping tolerance of the solves.
    implicit_transform
        Implicit: ``"log1p"``, ``"binary"`` or ``"none"`` applied to each event's value.
    recency
        Implicit: an item in the user's row weighs ``recency ** (user's events since)``.
    cooccurrence
        Implicit: weight of the item-item co-occurrence scores of the user's last items
        beside the factors' (0: the factors only).
    basket_recency
        Implicit: two items a user bought ``a`` events apart co-occur with weight
        ``basket_recency ** a``.
    init_scale
        Scale of the initial item factors.
    seed
        Seeds the initial factors (``None`` means 0: the model is deterministic either way,
        a factor depends on (seed, id) only).

    Attributes
    ----------
    model : onlinenmf.reco.RecoNMF
        The model itself (snapshots, ``recommend``, ``score_all``).

    Examples
    --------
    >>> from onlinenmf.river import NMFRecommender
    >>> ranker = NMFRecommender(n_components=2, rating_range=(1, 5))
    >>> for user, item, y in [("Alice", "Superman", 5), ("Alice", "Batman", 4),
    ...                       ("Bob", "Superman", 4), ("Bob", "Notting Hill", 1),
    ...                       ("Cid", "Notting Hill", 2), ("Cid", "Batman", 5)]:
    ...     ranker.learn_one(user, item, y)
    >>> ranker.rank("Dora", {"Batman", "Notting Hill", "Superman"})   # a new user: by b_i
    ['Batman', 'Superman', 'Notting Hill']
    >>> 1 <= ranker.predict_one("Bob", "Batman") <= 5
    True
    """

    def __init__(
        self,
        n_components: int = 10,
        feedback: str = "explicit",
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
        seed: int | None = None,
    ):
        super().__init__(seed=seed)
        # checked, then stored verbatim (onlinenmf.parameters.RIVER_RECO)
        RIVER_RECO.store(self, locals())
        self.model = RecoNMF(**{**RECO.read(self), "seed": 0 if seed is None else seed})

    def learn_one(
        self, user: Hashable, item: Hashable, y: float | bool, x: dict | None = None
    ) -> None:
        """Learn one event (``x``, the context, is ignored: the model is not contextual)."""
        self.model.learn_one(user, item, y)

    def predict_one(self, user: Hashable, item: Hashable, x: dict | None = None) -> float:
        """The predicted rating (clipped to ``rating_range``) or implicit score."""
        return self.model.predict_one(user, item)

    def rank(self, user: Hashable, items: set[Hashable], x: dict | None = None) -> list[Hashable]:
        """``items`` sorted by decreasing predicted score, scored in one vectorised pass.

        Ties keep the iteration order of ``items``.
        """
        items = list(items)
        if not items:
            return []
        order = np.argsort(-self.model.score_items(user, items), kind="stable")
        return [items[i] for i in order]

    def recommend(
        self, user: Hashable, n: int = 10, exclude_seen: bool = False
    ) -> list[tuple[Hashable, float]]:
        """Top-``n`` of all known items (see :meth:`onlinenmf.reco.RecoNMF.recommend`)."""
        return self.model.recommend(user, n=n, exclude_seen=exclude_seen)

    @classmethod
    def _unit_test_params(cls) -> Iterator[dict[str, Any]]:
        yield {}
        yield {"solver": "sgd", "n_components": 3, "seed": 1}
        yield {"feedback": "implicit", "n_components": 3, "refresh_every": 5}
        yield {"refresh_every": 4, "forget_factor": 0.99, "biases": False}
