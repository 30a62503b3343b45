"""Compiled Theil-Sen fits for the tracker: every component of one subject in one call.

:func:`onlinenmf.tracking.theil_sen` sorts all pairwise slopes with numpy; per sample of a
stream that cost ~30 numpy calls and an O(m log m) sort per component (m = n(n-1)/2 pairs),
and dominated the Kafka consumer's time. This kernel computes the same numbers in one
compiled pass: the pairwise slopes of each component (same float operations, so the same
bits), then only the order statistics it needs (median, and the two ranks of Sen's
interval) by quickselect instead of a full sort. The selected values are the ones a sort puts
at those ranks, so the results are identical to :func:`~onlinenmf.tracking.theil_sen`
(tests/test_tracking.py checks it bit for bit against a numpy reference).
"""

from __future__ import annotations

import numpy as np

from onlinenmf._jit import njit


@njit
def _select(a: np.ndarray, lo: int, hi: int, k: int) -> float:
    """Value of rank ``k`` in ``a[lo:hi]``, partitioning in place (Wirth's quickselect).

    Afterwards ``a[lo:k] <= a[k] <= a[k + 1:hi]``, so a larger rank can be selected
    from ``a[k:hi]``.
    """
    hi -= 1
    while hi > lo:
        mid = (lo + hi) // 2
        if a[mid] < a[lo]:  # median of three as pivot: no quadratic case on sorted input
            a[mid], a[lo] = a[lo], a[mid]
        if a[hi] < a[lo]:
            a[hi], a[lo] = a[lo], a[hi]
        if a[hi] < a[mid]:
            a[hi], a[mid] = a[mid], a[hi]
        pivot = a[mid]
        i, j = lo, hi
        while i <= j:
            while a[i] < pivot:
                i += 1
            while a[j] > pivot:
                j -= 1
            if i <= j:
                a[i], a[j] = a[j], a[i]
                i += 1
                j -= 1
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:  # between j and i every value equals the pivot
            return a[k]
    return a[k]


@njit
def _rank(a: np.ndarray, total: int, half: int, k: int) -> float:
    """Value of rank ``k`` in ``a[:total]`` once rank ``half`` is in place."""
    if k == half:
        return a[half]
    if k < half:
        return _select(a, 0, half, k)
    return _select(a, half + 1, total, k)


