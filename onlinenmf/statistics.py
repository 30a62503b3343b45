"""The dictionary W and the forgetful sufficient statistics it is refreshed from.

:class:`Statistics` keeps the arrays a divergence's layout names
(:class:`onlinenmf.divergences.base.Layout`): W and the per-feature statistics (``B``, and
``D`` for the multiplicative updates) with one row per feature, in arrays that grow by
doubling (the first ``m`` rows are in use); ``A`` (k x k, when the layout keeps it); the
usage (forgetful sum of h) and the sum of h since the last refresh; the caches the solvers
read (column sums of W, and ``G = W^T W`` with ``A``).

Forgetting is lazy: the per-feature statistics are stored divided by a running ``scale``
(multiplied by rho per sample), so a sample writes only its own rows; :meth:`unscale` brings
them to their true scale before a refresh. The k-sized ones are decayed in place.

Restating (beta = 1): the statistics are the *closed* part (``closed``: every sample no longer
restated, at its last contribution) plus the *open* samples (``recent``, the latest ones, up to
the model's ``buffer_size``), which keep their h. A refresh re-solves the open samples against
the new W and rebuilds B and the usage as the closed part plus their new contributions
(:meth:`Statistics.restate`), so the statistics do not hold h solved against dictionaries gone
by (issue 13). Nothing is subtracted and no per-sample contribution is stored: a restatement
is one compiled pass over the open samples and a copy of B.
"""

from __future__ import annotations

import copy
import math
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from onlinenmf.divergences.base import Layout, Totals

#: Rows allocated at first; the arrays double when they fill.
INITIAL_ROWS = 16


def _unused() -> np.ndarray:
    """The kernels take every array: a statistic the layout does not keep is empty."""
    return np.zeros((0, 0))


@dataclass(frozen=True)
class BatchSums:
    """The statistics of a batch of samples under one W, each sample weighing 1, and its losses.

    What :meth:`onlinenmf.OnlineNMF.batch_statistics` returns for one partition of a data set.
    They are sums over samples, so the sums of two partitions add up (``a + b``) to those of
    both, whatever the split; :meth:`onlinenmf.OnlineNMF.refresh_from` refreshes W from a total.
    ``B`` and ``D`` have one row per feature of the model (``D``, and ``A = sum h h^T``, are
    empty when the layout does not keep them), ``usage`` is ``sum h``, ``count`` the number of
    samples, ``loss`` the sum of their losses ``D_beta(v | W h)`` and ``relative_loss`` the sum
    of those relative to each sample's scale (the unit of :mod:`onlinenmf.monitor`).

    >>> one = BatchSums(np.ones((2, 1)), _unused(), _unused(), np.ones(1), 1, 2.0, 0.5)
    >>> both = one + one
    >>> both.B.tolist(), both.count, both.loss
    ([[2.0], [2.0]], 2, 4.0)
    """

    B: np.ndarray
    D: np.ndarray
    A: np.ndarray
    usage: np.ndarray
    count: int
    loss: float
    relative_loss: float

    def __add__(self, other: BatchSums) -> BatchSums:
        if self.B.shape != other.B.shape:
            raise ValueError(f"cannot add the statistics of {self.B.shape} and "
                             f"{other.B.shape} dictionaries: compute both with one model")
        return BatchSums(self.B + other.B, self.D + other.D, self.A + other.A,
                         self.usage + other.usage, self.count + other.count,
                         self.loss + other.loss, self.relative_loss + other.relative_loss)


