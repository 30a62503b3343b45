"""Any other beta >= 0: multiplicative updates on every row (Fevotte & Idier 2011).

scikit-learn's ``NMF(beta_loss=beta, solver="mu")`` fits the same divergence in batch. The zero
entries of a sample are observed zeros, with ``d(0 | x) = x^beta / beta``: their gradient term
``sum_f W_fk (W h)_f^(beta-1)`` has no k-sized summary, so a sample costs O(m k) per solver
iteration (the exact divergences 0, 1 and 2 cost O(nnz k)), and each sample adds its
denominator ``(W h)^(beta-1) h^T`` to every row.
"""

from __future__ import annotations

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
