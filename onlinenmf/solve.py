"""The compiled kernels of the divergences: per-sample solvers for the activations h, and the
statistics each sample adds.

Each divergence object (:mod:`onlinenmf.divergences`) names its kernel by a number below and
calls the drivers at the end of this file (:func:`solve_batch`, :func:`learn_batch`,
:func:`learn_sample`). The drivers switch on that number because numba caches no compiled
function that takes another function as an argument (every process would compile them again).

Every exact kernel works on one sample given as the rows ``rows`` of the dictionary it touches
(its non-zero features) and their values ``v``, so its cost is O(nnz(v) k + sweeps k^2) whatever
the number of features m. The terms of the loss that involve the zero entries of v are carried
by two cached k-sized quantities: the Gram matrix ``G = W^T W`` (Frobenius) and the column sums
of W (Kullback-Leibler). Itakura-Saito is defined on the non-zero entries only. The per-entry
terms of every loss are those of :mod:`onlinenmf.divergence`.

Kernels (each runs to the optimum, to a relative tolerance on the change of h):

* ``HALS`` (beta = 2): cyclic coordinate descent on ``G`` and ``b = W^T v``;
* ``KL_NEWTON`` (beta = 1): cyclic coordinate descent with one 1-D Newton step per coordinate
  (Hsieh & Dhillon 2011), safeguarded so a step never uncovers a non-zero entry of v;
* ``IS_MU`` (beta = 0): multiplicative updates with the Fevotte & Idier (2011) exponent 1/2, h
  floored at a tiny positive value so that no entry locks at zero and no division gives inf;
* ``BETA_MU`` (any other beta >= 0): multiplicative updates with the exponent gamma(beta) of
  Fevotte & Idier (2011). The zero entries of v enter through ``sum_f W_fk (W h)_f^(beta-1)``,
  which has no k-sized summary, so this kernel reads every row of W: O(m k) per iteration.

Penalties: ``l1`` is a per-component vector (so automatic relevance determination can weight
components differently), ``l2`` a scalar; the objective is
``D_beta(v | W h) + l1 . h + l2/2 |h|^2``.
"""

from __future__ import annotations

import numpy as np

from onlinenmf import divergence
from onlinenmf._jit import njit, njit_fast

TINY = 1e-300
H_FLOOR = 1e-12
#: Kernel numbers (see the module notes).
HALS, KL_NEWTON, IS_MU, BETA_MU = 0, 1, 2, 3


@njit
def _hals(W, rows, v, G, h, l1, l2, max_iter, tol, b):
    k = h.shape[0]
    for j in range(k):
        total = 0.0
        for i in range(rows.shape[0]):
            total += W[rows[i], j] * v[i]
        b[j] = total
    sweeps = 0
    for sweeps in range(1, max_iter + 1):
        max_delta = 0.0
        max_h = 0.0
        for j in range(k):
            denominator = G[j, j] + l2
            if denominator <= 0.0:
                h[j] = 0.0
                continue
            gradient = l1[j] + l2 * h[j] - b[j]
            for i in range(k):
                gradient += G[j, i] * h[i]
            new = h[j] - gradient / denominator
            if new < 0.0:
                new = 0.0
            delta = abs(new - h[j])
            h[j] = new
            if delta > max_delta:
                max_delta = delta
            if new > max_h:
                max_h = new
        if max_delta <= tol * max_h:
            break
    return sweeps


@njit
def _frobenius_loss(v, G, h, b):
    # 1/2 |v - W h|^2 = 1/2 (|v|^2 - 2 b.h + h^T G h), the zeros of v included through G.
    k = h.shape[0]
    quadratic = 0.0
    for j in range(k):
        row = 0.0
        for i in range(k):
            row += G[j, i] * h[i]
        quadratic += h[j] * row
    return 0.5 * (np.dot(v, v) - 2.0 * np.dot(b, h) + quadratic)