@njit
def pair_slopes(times: np.ndarray, values: np.ndarray, logs: np.ndarray, floor: float,
                min_points: int, z: float) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                    np.ndarray, np.ndarray]:
    """Pairwise slopes of ``logs[:, j]`` against ``times`` for each column ``j`` to fit.

    ``values`` (n x p, NaN where the component did not exist) selects the rows of each
    column and whether it is fitted: at least ``min_points`` of its values exceed ``floor``.
    Returns ``slopes`` (row j: its ``total[j]`` slopes first), ``total`` (0: not fitted, or
    no two distinct times), ``points`` (rows used) and the ranks ``lower``/``upper`` of
    Sen's interval (``z``: the normal quantile, negative). ``times`` must be sorted.
    """
    n, p = values.shape
    slopes = np.empty((p, max(n * (n - 1) // 2, 1)))
    total = np.zeros(p, dtype=np.int64)
    points = np.zeros(p, dtype=np.int64)
    lower = np.zeros(p, dtype=np.int64)
    upper = np.zeros(p, dtype=np.int64)
    ts = np.empty(n)
    ys = np.empty(n)
    for j in range(p):
        m = 0
        above = 0
        for i in range(n):
            v = values[i, j]
            if not np.isnan(v):  # rows where the component existed
                ts[m] = times[i]
                ys[m] = logs[i, j]
                m += 1
                if v > floor:
                    above += 1
        if above < min_points:
            continue
        count = 0
        row = slopes[j]
        for a in range(m):
            for b in range(a + 1, m):
                dt = ts[b] - ts[a]
                if dt != 0:  # equal times give no slope
                    row[count] = (ys[b] - ys[a]) / dt
                    count += 1
        points[j] = m
        total[j] = count
        # Sen (1968) interval as scipy.stats.theilslopes: ranks around the median slope.
        ties = 0
        run = 1
        for i in range(1, m + 1):
            if i < m and ts[i] == ts[i - 1]:
                run += 1
            else:
                ties += run * (run - 1) * (2 * run + 5)
                run = 1
        sigma = np.sqrt((m * (m - 1) * (2 * m + 5) - float(ties)) / 18.0)
        upper[j] = min(int(np.rint((count - z * sigma) / 2.0)), count - 1)  # rint: as round()
        lower[j] = max(int(np.rint((count + z * sigma) / 2.0)) - 1, 0)
    return slopes, total, points, lower, upper


@njit
def select_fits(slopes: np.ndarray, total: np.ndarray, lower: np.ndarray,
                upper: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median and interval ends of each row's first ``total`` slopes (NaN where 0).

    Quickselect, in place: the median rank first, then each interval rank within the half
    it falls in.
    """
    p = slopes.shape[0]
    slope = np.full(p, np.nan)
    low = np.full(p, np.nan)
    high = np.full(p, np.nan)
    for j in range(p):
        count = total[j]
        if count == 0:
            continue
        buf = slopes[j]
        half = count // 2
        top = _select(buf, 0, count, half)  # buf[:half] <= buf[half] <= buf[half + 1:]
        if count % 2:
            slope[j] = top
        else:  # as np.median: the mean of the two middle values
            below = buf[0]
            for i in range(1, half):
                below = max(below, buf[i])
            slope[j] = (below + top) / 2.0
        low[j] = _rank(buf, count, half, lower[j])
        high[j] = _rank(buf, count, half, upper[j])
    return slope, low, high


# Above this many slopes per component, numpy's partition (SIMD) beats the compiled
# quickselect, whose branches mispredict on real data (measured: 10 x 8128 slopes, 0.24 ms
# against 1 ms; equal at about 10 x 435).
LARGE = 1000


def theil_sen_fits(times: np.ndarray, values: np.ndarray, logs: np.ndarray, floor: float,
                   min_points: int, z: float) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                       np.ndarray]:
    """Theil-Sen fit (slope, interval low and high, points used) of each column of ``logs``.

    See :func:`pair_slopes` for the arguments; columns not fitted get NaN.

    >>> t = np.array([0.0, 1, 2, 3])
    >>> v = np.array([[1.0, 8], [2, 4], [4, 2], [8, 1]])
    >>> slope, low, high, n = theil_sen_fits(t, v, np.log2(v), 0.5, 3, -1.96)
    >>> slope.tolist(), n.tolist()
    ([1.0, -1.0], [4, 4])
    """
    slopes, total, points, lower, upper = pair_slopes(times, values, logs, floor, min_points,
                                                      z)
    fitted = np.flatnonzero(total)
    if len(fitted) > 1:
        count = int(total[fitted[0]])
        lo, up = int(lower[fitted[0]]), int(upper[fitted[0]])
        if (count >= LARGE and (total[fitted] == count).all()
                and (lower[fitted] == lo).all() and (upper[fitted] == up).all()):
            return _partition_fits(slopes[fitted, :count], fitted, len(total), lo, up) + (
                points,)
    return select_fits(slopes, total, lower, upper) + (points,)


def _partition_fits(slopes: np.ndarray, rows: np.ndarray, p: int, lo: int,
                    up: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`select_fits` for rows of equal length, by numpy's partition."""
    count = slopes.shape[1]
    half = count // 2
    part = np.partition(slopes, half, axis=1)
    middle = part[:, half]
    if count % 2 == 0:  # as np.median: the mean of the two middle values
        middle = (part[:, :half].max(axis=1) + middle) / 2.0
    out = []
    for rank in (lo, up):
        if rank == half:
            value = part[:, half]
        elif rank < half:
            value = np.partition(part[:, :half], rank, axis=1)[:, rank]
        else:
            value = np.partition(part[:, half + 1:], rank - half - 1, axis=1)[:, rank - half - 1]
        out.append(value)
    result = []
    for column in (middle, out[0], out[1]):
        full = np.full(p, np.nan)
        full[rows] = column
        result.append(full)
    return result[0], result[1], result[2]
