"""Compiled per-event kernels of the explicit-feedback recommender (:mod:`onlinenmf.reco`).

A rating ``r`` of item ``i`` by user ``u`` is modelled as ``mu + b_u + b_i + p_u . q_i`` with
``p_u, q_i >= 0`` (Surprise's biased NMF). Only observed entries enter the loss (masked
least squares). Each side's parameters are stacked as ``x = [b, p]`` (user) and ``[b, q]``
(item), so that both solves are one non-negative least-squares problem with a free first
coordinate:

    min_x  1/2 x^T G x - c . x + 1/2 sum_j lam_j x_j^2,   x_j >= 0 for j >= 1.

``G``/``c`` come from the user's bounded history (the user solve) or from the item's
forgetful statistics ``sum w z z^T``, ``sum w z (r - b_u)`` with ``z = [1, p_u]`` (the item solve).
Both are solved by cyclic coordinate descent (HALS with one unconstrained coordinate),
warm-started from the previous parameters: a handful of sweeps per event.

The projected-SGD alternative (``solver="sgd"``) takes one gradient step on the four
parameter blocks touched by the event and projects the factors on the non-negative orthant.
"""

from __future__ import annotations

import numpy as np

from onlinenmf._jit import njit


@njit
def cd_free_first(G, c, x, lam, max_iter, tol):
    """Coordinate descent on ``1/2 x^T (G + diag lam) x - c.x`` with ``x[1:] >= 0``, in place.

    >>> G = np.array([[2.0, 1.0], [1.0, 2.0]]); c = np.array([1.0, -3.0])
    >>> x = np.zeros(2); _ = cd_free_first(G, c, x, np.zeros(2), 100, 1e-10)
    >>> [round(float(v), 6) for v in x]       # x[1] pinned at 0, x[0] = c0 / G00
    [0.5, 0.0]
    """
    n = x.shape[0]
    sweeps = 0
    for sweeps in range(1, max_iter + 1):
        max_delta = 0.0
        max_x = 0.0
        for j in range(n):
            denominator = G[j, j] + lam[j]
            if denominator <= 0.0:
                continue
            gradient = lam[j] * x[j] - c[j]
            for i in range(n):
                gradient += G[j, i] * x[i]
            new = x[j] - gradient / denominator
            if j > 0 and new < 0.0:
                new = 0.0
            delta = abs(new - x[j])
            x[j] = new
            if delta > max_delta:
                max_delta = delta
            if abs(new) > max_x:
                max_x = abs(new)
        if max_delta <= tol * max(max_x, 1e-12):
            break
    return sweeps


@njit
def user_gram(V, mu, items, values, G, c):
    """Masked normal equations of a user from the observed entries of their history:
    ``z_j = [1, q_j]``, target ``r_j - mu - b_j``; G and c are overwritten."""
    n = G.shape[0]
    G[:, :] = 0.0
    c[:] = 0.0
    z = np.empty(n)
    z[0] = 1.0
    for t in range(items.shape[0]):
        i = items[t]
        for j in range(1, n):
            z[j] = V[i, j]
        y = values[t] - mu - V[i, 0]
        for a in range(n):
            c[a] += z[a] * y
            for b in range(a, n):
                G[a, b] += z[a] * z[b]
    for a in range(n):
        for b in range(a):
            G[a, b] = G[b, a]


@njit
def remember(u, i, r, hist_items, hist_values, hist_meta, accumulate):
    """Put (i, r) in user u's ring buffer (``hist_meta[u] = (length, next slot)``); an item
    already there is updated in place (replaced, or added to when ``accumulate``)."""
    H = hist_items.shape[1]
    length = hist_meta[u, 0]
    slot = -1
    for t in range(length):
        if hist_items[u, t] == i:
            slot = t
            break
    if slot >= 0:
        if accumulate:
            r += hist_values[u, slot]
    elif length < H:
        slot = length
        hist_meta[u, 0] = length + 1
    else:
        slot = hist_meta[u, 1]
        hist_meta[u, 1] = (slot + 1) % H
    hist_items[u, slot] = i
    hist_values[u, slot] = r
    return hist_meta[u, 0]