@njit
def _reconstruct(W, rows, h, wh):
    k = h.shape[0]
    for i in range(rows.shape[0]):
        total = 0.0
        r = rows[i]
        for j in range(k):
            total += W[r, j] * h[j]
        wh[i] = max(total, TINY)


@njit_fast
def _kl_newton(W, rows, v, colsum, h, l1, l2, max_iter, tol, wh):
    k = h.shape[0]
    n = rows.shape[0]
    # The sample's rows of W, transposed so that each coordinate reads a contiguous vector.
    Wt = np.empty((k, n))
    for i in range(n):
        r = rows[i]
        for j in range(k):
            Wt[j, i] = W[r, j]
    # Shrinking: a coordinate pinned at zero by a positive gradient is skipped until the
    # others have converged, then every coordinate is checked once more before stopping.
    pinned = np.zeros(k, dtype=np.bool_)
    _reconstruct(W, rows, h, wh)
    sweeps = 0
    for sweeps in range(1, max_iter + 1):
        max_delta = 0.0
        max_h = 0.0
        full_sweep = not pinned.any()
        for j in range(k):
            if pinned[j]:
                continue
            w = Wt[j]
            old = h[j]
            gradient = colsum[j] + l1[j] + l2 * old
            curvature = l2
            for i in range(n):
                inverse = 1.0 / wh[i]
                term = v[i] * inverse * w[i]
                gradient -= term
                curvature += term * w[i] * inverse
            if old == 0.0 and gradient >= 0.0:
                pinned[j] = True
                continue
            if curvature <= 0.0:
                new = 0.0  # no support among the non-zeros: the objective rises linearly
            else:
                new = old - gradient / curvature
                if new <= 0.0:
                    # Newton overshot to the left; zero is allowed only if the other
                    # components still explain every non-zero entry (else the loss is inf).
                    new = 0.0
                    for i in range(n):
                        if w[i] > 0.0 and wh[i] - w[i] * old <= 1e-9 * wh[i]:
                            new = 0.1 * old
                            break
            delta = new - old
            if delta != 0.0:
                for i in range(n):
                    wh[i] = max(wh[i] + w[i] * delta, TINY)
                h[j] = new
            if abs(delta) > max_delta:
                max_delta = abs(delta)
            if new > max_h:
                max_h = new
        if max_delta <= tol * max_h:
            if full_sweep:
                break
            pinned[:] = False
    _reconstruct(W, rows, h, wh)
    return sweeps


@njit
def _kl_loss(v, wh, colsum, h):
    # sum_f v log(v/Wh) - v + Wh ; sum_f (Wh)_f = colsum . h covers the zeros of v.
    total = np.dot(colsum, h)
    for i in range(v.shape[0]):
        total += divergence.kl_nonzero(v[i], wh[i])
    return total


@njit
def _floor_h(h):
    """Every entry of h at least H_FLOOR: no entry locks at zero under multiplicative steps."""
    for j in range(h.shape[0]):
        if h[j] < H_FLOOR:
            h[j] = H_FLOOR


@njit
def _start_terms(h, l1, l2, numerator, denominator):
    """The MU numerator at zero and the denominator at its penalty terms."""
    for j in range(h.shape[0]):
        numerator[j] = 0.0
        denominator[j] = l1[j] + l2 * h[j]


@njit
def _mu_update(h, numerator, denominator, gamma):
    """``h *= (numerator / denominator)^gamma``, floored; return (largest change, largest h)."""
    max_change = 0.0
    max_h = 0.0
    for j in range(h.shape[0]):
        new = h[j]
        if denominator[j] > 0.0:
            ratio = numerator[j] / denominator[j]
            new = h[j] * (np.sqrt(ratio) if gamma == 0.5 else ratio**gamma)
        if new < H_FLOOR:
            new = H_FLOOR
        change = abs(new - h[j])
        h[j] = new
        if change > max_change:
            max_change = change
        if new > max_h:
            max_h = new
    return max_change, max_h


