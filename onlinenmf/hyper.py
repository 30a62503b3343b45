"""Hyperparameters re-estimated while streaming: rank, sparsity and forgetting.

:class:`Reestimator` is owned by an :class:`~onlinenmf.engine.OnlineNMF` built with
``adapt_rank``, ``adapt_sparsity`` or ``adapt_forgetting``; the engine calls
:meth:`Reestimator.on_refresh` at every dictionary refresh that closes a loss window (one of
at least 20 samples, :mod:`onlinenmf.monitor`; never per sample, so the per-sample cost is
unchanged) and re-estimation runs every ``reestimate_every`` such windows. It reads the
model's public parameters and counters (:class:`Settings`) and acts through the model's parts
(:class:`~onlinenmf.learner.Learner`, :class:`~onlinenmf.components.Components`); it imports
no engine. Each change of a value is an :class:`~onlinenmf.events.Event` in ``model.events``
(kind ``prune``, ``grow``, ``l1_h``, ``forget_factor`` or ``refit``).

Rank (``adapt_rank``), a streaming form of automatic relevance determination (Tan & Fevotte
2013, IEEE TPAMI 35(7)):

* relevance ``lambda_k = (S_k + b) / (N + a + 1)``, where ``S_k`` is a forgetful sum of the
  activations of component k (horizon: half the memory length, so that a component that
  stopped being used loses relevance within a few memory lengths) and ``N`` the matching
  forgetful count. The columns of W are normalised to sum 1, so the W-part of Tan & Fevotte's
  relevance is the same constant for every column and is left out; ``a = log(m + N)`` as the
  authors suggest and ``b = sqrt((a - 1)(a - 2) mean(lambda) / m)`` (their L1 rule with
  ``sum V / (F N) ~ sum_k lambda_k``);
* the relevance enters the h-solve as a per-component L1 weight
  ``ard_strength * g * mean(lambda) / lambda_k`` (``g`` the gradient scale of the loss:
  1 for KL, ``mean(diag(W^T W)) mean(lambda)`` for Frobenius, ``1 / mean(lambda)`` for IS),
  the exponential-prior MAP term made invariant to the scale of the data: negligible for a
  component of average relevance, decisive for one whose relevance collapses;
* a component whose relevance share ``lambda_k / sum(lambda)`` stays under ``PRUNE_SHARE``
  for ``prune_patience`` consecutive re-estimations is retired (never below ``k_min``);
* births: when the prequential loss of ``BIRTH_PATIENCE`` consecutive refresh windows is
  above ``BIRTH_RATIO`` times its floor (the level reached when the model fitted well: it
  follows lower windows in steps of ``FLOOR_DOWN`` and higher ones over 16 memory lengths) and
  the residuals of the worst recent samples have structure (at least ``STRUCTURE_MIN`` of them
  point the same way, cosine >= 0.5), a new component is seeded from their residual (never
  above ``k_max``; at ``k_max`` the least used component is replaced instead, as without
  adaptation). Under ``adapt_rank`` these rules replace the engine's own re-seeding;
* births without a loss step (a loss merely high, as on a real stream whose communities are
  finer than the rank; ECAM's loss never rises to 1.5x its floor): at every re-estimation
  below ``k_max`` the recent samples are split in two interleaved halves; the positive
  residuals of one half, grouped by likeness (cosine >= ``ALIKE``, the largest group first),
  seed up to ``GROWTH_CANDIDATES`` columns, and each is kept if, on the *other* half (samples
  it was not seeded from), it lowers the summed relative loss by at least ``GROWTH_GAIN`` and
  takes at least ``GROWTH_SHARE`` (twice ``PRUNE_SHARE``) of their activation (a column the
  prune rule would soon retire, such as one that only patches a few taxa the other columns
  miss, is not born). The
  cost is a few solves of the recent samples per loss window (at most ``buffer_size / 2``
  times ``GROWTH_CANDIDATES + 2`` solves per 20 or more samples learned, so O(nnz k) per
  sample amortised, in refreshes only). The death rule is the prune above: a newborn must
  start at or above the share under which a component retires. Only windows the recent
  buffer holds are judged so (a batch pass of :mod:`onlinenmf.distributed` has its own
  births). Known limit: a young model missing several communities at once can be given a
  blend of two of them first and overshoot for a while (from k = 3 on 6 planted: 9, pruned
  back to 6 within about 700 samples; tests/test_hyper_growth.py).

Sparsity (``adapt_sparsity``), empirical Bayes: an exponential prior on the activations,
``h ~ Exp(rate)``, with the rate re-fit to their running mean, ``rate = 1 / mean(h)``. In the
engine's units the L1 weight is that rate times the noise scale of the loss: 1 for KL (Poisson
counts) and IS, ``sigma^2`` for Frobenius (``sigma^2`` the mean squared residual per entry).
Caveat for KL: with the columns of W summing to 1, a uniform L1 weight ``l`` only rescales the
optimal h by ``1 / (1 + l)`` (the KL gradient is ``1 + l - sum_f v_f W_fk / (W h)_f``, and that
sum is homogeneous of degree -1 in h), so it shrinks without sparsifying. For Poisson counts
the re-fitted rate is the posterior mode and tiny (1 / mean reads); for KL on data that are not
counts (e.g. image intensities) it has no meaning: leave ``adapt_sparsity`` off there.

Forgetting (``adapt_forgetting``): a Page-Hinkley detector (``river.drift.PageHinkley``, mode
"up") watches the log of the mean relative prequential loss of each loss window. On a
detected rise (a ``drift`` event, unless the model's ``drift_threshold`` is None) the memory
length is cut to ``FAST_SHARE`` of the user's ``forget_factor``
memory and held there while the model recovers (until the window loss is back under
``RECOVERED_RATIO`` times its floor, at most ``RECOVERY_LIMIT`` memory lengths). While it
recovers, once the recent buffer holds only post-drift samples, each re-estimation refits W by
batch multiplicative updates on that buffer, starting from the current W, and re-learns the
buffer's statistics (:meth:`onlinenmf.learner.Learner.refit_recent`): online EM alone takes one
step per refresh from statistics gathered under older dictionaries and unmixes overlapping
components slowly
(KL: about 1.6 times the oracle for ten memory lengths; with the refit, 1.02 after two).
Afterwards the memory doubles whenever the samples seen since the recovery exceed it, up to
``SLOW_FACTOR`` times the user's memory, so a stationary stream ends with a long memory
(estimates averaged over more samples) and a drifting one forgets quickly. The alternative
named in the design, shadow dictionaries with several forgetting factors scored
prequentially, is measured against it in ``benchmarks/bench_hyper.py``: it recovers more
slowly at two to four times the cost, so the detector is kept.

Examples
--------
>>> import numpy as np
>>> from onlinenmf import OnlineNMF
>>> from onlinenmf.datasets import make_poisson_stream
>>> s = make_poisson_stream(n_features=60, n_components=3, n_samples=1500, seed=0,
...                         taxa_per_community=10)
>>> m = OnlineNMF(n_components=6, beta=1, seed=0, forget_factor=0.995, refresh_every=50,
...               adapt_rank=True, adapt_sparsity=True, adapt_forgetting=True)
>>> _ = m.learn_many(s.X, features=s.features)
>>> m.n_components_  # started at 6, three planted communities
3
>>> [(e["kind"], e["old"], e["new"]) for e in m.events if e["kind"] == "prune"]
[('prune', 6, 5), ('prune', 5, 4), ('prune', 4, 3)]
>>> sorted(m.hyperparameters)
['forget_factor', 'l1_h', 'n_components', 'relevance']
>>> sorted({e["kind"] for e in m.events} & {"prune", "l1_h", "forget_factor"})
['forget_factor', 'l1_h', 'prune']
"""

