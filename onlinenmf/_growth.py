"""Compiled Theil-Sen fits for the tracker: every component of one subject in one call.

:func:`onlinenmf.tracking.theil_sen` sorts all pairwise slopes with numpy; per sample of a
stream that cost ~30 numpy calls and an O(m log m) sort per component (m = n(n-1)/2 pairs
of the n samples in the window), and was most of the Kafka consumer's tracking cost. This
kernel computes the same numbers in one compiled pass per component: the pairwise slopes
(the same float operations, so the same bits), split around zero as they are written, then
only the order statistics needed (the median and the two ranks of Sen's interval) by
quickselect instead of a sort. A selected value is the value a sort puts at that rank, so the
results are bit-identical to :func:`~onlinenmf.tracking.theil_sen` (tests/test_tracking.py
checks it against that numpy reference). The cost stays O(n^2) per component (every pair is
a slope), with a small constant: see benchmarks/bench_tracking.py.

>>> t = np.array([0.0, 1, 2, 3])
>>> v = np.array([[1.0, 8], [2, 4], [4, 2], [8, 1]])
>>> slope, low, high, n = growth_fits(t, v, np.log2(v), 0.5, 3, -1.96)
>>> slope.tolist(), n.tolist()
([1.0, -1.0], [4, 4])
"""

from __future__ import annotations

import numpy as np

from onlinenmf._jit import njit