class Statistics:
    """W and the statistics of one model, laid out as its divergence says.

    >>> from onlinenmf.divergences import for_beta
    >>> stats = Statistics(for_beta(2).layout, k=2)
    >>> stats.add_rows(np.array([[1.0, 0.0], [1.0, 2.0]]))
    >>> stats.m, stats.W[:2].tolist(), stats.G.tolist()
    (2, [[1.0, 0.0], [1.0, 2.0]], [[2.0, 2.0], [2.0, 4.0]])
    """

    def __init__(self, layout: Layout, k: int):
        self.layout = layout
        self.m = 0
        self.W = np.zeros((INITIAL_ROWS, k))
        self.B = np.zeros((INITIAL_ROWS, k))
        self.D = np.zeros((INITIAL_ROWS, k)) if "D" in layout.rows else _unused()
        self.A = np.zeros((k, k)) if layout.gram else _unused()
        self.G = np.zeros((k, k)) if layout.gram else _unused()
        self.colsum = np.zeros(k)
        self.usage = np.zeros(k)  # forgetful sum of h
        self.window_usage = np.zeros(k)  # sum of h since the last refresh
        self.scale = 1.0  # the per-feature statistics are stored divided by this running scale
        self.n_eff = 0.0  # forgetful count of samples
        #: Pseudo-count prior on W, in samples (beta = 1; see :mod:`onlinenmf.memories`).
        self.prior = 0.0
        #: Statistics kept beside these with another forgetting (:mod:`onlinenmf.memories`):
        #: rows and columns added, removed or moved here are in the twin too.
        self.twin: Statistics | None = None
        #: The open samples (beta = 1 only; None: not kept), oldest first, each
        #: ``[rows, values, h, log of its weight's lazy scale]``: a refresh re-solves them
        #: against the new W (:meth:`restate`).
        self.recent: deque | None = None
        #: The closed part of B (true scale at ``closed_log``; rows added since are zero) and
        #: of the usage: B and the usage are these, forgotten since, plus the open samples'.
        self.closed = np.zeros((0, k))
        self.closed_usage = np.zeros(k)
        self.closed_log = 0.0
        #: An open sample left ``recent`` before it was restated (more samples between two
        #: refreshes than it holds): the next restatement only closes them all.
        self.lost = False
        #: The log of the scale the per-feature statistics were multiplied by at each
        #: :meth:`unscale` (with ``log(scale)``, the log of every sample's forgetting so far).
        self.log_unscaled = 0.0

    def keep_recent(self, count: int) -> None:
        """Keep up to ``count`` open samples for :meth:`restate` (0: none)."""
        self.recent = deque(maxlen=count) if count > 0 else None
        self.close_all()

    @property
    def k(self) -> int:
        return self.W.shape[1]

    def _row_arrays(self) -> list[str]:
        return list(self.layout.rows)

    # -------------------------------------------------------------- features (rows)
    def add_rows(self, rows: np.ndarray, total: np.ndarray | None = None) -> None:
        """Append rows of W for new features (their statistics start at zero); ``total`` is
        ``rows.sum(axis=0)`` when the caller has it (the twin's call passes it on)."""
        n = rows.shape[0]
        needed = self.m + n
        capacity = self.W.shape[0]
        if needed > capacity:
            capacity = max(needed, 2 * capacity)
            for name in ["W", *self._row_arrays()]:
                old = getattr(self, name)
                grown = np.zeros((capacity, old.shape[1]))
                grown[: self.m] = old[: self.m]
                setattr(self, name, grown)
        self.W[self.m : needed] = rows
        self.m = needed
        if total is None:
            total = rows.sum(axis=0)
        self.colsum += total
        if self.layout.gram:
            self.G += rows.T @ rows
        if self.twin is not None:
            self.twin.add_rows(rows, total)

    def remove_rows(self, keep: np.ndarray) -> None:
        """Delete the rows of W and of the per-feature statistics where ``keep`` (one boolean
        per row in use) is False, the kept rows closing up in order; the freed rows are zeroed
        (a feature added later starts from zero statistics). The k-sized statistics are sums
        over samples and stay; the caches are the caller's (:meth:`recompute_caches`, after it
        normalises W again). The twin loses the same rows."""
        m = int(np.count_nonzero(keep))
        for name in ["W", *self._row_arrays()]:
            rows = getattr(self, name)
            rows[:m] = rows[: self.m][keep]
            rows[m : self.m] = 0.0
        self.m = m
        self._forget_recent()  # their rows moved
        if self.twin is not None:
            self.twin.remove_rows(keep)

    # -------------------------------------------------------------- learning
    def add_batch(self, H: np.ndarray, rho: float, scales: np.ndarray) -> None:
        """After a batch whose row statistics were added with weights ``1 / scales``: decay and
        add the k-sized statistics (the rows' lazy scale moves to ``scales[-1]``)."""
        count = H.shape[0]
        self.scale = float(scales[-1])
        decay = rho ** np.arange(count - 1, -1, -1)
        carry = rho**count
        self.usage = carry * self.usage + decay @ H
        self.window_usage += H.sum(axis=0)
        if self.layout.gram:
            self.A = carry * self.A + (H * decay[:, None]).T @ H
        self.n_eff = carry * self.n_eff + decay.sum()

    def reset(self) -> None:
        """Forget every statistic (before re-learning a buffer of samples)."""
        self.A[:] = 0.0
        self.B[: self.m] = 0.0
        self.D[:] = 0.0
        self.usage[:] = 0.0
        self.n_eff, self.scale = 0.0, 1.0
        self.log_unscaled = 0.0
        self.close_all()

    def set_learned(self, H: np.ndarray, weights: np.ndarray) -> None:
        """The k-sized statistics of a re-learned buffer: its h with their weights."""
        self.usage = weights @ H
        if self.layout.gram:
            self.A = (H * weights[:, None]).T @ H
        self.n_eff = float(weights.sum())

    # -------------------------------------------------------------- restating recent samples
    def _log_scale(self) -> float:
        return self.log_unscaled + math.log(max(self.scale, 1e-300))

    def remember(self, rows: np.ndarray, values: np.ndarray, h: np.ndarray) -> None:
        """A sample just learned (beta = 1, ``h`` solved against the current W): open, until a
        restatement closes it (:meth:`restate`)."""
        recent = self.recent
        if recent is not None:
            if len(recent) == recent.maxlen:
                self.lost = True
            recent.append([rows, values, h.copy(), self._log_scale()])

    def remember_batch(self, indptr, rows, values, H, log_scales: np.ndarray) -> None:
        """The samples of a batch (CSR) just learned, each at its own lazy scale (the log of
        ``1 / weight`` it was added with, before ``log_unscaled``)."""
        recent = self.recent
        if recent is None:
            return
        count = indptr.size - 1
        if len(recent) + count > recent.maxlen:
            self.lost = True
        for s in range(max(0, count - recent.maxlen), count):
            part = slice(indptr[s], indptr[s + 1])
            recent.append([rows[part].copy(), values[part].copy(), H[s].copy(),
                           self.log_unscaled + log_scales[s]])

    def close_all(self) -> None:
        """Close every open sample at its contribution now: the closed part becomes B and the
        usage as they are (after anything that changed them other than by learning: a reset,
        a seeded column, rows or columns cut, added or merged; the open samples' h or rows no
        longer fit, they are no longer restated). Nothing without open samples kept."""
        if self.recent is None:
            return
        self.closed = self.B[: self.m] * self.scale
        self.closed_usage = self.usage.copy()
        self.closed_log = self._log_scale()
        self.lost = False
        self.recent.clear()

    def forget_recent(self) -> None:
        """A column was seeded anew (its statistics replaced): the open samples are closed as
        they are, here and in the twin."""
        for stats in (self, self.twin):
            if stats is not None:
                stats.close_all()

    def _forget_recent(self) -> None:
        """Columns were cut, added or merged, or rows removed: close the open samples."""
        self.close_all()

    def restate(self, divergence, solver, keep: int) -> int:
        """Re-solve the open samples against the current W (its caches up to date), warm from
        their h, and rebuild B and the usage as the closed part (forgotten since) plus their
        contributions at their weights now; then close all but the latest ``keep``. Returns
        the number of samples re-solved (0 when an open sample was lost: then all are closed
        as they are).

        A sample's h was solved against the W of its time; online EM keeps that stale h in
        the statistics until it is forgotten, so while W moves (a young model, a drifting
        stream) the refresh reads statistics of dictionaries gone by. A sample is re-solved
        at every refresh while it is open, so the caller's ``keep`` sets the cost
        (:meth:`onlinenmf.learner.Learner.restate`)."""
        if self.recent is None or self.m == 0:
            return 0
        if self.lost or not self.recent:
            self.close_all()
            return 0
        self.unscale()  # B at its true scale: the weights below are true weights
        now = self._log_scale()
        entries = list(self.recent)
        lengths, rows, values, H = self._stack(entries)
        weights = np.exp(now - np.array([entry[3] for entry in entries]))
        indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        B = self.B[: self.m]
        B[:] = 0.0
        decay = math.exp(now - self.closed_log)
        B[: self.closed.shape[0]] = decay * self.closed
        usage = decay * self.closed_usage
        closing = len(entries) - max(0, min(int(keep), len(entries)))
        warm = np.ones(len(entries), dtype=np.bool_)  # from their h
        for part in (slice(0, closing), slice(closing, len(entries))):
            if part.start == part.stop:
                continue
            first, last = indptr[part.start], indptr[part.stop]
            divergence.learn_batch(self, indptr[part.start : part.stop + 1] - first,
                                   rows[first:last], values[first:last], H[part], solver,
                                   weights[part], warm[part])
            usage = usage + weights[part] @ H[part]
            if part.start == 0:  # the closing samples: now in the closed part for good
                self.closed, self.closed_usage, self.closed_log = B.copy(), usage.copy(), now
        self.usage = usage
        for _ in range(closing):
            self.recent.popleft()
        for entry, h in zip(self.recent, H[closing:]):
            entry[2] = h
        return len(entries)

    @staticmethod
    def _stack(entries: list) -> tuple[np.ndarray, ...]:
        lengths = np.array([entry[0].size for entry in entries], dtype=np.int64)
        rows = np.concatenate([entry[0] for entry in entries]).astype(np.int64)
        values = np.concatenate([entry[1] for entry in entries])
        return lengths, rows, values, np.array([entry[2] for entry in entries])

    def batch_scratch(self) -> Statistics:
        """This W and its caches (shared, read-only) with zero per-feature statistics: where
        the sums of a batch are gathered without touching the model's own."""
        scratch = copy.copy(self)
        scratch.B = np.zeros((self.m, self.k))
        scratch.D = np.zeros((self.m, self.k)) if "D" in self.layout.rows else _unused()
        return scratch

    def install(self, sums: BatchSums, n_eff: float) -> None:
        """Replace every statistic by a batch's sums, scaled to weigh ``n_eff`` samples (the
        refresh window's usage is the batch's own, unscaled)."""
        m, k = self.m, self.k
        if sums.B.shape != (m, k):
            raise ValueError(f"statistics of {sums.B.shape[0]} features x {sums.B.shape[1]} "
                             f"components do not fit this model ({m} x {k}): compute them "
                             "with its batch_statistics after its last change of features or "
                             "rank")
        c = n_eff / sums.count if sums.count else 0.0
        self.B[:m] = c * sums.B
        if "D" in self.layout.rows:
            self.D[:m] = c * sums.D
        if self.layout.gram:
            self.A = c * sums.A
        self.usage = c * sums.usage
        self.window_usage = sums.usage.copy()
        self.n_eff = float(n_eff) if sums.count else 0.0
        self.scale = 1.0
        if self.recent is not None:
            self.close_all()  # the batch's sums are the statistics now

    # -------------------------------------------------------------- refresh
    def unscale(self) -> None:
        """Bring the per-feature statistics to their true scale (the running scale to 1)."""
        for name in self._row_arrays():
            getattr(self, name)[: self.m] *= self.scale
        self.log_unscaled += math.log(max(self.scale, 1e-300))
        self.scale = 1.0

    def totals(self) -> Totals:
        """The statistics a refresh reads (views; call :meth:`unscale` first)."""
        m = self.m
        return Totals(self.A, self.B[:m], self.D[:m], self.usage, self.n_eff, self.prior)

    def rescale_columns(self, c: np.ndarray) -> None:
        """W <- W / c means h <- c h: carry that into every statistic (and the open samples'
        h and the closed part; a contribution ``W (v / W h) h`` does not change)."""
        self.usage *= c
        if self.recent is not None:
            self.closed_usage = self.closed_usage * c
        for entry in self.recent or ():
            entry[2] = entry[2] * c
        if self.layout.gram:
            self.A *= np.outer(c, c)
        for name, exponent in self.layout.rows.items():
            rows = getattr(self, name)[: self.m]
            if exponent == 1.0:
                rows *= c
            elif exponent:
                rows *= c**exponent
            if name == "B" and exponent and self.recent is not None:
                self.closed = self.closed * c**exponent

    def recompute_caches(self) -> None:
        W = self.W[: self.m]
        self.colsum = W.sum(axis=0)
        if self.layout.gram:
            self.G = W.T @ W

    # -------------------------------------------------------------- columns
    def resize_columns(self, keep: np.ndarray, add: int) -> None:
        """Keep the columns ``keep`` (in order) of every k-sized array and append ``add`` zero
        columns."""
        def cut(a: np.ndarray, axis: int) -> np.ndarray:
            a = np.take(a, keep, axis=axis)
            if add:
                shape = list(a.shape)
                shape[axis] = add
                a = np.concatenate([a, np.zeros(shape)], axis=axis)
            return a

        for name in ["W", *self._row_arrays()]:
            setattr(self, name, cut(getattr(self, name), 1))
        if self.layout.gram:
            self.A = cut(cut(self.A, 0), 1)
            self.G = cut(cut(self.G, 0), 1)
        for name in ("colsum", "usage", "window_usage"):
            setattr(self, name, cut(getattr(self, name), 0))
        self._forget_recent()
        if self.twin is not None:
            self.twin.resize_columns(keep, add)

    def move_columns(self, M: np.ndarray) -> None:
        """Move the statistics of column j to the columns ``M[j]`` says (k x k, 0/1; merged
        columns add up). W and the caches are the caller's."""
        m = self.m
        for name in self._row_arrays():
            rows = getattr(self, name)
            rows[:m] = rows[:m] @ M
        self.usage = self.usage @ M
        self.window_usage = self.window_usage @ M
        self._forget_recent()
        if self.layout.gram:
            self.A = M.T @ self.A @ M
        if self.twin is not None:
            twin = self.twin
            twin.move_columns(M)
            # W and the caches are the caller's: the twin's columns follow the same plan
            twin.W[: twin.m] = twin.W[: twin.m] @ M
            twin.recompute_caches()

    def permute_columns(self, order: np.ndarray) -> None:
        """Column j becomes column ``order[j]``: W, the statistics and the caches (not the
        window's usage, which belongs to the samples since the last window)."""
        # C order, as every other path leaves them (a sum over an array depends on its layout)
        for name in ["W", *self._row_arrays()]:
            setattr(self, name, np.ascontiguousarray(getattr(self, name)[:, order]))
        if self.layout.gram:
            self.A = np.ascontiguousarray(self.A[np.ix_(order, order)])
            self.G = np.ascontiguousarray(self.G[np.ix_(order, order)])
        self.colsum = self.colsum[order]
        self.usage = self.usage[order]
        if self.recent is not None:
            self.closed = np.ascontiguousarray(self.closed[:, order])
            self.closed_usage = self.closed_usage[order]
        for entry in self.recent or ():
            entry[2] = entry[2][order]

    def swap(self, other: Statistics) -> None:
        """Exchange W, the statistics, the caches and the prior with ``other`` (same rows and
        columns); the window's usage, the twin link and the layout stay."""
        for name in ("W", "B", "D", "A", "G", "colsum", "usage", "scale", "n_eff", "prior",
                     "recent", "log_unscaled", "closed", "closed_usage", "closed_log", "lost"):
            mine, theirs = getattr(self, name), getattr(other, name)
            setattr(self, name, theirs)
            setattr(other, name, mine)

    # -------------------------------------------------------------- views and snapshots
    def export(self) -> dict[str, np.ndarray]:
        """Copies at their true scale: W, the per-feature statistics, A, usage."""
        m = self.m
        stats = {"W": self.W[:m].copy()}
        for name in self._row_arrays():
            stats[name] = getattr(self, name)[:m] * self.scale
        stats["usage"] = self.usage.copy()
        if self.layout.gram:
            stats["A"] = self.A.copy()
        return stats

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        m = self.m
        arrays = {name: getattr(self, name)[:m].copy() for name in ["W", *self._row_arrays()]}
        if self.layout.gram:
            arrays.update(A=self.A, G=self.G)
        arrays.update(colsum=self.colsum, usage=self.usage, window_usage=self.window_usage)
        scalars = {"m": m, "scale": self.scale, "n_eff": self.n_eff}
        if self.recent is not None:
            arrays.update(self._recent_arrays())
            scalars["log_unscaled"] = self.log_unscaled
        return arrays, scalars

    def _recent_arrays(self) -> dict[str, np.ndarray]:
        """The open samples as CSR-like arrays (their rows and values concatenated; h and the
        log scales one row each) and the closed part."""
        entries = list(self.recent)
        lengths = [entry[0].size for entry in entries]

        def stacked(i: int, dtype=np.float64) -> np.ndarray:
            parts = [entry[i] for entry in entries]
            return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)

        return {"restate_indptr": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
                "restate_rows": stacked(0, np.int64), "restate_values": stacked(1),
                "restate_h": np.array([entry[2] for entry in entries]).reshape(-1, self.k),
                "restate_log_scale": np.array([entry[3] for entry in entries], dtype=float),
                "restate_closed": self.closed, "restate_closed_usage": self.closed_usage,
                "restate_closed_log": np.array([self.closed_log, float(self.lost)])}

    def restore(self, arrays: dict[str, np.ndarray], scalars: dict[str, Any]) -> None:
        k = arrays["usage"].size
        m = int(scalars["m"])
        capacity = max(INITIAL_ROWS, m)
        for name in ["W", *self._row_arrays()]:
            full = np.zeros((capacity, k))
            full[:m] = arrays[name]
            setattr(self, name, full)
        if self.layout.gram:
            self.A, self.G = arrays["A"].copy(), arrays["G"].copy()
        for name in ("colsum", "usage", "window_usage"):
            setattr(self, name, arrays[name].copy())
        self.m = m
        self.scale = float(scalars["scale"])
        self.n_eff = float(scalars["n_eff"])
        self.log_unscaled = float(scalars.get("log_unscaled", 0.0))
        if self.recent is not None:
            # a snapshot from before the closed part was kept (none, or each open sample's
            # contribution instead) closes them all
            self.close_all()
            if "restate_closed" in arrays:
                self.closed = arrays["restate_closed"].copy()
                self.closed_usage = arrays["restate_closed_usage"].copy()
                self.closed_log, lost = (float(x) for x in arrays["restate_closed_log"])
                self.lost = bool(lost)
                indptr = arrays["restate_indptr"]
                for s in range(indptr.size - 1):
                    part = slice(indptr[s], indptr[s + 1])
                    self.recent.append([arrays["restate_rows"][part].copy(),
                                        arrays["restate_values"][part].copy(),
                                        arrays["restate_h"][s].copy(),
                                        float(arrays["restate_log_scale"][s])])
