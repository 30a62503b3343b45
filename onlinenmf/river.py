"""River adapters: the engine as a river transformer and clusterer.

Thin wrappers: every number is computed by :class:`onlinenmf.engine.OnlineNMF`; this module
only translates river's calling conventions (dicts in, dicts out, ``learn_one`` returning
``None``, narwhals frames for mini-batches, parameters stored verbatim for ``clone``).

- :class:`NMFTransformer`: a ``river.base.MiniBatchTransformer`` (sample -> community weights)
  that is also a ``river.base.Clusterer`` (sample -> dominant community). Its former name,
  ``onlinenmf.river.OnlineNMF``, still imports (with a ``DeprecationWarning``): it was the
  engine's name too.
- :class:`NMFRecommender`: a ``river.reco.base.Ranker`` (user, item -> rating), defined in
  :mod:`onlinenmf.river_reco` and re-exported here.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Hashable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import narwhals as nw
import numpy as np
from river import base, utils

from onlinenmf import engine
from onlinenmf.parameters import ENGINE, RIVER

if TYPE_CHECKING:  # imported on first use (see _LAZY)
    from onlinenmf.river_classifier import NMFClassifier
    from onlinenmf.river_reco import NMFRecommender

__all__ = ["NMFClassifier", "NMFRecommender", "NMFTransformer"]


# ============================================================================ transformer/clusterer
class NMFTransformer(base.MiniBatchTransformer, base.Clusterer):
    """Streaming non-negative matrix factorization as a river transformer and clusterer.

    Each sample ``x`` (a dict feature -> non-negative value, e.g. taxon -> reads) is explained
    as an additive mix of ``n_components`` parts, ``x ~ W h`` with ``W, h >= 0``. The columns of
    ``W`` are the parts ("communities" of taxa, each a distribution over features); ``h`` says
    how much of each part the sample holds. :meth:`transform_one` returns ``h`` as
    ``{component id: weight}``, :meth:`predict_one` the id of the largest weight (NMF as
    clustering, Ding, He & Simon 2005), :meth:`learn_one` updates the model.

    Features may come and go: a feature seen for the first time gets a new row of ``W``; a
    missing feature counts as 0. Values must be non-negative, finite numbers and feature names
    ``str`` or ``int``: anything else raises ``ValueError`` naming the feature and value, and
    the model is left untouched.

    Parameters
    ----------
    n_components
        Number of components (communities) k.
    beta
        The beta-divergence fitted: 1 (generalized Kullback-Leibler, the Poisson likelihood of
        counts), 2 (Frobenius), 0 (Itakura-Saito) or any other number >= 0 (fitted by
        multiplicative updates; see :class:`onlinenmf.OnlineNMF`).
    forget_factor
        Per-sample forgetting of the statistics; the model remembers about
        ``1 / (1 - forget_factor)`` recent samples. None (the default): chosen by the data, a
        short and a long memory side by side (see :mod:`onlinenmf.memories`).
    refresh_every
        Samples between two updates of the dictionary ``W``; None (the default): an automatic
        schedule, often while the model is young, then less often (see
        :mod:`onlinenmf.schedule`).
    l1_h
        L1 penalty on ``h`` (sparser community weights).
    l2_h
        L2 penalty on ``h``.
    l1_w
        L1 penalty on ``W`` (``beta=2`` only).
    l2_w
        L2 penalty on ``W`` (``beta=2`` only).
    refresh_sweeps
        Block-coordinate sweeps over ``W`` per refresh (``beta=2``).
    max_iter
        Maximum sweeps of the inner solver for ``h``.
    tol
        Relative tolerance of the inner solver for ``h``.
    reseed
        Replace dead components by the residual of badly explained recent samples. A re-seeded
        component gets a new id, so its weight appears under a new key.
    buffer_size
        Recent samples kept for re-seeding.
    seed
        Random seed: the initial row of a new feature depends only on (seed, feature name), so
        the model does not depend on the order of a sample's keys. ``None`` draws a seed.
    adapt_rank
        Re-estimate the rank while streaming (relevance pruning, births from residuals): the
        keys of :meth:`transform_one` then change as components retire and are born.
    adapt_sparsity
        Re-estimate the L1 weight on ``h`` (empirical Bayes).
    adapt_forgetting
        Re-estimate the forgetting factor (faster after a detected drift).
    reestimate_every
        Dictionary refreshes between two re-estimations.
    k_min
        Lower bound of the rank under ``adapt_rank``.
    k_max
        Upper bound of the rank under ``adapt_rank`` (``None``: twice ``n_components``).
    prune_patience
        Re-estimations a component's relevance must stay at its bound before it is retired.
    ard_strength
        Weight of the relevance (ARD) penalty on ``h``.
    init
        The first dictionary: ``"samples"`` (diverse samples) or ``"core"`` (their mean profile
        plus residuals, for data whose samples share a common part).
    drift_threshold
        Threshold of the drift detector on the prequential loss (each detection is an event of
        kind ``"drift"`` in ``engine.events``); None: no drift detection.

    Attributes
    ----------
    engine : onlinenmf.engine.OnlineNMF
        The underlying model: ``W``, ``features``, ``component_ids``, ``events``, ``save``.
    centers : dict
        ``{component id: {feature: weight}}``, the non-zero entries of each column of ``W``.

    Examples
    --------
    Two communities over four taxa, learned one sample at a time:

    >>> from onlinenmf.river import NMFTransformer
    >>> stream = [
    ...     {"Bifidobacterium": 90, "Escherichia": 10},
    ...     {"Bacteroides": 70, "Faecalibacterium": 30},
    ... ] * 20
    >>> nmf = NMFTransformer(n_components=2, refresh_every=5, seed=42)
    >>> for x in stream:
    ...     nmf.learn_one(x)
    >>> h = nmf.transform_one({"Bifidobacterium": 80, "Escherichia": 20})
    >>> sorted(h), all(type(weight) is float for weight in h.values())
    ([0, 1], True)
    >>> nmf.predict_one({"Bifidobacterium": 80}) != nmf.predict_one({"Bacteroides": 60})
    True
    >>> dominant = nmf.predict_one({"Bifidobacterium": 80})
    >>> top = max(nmf.centers[dominant].items(), key=lambda item: item[1])
    >>> top[0]
    'Bifidobacterium'

    In a pipeline, the community weights feed a river model:

    >>> from river import linear_model, metrics, preprocessing
    >>> model = NMFTransformer(n_components=2, refresh_every=5, seed=42) | (
    ...     preprocessing.StandardScaler() | linear_model.LogisticRegression())
    >>> metric = metrics.Accuracy()
    >>> for x, y in zip(stream, [True, False] * 20):
    ...     metric.update(y, model.predict_one(x))
    ...     model.learn_one(x, y)
    >>> metric.get() > 0.8  # prequential: the first predictions are guesses
    True

    Mini-batches take any dataframe river accepts (pandas, polars, ...):

    >>> import pandas as pd
    >>> X = pd.DataFrame(stream[:4]).fillna(0)
    >>> nmf.learn_many(X)
    >>> nmf.transform_many(X).shape
    (4, 2)

    Notes
    -----
    Parameters are stored as given (river's ``clone`` reads them back); their types, defaults
    and allowed values are :data:`onlinenmf.parameters.RIVER`, the engine's but ``seed``.
    ``transform_one`` is read-only: it solves ``h`` against the current ``W`` and ignores
    features the model has not learned. ``learn_many`` is exactly a ``learn_one`` loop over the
    rows (up to rounding), with the frame's columns as the sample's keys. The check suite of
    river 0.26.1 passes for every parameter set of ``_unit_test_params``.

    References
    ----------
    [^1]: Lee, D. D. & Seung, H. S. (2001). Algorithms for non-negative matrix factorization.
    [^2]: Mairal, J., Bach, F., Ponce, J. & Sapiro, G. (2010). Online learning for matrix
        factorization and sparse coding. JMLR 11.
    [^3]: Ding, C., He, X. & Simon, H. D. (2005). On the equivalence of nonnegative matrix
        factorization and spectral clustering. SDM.
    """

    def __init__(
        self,
        n_components: int = 10,
        beta: float = 1,
        forget_factor: float | None = None,
        refresh_every: int | None = None,
        l1_h: float = 0.0,
        l2_h: float = 0.0,
        l1_w: float = 0.0,
        l2_w: float = 0.0,
        refresh_sweeps: int = 1,
        max_iter: int = 200,
        tol: float = 1e-6,
        reseed: bool = True,
        buffer_size: int = 128,
        seed: int | None = None,
        adapt_rank: bool = False,
        adapt_sparsity: bool = False,
        adapt_forgetting: bool = False,
        reestimate_every: int = 1,
        k_min: int = 1,
        k_max: int | None = None,
        prune_patience: int = 3,
        ard_strength: float = 0.01,
        init: str = "samples",
        drift_threshold: float | None = engine.DRIFT_THRESHOLD,
    ):
        # Checked, then stored verbatim: river's clone, repr and the check suite read them back
        # by name (their definitions: onlinenmf.parameters.RIVER).
        RIVER.store(self, locals())
        params = ENGINE.read(self)
        if seed is None:
            params["seed"] = random.SystemRandom().getrandbits(32)
        # the engine checks what involves two parameters (k_max >= k_min, ...)
        self._engine = engine.OnlineNMF(**params)

    # ------------------------------------------------------------------ river hooks
    @classmethod
    def _unit_test_params(cls) -> Iterator[dict[str, Any]]:
        # The three divergences; short refresh intervals so that the 200-row check streams
        # go through many dictionary refreshes (and, for the first set, re-seeding).
        yield {"n_components": 3, "refresh_every": 10}  # seed None: runs the seeding check
        yield {"n_components": 2, "beta": 2, "l1_h": 0.1, "refresh_every": 7, "seed": 1}
        yield {"n_components": 4, "beta": 0, "forget_factor": 0.99, "refresh_every": 25,
               "seed": 2}
        yield {"n_components": 4, "adapt_rank": True, "adapt_sparsity": True,
               "adapt_forgetting": True, "refresh_every": 10, "k_max": 6, "seed": 3}

    def _more_tags(self) -> set[str]:
        return {base.tags.POSITIVE_INPUT}

    # ------------------------------------------------------------------ views
    @property
    def engine(self) -> engine.OnlineNMF:
        """The underlying :class:`onlinenmf.engine.OnlineNMF` (shared, not a copy)."""
        return self._engine

    @property
    def centers(self) -> dict[int, dict[Hashable, float]]:
        """``{component id: {feature: weight}}``: the non-zero entries of each column of W."""
        W, features = self._engine.W, self._engine.features
        return {
            component: {features[i]: float(W[i, j]) for i in np.flatnonzero(W[:, j])}
            for j, component in enumerate(self._engine.component_ids)
        }

    # ------------------------------------------------------------------ one sample
    def learn_one(self, x: Mapping[Hashable, Any]) -> None:
        """Learn from one sample (``{}`` counts as an all-zero sample)."""
        self.learn_transform_one(x)

    def learn_transform_one(self, x: Mapping[Hashable, Any]) -> dict[int, float]:
        """Learn from one sample and return its weights, solved before the update (one solve
        instead of the two of ``learn_one`` then ``transform_one``)."""
        if not x:  # the engine refuses empty samples; river pipelines can produce them
            H = self._engine.learn_many(np.zeros((1, 0)), features=[])
            return dict(zip(self._engine.component_ids, map(float, H[0])))
        return self._engine.learn_one(x)

    def transform_one(self, x: Mapping[Hashable, Any]) -> dict[int, float]:
        """Community weights ``{component id: weight}`` (read-only; all 0 before learning)."""
        if not x:
            return dict.fromkeys(self._engine.component_ids, 0.0)
        return self._engine.transform_one(x)

    def predict_one(self, x: Mapping[Hashable, Any]) -> int:
        """The id of the dominant community (the first one on ties, e.g. before learning)."""
        h = self.transform_one(x)
        return max(h, key=h.__getitem__)

    # ------------------------------------------------------------------ mini-batches
    def learn_many(self, X: Any) -> None:
        """Learn from a dataframe (rows = samples, columns = features), as a ``learn_one`` loop.

        Any eager frame narwhals supports (pandas, polars, pyarrow). Missing values are not
        zeros: fill them first (``X.fillna(0)``), a NaN raises ``ValueError``.
        """
        frame = _numeric_frame(X)
        self._engine.learn_many(utils.dataframe.to_numpy(frame), features=list(frame.columns))

    def transform_many(self, X: Any) -> Any:
        """Community weights of every row, as a frame of the input's kind (and index)."""
        frame = _numeric_frame(X)
        H = self._engine.transform_many(utils.dataframe.to_numpy(frame),
                                        features=list(frame.columns))
        # The mapping form: river's array form fails on integer labels with pandas (narwhals
        # builds a schema from them); pandas keeps the int ids, other backends get strings.
        columns = {component: H[:, j] for j, component in enumerate(self._engine.component_ids)}
        return utils.dataframe.to_native_frame(columns, like=frame)


_deprecation_warned = False


#: The other river adapters, each in its own module, imported on first use: the classifier
#: pulls in river's linear models and scipy.stats (0.7 s of start-up a transformer user
#: would pay for nothing).
_LAZY = {"NMFClassifier": "onlinenmf.river_classifier", "NMFRecommender": "onlinenmf.river_reco"}


def __getattr__(name: str) -> Any:
    """The lazily imported adapters, and ``onlinenmf.river.OnlineNMF``, the former name of
    :class:`NMFTransformer` (it was also the engine's name): still importable, with a
    ``DeprecationWarning`` the first time."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    if name == "OnlineNMF":
        global _deprecation_warned
        if not _deprecation_warned:
            _deprecation_warned = True
            warnings.warn("onlinenmf.river.OnlineNMF is renamed NMFTransformer (the engine is "
                          "onlinenmf.OnlineNMF); the old name will be removed",
                          DeprecationWarning, stacklevel=2)
        return NMFTransformer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ============================================================================ helpers
def _numeric_frame(X: Any) -> Any:
    """The narwhals view of a frame whose columns are all numeric (or boolean).

    pandas would silently turn a column of strings such as ``"12"`` into numbers, where
    ``learn_one`` refuses the same value: refuse it here too, naming the column.
    """
    frame = utils.dataframe.into_frame(X)
    for name, dtype in frame.schema.items():
        if dtype.is_numeric() or dtype == nw.Boolean:
            continue
        if dtype == nw.Unknown and frame.implementation.is_pandas_like():
            from pandas.api.types import is_numeric_dtype  # e.g. sparse columns

            if is_numeric_dtype(frame.to_native()[name].dtype):
                continue
        raise ValueError(f"feature {name!r}: column of type {dtype} is not numeric")
    return frame
