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
from dataclasses import dataclass
from typing import Any

import numpy as np

from onlinenmf._jit import COMPILED, column_sums
from onlinenmf.divergences.base import Layout, Totals
from onlinenmf.features import DIGEST_SIZE, append_initial_rows

#: Rows allocated at first; the arrays double when they fill.
INITIAL_ROWS = 16
#: No twin's rows (:meth:`Statistics.add_initial_rows`).
_NO_ROWS = np.zeros((0, 0))


def _unused() -> np.ndarray:
    """The kernels take every array: a statistic the layout does not keep is empty."""
    return np.zeros((0, 0))


class OpenSamples:
    """The open samples of :class:`Statistics` (oldest first, at most ``maxlen``) in flat CSR
    arrays, preallocated: their rows and values concatenated (``indptr``), their h (one row
    each) and the log of each one's lazy scale.

    A restatement hands the compiled solver these arrays as they are and drops the samples it
    closes by moving the rest to the front; kept as one list entry per sample they were stacked
    anew at every refresh and their h rescaled one by one at every M-step, Python loops over
    up to ``buffer_size`` samples that cost ECAM's river rate about a fifth (issue 13). A
    sample that does not fit (``maxlen`` already open) is not kept: :meth:`append` says so and
    the caller closes them all at the next restatement.

    >>> store = OpenSamples(2, k=1)
    >>> store.append(np.array([3, 5]), np.array([1.0, 2.0]), np.array([0.5]), 0.0)
    True
    >>> store.append(np.array([4]), np.array([7.0]), np.array([0.25]), -1.0)
    True
    >>> store.append(np.array([1]), np.array([1.0]), np.array([1.0]), -2.0), len(store)
    (False, 2)
    >>> store.drop_oldest(1)
    >>> store.indptr[:2].tolist(), store.rows[:1].tolist(), store.H[:1].tolist()
    ([0, 1], [4], [[0.25]])
    """

    def __init__(self, maxlen: int, k: int):
        self.maxlen = int(maxlen)
        self.count = 0
        self.indptr = np.zeros(self.maxlen + 1, dtype=np.int64)
        self.rows = np.zeros(0, dtype=np.int64)
        self.values = np.zeros(0)
        self.H = np.zeros((self.maxlen, k))
        self.logs = np.zeros(self.maxlen)

    def __len__(self) -> int:
        return self.count

    def clear(self) -> None:
        self.count = 0

    def _room(self, entries: int) -> None:
        """Room for ``entries`` non-zero entries in all."""
        if entries > self.rows.size:
            size = max(entries, 2 * self.rows.size, 64)
            for name in ("rows", "values"):
                old = getattr(self, name)
                grown = np.zeros(size, dtype=old.dtype)
                grown[: old.size] = old
                setattr(self, name, grown)

    def take_columns(self, index: np.ndarray, add: int = 0) -> None:
        """The columns ``index`` of h (in order), then ``add`` zero ones: h keeps the model's
        k columns through every change of rank or column order
        (:meth:`Statistics.resize_columns`, :meth:`Statistics.permute_columns`)."""
        H = np.take(self.H, index, axis=1)
        self.H = np.concatenate([H, np.zeros((self.maxlen, add))], axis=1) if add else H

    def append(self, rows: np.ndarray, values: np.ndarray, h: np.ndarray, log: float) -> bool:
        """Open one more sample (copied); False when ``maxlen`` are open (not kept)."""
        n = self.count
        if n == self.maxlen:
            return False
        start = int(self.indptr[n])
        stop = start + rows.size
        if stop > self.rows.size:  # (a call less per sample)
            self._room(stop)
        self.rows[start:stop] = rows
        self.values[start:stop] = values
        self.H[n] = h
        self.logs[n] = log
        self.indptr[n + 1] = stop
        self.count = n + 1
        return True

    def extend(self, indptr, rows, values, H, logs: np.ndarray) -> bool:
        """Open the samples of a CSR batch (copied); False when they do not all fit (none
        kept)."""
        n, count = self.count, indptr.size - 1
        if n + count > self.maxlen:
            return False
        start = int(self.indptr[n])
        first, last = int(indptr[0]), int(indptr[-1])
        stop = start + last - first
        self._room(stop)
        self.rows[start:stop] = rows[first:last]
        self.values[start:stop] = values[first:last]
        self.H[n : n + count] = H
        self.logs[n : n + count] = logs
        self.indptr[n + 1 : n + count + 1] = indptr[1:] - first + start
        self.count = n + count
        return True

    def drop_oldest(self, count: int) -> None:
        """Close the ``count`` oldest: the others move to the front."""
        if count <= 0:
            return
        n, kept = self.count, self.count - count
        start, stop = int(self.indptr[count]), int(self.indptr[n])
        self.rows[: stop - start] = self.rows[start:stop]
        self.values[: stop - start] = self.values[start:stop]
        self.H[:kept] = self.H[count:n]
        self.logs[:kept] = self.logs[count:n]
        self.indptr[: kept + 1] = self.indptr[count : n + 1] - start
        self.count = kept


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
        #: The open samples (beta = 1 only; None: not kept), oldest first, with their h and
        #: the log of their weight's lazy scale: a refresh re-solves them against the new W
        #: (:meth:`restate`).
        self.recent: OpenSamples | None = None
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
        self.recent = OpenSamples(count, self.k) if count > 0 else None
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

    def add_initial_rows(self, digests: bytes) -> bool:
        """Append new features' initial rows (:func:`onlinenmf.features.initial_rows` of the
        names whose :func:`~onlinenmf.features.name_digest` are joined in ``digests``), here
        and in the twin, as :meth:`add_rows` would, in one compiled call (the per-sample
        path). False, and nothing done, where that call does not apply: interpreted, a Gram
        matrix to update, or no room left for the rows (the caller then takes
        :meth:`add_rows`)."""
        m = self.m
        needed = m + len(digests) // DIGEST_SIZE
        twin = self.twin
        if (not COMPILED or self.layout.gram or needed > self.W.shape[0]
                or (twin is not None and needed > twin.W.shape[0])):
            return False
        if twin is None:
            append_initial_rows(digests, self.W, self.colsum, m, _NO_ROWS, self.colsum)
        else:
            append_initial_rows(digests, self.W, self.colsum, m, twin.W, twin.colsum)
            twin.m = needed
        self.m = needed
        return True

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
        if recent is not None and not recent.append(rows, values, h, self._log_scale()):
            self.lost = True

    def remember_batch(self, indptr, rows, values, H, log_scales: np.ndarray) -> None:
        """The samples of a batch (CSR) just learned, each at its own lazy scale (the log of
        ``1 / weight`` it was added with, before ``log_unscaled``)."""
        recent = self.recent
        if recent is not None and not recent.extend(indptr, rows, values, H,
                                                    self.log_unscaled + log_scales):
            self.lost = True

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
        recent = self.recent
        if recent is None or self.m == 0:
            return 0
        if self.lost or not recent.count:
            self.close_all()
            return 0
        self.unscale()  # B at its true scale: the weights below are true weights
        now = self._log_scale()
        n = recent.count
        indptr, rows, values, H = recent.indptr, recent.rows, recent.values, recent.H
        weights = np.exp(now - recent.logs[:n])
        decay = math.exp(now - self.closed_log)
        usage = decay * self.closed_usage
        closing = n - max(0, min(int(keep), n))
        warm = np.ones(n, dtype=np.bool_)  # from their h

        def learn(into: np.ndarray, part: slice) -> None:
            """Re-solve the open samples ``part`` against W, their contributions added to
            ``into`` (B's rows in use, or the closed part's)."""
            first, last = indptr[part.start], indptr[part.stop]
            divergence.learn_batch(self, indptr[part.start : part.stop + 1] - first,
                                   rows[first:last], values[first:last], H[part], solver,
                                   weights[part], warm[part], B=into)

        B = self.B[: self.m]
        if closing:  # the closing samples: in the closed part for good, forgotten from now
            closed = self._closed_rows()
            np.multiply(closed, decay, out=closed)
            learn(closed, slice(0, closing))
            usage = usage + weights[:closing] @ H[:closing]
            self.closed_usage, self.closed_log = usage.copy(), now
            B[:] = closed
        else:
            done = self.closed.shape[0]
            np.multiply(self.closed, decay, out=B[:done])
            B[done:] = 0.0
        if closing < n:
            learn(B, slice(closing, n))
            usage = usage + weights[closing:n] @ H[closing:n]
        self.usage = usage
        recent.drop_oldest(closing)
        return n

    def _closed_rows(self) -> np.ndarray:
        """The closed part with a (zero) row for every feature in use."""
        closed = self.closed
        if closed.shape[0] < self.m:
            grown = np.zeros((self.m, self.k))
            grown[: closed.shape[0]] = closed
            self.closed = closed = grown
        return closed

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
        """Bring the per-feature statistics to their true scale (the running scale to 1).
        Nothing to do at scale 1 (a refresh's second M-step, a restatement): each pass over
        the rows is O(m k)."""
        if self.scale == 1.0:
            return
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
        recent = self.recent
        if recent is not None:
            self.closed_usage = self.closed_usage * c
            recent.H[: recent.count] *= c
        if self.layout.gram:
            self.A *= np.outer(c, c)
        for name, exponent in self.layout.rows.items():
            rows = getattr(self, name)[: self.m]
            if exponent == 1.0:
                rows *= c
            elif exponent:
                rows *= c**exponent
            if name == "B" and exponent and recent is not None:
                self.closed *= c**exponent

    def recompute_caches(self) -> None:
        W = self.W[: self.m]
        self.colsum = column_sums(W)
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
        if self.recent is not None:
            self.recent.take_columns(keep, add)
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
        recent = self.recent
        if recent is not None:
            self.closed = np.ascontiguousarray(self.closed[:, order])
            self.closed_usage = self.closed_usage[order]
            recent.take_columns(order)

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
        recent = self.recent
        n = recent.count
        end = int(recent.indptr[n])
        return {"restate_indptr": recent.indptr[: n + 1].copy(),
                "restate_rows": recent.rows[:end].copy(),
                "restate_values": recent.values[:end].copy(),
                "restate_h": recent.H[:n].copy() if n else np.zeros((0, self.k)),
                "restate_log_scale": recent.logs[:n].copy(),
                "restate_closed": self.closed.copy(),
                "restate_closed_usage": self.closed_usage.copy(),
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
            # open samples with h of the snapshot's k, all closed: a snapshot from before the
            # closed part was kept (none, or each open sample's contribution) leaves them so
            self.keep_recent(self.recent.maxlen)
            if "restate_closed" in arrays:
                self.closed = arrays["restate_closed"].copy()
                self.closed_usage = arrays["restate_closed_usage"].copy()
                self.closed_log, lost = (float(x) for x in arrays["restate_closed_log"])
                self.lost = bool(lost)
                if not self.recent.extend(arrays["restate_indptr"].astype(np.int64),
                                          arrays["restate_rows"], arrays["restate_values"],
                                          arrays["restate_h"].reshape(-1, k),
                                          arrays["restate_log_scale"]):
                    self.lost = True  # more than this model keeps open