@njit
def _is_mu(W, rows, v, h, l1, l2, max_iter, tol, wh, numerator, denominator):
    k = h.shape[0]
    n = rows.shape[0]
    _floor_h(h)
    sweeps = 0
    for sweeps in range(1, max_iter + 1):
        _reconstruct(W, rows, h, wh)
        _start_terms(h, l1, l2, numerator, denominator)
        for i in range(n):
            r = rows[i]
            inverse = 1.0 / wh[i]
            weighted = v[i] * inverse * inverse
            for j in range(k):
                numerator[j] += W[r, j] * weighted
                denominator[j] += W[r, j] * inverse
        max_change, max_h = _mu_update(h, numerator, denominator, 0.5)
        # MU steps shrink as they approach the optimum: a step of tol would stop far from it.
        if max_change <= 0.01 * tol * max_h:
            break
    _reconstruct(W, rows, h, wh)
    return sweeps


@njit
def _is_loss(v, wh):
    total = 0.0
    for i in range(v.shape[0]):
        total += divergence.itakura_saito(v[i], wh[i])
    return total


@njit
def _reconstruct_all(W, m, h, dense):
    """(W h) on every row of the dictionary, floored at TINY."""
    k = h.shape[0]
    for f in range(m):
        total = 0.0
        for j in range(k):
            total += W[f, j] * h[j]
        dense[f] = max(total, TINY)


@njit
def _beta_mu(W, m, rows, v, h, l1, l2, max_iter, tol, beta, gamma, dense, numerator,
             denominator):
    k = h.shape[0]
    _floor_h(h)
    sweeps = 0
    for sweeps in range(1, max_iter + 1):
        _reconstruct_all(W, m, h, dense)
        _start_terms(h, l1, l2, numerator, denominator)
        for f in range(m):  # every row: the zero entries of v are observed zeros
            power = dense[f] ** (beta - 1.0)
            for j in range(k):
                denominator[j] += W[f, j] * power
        for i in range(rows.shape[0]):
            r = rows[i]
            weighted = v[i] * dense[r] ** (beta - 2.0)
            for j in range(k):
                numerator[j] += W[r, j] * weighted
        max_change, max_h = _mu_update(h, numerator, denominator, gamma)
        if max_change <= 0.01 * tol * max_h:  # as for IS_MU: MU steps shrink near the optimum
            break
    _reconstruct_all(W, m, h, dense)
    return sweeps


@njit
def _beta_loss(m, rows, v, dense, beta):
    # every row as a zero entry, then the non-zero entries corrected to their own term
    total = 0.0
    for f in range(m):
        total += divergence.general(0.0, dense[f], beta)
    for i in range(rows.shape[0]):
        x = dense[rows[i]]
        total += divergence.general(v[i], x, beta) - divergence.general(0.0, x, beta)
    return total


@njit
def solve_sample(kernel, beta, gamma, W, m, rows, v, G, colsum, h, l1, l2, max_iter, tol, wh,
                 work_a, work_b, dense):
    """Solve h in place for one sample; return its loss. ``wh`` receives (W h) on ``rows``.

    ``kernel``, ``beta``, ``gamma`` are the divergence's (scalars, not a tuple: the dispatch
    of a compiled call is faster); ``dense`` is scratch of m entries for ``BETA_MU`` (empty
    for the other kernels).
    """
    if kernel == HALS:
        _hals(W, rows, v, G, h, l1, l2, max_iter, tol, work_a)
        _reconstruct(W, rows, h, wh)
        return _frobenius_loss(v, G, h, work_a)
    if kernel == KL_NEWTON:
        _kl_newton(W, rows, v, colsum, h, l1, l2, max_iter, tol, wh)
        return _kl_loss(v, wh, colsum, h)
    # MU converges linearly and slowly: it gets a larger budget than the coordinate solvers.
    if kernel == IS_MU:
        _is_mu(W, rows, v, h, l1, l2, 20 * max_iter, tol, wh, work_a, work_b)
        return _is_loss(v, wh)
    _beta_mu(W, m, rows, v, h, l1, l2, 20 * max_iter, tol, beta, gamma, dense, work_a, work_b)
    for i in range(rows.shape[0]):
        wh[i] = dense[rows[i]]
    return _beta_loss(m, rows, v, dense, beta)


