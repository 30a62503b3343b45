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
counted twice. :class:`Peers` holds a model's peers and adds them up at each refresh.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from onlinenmf.divergences.base import Layout, Totals
from onlinenmf.validation import check_feature_name

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
    # imported here: scipy.optimize costs ~0.4 s of CPU at import, paid by every consumer's
    # start (issue 14, fast start), while only a merge of peers' dictionaries needs it
    from scipy.optimize import linear_sum_assignment

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


class Peers:
    """The latest statistics of the models that share this one's dictionary (not part of
    snapshots: the caller keeps them; see ``OnlineNMF.set_peer_statistics``)."""

    def __init__(self) -> None:
        self.peers: list[dict[str, Any]] = []
        #: Own plus the peers' usage at the last refresh (None: no peers then).
        self.shared_usage: np.ndarray | None = None

    def __bool__(self) -> bool:
        return bool(self.peers)

    @staticmethod
    def check(peer: Mapping[str, Any], n: int, known: Mapping, beta: float,
              layout: Layout) -> tuple[list, dict[str, Any]]:
        """Validate peer #n's statistics against this model's beta and statistics layout
        (``known``: the feature names already in the model, checked when they came)."""
        try:
            features = [f if type(f) is str and f in known else check_feature_name(f)
                        for f in peer["features"]]
            if len(set(features)) != len(features):
                raise ValueError("duplicate feature names")
            if float(peer["beta"]) != float(beta):
                raise ValueError(f"beta={peer['beta']}, this model has beta={beta}")
            usage = np.asarray(peer["usage"], dtype=np.float64)
            k_p, m_p = usage.size, len(features)
            shapes = {"W": (m_p, k_p), "usage": (k_p,)}
            shapes.update({name: (m_p, k_p) for name in layout.rows})
            if layout.gram:
                shapes["A"] = (k_p, k_p)
            arrays = {name: np.array(peer[name], dtype=np.float64) for name in shapes}
            arrays["n_eff"] = float(peer["n_eff"])
            for name, shape in shapes.items():
                if arrays[name].shape != shape:
                    raise ValueError(f"{name} has shape {arrays[name].shape}, expected {shape}")
                if not np.all(np.isfinite(arrays[name])) or (
                        name != "A" and np.any(arrays[name] < 0)):
                    raise ValueError(f"{name} holds negative or non-finite values")
            if not np.isfinite(arrays["n_eff"]) or arrays["n_eff"] < 0:
                raise ValueError(f"n_eff={arrays['n_eff']!r}")
        except (KeyError, TypeError, ValueError) as err:
            detail = f"missing {err}" if isinstance(err, KeyError) else str(err)
            raise ValueError(f"peer statistics #{n}: {detail}") from None
        return features, arrays

    def set(self, checked: Sequence[tuple[list, dict[str, Any]]], index: Mapping) -> None:
        """Replace the peers by checked ones whose features all have rows in ``index``."""
        self.peers = []
        for features, arrays in checked:
            arrays["rows"] = np.array([index[name] for name in features], dtype=np.int64)
            self.peers.append(arrays)

    def totals(self, statistics, components, sample: int) -> Totals:
        """The statistics of this model plus its peers, in this model's columns, after
        matching the peers' columns to ours (and merging ours where a peer brings a component
        we lack: ``components.merge``)."""
        m, k = statistics.m, len(components)

        def full(peer: dict[str, Any], name: str) -> np.ndarray:
            out = np.zeros((m, peer[name].shape[1]))
            out[peer["rows"]] = peer[name]
            return out

        plan = plan_merge(statistics.W[:m], statistics.usage,
                          [full(p, "W") for p in self.peers], [p["usage"] for p in self.peers])
        if not plan.identity:
            components.merge(plan, sample)
        own = statistics.totals()
        A, usage, n_eff = own.A.copy(), own.usage.copy(), own.n_eff
        rows = {name: getattr(own, name).copy() for name in statistics.layout.rows}
        W_peers = np.zeros((m, k))
        for peer, target in zip(self.peers, plan.peers):
            M = np.zeros((target.size, k))
            M[np.arange(target.size), target] = 1.0  # peer column -> our column
            for name in rows:
                rows[name][peer["rows"]] += peer[name] @ M
            W_peers[peer["rows"]] += peer["W"] @ (M * peer["usage"][:, None])
            usage += peer["usage"] @ M
            n_eff += peer["n_eff"]
            if statistics.layout.gram:
                A += M.T @ peer["A"] @ M
        for j in plan.born:  # start a column new to us from the peers' profile
            total = W_peers[:, j].sum()
            if total > 0:
                statistics.W[:m, j] = W_peers[:, j] / total
        self.shared_usage = usage
        return Totals(A, rows["B"], rows.get("D", own.D), usage, n_eff)
