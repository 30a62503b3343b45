"""The prequential loss of a model and its recent samples.

Each learned sample's loss (under the dictionary it met, before it was learned) is summed in
the current window, relative to the sample's own scale (the divergence's normaliser, so that
windows compare across sample sizes). A window closes at the first refresh at which it holds
at least ``ALARM_SAMPLES`` samples (:meth:`Monitor.close_window`; a window is counted in
samples, not refreshes: a mean over one sample, when W is refreshed after every sample, would
raise alarms on noise): its mean relative loss is compared with the long-run level (the
baseline, set after the first memory length and following the windows over four memory
lengths); a window above ``ALARM_RATIO`` times the baseline is an alarm (acted on by
:class:`onlinenmf.components.Components`). The last ``buffer_size`` samples are kept as
(rows, values, relative loss) for re-seeding and for refits of W.

Drift (:class:`DriftDetector`): every sample's relative loss also feeds a one-sided CUSUM of
its standardised logarithm; each detection is kept (:attr:`Monitor.detections`) until the
model turns it into a ``drift`` event.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any, NamedTuple

import numpy as np

#: A window whose relative loss exceeds this multiple of the long-run level is an alarm.
ALARM_RATIO = 1.5
#: A window closes at the first refresh at which it holds this many samples.
ALARM_SAMPLES = 20
#: Drift detection: the reference level of the log relative loss and the scale of its rises
#: are set by DRIFT_WARMUP samples (after the first dictionary and after each detection),
#: then follow the stream with a memory of DRIFT_HORIZON samples; each sample's z-score,
#: winsorised at DRIFT_CLIP (one outlier alone cannot fire), less DRIFT_SLACK, is summed (a
#: one-sided CUSUM, Page 1954) and a sum at the threshold is a drift.
DRIFT_WARMUP = 20
DRIFT_HORIZON = 50
DRIFT_CLIP = 3.0
DRIFT_SLACK = 0.5
#: Smallest variance of the log loss (a stream of identical samples has none).
DRIFT_VAR_FLOOR = 1e-4


class Detection(NamedTuple):
    """A drift: where in the learning call (0: its first sample), the sample's relative loss,
    its reference level, z-score, and the CUSUM statistic that crossed the threshold."""

    offset: int
    loss: float
    level: float
    z: float
    statistic: float


class DriftDetector:
    """A one-sided CUSUM on the standardised log relative prequential loss (see the notes).

    Under a stable stream whose log losses are Gaussian, a threshold h = 5 with slack 0.5
    fires falsely about once in 900 samples (Page's average run length); a loss that jumps by
    3 standard deviations and stays fires on its second sample.

    >>> detector = DriftDetector(threshold=5.0)
    >>> rng = np.random.default_rng(0)
    >>> [detector.update(float(x)) for x in np.exp(0.1 * rng.standard_normal(40))].count(None)
    40
    >>> fired = [detector.update(2.0) for _ in range(3)]  # the loss doubles and stays
    >>> [None if f is None else (round(f[1], 1), round(f[2], 1)) for f in fired]  # z, CUSUM
    [None, (7.1, 7.2), None]
    """

    def __init__(self, threshold: float):
        self.threshold = float(threshold)
        self.restart()

    def restart(self) -> None:
        """Forget the reference: the next DRIFT_WARMUP samples set it again."""
        self.warmup: list[float] = []
        self.mean = 0.0
        self.var = DRIFT_VAR_FLOOR
        self.cusum = 0.0

    def update(self, relative: float) -> tuple[float, float, float] | None:
        """Feed one relative loss; return (level, z, statistic) when it fires."""
        if not relative > 0 or not math.isfinite(relative):
            return None
        x = math.log(relative)
        if len(self.warmup) < DRIFT_WARMUP:
            self.warmup.append(x)
            if len(self.warmup) == DRIFT_WARMUP:
                values = np.array(self.warmup)
                self.mean = float(values.mean())
                above = np.maximum(values - self.mean, 0.0)
                self.var = max(2.0 * float(np.mean(above**2)), DRIFT_VAR_FLOOR)
            return None
        sd = math.sqrt(self.var)
        z = (x - self.mean) / sd
        clipped = min(max(z, -DRIFT_CLIP), DRIFT_CLIP)
        self.cusum = max(0.0, self.cusum + clipped - DRIFT_SLACK)
        if self.cusum >= self.threshold:
            fired = (math.exp(self.mean), z, self.cusum)
            self.restart()
            return fired
        # the reference follows the stream, winsorised; the scale is that of the rises only
        # (twice the mean squared rise: the variance of a symmetric spread), so that samples
        # far better explained than usual do not hide the worse ones
        deviation = sd * clipped
        self.mean += deviation / DRIFT_HORIZON
        rise = max(deviation, 0.0)
        self.var = max(self.var + (2.0 * rise * rise - self.var) / DRIFT_HORIZON,
                       DRIFT_VAR_FLOOR)
        return None

    def state(self) -> dict[str, Any]:
        return {"warmup": list(self.warmup), "mean": self.mean, "var": self.var,
                "cusum": self.cusum}

    def restore(self, meta: dict[str, Any]) -> None:
        self.warmup = [float(x) for x in meta["warmup"]]
        self.mean = float(meta["mean"])
        self.var = float(meta["var"])
        self.cusum = float(meta["cusum"])


class Window(NamedTuple):
    """One refresh window: mean relative loss, sum of the losses, samples, sum of h, and
    whether it raised the loss alarm (None before the baseline exists)."""

    loss: float
    abs: float
    count: int
    usage: np.ndarray
    alarm: bool | None


class Monitor:
    """Refresh windows of the prequential loss, its baseline, and the recent samples.

    >>> monitor = Monitor(buffer_size=2)
    >>> monitor.record_one(np.array([0]), np.array([3.0]), loss=1.5, norm=3.0)
    >>> print(monitor.close_window(np.zeros(2), samples=1, memory_length=1.0, every=1))
    None
    >>> for _ in range(ALARM_SAMPLES - 1):
    ...     monitor.record_one(np.array([0]), np.array([3.0]), loss=1.5, norm=3.0)
    >>> window = monitor.close_window(np.zeros(2), samples=20, memory_length=1.0, every=1)
    >>> window.loss, window.count, window.alarm, monitor.baseline
    (0.5, 20, None, 0.5)
    """

    def __init__(self, buffer_size: int, drift_threshold: float | None = None):
        self.recent: deque = deque(maxlen=buffer_size)  # (rows, values, relative loss)
        self.window_loss = 0.0  # sum of the relative losses since the last closed window
        self.window_abs = 0.0  # sum of the losses (the empirical-Bayes noise level)
        self.window_count = 0
        self.baseline = -1.0  # long-run relative loss; < 0 until the first memory length
        #: The drift detector (None: off) and its detections not yet turned into events.
        self.drift = None if drift_threshold is None else DriftDetector(drift_threshold)
        self.detections: list[Detection] = []

    # -------------------------------------------------------------- per sample
    def record_one(self, rows: np.ndarray, values: np.ndarray, loss: float,
                   norm: float) -> None:
        relative = loss / norm if norm > 0 else 0.0
        self.window_loss += relative
        self.window_abs += loss
        self.window_count += 1
        self.recent.append((rows, values, relative))  # fresh arrays from the feature index
        if self.drift is not None:
            self._watch(0, relative)

    def record_many(self, indptr: np.ndarray, rows: np.ndarray, values: np.ndarray,
                    losses: np.ndarray, norms: np.ndarray) -> None:
        count = indptr.size - 1
        relative = np.divide(losses, norms, out=np.zeros(count), where=norms > 0)
        self.window_loss += float(relative.sum())
        self.window_abs += float(losses.sum())
        self.window_count += count
        for s in range(max(0, count - self.recent.maxlen), count):
            sample = slice(indptr[s], indptr[s + 1])
            self.recent.append((rows[sample].copy(), values[sample].copy(), relative[s]))
        if self.drift is not None:
            for s in range(count):
                self._watch(s, float(relative[s]))

    def _watch(self, offset: int, relative: float) -> None:
        fired = self.drift.update(relative)
        if fired is not None:
            self.detections.append(Detection(offset, relative, *fired))

    def take_detections(self) -> list[Detection]:
        """The detections since the last call (the caller makes them events)."""
        detections, self.detections = self.detections, []
        return detections

    def record_totals(self, relative: float, loss: float, count: int) -> None:
        """Losses summed elsewhere (a batch over the partitions of a data set) into the
        window; the recent samples stay as they are."""
        self.window_loss += relative
        self.window_abs += loss
        self.window_count += count

    # -------------------------------------------------------------- per refresh
    def close_window(self, usage: np.ndarray, samples: int, memory_length: float,
                     every: int) -> Window | None:
        """End the window (``usage``: its sum of h) and update the baseline, if it holds
        ``ALARM_SAMPLES`` samples (else None: it goes on). ``every``: the samples a window
        usually holds (the baseline starts after ten of them, or one memory length)."""
        if self.window_count < ALARM_SAMPLES:
            return None
        count = self.window_count
        loss = self.window_loss / count
        window = (loss, self.window_abs, count, usage)
        self.window_loss, self.window_abs, self.window_count = 0.0, 0.0, 0
        if self.baseline < 0:
            if samples >= min(memory_length, 10 * every):
                self.baseline = loss
            return Window(*window, alarm=None)
        alarm = loss > ALARM_RATIO * self.baseline
        weight = min(1.0, count / (4.0 * memory_length))
        self.baseline += weight * (loss - self.baseline)
        return Window(*window, alarm=alarm)

    # -------------------------------------------------------------- the recent samples
    def non_empty(self) -> int:
        return sum(rows.size > 0 for rows, _, _ in self.recent)

    def worst(self, n: int) -> list:
        """The n recent samples with the largest relative loss."""
        return sorted(self.recent, key=lambda item: -item[2])[:n]

    def matrix(self) -> tuple[list, np.ndarray, np.ndarray]:
        """(the samples, the dictionary rows they use, their dense matrix over those rows)."""
        samples = list(self.recent)
        used = np.unique(np.concatenate([rows for rows, _, _ in samples]))
        position = {int(r): i for i, r in enumerate(used)}
        V = np.zeros((len(samples), used.size))
        for i, (rows, values, _) in enumerate(samples):
            V[i, [position[int(r)] for r in rows]] = values
        return samples, used, V

    def remove_rows(self, keep: np.ndarray) -> None:
        """Dictionary rows deleted (``keep``: one boolean per previous row): the recent samples
        lose their entries on them, the others are renumbered."""
        renumber = np.cumsum(keep) - 1
        for i, (rows, values, relative) in enumerate(self.recent):
            kept = keep[rows]
            self.recent[i] = (renumber[rows[kept]], values[kept], relative)

    # -------------------------------------------------------------- snapshots
    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        recent_rows = [rows for rows, _, _ in self.recent]
        arrays = {
            "recent_lengths": np.array([len(r) for r in recent_rows], dtype=np.int64),
            "recent_rows": np.concatenate(recent_rows) if recent_rows else np.zeros(0, np.int64),
            "recent_values": (np.concatenate([v for _, v, _ in self.recent])
                              if self.recent else np.zeros(0)),
            "recent_losses": np.array([loss for _, _, loss in self.recent], dtype=np.float64),
        }
        meta = {"window_loss": self.window_loss, "window_abs": self.window_abs,
                "window_count": self.window_count, "baseline": self.baseline}
        if self.drift is not None:
            meta["drift"] = self.drift.state()
        return arrays, meta

    def restore(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self.window_loss = float(meta["window_loss"])
        self.window_abs = float(meta["window_abs"])
        self.window_count = int(meta["window_count"])
        self.baseline = float(meta["baseline"])
        if self.drift is not None and "drift" in meta:
            self.drift.restore(meta["drift"])
        self.recent.clear()
        ends = np.cumsum(arrays["recent_lengths"])
        for end, length, loss in zip(ends, arrays["recent_lengths"], arrays["recent_losses"]):
            self.recent.append((arrays["recent_rows"][end - length : end].copy(),
                                arrays["recent_values"][end - length : end].copy(), float(loss)))