@njit
def _select(a: np.ndarray, lo: int, hi: int, k: int) -> float:
    """Value of rank ``k`` in ``a[lo:hi]``, partitioning in place.

    Quickselect with branch-free three-way partitions (values below, equal to, above the
    pivot): on real slopes, whose order is unpredictable, it runs ~2.5x faster than
    Hoare's branching partition. Afterwards ``a[lo:k] <= a[k] <= a[k + 1:hi]``.
    """
    while hi - lo > 1:
        x, y, z = a[lo], a[(lo + hi) // 2], a[hi - 1]
        pivot = max(min(x, y), min(max(x, y), z))  # median of three
        less = lo
        for i in range(lo, hi):  # [lo, less) < pivot
            v = a[i]
            a[i] = a[less]
            a[less] = v
            less += v < pivot
        if k < less:
            hi = less
            continue
        equal = less
        for i in range(less, hi):  # [less, equal) == pivot
            v = a[i]
            a[i] = a[equal]
            a[equal] = v
            equal += v == pivot
        if k < equal:
            return pivot
        lo = equal
    return a[k]


@njit
def _ranked(a: np.ndarray, placed: np.ndarray, n_placed: int, lo: int, hi: int,
            k: int) -> float:
    """Value of rank ``k`` in ``a[lo:hi]`` given ranks already in place (``placed``).

    A rank placed by :func:`_select` splits the range, so the search narrows to the part
    between the placed ranks around ``k``.
    """
    for i in range(n_placed):
        r = placed[i]
        if r == k:
            return a[k]
        if lo <= r < k:
            lo = r + 1
        elif k < r < hi:
            hi = r
    if k == hi - 1:  # the largest of the part: one scan, and it goes to its place
        best = lo
        for i in range(lo + 1, hi):
            if a[i] > a[best]:
                best = i
        a[best], a[k] = a[k], a[best]
        return a[k]
    return _select(a, lo, hi, k)


@njit
def _fill_slopes(ts: np.ndarray, ys: np.ndarray, m: int, tied: bool, tmp: np.ndarray,
                 row: np.ndarray) -> tuple[int, int, int]:
    """Pairwise slopes of the first ``m`` points into ``row``: negative ones from the left,
    positive ones from the right, zeros only counted (often many: pairs of samples both at
    the floor). Returns (count, negative, positive); slot i then holds a slope of rank i's
    region of the sorted slopes ([0, negative), zeros, [count - positive, count))."""
    count = 0
    if not tied:  # no equal times: one division per pair, a loop the compiler vectorises
        for a in range(m - 1):
            ya = ys[a]
            ta = ts[a]
            for b in range(a + 1, m):
                tmp[count + b - a - 1] = (ys[b] - ya) / (ts[b] - ta)
            count += m - a - 1
    else:
        for a in range(m - 1):
            for b in range(a + 1, m):
                dt = ts[b] - ts[a]
                if dt != 0:  # equal times give no slope
                    tmp[count] = (ys[b] - ys[a]) / dt
                    count += 1
    left = 0
    right = count - 1
    for i in range(count):  # branch-free: write both ends, advance the right one
        v = tmp[i]
        row[left] = v
        row[right] = v
        left += v < 0
        right -= v > 0
    return count, left, count - 1 - right


@njit
def _tie_sum(ordered: np.ndarray, m: int) -> float:
    """Sum over runs of equal values among the sorted ``ordered[:m]`` of r (r - 1) (2r + 5):
    what ties take from the variance of Kendall's S (Sen 1968, as scipy)."""
    ties = 0.0
    run = 1
    for i in range(1, m + 1):
        if i < m and ordered[i] == ordered[i - 1]:
            run += 1
        else:
            ties += run * (run - 1) * (2 * run + 5)
            run = 1
    return ties


@njit
def growth_fits(times: np.ndarray, values: np.ndarray, logs: np.ndarray, floor: float,
                min_points: int, z: float) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                    np.ndarray]:
    """Theil-Sen fit of ``logs[:, j]`` against ``times`` for each column ``j``.

    ``values`` (n x p, NaN where the component did not exist) selects the rows of each
    column and whether it is fitted: at least ``min_points`` of its values exceed ``floor``.
    Returns ``slope``, the interval's ``low`` and ``high`` (Sen 1968 as
    :func:`scipy.stats.theilslopes`, ``z``: the normal quantile, negative; NaN for a column
    not fitted or without two distinct times) and the points used. ``times`` must be sorted.
    """
    n, p = values.shape
    slope = np.full(p, np.nan)
    low = np.full(p, np.nan)
    high = np.full(p, np.nan)
    points = np.zeros(p, dtype=np.int64)
    ts = np.empty(n)
    ys = np.empty(n)
    size = max(n * (n - 1) // 2, 1)
    tmp = np.empty(size)
    row = np.empty(size)
    placed = np.empty(4, dtype=np.int64)
    ranks = np.empty(4, dtype=np.int64)
    found = np.empty(4)
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
        points[j] = m
        ties = _tie_sum(ts, m)  # times are sorted
        count, negative, positive = _fill_slopes(ts, ys, m, ties > 0, tmp, row)
        if count == 0:
            continue
        # less the ties in the values too; at 0 when the ties take it all (scipy: NaN)
        ties += _tie_sum(np.sort(ys[:m]), m)
        sigma = np.sqrt(max(m * (m - 1) * (2 * m + 5) - ties, 0.0) / 18.0)
        half = count // 2
        ranks[0] = half
        ranks[1] = half - 1 + count % 2  # the other middle value (even count)
        ranks[2] = max(int(np.rint((count + z * sigma) / 2.0)) - 1, 0)  # rint: as round()
        ranks[3] = min(int(np.rint((count - z * sigma) / 2.0)), count - 1)
        zeros_to = count - positive
        n_placed = 0
        for r in range(4):
            k = ranks[r]
            if k < negative:
                found[r] = _ranked(row, placed, n_placed, 0, negative, k)
            elif k >= zeros_to:
                found[r] = _ranked(row, placed, n_placed, zeros_to, count, k)
            else:  # a zero slope is +0.0: y_b - y_a == 0 gives +0.0
                found[r] = 0.0
                continue
            placed[n_placed] = k
            n_placed += 1
        # as np.median: the middle value, or the mean of the two middle values
        slope[j] = found[0] if count % 2 else (found[1] + found[0]) / 2.0
        low[j] = found[2]
        high[j] = found[3]
    return slope, low, high, points