@njit
def initial_h(kernel, v, colsum, h):
    """Cold start: zero for HALS; otherwise spread the sample's mass evenly over components."""
    k = h.shape[0]
    if kernel == HALS:
        h[:] = 0.0
        return
    total_colsum = 0.0
    for j in range(k):
        total_colsum += colsum[j]
    level = np.sum(v) / max(total_colsum, TINY)
    for j in range(k):
        h[j] = max(level, H_FLOOR)


@njit
def accumulate_sample(kernel, beta, gamma, W, m, rows, v, h, wh, dense, weight, B, D):
    """Add one sample's sufficient statistics, multiplied by ``weight``.

    HALS (Mairal et al. 2010): ``B[rows] += v h^T``; A is updated by the caller (k x k).
    The others (Lefevre, Bach & Fevotte 2011, the MU numerator and denominator):
    ``N[rows] += W^(1/gamma) * (v (Wh)^(beta-2)) h^T`` stored in ``B``, and the denominator
    ``(Wh)^(beta-1) h^T`` in ``D``: on the sample's rows for IS_MU (zeros are unobserved), on
    every row for BETA_MU; for KL_NEWTON it is the same for every row, so the caller keeps it
    as one k-vector (the usage).
    """
    k = h.shape[0]
    for i in range(rows.shape[0]):
        r = rows[i]
        if kernel == HALS:
            scaled = v[i] * weight
            for j in range(k):
                B[r, j] += scaled * h[j]
        elif kernel == KL_NEWTON:
            scaled = v[i] / wh[i] * weight
            for j in range(k):
                B[r, j] += W[r, j] * scaled * h[j]
        elif kernel == IS_MU:
            inverse = 1.0 / wh[i]
            scaled = v[i] * inverse * inverse * weight
            for j in range(k):
                B[r, j] += W[r, j] * W[r, j] * scaled * h[j]
                D[r, j] += inverse * weight * h[j]
        else:
            scaled = v[i] * wh[i] ** (beta - 2.0) * weight
            for j in range(k):
                B[r, j] += W[r, j] ** (1.0 / gamma) * scaled * h[j]
    if kernel == BETA_MU:
        for f in range(m):
            power = dense[f] ** (beta - 1.0) * weight
            for j in range(k):
                D[f, j] += power * h[j]


@njit
def _normaliser(kernel, beta, v):
    """The scale of a sample for its relative loss (homogeneous of degree beta, like the loss):
    1/2 |v|^2, sum v, nnz, or sum v^beta."""
    if kernel == HALS:
        return 0.5 * np.dot(v, v)
    if kernel == KL_NEWTON:
        return np.sum(v)
    if kernel == IS_MU:
        return float(v.shape[0])
    return np.sum(v**beta)


@njit
def _workspace(indptr, k):
    """Scratch arrays for a CSR batch: (W h) on the longest row, two k-vectors."""
    n_max = 1
    for s in range(indptr.shape[0] - 1):
        n_max = max(n_max, indptr[s + 1] - indptr[s])
    return np.empty(n_max), np.empty(k), np.empty(k)


@njit
def solve_batch(kernel, beta, gamma, W, m, indptr, indices, data, G, colsum, H, l1, l2,
                max_iter, tol, losses, dense):
    """Solve every row of a CSR batch (rows already mapped to dictionary rows), read-only on W."""
    wh, work_a, work_b = _workspace(indptr, H.shape[1])
    for s in range(indptr.shape[0] - 1):
        start, stop = indptr[s], indptr[s + 1]
        losses[s] = solve_sample(
            kernel, beta, gamma, W, m, indices[start:stop], data[start:stop], G, colsum, H[s],
            l1, l2, max_iter, tol, wh[: stop - start], work_a, work_b, dense,
        )


