"""Shared dictionaries: merge the statistics of peer models that learn other parts of a stream.

Several models (workers) that each see a share of the samples can keep one dictionary between
them by exchanging their forgetful statistics (see :meth:`onlinenmf.OnlineNMF.export_statistics`
and :meth:`~onlinenmf.OnlineNMF.set_peer_statistics`). Statistics only add up when their columns
mean the same component, and every model starts with columns of its own: a peer's column 3 is
not ours. So, before each refresh, the columns are matched (:func:`plan_merge`):

1. each peer's columns are matched one-to-one to ours by cosine (Hungarian assignment); a pair
   at or above ``min_cosine`` is the same component, and the peer's statistics go into our
   column;
2. a peer column with no match is a component we lack. While there are more components than
   columns, the two cheapest to merge are merged, the cost being Ward's:
   ``m_a m_b / (m_a + m_b) (1 - cos)`` with ``m`` the activation mass. Splits of one community
   (or nearly dead columns) merge first; two different well-used communities last.
3. a merged group keeps the column (and the id) of its best-used own column; the columns it
   frees take the peer-only groups, under new ids.

A model's own statistics are never mixed with a peer's: the peer's are added at refresh time
only, so when a peer publishes again, its new statistics replace its old ones, and nothing is
counted twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

#: Smallest cosine at which a peer's column is taken for one of ours.
MIN_COSINE = 0.5


@dataclass
class MergePlan:
    """Where each column goes: ``own[j]`` is the column own column j's statistics move to,
    ``peers[p][i]`` the column of peer p's column i. ``merged`` lists ``(j, into)`` for own
    columns merged into another one; ``born`` the columns that now hold components learned
    from peers only."""

    own: np.ndarray
    peers: list[np.ndarray]
    merged: list[tuple[int, int]] = field(default_factory=list)
    born: list[int] = field(default_factory=list)

    @property
    def identity(self) -> bool:
        """True when our columns stay where they are."""
        return not self.merged and bool(np.all(self.own == np.arange(self.own.size)))


def _unit(W: np.ndarray) -> np.ndarray:
    return W / np.maximum(np.linalg.norm(W, axis=0, keepdims=True), 1e-300)


def plan_merge(
    own_W: np.ndarray,
    own_mass: np.ndarray,
    peer_W: list[np.ndarray],
    peer_mass: list[np.ndarray],
    min_cosine: float = MIN_COSINE,
) -> MergePlan:
    """Match peer columns to ours and merge down to our number of columns (see module notes).

    ``own_W`` and each ``peer_W[p]`` are over the same rows (features), one column per
    component; ``*_mass`` are the components' activation masses.

    >>> own = np.array([[1.0, 0.9, 0.0], [0.0, 0.1, 0.0], [0.0, 0.0, 1.0], [0, 0, 0]])
    >>> peer = np.array([[1.0, 0.0, 0.0], [0, 0, 0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    >>> plan = plan_merge(own, np.array([5.0, 1.0, 5.0]), [peer], [np.array([5.0, 5, 5])])
    >>> plan.own.tolist(), plan.peers[0].tolist(), plan.merged, plan.born
    ([0, 0, 2], [0, 2, 1], [(1, 0)], [1])
    """
    k = own_W.shape[1]
    # a group: (own columns, [(peer, column)], mass, mass-weighted profile)
    own_unit = _unit(own_W)
    groups: list[tuple[list[int], list[tuple[int, int]], float, np.ndarray]] = [
        ([j], [], float(own_mass[j]), own_unit[:, j] * float(own_mass[j])) for j in range(k)
    ]
    for p, (W, mass) in enumerate(zip(peer_W, peer_mass)):
        unit = _unit(W)
        cosine = own_unit.T @ unit
        rows, cols = linear_sum_assignment(-cosine)
        matched = set()
        for j, i in zip(rows, cols):
            if cosine[j, i] >= min_cosine:
                own_cols, peer_cols, m, profile = groups[j]
                peer_cols.append((p, int(i)))
                groups[j] = (own_cols, peer_cols, m + float(mass[i]),
                             profile + unit[:, i] * float(mass[i]))
                matched.add(int(i))
        for i in range(W.shape[1]):
            if i not in matched:
                groups.append(([], [(p, i)], float(mass[i]), unit[:, i] * float(mass[i])))
    while len(groups) > k:
        a, b = _cheapest_pair(groups)
        ga, gb = groups[a], groups[b]
        groups[a] = (ga[0] + gb[0], ga[1] + gb[1], ga[2] + gb[2], ga[3] + gb[3])
        del groups[b]
    return _assign(groups, own_mass, [W.shape[1] for W in peer_W])


def _cheapest_pair(groups) -> tuple[int, int]:
    profiles = np.array([g[3] for g in groups]).T
    mass = np.array([g[2] for g in groups])
    unit = _unit(np.where(np.abs(profiles) > 0, profiles, 0.0))
    cosine = np.clip(unit.T @ unit, -1.0, 1.0)
    total = mass[:, None] + mass[None, :]
    cost = np.divide(np.outer(mass, mass), total, out=np.zeros_like(total), where=total > 0)
    cost = cost * (1.0 - cosine)
    np.fill_diagonal(cost, np.inf)
    a, b = np.unravel_index(int(np.argmin(cost)), cost.shape)
    return (int(a), int(b)) if a < b else (int(b), int(a))


def _assign(groups, own_mass: np.ndarray, peer_sizes: list[int]) -> MergePlan:
    k = own_mass.size
    own = np.empty(k, dtype=np.int64)
    peers = [np.empty(n, dtype=np.int64) for n in peer_sizes]
    merged, free, orphans = [], [], []
    for own_cols, peer_cols, _, _ in groups:
        if not own_cols:
            orphans.append(peer_cols)
            continue
        keep = max(own_cols, key=lambda j: (float(own_mass[j]), -j))
        for j in own_cols:
            own[j] = keep
            if j != keep:
                merged.append((j, keep))
                free.append(j)
        for p, i in peer_cols:
            peers[p][i] = keep
    free.sort()
    for column, peer_cols in zip(free, orphans):
        for p, i in peer_cols:
            peers[p][i] = column
    merged.sort()
    return MergePlan(own, peers, merged, free[: len(orphans)])
