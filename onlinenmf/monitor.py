"""The prequential loss of a model and its recent samples.

Each learned sample's loss (under the dictionary it met, before it was learned) is summed in
the current refresh window, relative to the sample's own scale (the divergence's normaliser,
so that windows compare across sample sizes). At each refresh the window closes
(:meth:`Monitor.close_window`): its mean relative loss is compared with the long-run level
(the baseline, set after the first memory length and following the windows over four memory
lengths); a window above ``ALARM_RATIO`` times the baseline is an alarm (acted on by
:class:`onlinenmf.components.Components`). The last ``buffer_size`` samples are kept as
(rows, values, relative loss) for re-seeding and for refits of W.
"""

from __future__ import annotations

from collections import deque
from typing import Any, NamedTuple

import numpy as np

#: A window whose relative loss exceeds this multiple of the long-run level is an alarm.
ALARM_RATIO = 1.5


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
    >>> window = monitor.close_window(np.zeros(2), samples=1, memory_length=1.0, every=1)
    >>> window.loss, window.count, window.alarm, monitor.baseline
    (0.5, 1, None, 0.5)
    """

    def __init__(self, buffer_size: int):
        self.recent: deque = deque(maxlen=buffer_size)  # (rows, values, relative loss)
        self.window_loss = 0.0  # sum of the relative losses since the last refresh
        self.window_abs = 0.0  # sum of the losses (the empirical-Bayes noise level)
        self.window_count = 0
        self.baseline = -1.0  # long-run relative loss; < 0 until the first memory length

    # -------------------------------------------------------------- per sample
    def record_one(self, rows: np.ndarray, values: np.ndarray, loss: float,
                   norm: float) -> None:
        relative = loss / norm if norm > 0 else 0.0
        self.window_loss += relative
        self.window_abs += loss
        self.window_count += 1
        self.recent.append((rows, values, relative))  # fresh arrays from the feature index

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

    def record_totals(self, relative: float, loss: float, count: int) -> None:
        """Losses summed elsewhere (a batch over the partitions of a data set) into the
        window; the recent samples stay as they are."""
        self.window_loss += relative
        self.window_abs += loss
        self.window_count += count

    # -------------------------------------------------------------- per refresh
    def close_window(self, usage: np.ndarray, samples: int, memory_length: float,
                     every: int) -> Window:
        """End the refresh window (``usage``: its sum of h) and update the baseline."""
        loss = self.window_loss / max(self.window_count, 1)
        window = (loss, self.window_abs, self.window_count, usage)
        self.window_loss, self.window_abs, self.window_count = 0.0, 0.0, 0
        if self.baseline < 0:
            if samples >= min(memory_length, 10 * every):
                self.baseline = loss
            return Window(*window, alarm=None)
        alarm = loss > ALARM_RATIO * self.baseline
        weight = min(1.0, every / (4.0 * memory_length))
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
        return arrays, meta

    def restore(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self.window_loss = float(meta["window_loss"])
        self.window_abs = float(meta["window_abs"])
        self.window_count = int(meta["window_count"])
        self.baseline = float(meta["baseline"])
        self.recent.clear()
        ends = np.cumsum(arrays["recent_lengths"])
        for end, length, loss in zip(ends, arrays["recent_lengths"], arrays["recent_losses"]):
            self.recent.append((arrays["recent_rows"][end - length : end].copy(),
                                arrays["recent_values"][end - length : end].copy(), float(loss)))
