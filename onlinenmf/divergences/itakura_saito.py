"""beta = 0, the Itakura-Saito divergence, scored on the non-zero entries of each sample.

``d(0 | x)`` is infinite for every x, so a zero is taken as unobserved. Per sample:
multiplicative updates with the exponent 1/2 of Fevotte & Idier (2011) on the non-zero entries;
statistics: the MU numerator ``N = sum W^2 * (v / (W h)^2) h^T`` and denominator
``D = sum (1 / W h) h^T`` on the sample's rows; refresh ``W = (N / D)^(1/2)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from onlinenmf import solve
from onlinenmf.divergences.base import NO_SCRATCH, Divergence


class ItakuraSaito(Divergence):
    """``D_0(v | x) = v/x - log(v/x) - 1`` on the non-zero entries.

    >>> import numpy as np
    >>> ItakuraSaito().loss(np.array([[2.0, 0.0]]), np.array([[2.0, 5.0]]))
    0.0
    """

    kernel = solve.IS_MU
    no_rank_adaptation = (
        "adapt_rank supports beta=1 and beta=2: Itakura-Saito is scored on the non-zero "
        "entries only, so the scale of h (hence a component's relevance) is not tied to the data"
    )

    def __init__(self, beta: float = 0.0):
        super().__init__(beta)

    def observed(self, v: np.ndarray) -> np.ndarray:
        return v > 0

    def normalisers(self, indptr: np.ndarray, values: np.ndarray) -> np.ndarray:
        return np.diff(indptr).astype(np.float64)

    def scratch(self, m: int) -> np.ndarray:
        return NO_SCRATCH

    def batch_context(self, V: np.ndarray) -> Any:
        return (V > 0).astype(np.float64)

    def batch_terms(self, V: np.ndarray, WH: np.ndarray, context: Any):
        inverse = context / WH
        return V * inverse * inverse, inverse

    def mu_step(self, ratio: np.ndarray) -> np.ndarray:
        return np.sqrt(ratio)

    def ard_scale(self, stats: Any, relevance: np.ndarray) -> float:
        return 1.0 / float(relevance.mean())

    def noise_scale(self, mean_loss: float, n_features: int) -> float:
        return 1.0
