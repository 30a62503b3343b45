"""The divergences the engine fits, one object per beta (see :mod:`onlinenmf.divergences.base`).

>>> for_beta(1)
KullbackLeibler(beta=1)
>>> for_beta(1.5)
GeneralBeta(beta=1.5)
"""

from __future__ import annotations

from onlinenmf.divergences.base import Divergence, Solver, Totals
from onlinenmf.divergences.frobenius import Frobenius
from onlinenmf.divergences.general import GeneralBeta
from onlinenmf.divergences.itakura_saito import ItakuraSaito
from onlinenmf.divergences.kullback_leibler import KullbackLeibler

#: The divergences with an exact solver of their own; any other beta >= 0 is a GeneralBeta.
EXACT: dict[float, type[Divergence]] = {2.0: Frobenius, 1.0: KullbackLeibler, 0.0: ItakuraSaito}


def for_beta(beta: float) -> Divergence:
    """The divergence object for ``beta`` (a finite number >= 0, checked by the caller)."""
    return EXACT.get(float(beta), GeneralBeta)(float(beta))


__all__ = ["Divergence", "Frobenius", "GeneralBeta", "ItakuraSaito", "KullbackLeibler",
           "Solver", "Totals", "for_beta"]