@njit
def learn_batch(kernel, beta, gamma, W, m, indptr, indices, data, G, colsum, H, l1, l2,
                max_iter, tol, losses, weights, B, D, warm, dense):
    """Solve each row of a CSR batch, then add its statistics with its weight (W is fixed)."""
    wh, work_a, work_b = _workspace(indptr, H.shape[1])
    for s in range(indptr.shape[0] - 1):
        start, stop = indptr[s], indptr[s + 1]
        rows = indices[start:stop]
        v = data[start:stop]
        if not warm[s]:
            initial_h(kernel, v, colsum, H[s])
        losses[s] = solve_sample(kernel, beta, gamma, W, m, rows, v, G, colsum, H[s], l1, l2,
                                 max_iter, tol, wh[: stop - start], work_a, work_b, dense)
        accumulate_sample(kernel, beta, gamma, W, m, rows, v, H[s], wh[: stop - start], dense,
                          weights[s], B, D)


@njit
def learn_sample(kernel, beta, gamma, W, m, rows, v, G, colsum, h, l1, l2, max_iter, tol, weight,
                 B, D, A, usage, window_usage, rho, warm, wh, work_a, work_b, dense):
    """One sample, fused (the ``learn_one`` fast path): solve h, add the row statistics with
    ``weight``, decay-and-add the k-sized ones (``usage``; ``A`` when the divergence keeps it,
    i.e. when it is not empty) with ``rho``.

    Same arithmetic as :func:`learn_batch` plus the engine's k-sized updates; returns the loss
    and the normaliser of the relative loss (:func:`_normaliser`).
    """
    if not warm:
        initial_h(kernel, v, colsum, h)
    loss = solve_sample(kernel, beta, gamma, W, m, rows, v, G, colsum, h, l1, l2, max_iter, tol,
                        wh, work_a, work_b, dense)
    accumulate_sample(kernel, beta, gamma, W, m, rows, v, h, wh, dense, weight, B, D)
    k = h.shape[0]
    for j in range(k):
        usage[j] = rho * usage[j] + h[j]
        window_usage[j] += h[j]
    if A.shape[0] != 0:
        for i in range(k):
            for j in range(k):
                A[i, j] = rho * A[i, j] + h[i] * h[j]
    return loss, _normaliser(kernel, beta, v)


@njit
def learn_sample_twice(kernel, beta, gamma, W, m, rows, v, G, colsum, h, l1, l2, max_iter, tol,
                       weight, B, D, A, usage, window_usage, rho, warm, W2, G2, colsum2, h2,
                       weight2, B2, D2, A2, usage2, window_usage2, rho2, positive_h):
    """One sample learned by both memories of :mod:`onlinenmf.memories` in one call (each
    compiled call from Python costs microseconds): the served statistics as
    :func:`learn_sample`, then the shadow's (``W2`` ... ``rho2``) with ``h2`` solved from the
    served h, raised to a thousandth of its cold start where the solver needs a positive h
    (:meth:`onlinenmf.divergences.base.Divergence.warm_h`). Returns the loss and normaliser
    of each.

    The scratch is allocated here, not passed: each array passed from Python costs the call
    an allocation, a type check and an unboxing, and the per-sample path is paid in such
    microseconds (more so with its code and data gone cold between samples)."""
    k = h.shape[0]
    wh, work_a, work_b = np.empty(rows.shape[0]), np.empty(k), np.empty(k)
    dense = np.empty(m if kernel == BETA_MU else 0)  # (W h) on every row: BETA_MU only
    loss, norm = learn_sample(kernel, beta, gamma, W, m, rows, v, G, colsum, h, l1, l2, max_iter,
                              tol, weight, B, D, A, usage, window_usage, rho, warm, wh, work_a,
                              work_b, dense)
    if positive_h:
        initial_h(kernel, v, colsum2, h2)
        for j in range(h.shape[0]):
            h2[j] = max(h[j], 1e-3 * h2[j])
    else:
        h2[:] = h
    loss2, norm2 = learn_sample(kernel, beta, gamma, W2, m, rows, v, G2, colsum2, h2, l1, l2,
                                max_iter, tol, weight2, B2, D2, A2, usage2, window_usage2, rho2,
                                True, wh, work_a, work_b, dense)
    return loss, norm, loss2, norm2


