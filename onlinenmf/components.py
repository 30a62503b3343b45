"""The columns of W as components: stable ids, the L1 weight in force on each, and every change
of a column (re-seeding, births, retirements, merges) with its statistics and its events.

A component keeps one id from birth to retirement, never a reused index, so a trajectory
"C3 grew 12%/week in subject 17" stays true across refreshes, prunes and births.

Dead components (without rank adaptation, whose rules replace these): a component whose share of
the remembered activation falls under ``DEAD_SHARE``, or, when the recent loss stays above
``ALARM_RATIO`` times its long-run level for ``ALARM_PATIENCE`` loss windows (see
:mod:`onlinenmf.monitor`), the one the recent samples used least, is replaced by the normalised
positive residual of the worst recent samples. It is a new component with a new id; the old id
is retired. Both are events.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from onlinenmf.divergences import Divergence
from onlinenmf.events import EventLog
from onlinenmf.monitor import ALARM_RATIO, Window
from onlinenmf.sharing import MergePlan
from onlinenmf.statistics import Statistics

#: Loss windows (:mod:`onlinenmf.monitor`: at least ALARM_SAMPLES samples each, closed at a
#: refresh) with the loss alarm before the least used component is re-seeded, and windows
#: between two such re-seedings.
ALARM_PATIENCE = 2
RESEED_COOLDOWN = 2
#: A component whose share of the remembered activation falls under this is dead.
DEAD_SHARE = 1e-3


class Components:
    """Ids, per-component L1 weights and column changes of one model.

    >>> from onlinenmf.divergences import for_beta
    >>> divergence = for_beta(1)
    >>> stats = Statistics(divergence.layout, k=2)
    >>> stats.add_rows(np.ones((3, 2)) / 3)
    >>> components = Components(2, 0.0, stats, divergence, EventLog())
    >>> components.replace(1, np.array([0.5, 0.5, 0.0]), "a test", sample=10)
    (1, 2)
    >>> components.ids, [(e.kind, e.component) for e in components.events]
    ([0, 2], [('retire', 1), ('birth', 2)])
    """

    def __init__(self, k: int, l1: float, statistics: Statistics, divergence: Divergence,
                 events: EventLog):
        self.ids = list(range(k))
        self.next_id = k
        #: The L1 weight on h in force for each component (re-estimated by onlinenmf.hyper).
        self.l1 = np.full(k, float(l1))
        self.alarm_count = 0  # consecutive loss windows with the loss alarm
        self.cooldown = 0  # loss windows before the next alarm may re-seed
        self.statistics = statistics
        self.divergence = divergence
        self.events = events

    def __len__(self) -> int:
        return len(self.ids)

    def _new_id(self) -> int:
        new = self.next_id
        self.next_id += 1
        return new

    # -------------------------------------------------------------- column changes
    def replace(self, j: int, column: np.ndarray, reason: str, sample: int) -> tuple[int, int]:
        """Column j becomes a new component seeded with ``column`` (fresh pseudo-statistics);
        return (retired id, new id). The caches are the caller's to recompute."""
        self._seed(j, column)
        old, new = self.ids[j], self._new_id()
        # a new list, never an in-place change: learn_one holds on to the ids h was solved for
        self.ids = [*self.ids[:j], new, *self.ids[j + 1 :]]
        for kind, component in (("retire", old), ("birth", new)):
            self.events.emit(kind, sample, component=component, old=old, new=new, reason=reason)
        return old, new

    def append(self, column: np.ndarray) -> int:
        """A new component (a new id) in a new last column, seeded with ``column``."""
        weights = self._seed_weights()
        k = len(self.ids)
        self.resize(np.arange(k), 1)
        self._seed(k, column, weights)
        new = self._new_id()
        self.ids = [*self.ids, new]
        return new

    def _seed_weights(self) -> list[tuple[float, float]]:
        """The pseudo-statistics of a seeded column, in the statistics and in their twin."""
        twin = self.statistics.twin
        return [self.divergence.seed_weights(stats)
                for stats in (self.statistics, *([twin] if twin is not None else []))]

    def _seed(self, j: int, column: np.ndarray, weights: list | None = None) -> None:
        """Column j of W (and of the twin statistics' W) becomes ``column`` with fresh
        pseudo-statistics (weights measured before any column was added)."""
        twin = self.statistics.twin
        for stats, (usage, weight) in zip((self.statistics, twin),
                                          weights or self._seed_weights()):
            self.divergence.seed(stats, j, column, usage, weight)
        self.statistics.forget_recent()  # their part in column j is gone
        if twin is not None:
            twin.recompute_caches()

    def remove(self, j: int) -> int:
        """Retire column j; return its id (never reused: the others keep theirs)."""
        old = self.ids[j]
        self.resize(np.delete(np.arange(len(self.ids)), j), 0)
        self.ids = [c for c in self.ids if c != old]
        return old

    def resize(self, keep: np.ndarray, add: int) -> None:
        """Keep the columns ``keep`` (in order) and append ``add`` empty ones: W, the
        statistics, the caches and the L1 weights."""
        self.statistics.resize_columns(keep, add)
        l1 = np.take(self.l1, keep)
        self.l1 = np.concatenate([l1, np.zeros(add)]) if add else l1

    def merge(self, plan: MergePlan, sample: int) -> None:
        """Move the statistics as a shared dictionary's plan says (merged columns add up); the
        freed columns get new ids, for components learned from peers."""
        k = len(self.ids)
        M = np.zeros((k, k))
        M[np.arange(k), plan.own] = 1.0
        self.statistics.move_columns(M)
        ids = list(self.ids)
        for j, into in plan.merged:
            old, new = ids[j], self._new_id()
            ids[j] = new
            for kind, component, reason in (
                ("retire", old, f"merged into component {ids[into]} (shared dictionary)"),
                ("birth", new, "learned from peers' statistics (shared dictionary)"),
            ):
                self.events.emit(kind, sample, component=component, old=old, new=new,
                                 reason=reason)
        self.ids = ids

    # -------------------------------------------------------------- dead components
    def observe(self, window: Window) -> None:
        """Count consecutive alarms; one window of cooldown passes."""
        if window.alarm is not None:
            self.alarm_count = self.alarm_count + 1 if window.alarm else 0
        if self.cooldown > 0:
            self.cooldown -= 1

    def to_reseed(self, window: Window, usage: np.ndarray, shared: bool, baseline: float,
                  mature: bool) -> tuple[int, str] | None:
        """The column to re-seed after a refresh and why, if any: a dead one (``mature``: the
        model has seen a memory length), else the least used one after repeated alarms.
        ``usage`` is the remembered activation (with peers: everyone's, ``shared``)."""
        share = usage / max(float(usage.sum()), 1e-300)
        if mature and share.min() < DEAD_SHARE:
            return int(np.argmin(share)), "dead: its share of the activations vanished"
        if self.alarm_count >= ALARM_PATIENCE and self.cooldown == 0:
            self.alarm_count = 0
            self.cooldown = RESEED_COOLDOWN
            # the component the recent samples used least (with peers, anyone's least used:
            # this worker may never see a component the others use)
            recent = window.usage / max(float(window.usage.sum()), 1e-300)
            return (int(np.argmin(share if shared else recent)),
                    f"loss alarm: recent loss {window.loss:.4g} > {ALARM_RATIO} x long-run "
                    f"{baseline:.4g}")
        return None

    # -------------------------------------------------------------- snapshots
    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return {"l1": self.l1}, {"ids": self.ids, "next_id": self.next_id,
                                 "alarm_count": self.alarm_count, "cooldown": self.cooldown}

    def restore(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self.ids = [int(c) for c in meta["ids"]]
        self.next_id = int(meta["next_id"])
        self.alarm_count = int(meta["alarm_count"])
        self.cooldown = int(meta["cooldown"])
        self.l1 = arrays["l1"].copy()
