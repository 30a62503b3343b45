"""When W is refreshed: at a fixed interval (``refresh_every``), or automatically.

The automatic schedule (``refresh_every=None``, the default) needs no tuning:

* **first dictionary** after ``FIRST_PER_COMPONENT`` samples per component (2k): before it,
  samples meet random rows; a dictionary from fewer samples than components cannot hold k
  distinct columns. It is fitted again from the recent samples at 4k, 8k and 16k samples
  (while the buffer of recent samples still holds them, see :meth:`RefreshSchedule.refit_due`):
  a first dictionary from 2k samples can merge two communities that the online updates
  never separate again (measured on a planted stationary stream: 14.7 times the oracle's
  loss without it, 1.003 with it);
* then **often while the model is young**: the interval between refreshes is ``GROWTH``
  times the samples learned since the first dictionary (or since the last drift event, from
  the refresh after it: a moved loss makes the model young again), so the refreshes space
  out geometrically as it settles;
* **never staler than a share of the memory**: at most ``MEMORY_SHARE`` of the memory
  length ``1 / (1 - rho)`` between two refreshes (the statistics of a longer gap would be
  mostly forgotten by the time W reads them);
* **at a bounded cost**: a refresh passes over the whole m x k dictionary a few times
  (O(m k); O(m k^2) for beta = 2), a sample's solve over its own non-zero entries tens of
  times (O(nnz k) per sweep). So a refresh waits until the samples since the previous one
  hold at least ``COST_SHARE * m`` non-zero entries; then the amortised refresh cost is at
  most about the cost of those samples' solves: measured on ECAM (m = 3347, k = 10, 56
  non-zero taxa per sample), a refresh takes as long as 7 samples at beta = 1 (18 at
  beta = 2, 4 at beta = 0), while the floor asks for 15 samples between refreshes. A
  refresh also has a fixed cost whatever m (a few dozen numpy calls per memory: about one
  sample's solve), which on dense data (nnz near m, where one sample reaches the entries'
  floor) would be paid at every sample while the interval is short (after the first
  dictionary and after each drift event): so at least ``MIN_INTERVAL`` samples between two
  refreshes, at most one refresh per ``MIN_INTERVAL`` samples (bench_engine's dense stream,
  m = 500, ~279 entries per sample: 440 refreshes in 3,000 samples instead of 683). The
  benchmark (``benchmarks/bench_real.py``) measures the share of the time spent in refreshes.
* **restating** (beta = 1, :meth:`onlinenmf.learner.Learner.restate`): after the M-step a
  refresh re-solves the open samples (the latest ones) against the new W, two Newton sweeps
  each from their previous h (O(nnz k)), rebuilds the statistics from them and takes the
  M-step again. At most ``RESTATED_PER_SAMPLE`` (16) re-solves per sample learned, amortised,
  and at most ``buffer_size`` per refresh; in proportion to how far W moved at the refresh
  (``MOVED_FULLY``), none once it has settled. Measured: ECAM re-solves ~10 per sample and
  memory (its W moves 0.06-0.12 per refresh throughout), about the per-sample cost again;
  bench_engine's dense stationary stream none once settled (0 after its first 300 samples).
  ``benchmarks/bench_real.py`` reports the share of the learning time spent restating.

An explicit ``refresh_every`` refreshes every that many samples, as before, with the first
dictionary at the first refresh that has k non-empty recent samples.

>>> schedule = RefreshSchedule(None, n_components=10, buffer_size=128)
>>> schedule.first_at, schedule.refits
(20, [40, 80])
>>> schedule.interval(since_first=480, memory_length=500.0)
24
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: The first dictionary is fitted after this many samples per component.
FIRST_PER_COMPONENT = 2
#: ... and fitted again at 2, 4 and 8 times that many samples (those within the buffer).
REFIT_FACTORS = (2, 4, 8)
#: The automatic interval: this share of the samples since the first dictionary (or the last
#: drift) ...
GROWTH = 0.05
#: ... at most this share of the memory length ...
MEMORY_SHARE = 0.25
#: ... and at least as many samples as hold COST_SHARE x m non-zero entries ...
COST_SHARE = 0.25
#: ... and at least this many samples (a refresh's fixed cost, whatever m).
MIN_INTERVAL = 4


class RefreshSchedule:
    """The refresh schedule of one model (see the module notes).

    ``every`` is the user's ``refresh_every`` (None: automatic). The schedule keeps the
    samples since the first dictionary's anchor (restarted by a drift event) and the non-zero
    entries learned since the last refresh.
    """

    def __init__(self, every: int | None, n_components: int, buffer_size: int):
        self.every = every
        self.first_at = max(FIRST_PER_COMPONENT * int(n_components), 1)
        self.refits = [f * self.first_at for f in REFIT_FACTORS
                       if f * self.first_at <= buffer_size]
        self.anchor = -1  # samples_learned where the interval restarts (-1: no dictionary yet)
        self.drift = -1  # where the last drift was detected, if after the anchor
        self.nnz = 0  # non-zero entries learned since the last refresh

    @property
    def automatic(self) -> bool:
        return self.every is None

    def interval(self, since_first: int, memory_length: float) -> int:
        """Samples between two refreshes for a model ``since_first`` samples past its anchor
        (the cost floor, which counts non-zero entries, comes on top)."""
        grown = max(1, math.ceil(GROWTH * since_first))
        if math.isfinite(memory_length):
            grown = min(grown, max(1, int(MEMORY_SHARE * memory_length)))
        return grown

    def due(self, samples: int, since_refresh: int, initialised: bool, memory_length: float,
            n_features: int, nnz: int | None = None) -> bool:
        """Whether to refresh now, after ``samples`` samples learned (``nnz``: the non-zero
        entries learned since the last refresh, by default those counted)."""
        if self.every is not None:
            return since_refresh >= self.every
        if not initialised:
            return samples >= self.first_at
        if samples in self.refits:
            return True
        if since_refresh < max(self.interval(samples - self.anchor, memory_length), MIN_INTERVAL):
            return False
        return (self.nnz if nnz is None else nnz) >= COST_SHARE * n_features

    def refit_due(self, samples: int) -> bool:
        """Whether this refresh fits the dictionary again from the recent samples."""
        return self.every is None and samples in self.refits

    def stop(self, start: int, indptr: np.ndarray, samples: int, since_refresh: int,
             initialised: bool, memory_length: float, n_features: int) -> int:
        """The end of the next piece of a batch (rows ``start`` on, CSR ``indptr``) that sees
        one W: the first row after which :meth:`due` holds (as :meth:`due` would say after
        each sample), or the batch's end."""
        n = indptr.size - 1
        if self.every is not None:
            return min(n, start + max(1, self.every - since_refresh))
        for stop in range(start + 1, n + 1):
            learned = stop - start
            if self.due(samples + learned, since_refresh + learned, initialised,
                        memory_length, n_features,
                        self.nnz + int(indptr[stop] - indptr[start])):
                return stop
        return n

    # -------------------------------------------------------------- events of the stream
    def learned(self, nnz: int) -> None:
        self.nnz += int(nnz)

    def refreshed(self) -> None:
        self.nnz = 0
        if self.drift > self.anchor:  # the refresh after a drift restarts the interval
            self.anchor = self.drift

    def restart(self, samples: int) -> None:
        """The interval restarts from here (the first dictionary)."""
        self.anchor = int(samples)

    def drifted(self, samples: int) -> None:
        """A drift was detected after ``samples`` samples: the interval restarts from there at
        the next refresh (not at once, so that a batch cut at refreshes and a loop of single
        samples refresh at the same samples)."""
        self.drift = int(samples)

    # -------------------------------------------------------------- snapshots
    def state(self) -> dict[str, Any]:
        return {"anchor": self.anchor, "drift": self.drift, "nnz": self.nnz}

    def restore(self, meta: dict[str, Any]) -> None:
        self.anchor = int(meta["anchor"])
        self.drift = int(meta["drift"])
        self.nnz = int(meta["nnz"])