from __future__ import annotations

import copy
import math
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp

from onlinenmf.components import Components
from onlinenmf.events import EventLog
from onlinenmf.learner import Learner

#: A component is retired when its relevance share stays under this for ``prune_patience``
#: consecutive re-estimations.
PRUNE_SHARE = 0.01
#: Births need this many of the worst recent residuals pointing the same way (cosine >= 0.5).
STRUCTURE_MIN = 3
#: Births need the window loss above this multiple of its floor (the level reached when the
#: model fitted well; it moves FLOOR_DOWN of the way to a lower window, and follows higher
#: ones over 16 memory lengths) for ``BIRTH_PATIENCE`` consecutive refreshes.
BIRTH_RATIO = 1.5
FLOOR_DOWN = 0.25
BIRTH_PATIENCE = 2
#: Refreshes between two births (the newborn needs time to learn before the loss is judged).
BIRTH_COOLDOWN = 3
#: Births without a loss step (the module docstring): the least relative gain on the held-out
#: half of the recent samples, the candidates tried per re-estimation, the likeness of the
#: residuals grouped into one seed, and the fewest recent samples to try on (the buffer must be
#: full too: a young model's residuals blend the communities it misses). No wait after a birth:
#: on ECAM's first half waiting 1 or 2 re-estimations cost 0.02-0.03 nats per read, and it did
#: not stop the planted overshoot. Chosen on ECAM's first half (benchmarks/bench_real.py) under
#: the constraint that the planted streams of tests/test_hyper.py are not overshot: a gain of
#: 0.5 % is 4x the largest a residual column gave on a planted stream the rank fits (0.12 %); on
#: ECAM the columns born gained 0.9-5 %.
GROWTH_GAIN = 0.005
GROWTH_CANDIDATES = 3
ALIKE = 0.5
GROWTH_MIN_RECENT = 40
#: The least share of the held-out half's activation a newborn must take: twice the prune
#: line. At the prune line itself (1 %) a column born with 1.0-1.2 % was pruned again some 500
#: samples later on planted streams (hyper's own example: 3 planted communities ended at 4);
#: at 2 % none of 4 such streams had a birth, and ECAM (adapt_rank from k = 10) scored -3.279
#: against -3.274 (3 %: -3.331, rank 17).
GROWTH_SHARE = 2 * PRUNE_SHARE
#: Memory after a detected drift, as a share of the user's memory length; and the longest
#: memory reached on a stationary stream, as a multiple of it.
FAST_SHARE = 0.2
SLOW_FACTOR = 4.0
#: After a drift the memory stays short until the window loss is back under this multiple of
#: its floor (or for at most RECOVERY_LIMIT user memory lengths): online EM unmixes
#: overlapping components one step per refresh, from statistics that a long memory keeps stale.
RECOVERED_RATIO = 1.1
RECOVERY_LIMIT = 8.0
#: Page-Hinkley on log(window loss): tolerance and threshold in log units (a sustained rise
#: of ~50 % over two refreshes fires), and its warm-up.
PH_DELTA = 0.02
PH_THRESHOLD = 0.5
PH_MIN_INSTANCES = 5
#: Inputs kept to rebuild the detector exactly from a snapshot (replayed on load).
DETECTOR_HISTORY = 512
#: Largest memory used for horizons when forget_factor = 1 (infinite memory).
LONGEST_MEMORY = 1e6


