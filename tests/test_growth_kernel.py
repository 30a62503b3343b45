"""The compiled Theil-Sen kernel of the tracker (:mod:`onlinenmf._growth`) at its edges, each
found untested by mutation testing (``benchmarks/output/mutation.md``): which values count as
present, how many points a fit needs, samples that share one time, and its interval against
scipy's (an oracle independent of the numpy reference that ``tests/test_tracking.py`` checks
it against bit for bit)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

from onlinenmf._growth import growth_fits

Z95 = float(scipy.stats.norm.ppf(0.025))
FLOOR = 1e-3


def _fit(times, values, min_points=3):
    values = np.asarray(values, dtype=float).reshape(len(times), -1)
    logs = np.log(np.fmax(values, FLOOR))
    return growth_fits(np.asarray(times, dtype=float), values, logs, FLOOR, min_points, Z95)


def test_a_value_at_the_floor_is_not_present():
    """``min_points`` counts the values *above* the floor: a component sitting exactly at it
    (the tracker's zero) in all but two samples is not fitted with three required, and is with
    two."""
    times = [0.0, 1.0, 2.0, 3.0]
    values = [FLOOR, 0.5, FLOOR, 2.0]
    slope, low, high, points = _fit(times, values, min_points=3)
    assert np.isnan(slope[0]) and np.isnan(low[0]) and np.isnan(high[0]) and points[0] == 0
    slope, _, _, points = _fit(times, values, min_points=2)
    assert np.isfinite(slope[0]) and points[0] == 4


def test_exactly_min_points_present_is_enough():
    times = [0.0, 1.0, 2.0]
    slope, low, high, points = _fit(times, [1.0, 2.0, 4.0], min_points=3)
    assert slope[0] == pytest.approx(np.log(2.0), rel=1e-15)
    assert points[0] == 3 and low[0] <= slope[0] <= high[0]


def test_samples_all_at_one_time_give_no_slope():
    """Equal times give no pairwise slope: with no two distinct times there is no fit (NaN),
    though the points were there."""
    slope, low, high, points = _fit([5.0, 5.0, 5.0, 5.0], [1.0, 2.0, 4.0, 8.0])
    assert np.isnan(slope[0]) and np.isnan(low[0]) and np.isnan(high[0])
    assert points[0] == 4


@pytest.mark.parametrize("seed", range(6))
def test_slope_and_interval_are_scipys(seed):
    """Against :func:`scipy.stats.theilslopes` (``method="separate"``): tied times, equal
    values (zero slopes: Sen's (1968) variance less the ties in the values as well as in
    time), components born late (NaN rows), from 2 to 30 points."""
    rng = np.random.default_rng(seed)
    n = [2, 3, 5, 11, 20, 30][seed]
    times = np.sort(np.round(rng.uniform(0.0, 8.0, n)))
    values = rng.exponential(size=(n, 4))
    values[rng.random(n) < 0.3, 3] = FLOOR / 2  # at the floor: equal logs, zero slopes
    values[: n // 3, 2] = np.nan
    slope, low, high, points = _fit(times, values, min_points=1)
    logs = np.log(np.fmax(values, FLOOR))
    for j in range(4):
        rows = ~np.isnan(values[:, j])
        t, y = times[rows], logs[rows, j]
        assert points[j] == rows.sum()
        if len(np.unique(t)) < 2:
            assert np.isnan(slope[j]) and np.isnan(low[j]) and np.isnan(high[j])
            continue
        ref = scipy.stats.theilslopes(y, t, alpha=0.95, method="separate")
        assert slope[j] == pytest.approx(ref.slope, rel=1e-12, abs=1e-15)
        assert low[j] == pytest.approx(ref.low_slope, rel=1e-12, abs=1e-15)
        assert high[j] == pytest.approx(ref.high_slope, rel=1e-12, abs=1e-15)


def test_the_tie_correction_counts_each_components_own_times():
    """Sen's interval subtracts the ties in time from its variance. A component born late uses
    fewer rows than the one before it, and its run of tied times at the end must be counted
    once, whatever the buffers hold past its last row (here the same time: the earlier
    column's)."""
    times = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0])
    values = np.random.default_rng(7).exponential(size=(11, 2))
    values[0, 1] = np.nan  # the second component is born at the second sample
    slope, low, high, points = _fit(times, values, min_points=1)
    logs = np.log(np.fmax(values, FLOOR))
    for j, rows in enumerate([slice(None), slice(1, None)]):
        ref = scipy.stats.theilslopes(logs[rows, j], times[rows], alpha=0.95,
                                      method="separate")
        assert (slope[j], low[j], high[j]) == pytest.approx(
            (ref.slope, ref.low_slope, ref.high_slope), rel=1e-12)
    assert points.tolist() == [11, 10]


_IN_BOUNDS = """
import numpy as np, scipy.stats
from onlinenmf._growth import growth_fits
from onlinenmf.tracking import theil_sen
rng = np.random.default_rng(5)
z = float(scipy.stats.norm.ppf(0.025))
for trial in range(200):
    n, p = int(rng.integers(2, 30)), int(rng.integers(1, 4))
    t = np.sort(rng.uniform(0, 20, n))
    if trial % 2:
        t = np.round(t)
    v = rng.exponential(size=(n, p))
    v[rng.random((n, p)) < rng.random()] = 1e-9
    if trial % 3 == 0:
        v[: n // 3, 0] = np.nan
    logs = np.log(np.fmax(v, 1e-3))
    slope, low, high, points = growth_fits(t, v, logs, 1e-3, 2, z)
    for j in range(p):
        rows = ~np.isnan(v[:, j])
        ref = theil_sen(t[rows], logs[rows, j][:, None])
        if np.isfinite(slope[j]):
            assert (slope[j], low[j], high[j]) == (ref[0][0], ref[1][0], ref[2][0]), trial
"""


def test_the_kernel_reads_and_writes_inside_its_arrays(tmp_path):
    """Compiled code does not check its indices: a read past a buffer's end returns whatever
    lies there (often a value that gives the right answer by chance), a write corrupts memory.
    The kernel compiled with numba's bounds checking, on fits of every shape, must raise no
    IndexError (and still match the numpy reference)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "NUMBA_BOUNDSCHECK": "1", "NUMBA_CACHE_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", _IN_BOUNDS], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