@njit
def explicit_event(u, i, r, mu, U, V, hist_items, hist_values, hist_meta, S, weight, scale,
                   lam, max_iter, tol, solve_item):
    """One rating, coordinate-descent solver: item statistics, history, user solve (+ item
    solve).

    Rows hold ``U[u] = [b_u, p_u]`` and ``V[i] = [b_i, q_i]``. The item's statistics
    ``S[i] = [sum w z z^T | sum w z y]`` receive the event with ``z = [1, p_u]``,
    ``y = r - b_u`` from the user's parameters before the event (a new user: ``[0, 0]``). A
    repeated rating of the same item overwrites its history entry (the latest rating counts).
    The user is then re-solved over the history, and the item from its statistics now when
    ``solve_item`` (else at the next refresh).
    """
    n = U.shape[1]
    # item: add the event to its forgetful statistics (stored divided by the running scale)
    # with the user's parameters from *before* this rating. Parameters solved with the rating
    # have already fitted it: the item would learn its own residual back through them, which
    # inflated the factors into noise (measured: benchmarks/output/reco_findings.md).
    # The target excludes mu, subtracted at solve time: an item keeps up with a moving mean.
    y = r - U[u, 0]
    for a in range(n):
        za = 1.0 if a == 0 else U[u, a]
        S[i, a, n] += weight * za * y
        for b in range(n):
            S[i, a, b] += weight * za * (1.0 if b == 0 else U[u, b])
    length = remember(u, i, r, hist_items, hist_values, hist_meta, False)
    G = np.empty((n, n))
    c = np.empty(n)
    x = np.empty(n)
    # user: masked NNLS over the remembered entries, warm-started from the current row
    user_gram(V, mu, hist_items[u, :length], hist_values[u, :length], G, c)
    x[:] = U[u]
    cd_free_first(G, c, x, lam, max_iter, tol)
    U[u] = x
    if solve_item:
        solve_item_from_stats(i, V, S, mu, scale, lam, max_iter, tol, G, c, x)


@njit
def solve_item_from_stats(i, V, S, mu, scale, lam, max_iter, tol, G, c, x):
    """Item parameters from its statistics ``S_i = [A_i | C_i]`` (C_i without the mean):
    ``(scale A_i + diag lam) x = scale (C_i - mu A_i[:, 0])``."""
    n = V.shape[1]
    for a in range(n):
        c[a] = (S[i, a, n] - mu * S[i, a, 0]) * scale
        for b in range(n):
            G[a, b] = S[i, a, b] * scale
    x[:] = V[i]
    cd_free_first(G, c, x, lam, max_iter, tol)
    V[i] = x


@njit
def refresh_items(items, V, S, mu, scale, lam, max_iter, tol):
    """Re-solve the listed items from their statistics (the periodic refresh)."""
    n = V.shape[1]
    G = np.empty((n, n))
    c = np.empty(n)
    x = np.empty(n)
    for t in range(items.shape[0]):
        solve_item_from_stats(items[t], V, S, mu, scale, lam, max_iter, tol, G, c, x)


@njit
def predict(u, i, mu, U, V):
    """``mu + b_u + b_i + p_u . q_i`` (u < 0: unknown user, ``mu + b_i``)."""
    if u < 0:
        return mu + V[i, 0]
    total = mu + U[u, 0] + V[i, 0]
    for j in range(1, U.shape[1]):
        total += U[u, j] * V[i, j]
    return total


@njit
def sgd_event(u, i, r, mu, U, V, lr_bias, lr_factor, l2_bias, l2_factor):
    """One projected stochastic-gradient step on ``b_u, b_i, p_u, q_i`` (factors kept >= 0)."""
    error = r - predict(u, i, mu, U, V)
    U[u, 0] += lr_bias * (error - l2_bias * U[u, 0])
    V[i, 0] += lr_bias * (error - l2_bias * V[i, 0])
    for j in range(1, U.shape[1]):
        p = U[u, j]
        q = V[i, j]
        U[u, j] = max(0.0, p + lr_factor * (error * q - l2_factor * p))
        V[i, j] = max(0.0, q + lr_factor * (error * p - l2_factor * q))
