"""onlinenmf: streaming non-negative matrix factorization.

>>> from onlinenmf import OnlineNMF
>>> model = OnlineNMF(n_components=3, beta=1, seed=0)
>>> h = model.learn_one({"Bifidobacterium": 120, "Bacteroides": 4})
>>> sorted(h) == model.component_ids
True
"""

from onlinenmf._jit import COMPILED
from onlinenmf.divergence import beta_divergence
from onlinenmf.engine import OnlineNMF
from onlinenmf.snapshot import SnapshotError
from onlinenmf.tracking import Tracker

__all__ = ["COMPILED", "OnlineNMF", "SnapshotError", "Tracker", "beta_divergence"]
__version__ = "0.1.0"
