"""The forgetting chosen by the data: two memories side by side, the better one served.

No single forgetting factor serves every stream (issue 13, measured with the automatic
schedule): ECAM's infants age, so its best memory is short (rho = 0.98 scores -3.60 nats per
held-out read, the old default 0.998 -3.70), while on a stationary planted stream a short
memory averages too few samples (loss 2.8 % above the batch oracle's at 0.98, 0.4 % at 0.998).
With ``forget_factor=None`` (the default) the model keeps both (:data:`CANDIDATES`): the
statistics it serves W from, and a second set, the *shadow*, with the other forgetting factor
and its own W. Each is a full learner: the shadow solves every sample against its own W
(starting from the served h) and adds the sample's statistics to its own, so its loss on the
sample is as prequential as the served one's. Both memories score their relative loss per
sample (an exponential average over ``SCORE_HORIZON`` samples); at each refresh both
dictionaries are refreshed, each from its own statistics, and the memory with the lower
recent loss is served until the next refresh (a switch is a ``forget_factor`` event; the
incoming columns take the places, and ids, of the served columns they are most alike). The
shadow's solve is the cost: about one more solve per sample, still O(nnz k), and a second
refresh per refresh.

Each memory also has its own pseudo-count prior on W (beta = 1 only: the Dirichlet smoothing
of a column read as a distribution over features), ``prior`` samples' worth of reads spread
evenly over the features and added to every column at each refresh
(:meth:`onlinenmf.divergences.kullback_leibler.KullbackLeibler.update_dictionary`). On ECAM,
where held-out reads keep falling on taxa the dictionary gives almost no mass, 0.1 sample
gains 0.04 to 0.06 nats per read at rho = 0.97 or 0.98; on a planted stream with exact zeros
any prior costs (0.1: 2.2 % of the loss at rho = 0.998; 0.01: 0.14 %). So the short memory,
the one drifting streams are served from, has 0.1, and the long one none.

>>> from onlinenmf import OnlineNMF
>>> model = OnlineNMF(n_components=2, beta=1, seed=0)
>>> model.current_forget_factor == CANDIDATES[FIRST_SERVED][0]
True
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from onlinenmf.dictionary import normalise_columns
from onlinenmf.divergences import Divergence
from onlinenmf.learner import matching
from onlinenmf.statistics import Statistics

#: (forgetting factor, pseudo-count prior in samples) of the two memories: short, long.
CANDIDATES = ((0.97, 0.1), (0.998, 0.0))
#: The memory served first (before any score): the long one (the previous default).
FIRST_SERVED = 1
#: Memory, in samples, of the recent loss each dictionary is scored by.
SCORE_HORIZON = 50


class Memories:
    """The shadow statistics of a model and the scores of both memories (see the notes).

    ``statistics`` is the model's own (served) :class:`~onlinenmf.statistics.Statistics`;
    the shadow is linked to it as its ``twin`` (rows and columns added, removed or moved in
    one are in the other).
    """

    def __init__(self, divergence: Divergence, statistics: Statistics):
        self.divergence = divergence
        self.statistics = statistics
        self.served = FIRST_SERVED
        self.shadow = Statistics(divergence.layout, statistics.k)
        self.shadow.add_rows(statistics.W[: statistics.m])
        if statistics.recent is not None:
            self.shadow.keep_recent(statistics.recent.maxlen)
        statistics.twin = self.shadow
        statistics.prior = self.prior(self.served)
        self.shadow.prior = self.prior(1 - self.served)
        #: Exponential averages of the relative loss of the served and the shadow dictionary
        #: (index 0: the short memory, 1: the long one) and how much weight they hold.
        self.scores = np.zeros(2)
        self.weight = 0.0

    def rho(self, which: int) -> float:
        return CANDIDATES[which][0]

    def prior(self, which: int) -> float:
        return CANDIDATES[which][1] if self.divergence.beta == 1 else 0.0

    @property
    def shadow_rho(self) -> float:
        return self.rho(1 - self.served)

    # -------------------------------------------------------------- per sample
    def learned_one(self, rows, values, mine, relative: float, loss: float,
                    norm: float) -> float:
        """A sample both memories just learned, in one compiled call
        (:meth:`onlinenmf.learner.Learner.learn_one`): the served statistics at ``relative``
        loss, the shadow's with ``mine`` (solved against its own W from the served h) at
        weight ``1 / (scale * rho)`` and ``loss`` (normaliser ``norm``). Returns what
        :meth:`scored_one` does."""
        shadow = self.shadow
        rho = self.shadow_rho
        shadow.scale = shadow.scale * rho
        shadow.n_eff = rho * shadow.n_eff + 1.0
        shadow.remember(rows, values, mine)
        return self.scored_one(relative, loss / norm if norm > 0 else 0.0)

    def scored_one(self, served: float, shadow: float) -> float:
        """One sample's relative prequential losses in both memories (their scores decay
        over SCORE_HORIZON samples). Returns the log of the short memory's over the long
        one's (NaN unless both are positive): the drift detector's memories part
        (:class:`onlinenmf.monitor.DriftDetector`), high for a sample the stream's older
        states explain better than its recent one."""
        decay = 1.0 - 1.0 / SCORE_HORIZON
        scores = self.scores
        mine = self.served
        theirs = 1 - mine
        scores[mine] = decay * scores[mine] + served
        scores[theirs] = decay * scores[theirs] + shadow
        self.weight = decay * self.weight + 1.0
        short, long = (served, shadow) if mine == 0 else (shadow, served)  # CANDIDATES' order
        return math.log(short / long) if short > 0.0 and long > 0.0 else math.nan

    def learned_batch(self, indptr, rows, values, H, relative, solver) -> np.ndarray:
        """Samples that met one served W (a piece of a batch), as :meth:`learned_one`;
        returns each sample's :meth:`scored_one`."""
        shadow = self.shadow
        count = H.shape[0]
        rho = self.shadow_rho
        scales = shadow.scale * rho ** np.arange(1, count + 1)
        mine = np.empty_like(H)
        for s in range(count):
            mine[s] = self.divergence.warm_h(H[s], values[indptr[s] : indptr[s + 1]],
                                             shadow.colsum)
        losses = self.divergence.learn_batch(shadow, indptr, rows, values, mine, solver,
                                             1.0 / scales, np.ones(count, dtype=np.bool_))
        shadow.add_batch(mine, rho, scales)
        shadow.remember_batch(indptr, rows, values, mine, np.log(scales))
        norms = self.divergence.normalisers(indptr, values)
        return self._score(relative,
                           np.divide(losses, norms, out=np.zeros(count), where=norms > 0))

    def relearned(self, indptr, rows, values, solver) -> None:
        """The served statistics were rebuilt from a buffer of samples under a new W (a
        first dictionary): the shadow starts from the same W and re-learns the same samples
        with its own forgetting."""
        shadow, served = self.shadow, self.statistics
        shadow.reset()
        shadow.W[: served.m] = served.W[: served.m]
        shadow.recompute_caches()
        count = indptr.size - 1
        H = np.zeros((count, shadow.k))
        weights = self.shadow_rho ** np.arange(count - 1, -1, -1, dtype=np.float64)
        self.divergence.learn_batch(shadow, indptr, rows, values, H, solver, weights,
                                    np.zeros(count, dtype=np.bool_))
        shadow.set_learned(H, weights)
        shadow.remember_batch(indptr, rows, values, H, -np.log(weights))

    def _score(self, served: np.ndarray, shadow: np.ndarray) -> np.ndarray:
        """Both memories' relative prequential losses of the same samples, in order."""
        return np.array([self.scored_one(ours, other) for ours, other in zip(served, shadow)])

    def installed(self, sums) -> None:
        """The served statistics were replaced by a batch's sums (``refresh_from``): the
        shadow takes them too, weighed by its own forgetting, under the same W."""
        shadow, served = self.shadow, self.statistics
        rho = self.shadow_rho
        count = sums.count
        shadow.install(sums, float(count) if rho == 1 else (1.0 - rho**count) / (1.0 - rho))
        shadow.W[: served.m] = served.W[: served.m]
        shadow.recompute_caches()
        self.scores[:] = 0.0  # the recent losses say nothing of W after a batch step
        self.weight = 0.0

    # -------------------------------------------------------------- per refresh
    def refresh_shadow(self, l1_w: float, l2_w: float, sweeps: int) -> None:
        """W of the shadow from its own statistics, as the served one's."""
        shadow = self.shadow
        W = shadow.W[: shadow.m]
        shadow.unscale()
        totals = shadow.totals()
        self.divergence.update_dictionary(W, totals, l1_w * totals.n_eff, l2_w * totals.n_eff,
                                          sweeps)
        sums = normalise_columns(W)
        shadow.rescale_columns(np.where(sums > 0, sums, 1.0))
        shadow.recompute_caches()

    def better(self) -> bool:
        """Whether the shadow's recent loss is lower than the served one's."""
        return self.weight > 0 and self.scores[1 - self.served] < self.scores[self.served]

    def swap(self) -> tuple[float, float]:
        """Serve the shadow's statistics (and keep the served ones as the shadow), their
        columns in the places of the served columns most alike (so a component keeps its id);
        return the (old, new) forgetting factor."""
        old = self.rho(self.served)
        served, shadow = self.statistics, self.shadow
        shadow.permute_columns(matching(served.W[: served.m], shadow.W[: shadow.m]))
        served.swap(shadow)
        self.served = 1 - self.served
        return old, self.rho(self.served)

    def reason(self) -> str:
        mean = self.scores / max(self.weight, 1e-300)
        return (f"memory of {1 / (1 - self.rho(self.served)):.0f} samples: lower recent "
                f"prequential loss ({mean[self.served]:.4g} vs {mean[1 - self.served]:.4g} "
                f"per unit, last {SCORE_HORIZON} samples)")

    # -------------------------------------------------------------- snapshots
    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays, statistics = self.shadow.state()
        arrays = {f"shadow_{name}": value for name, value in arrays.items()}
        arrays["memory_scores"] = self.scores
        return arrays, {"served": self.served, "weight": self.weight, "shadow": statistics}

    def restore(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        prefix = "shadow_"
        self.shadow.restore({name[len(prefix):]: value for name, value in arrays.items()
                             if name.startswith(prefix)}, meta["shadow"])
        self.scores = arrays["memory_scores"].astype(np.float64)
        self.served = int(meta["served"])
        self.weight = float(meta["weight"])
        self.statistics.prior = self.prior(self.served)
        self.shadow.prior = self.prior(1 - self.served)