def _page_hinkley():
    from river.drift import PageHinkley  # imported lazily: river is slow to import

    return PageHinkley(min_instances=PH_MIN_INSTANCES, delta=PH_DELTA, threshold=PH_THRESHOLD,
                       mode="up")


class Settings(Protocol):
    """What the re-estimator reads of its model: public parameters and counters only."""

    samples_learned: int
    alarm_window: int
    reestimate_every: int
    drift_threshold: float | None
    buffer_size: int
    adapt_rank: bool
    adapt_sparsity: bool
    adapt_forgetting: bool
    prune_patience: int
    ard_strength: float
    l1_h: float

    @property
    def base_memory_length(self) -> float: ...

    @property
    def rank_bounds(self) -> tuple[int, int]: ...

    @property
    def n_features(self) -> int: ...


class Reestimator:
    """Re-estimation state of one model (see the module docstring for the rules).

    It reads the model's parameters and counters (:class:`Settings`) and acts through the
    model's parts: the learner (the forgetting in force, refits, residual seeds), the
    components (births, retirements, re-seeding, the L1 weights in force), the statistics
    (read) and the event log.
    """

    def __init__(self, model: Settings, learner: Learner, components: Components,
                 events: EventLog):
        self.model = model
        self.learner = learner
        self.components = components
        self.events = events
        k = len(components)
        self.relevance_sum = np.zeros(k)
        self.relevance_count = 0.0
        self.at_bound = np.zeros(k, dtype=np.int64)
        self.refreshes = 0
        self.birth_cooldown = 0
        self.l1_base = float(model.l1_h)
        self.floor = -1.0  # the loss floor (< 0 until the first window)
        self.above = 0  # consecutive refreshes with the window loss above BIRTH_RATIO x floor
        self.drift_sample = 0  # where the memory schedule restarts (0: the start)
        self.drift_at = -1  # samples_learned at the last detected drift (-1: none)
        self.recovering = False  # a drift was detected and the loss is not back down yet
        self.refitted = False  # W was refitted on post-drift samples since the last drift
        self.inputs: list[float] = []  # detector inputs since its last reset, for snapshots
        self._streamed = False  # whether the last window's samples are in the recent buffer
        self._detector = None

    # -------------------------------------------------------------- snapshot
    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays = {"hyper_relevance_sum": self.relevance_sum, "hyper_at_bound": self.at_bound,
                  "hyper_inputs": np.array(self.inputs, dtype=np.float64)}
        meta = {"relevance_count": self.relevance_count, "refreshes": self.refreshes,
                "birth_cooldown": self.birth_cooldown, "l1_base": self.l1_base,
                "drift_sample": self.drift_sample, "floor": self.floor, "above": self.above,
                "drift_at": self.drift_at, "recovering": self.recovering,
                "refitted": self.refitted}
        return arrays, meta

    def restore(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self.relevance_sum = arrays["hyper_relevance_sum"].astype(np.float64)
        self.at_bound = arrays["hyper_at_bound"].astype(np.int64)
        self.inputs = [float(x) for x in arrays["hyper_inputs"]]
        for name, value in meta.items():
            setattr(self, name, value)
        self._detector = None
        if self.inputs:  # the detector's state is a function of its inputs: replay them
            detector = self.detector
            for x in self.inputs:
                detector.update(x)

    @property
    def detector(self):
        if self._detector is None:
            self._detector = _page_hinkley()
        return self._detector

    def __getstate__(self) -> dict[str, Any]:  # pickle/deepcopy: rebuild the detector lazily
        state = dict(self.__dict__)
        state["_detector"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        for x in self.inputs:
            self.detector.update(x)

    # -------------------------------------------------------------- column bookkeeping
    def on_add(self) -> None:
        """A column was appended: it starts with the mean relevance and a clean record."""
        mean = float(self.relevance_sum.mean()) if self.relevance_sum.size else 0.0
        self.relevance_sum = np.append(self.relevance_sum, mean)
        self.at_bound = np.append(self.at_bound, 0)

    def on_remove(self, j: int) -> None:
        self.relevance_sum = np.delete(self.relevance_sum, j)
        self.at_bound = np.delete(self.at_bound, j)

    def on_replace(self, j: int) -> None:
        self.relevance_sum[j] = float(self.relevance_sum.mean())
        self.at_bound[j] = 0

    # -------------------------------------------------------------- the refresh hook
    def relevance(self) -> np.ndarray:
        """ARD relevance ``lambda_k = (S_k + b) / (N + a + 1)`` of every component."""
        model = self.model
        n = self.relevance_count
        a = math.log(max(model.n_features + n, 3.0))
        mean = float(self.relevance_sum.mean()) / max(n, 1e-300) if self.relevance_sum.size else 0
        b = math.sqrt(max((a - 1.0) * (a - 2.0), 0.0) * mean / max(model.n_features, 1))
        return (self.relevance_sum + b) / (n + a + 1.0)

    def on_refresh(self, window_loss: float, window_abs: float, window_count: int,
                   window_usage: np.ndarray) -> None:
        """Called by the engine after each refresh that closes a loss window, with its mean
        relative loss, sum of losses, sample count and sum of h."""
        model = self.model
        base = min(model.base_memory_length, LONGEST_MEMORY)
        decay = (1.0 - 1.0 / max(0.5 * base, 1.0)) ** window_count
        self.relevance_sum = decay * self.relevance_sum + window_usage
        self.relevance_count = decay * self.relevance_count + window_count
        if model.adapt_forgetting and window_count and window_loss > 0:
            self._watch_loss(math.log(window_loss))
            if self.recovering:
                base = min(model.base_memory_length, LONGEST_MEMORY)
                if (window_loss <= RECOVERED_RATIO * self.floor
                        or model.samples_learned - self.drift_at >= RECOVERY_LIMIT * base):
                    self.recovering = False
                self.drift_sample = model.samples_learned  # the schedule restarts from here
        self._track_floor(window_loss, window_count)
        # a window the recent buffer holds was streamed; a batch pass (refresh_from) closes
        # one of the whole data set, and has births of its own (onlinenmf.distributed)
        self._streamed = 0 < window_count <= (self.learner.monitor.recent.maxlen or 0)
        self.refreshes += 1
        if self.birth_cooldown > 0:
            self.birth_cooldown -= 1
        if self.refreshes % model.reestimate_every:
            return
        if model.adapt_forgetting:
            self._set_memory()
            since = model.samples_learned - self.drift_at
            if self.recovering and since >= model.buffer_size:  # the buffer is post-drift
                self.learner.refit_recent()
                self.refitted = True
                self.above = 0  # judge births on windows learned after the refit
                # the columns may have been repurposed: relevance restarts from the refit
                stats = self.learner.statistics
                if stats.n_eff > 0:
                    self.relevance_sum = stats.usage * (self.relevance_count / stats.n_eff)
                self.at_bound[:] = 0
                self.emit("refit", window_loss, None,
                          f"recovering from the drift at sample {self.drift_at}: W refined on "
                          f"the {len(self.learner.monitor.recent)} most recent samples")
        if model.adapt_sparsity and window_count:
            self._fit_sparsity(window_abs / window_count)
        if model.adapt_rank:
            self._adapt_rank()
        self.update_penalties()

    def _track_floor(self, window_loss: float, count: int) -> None:
        model = self.model
        if count == 0:
            return
        if self.floor < 0:
            if model.samples_learned >= 0.5 * min(model.base_memory_length, LONGEST_MEMORY):
                self.floor = window_loss
            return
        if window_loss < self.floor:  # down quickly, but not to the noise of one window
            self.above = 0
            self.floor += FLOOR_DOWN * (window_loss - self.floor)
            return
        self.above = self.above + 1 if window_loss > BIRTH_RATIO * self.floor else 0
        horizon = 16.0 * min(model.base_memory_length, LONGEST_MEMORY)
        self.floor += min(1.0, count / horizon) * (window_loss - self.floor)

    # -------------------------------------------------------------- forgetting
    def _feed(self, x: float) -> bool:
        detector = self.detector
        detector.update(x)
        if detector.drift_detected:
            self.inputs = []  # river resets the detector on its next update
            self._detector = None
            return True
        self.inputs.append(x)
        if len(self.inputs) > DETECTOR_HISTORY:  # keep the replay bounded and exact
            kept = self.inputs[-DETECTOR_HISTORY // 2 :]
            self._detector, self.inputs = None, []
            for value in kept:
                self.detector.update(value)
            self.inputs = kept
        return False

    def _watch_loss(self, x: float) -> None:
        if self._feed(x):
            model = self.model
            if model.drift_threshold is not None:  # every detection is an event
                floor = self.floor if self.floor > 0 else None
                ratio = f" to {math.exp(x) / floor:.3g} x its floor" if floor else ""
                self.events.emit("drift", model.samples_learned, old=floor, new=math.exp(x),
                                 reason="Page-Hinkley: the prequential loss of the windows "
                                        f"rose{ratio} (adapt_forgetting cuts the memory)")
            self.drift_sample = self.drift_at = model.samples_learned
            self.recovering = True
            self.refitted = False
            self._set_memory(reason="drift: Page-Hinkley detected a rise of the prequential "
                                    "loss")

    def _set_memory(self, reason: str | None = None) -> None:
        model = self.model
        base = model.base_memory_length
        fast = max(float(model.alarm_window), FAST_SHARE * min(base, LONGEST_MEMORY))
        slow = SLOW_FACTOR * base
        elapsed = model.samples_learned - self.drift_sample
        memory = fast
        while memory * 2.0 <= elapsed and memory < slow:
            memory *= 2.0
        memory = min(memory, slow)
        rho = 1.0 if math.isinf(memory) else 1.0 - 1.0 / memory
        current = self.learner.rho
        if rho != current:
            if reason is None:
                reason = (f"stationary for {elapsed} samples: memory {memory:.4g} samples"
                          if rho > current else f"memory {memory:.4g} samples")
            self.emit("forget_factor", current, rho, reason)
            self.learner.rho = rho

    # -------------------------------------------------------------- sparsity
    def _fit_sparsity(self, mean_loss: float) -> None:
        k = len(self.components)
        stats = self.learner.statistics
        n = stats.n_eff
        if n <= 0 or k == 0:
            return
        mean_h = float(stats.usage.sum()) / (n * k)
        if mean_h <= 0:
            return
        noise = self.learner.divergence.noise_scale(mean_loss, self.model.n_features)
        new = float(noise / mean_h)
        old = self.l1_base
        if not math.isfinite(new) or (old > 0 and abs(new - old) <= 0.05 * old):
            return  # changes under 5 % are noise: not worth an event
        self.l1_base = new
        self.emit("l1_h", old, new,
                  f"empirical Bayes: exponential prior on h, mean activation {mean_h:.4g}")

    # -------------------------------------------------------------- rank
    def _adapt_rank(self) -> None:
        model, components = self.model, self.components
        k_min = model.rank_bounds[0]
        lam = self.relevance()
        share = lam / max(float(lam.sum()), 1e-300)
        warm = self.relevance_count >= 0.5 * min(model.base_memory_length, LONGEST_MEMORY)
        low = share < PRUNE_SHARE
        self.at_bound = np.where(low, self.at_bound + 1, 0)
        if warm:
            while len(components) > k_min:
                candidates = np.flatnonzero(self.at_bound >= model.prune_patience)
                if candidates.size == 0:
                    break
                j = int(candidates[np.argmin(share[candidates])])
                self._retire(j, f"relevance share {share[j]:.3g} < {PRUNE_SHARE} for "
                                f"{int(self.at_bound[j])} re-estimations")
                share = np.delete(share, j)
        # After a drift, births wait for the first refit: it may repurpose old columns.
        settled = not (model.adapt_forgetting and self.recovering and not self.refitted)
        if self.above >= BIRTH_PATIENCE and self.birth_cooldown == 0 and settled:
            if self.birth(self.learner.residual_seed(), "loss alarm", "recent samples"):
                self.above = 0
                self.birth_cooldown = BIRTH_COOLDOWN
                return
        if settled and self.birth_cooldown == 0:
            self._grow()

    # -------------------------------------------------------------- births without a step
    def _grow(self) -> None:
        """Columns seeded from the residuals of every other recent sample, each kept if it
        lowers the loss of the others by GROWTH_GAIN and is used by them (module docstring)."""
        recent = list(self.learner.monitor.recent)
        if not self._streamed:
            return
        room = self.model.rank_bounds[1] - len(self.components)
        full = max(GROWTH_MIN_RECENT, self.learner.monitor.recent.maxlen)
        if room <= 0 or len(recent) < full:
            return
        seeding, held = recent[0::2], recent[1::2]
        batch = _Batch(held, self.learner.divergence)
        before, _ = self._held_loss(batch, [])
        kept: list[tuple[np.ndarray, float, float]] = []
        for column in self._seeds(seeding)[: min(GROWTH_CANDIDATES, room)]:
            after, share = self._held_loss(batch, [*(c for c, _, _ in kept), column])
            gain = 1.0 - after / max(before, 1e-300)
            if gain >= GROWTH_GAIN and share >= GROWTH_SHARE:
                kept.append((column, gain, share))
                before = after
        for column, gain, share in kept:
            self._bear(column, f"a column seeded from the residuals of recent samples lowers "
                               f"the loss of other recent samples by {gain:.1%} and takes "
                               f"{share:.1%} of their activation")

    def _seeds(self, samples: list) -> list[np.ndarray]:
        """Columns from the positive residuals of ``samples`` against W: the largest group of
        alike residuals (cosine >= ALIKE to one of them) summed, then the largest of the rest,
        and so on."""
        learner = self.learner
        stats = learner.statistics
        stats.recompute_caches()
        h = np.empty(len(self.components))
        wh = np.empty(max(max(rows.size for rows, _, _ in samples), 1))
        solver = learner.solver()
        rows_of, values_of = [], []
        for rows, values, _ in samples:
            learner.divergence.solve_one(stats, rows, values, h, solver, wh[: rows.size])
            positive = np.maximum(values - wh[: rows.size], 0.0)
            if positive.sum() > 0:
                rows_of.append(rows)
                values_of.append(positive / positive.sum())
        if not rows_of:
            return []
        indptr = np.concatenate([[0], np.cumsum([r.size for r in rows_of])])
        residuals = sp.csr_matrix((np.concatenate(values_of), np.concatenate(rows_of), indptr),
                                  shape=(len(rows_of), stats.m))
        norms = np.sqrt(np.asarray(residuals.multiply(residuals).sum(axis=1)).ravel())
        unit = sp.diags(1.0 / norms) @ residuals
        alike = (unit @ unit.T).toarray() >= ALIKE
        free = np.ones(len(rows_of), dtype=bool)
        seeds = []
        while free.any():
            sizes = np.where(free, (alike & free).sum(axis=1), -1)
            group = alike[int(np.argmax(sizes))] & free
            free &= ~group
            column = np.asarray(residuals[np.flatnonzero(group)].sum(axis=0)).ravel()
            column /= column.sum()
            if learner.divergence.w_floor:
                column = np.maximum(column, learner.divergence.w_floor)
                column /= column.sum()
            seeds.append(column)
        return seeds

    def _held_loss(self, batch: _Batch, extra: list) -> tuple[float, float]:
        """The summed relative loss of ``batch`` solved against W with the columns ``extra``
        appended (read-only: the model is not changed), and the share of the activation the
        last extra column takes (0 without any)."""
        learner = self.learner
        stats = learner.statistics
        stats.recompute_caches()
        solver = learner.solver()
        trial = copy.copy(stats)  # the caches and W of the trial dictionary, nothing shared
        columns = np.zeros((stats.W.shape[0], len(extra)))
        for i, column in enumerate(extra):
            columns[: stats.m, i] = column
        trial.W = np.ascontiguousarray(np.hstack([stats.W, columns]))
        trial.colsum = np.append(stats.colsum, columns.sum(axis=0))
        if stats.layout.gram:
            W = trial.W[: stats.m]
            trial.G = W.T @ W
        # a newborn's L1 weight: that of a component of average relevance (on_add)
        l1 = np.append(solver.l1, np.full(len(extra), float(np.mean(solver.l1))
                                          if solver.l1.size else 0.0))
        H = np.zeros((batch.count, trial.colsum.size))
        for s in range(batch.count):
            learner.divergence.initial_h(batch.data[batch.indptr[s] : batch.indptr[s + 1]],
                                         trial.colsum, H[s])
        losses = learner.divergence.solve_batch(trial, batch.indptr, batch.indices, batch.data,
                                                H, solver._replace(l1=l1))
        share = float(H[:, -1].sum() / max(H.sum(), 1e-300)) if extra else 0.0
        return float(np.sum(losses / batch.norms)), share

    def birth(self, seed: tuple[np.ndarray, int] | None, alarm: str, rows: str) -> bool:
        """A new component from a residual seed (:meth:`Learner.residual_seed`), if it has
        structure (``STRUCTURE_MIN`` residuals alike); at k_max the least relevant component
        makes room. ``alarm`` and ``rows`` (whose residuals) word the event's reason. Also
        called per pass by :mod:`onlinenmf.distributed`. Returns whether one was born."""
        if seed is None:
            return False
        column, similar = seed
        if similar < STRUCTURE_MIN:
            return False  # the residual looks like noise: a new component would fit noise
        reason = f"{alarm} with structured residual ({similar} of the worst {rows} alike)"
        if len(self.components) < self.model.rank_bounds[1]:
            self._bear(column, reason)
        else:  # at k_max: the least relevant component makes room
            j = int(np.argmin(self.relevance_sum))
            self.components.replace(j, column, "at k_max: " + reason, self.model.samples_learned)
            self.on_replace(j)
            self.learner.statistics.recompute_caches()
        return True

    def _retire(self, j: int, reason: str) -> None:
        k = len(self.components)
        old = self.components.remove(j)
        self.on_remove(j)
        self.emit("prune", k, k - 1, reason, component=old)
        self.update_penalties()
        self.learner.statistics.recompute_caches()

    def _bear(self, column: np.ndarray, reason: str) -> None:
        k = len(self.components)
        new = self.components.append(column)
        self.on_add()
        self.emit("grow", k, k + 1, reason, component=new)
        self.update_penalties()
        self.learner.statistics.recompute_caches()

    def update_penalties(self) -> None:
        """The per-component L1 weights in force: base L1 plus the ARD weights."""
        k = len(self.components)
        l1 = np.full(k, self.l1_base)
        if self.model.adapt_rank and self.relevance_count > 0 and k:
            lam = self.relevance()
            mean = float(lam.mean())
            if mean > 0:
                scale = self.learner.divergence.ard_scale(self.learner.statistics, lam)
                l1 += self.model.ard_strength * scale * mean / np.maximum(lam, 1e-300)
        self.components.l1 = l1

    def emit(self, kind: str, old: Any, new: Any, reason: str, **details: Any) -> None:
        """Record a re-estimation event."""
        self.events.emit(kind, self.model.samples_learned, old=old, new=new, reason=reason,
                         **details)


class _Batch:
    """Recent samples ``(rows, values, relative loss)`` as one CSR batch, with the normaliser
    of each one's relative loss."""

    def __init__(self, samples: list, divergence):
        self.count = len(samples)
        self.indptr = np.concatenate([[0], np.cumsum([r.size for r, _, _ in samples])]).astype(
            np.int64)
        self.indices = np.concatenate([r for r, _, _ in samples]).astype(np.int64)
        self.data = np.concatenate([v for _, v, _ in samples]).astype(np.float64)
        self.norms = np.maximum(divergence.normalisers(self.indptr, self.data), 1e-300)
