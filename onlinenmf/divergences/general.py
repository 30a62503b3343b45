"""Any other beta >= 0: multiplicative updates on every row (Fevotte & Idier 2011).

scikit-learn's ``NMF(beta_loss=beta, solver="mu")`` fits the same divergence in batch. The zero
entries of a sample are observed zeros, with ``d(0 | x) = x^beta / beta``: their gradient term
``sum_f W_fk (W h)_f^(beta-1)`` has no k-sized summary, so a sample costs O(m k) per solver
iteration (the exact divergences 0, 1 and 2 cost O(nnz k)), and each sample adds its
denominator ``(W h)^(beta-1) h^T`` to every row.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from onlinenmf.divergences.base import Divergence


class GeneralBeta(Divergence):
    """``D_beta`` for any beta >= 0 other than 0, 1 and 2 (the defaults of :class:`Divergence`).

    >>> import numpy as np
    >>> d = GeneralBeta(1.5)
    >>> d.gamma, sorted(d.layout.rows)
    (1.0, ['B', 'D'])
    >>> # d(1 | 2) = (1 + 0.5 * 2**1.5 - 1.5 * 2**0.5) / 0.75; d(0 | 1) = 1 / 1.5
    >>> round(d.loss(np.array([[1.0, 0.0]]), np.array([[2.0, 1.0]])), 6)
    1.057191
    """

    def start_rows(self, stats: Any, start: int) -> None:
        """A new feature's row starts with the mean row's denominator and the numerator that
        keeps its initial W (``B = W^(1/gamma) D``, as a seeded column's pseudo-statistics).

        Here each row has its own denominator, summed over the samples since the row exists,
        and W is their ratio: rows added with zero statistics are refreshed from the few
        samples since they appeared, with a full multiplicative step each refresh where the
        older rows move by a step damped by their whole history. A word admitted mid-stream is
        admitted by the document holding it, so that step is biased upwards: the new rows took
        over the topics (State of the Union, beta = 1.5: every top word at the minimum document
        frequency). With the mean row's history they move as fast as the rows around them.
        """
        m = stats.m
        if start == 0 or start >= m:  # no older rows to take the history of
            return
        D = np.mean(stats.D[:start], axis=0)
        stats.D[start:m] = D
        stats.B[start:m] = stats.W[start:m] ** (1.0 / self.gamma) * D