@njit
def learn_kl_twice(W, rows, v, colsum, h, l1, l2, max_iter, tol, weight, B, usage, window_usage,
                   rho, warm, W2, colsum2, h2, weight2, B2, usage2, window_usage2, rho2):
    """:func:`learn_sample_twice` for beta = 1 (``KL_NEWTON``), the default's divergence: its
    statistics keep neither G, D nor A, its h is positive, and m is read by ``BETA_MU``
    only, so the call takes eleven arguments fewer (each costs the dispatch from Python
    0.3-1 us, and the per-sample path pays it cold)."""
    unused = np.empty((0, 0))
    return learn_sample_twice(KL_NEWTON, 1.0, 1.0, W, 0, rows, v, unused, colsum, h, l1, l2,
                              max_iter, tol, weight, B, unused, unused, usage, window_usage,
                              rho, warm, W2, unused, colsum2, h2, weight2, B2, unused, unused,
                              usage2, window_usage2, rho2, True)


#: What :func:`learn_kl_twice_open` says of a memory's open samples: the sample opened, not
#: kept (as many open as they hold), or not written (their rows and values arrays are full).
OPENED, OPEN_FULL, OPEN_NO_ROOM = 0, 1, 2


@njit
def learn_kl_twice_open(W, rows, v, colsum, h, l1, l2, max_iter, tol, weight, B, usage,
                        window_usage, rho, warm, W2, colsum2, h2, weight2, B2, usage2,
                        window_usage2, rho2, open_rows, open_values, open_H, open_logs,
                        open_indptr, count, log, open_rows2, open_values2, open_H2, open_logs2,
                        open_indptr2, count2, log2):
    """:func:`learn_kl_twice`, then the sample opened in both memories' open samples
    (:class:`onlinenmf.statistics.OpenSamples`' arrays, ``count`` open, the sample at lazy
    scale ``log``; the shadow's ``...2``) as ``OpenSamples.append`` does: the per-sample
    path's numpy calls of the two appends (a dozen, each paid cold between samples) in the
    call it makes anyway. Returns both (loss, normaliser), then per memory :data:`OPENED`,
    :data:`OPEN_FULL` (``maxlen`` open: not kept) or :data:`OPEN_NO_ROOM` (nothing done: the
    caller grows the arrays by ``OpenSamples.append``)."""
    loss, norm, loss2, norm2 = learn_kl_twice(W, rows, v, colsum, h, l1, l2, max_iter, tol,
                                              weight, B, usage, window_usage, rho, warm, W2,
                                              colsum2, h2, weight2, B2, usage2, window_usage2,
                                              rho2)
    opened = _open(rows, v, h, open_rows, open_values, open_H, open_logs, open_indptr, count,
                   log)
    opened2 = _open(rows, v, h2, open_rows2, open_values2, open_H2, open_logs2, open_indptr2,
                    count2, log2)
    return loss, norm, loss2, norm2, opened, opened2


@njit
def _open(rows, v, h, open_rows, open_values, open_H, open_logs, open_indptr, count, log):
    """One sample appended to open samples' arrays (see :func:`learn_kl_twice_open`)."""
    if count == open_H.shape[0]:
        return OPEN_FULL
    start = open_indptr[count]
    stop = start + rows.shape[0]
    if stop > open_rows.shape[0]:
        return OPEN_NO_ROOM
    for i in range(rows.shape[0]):
        open_rows[start + i] = rows[i]
        open_values[start + i] = v[i]
    for j in range(h.shape[0]):
        open_H[count, j] = h[j]
    open_logs[count] = log
    open_indptr[count + 1] = stop
    return OPENED
