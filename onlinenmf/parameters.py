"""Every parameter of the models, declared once: name, type, default, allowed values, doc line.

:class:`onlinenmf.OnlineNMF` (:data:`ENGINE`), its river adapter
:class:`onlinenmf.river.NMFTransformer` (:data:`RIVER`), :class:`onlinenmf.reco.RecoNMF`
(:data:`RECO`) and :class:`onlinenmf.tracking.Tracker` (:data:`TRACKER`) store their parameters
from these tables and check them here, and ``onlinenmf consume`` makes a flag of every entry
(``consumers/options.py``: the flag's type, default and help are the entry's). A parameter two
classes share is one :class:`Parameter` (``replace`` states what differs, e.g. RecoNMF's
``max_iter`` default), so a check or a doc line is written once.

The rules, as scikit-learn's ``_parameter_constraints``: parameters are stored verbatim (what
the caller gave is what the attribute holds and what a snapshot records); values in force that
the model derives or re-estimates are kept apart (``OnlineNMF.rank_bounds``,
``OnlineNMF.hyperparameters``); a bad value raises a one-line ``ValueError`` naming the
parameter, the value and the allowed range; ``True``/``False`` are not numbers here (Python
counts ``True`` as the integer 1, which would make ``n_components=True`` a rank-1 model).

>>> ENGINE["forget_factor"].check(1.5)
Traceback (most recent call last):
...
ValueError: forget_factor must be a number in (0, 1] or None (chosen by the data), got 1.5
>>> ENGINE["n_components"].check(True)
Traceback (most recent call last):
...
ValueError: n_components must be a positive integer, got True
>>> RECO["max_iter"].default, ENGINE["max_iter"].default
(10, 200)
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np

__all__ = ["Parameter", "Table", "ENGINE", "RIVER", "CLASSIFIER", "RECO", "RIVER_RECO", "TRACKER",
           "TABLES"]


@dataclasses.dataclass(frozen=True)
class Parameter:
    """One parameter: its name, type, default, allowed values and one line of documentation.

    Attributes
    ----------
    name : str
        The keyword argument (and attribute) name.
    type : type
        ``int``, ``float``, ``bool``, ``str`` (one of ``options``) or ``tuple`` (a range
        ``(low, high)`` of finite numbers, low < high).
    default
        The value a caller who does not give one gets.
    doc : str
        One line: what it does (the CLI's help text).
    low, high : float, optional
        Bounds of a number (``None``: unbounded on that side); a float is always finite.
    low_open, high_open : bool
        The bound itself is excluded.
    options : tuple of str
        The allowed strings of a ``str`` parameter.
    none : str, optional
        What ``None`` means, when it is allowed (``None``: it is not).
    """

    name: str
    type: type
    default: Any
    doc: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    options: tuple[str, ...] = ()
    none: str | None = None

    def replace(self, **changes: Any) -> Parameter:
        """This parameter with some fields changed (one class's default, say)."""
        return dataclasses.replace(self, **changes)

    def describe(self) -> str:
        """The allowed values, in words (``"a positive integer"``, ``"'cd' or 'sgd'"``)."""
        text = self._describe_kind()
        return text if self.none is None else f"{text} or None ({self.none})"

    def _describe_kind(self) -> str:
        if self.type is bool:
            return "True or False"
        if self.type is str:
            quoted = [repr(option) for option in self.options]
            return " or ".join(quoted) if len(quoted) < 3 else (
                ", ".join(quoted[:-1]) + " or " + quoted[-1])
        if self.type is tuple:
            return "a pair (low, high) of finite numbers with low < high"
        if self.type is int:
            if self.low is None:
                return "an integer"
            return "a positive integer" if self.low == 1 else f"an integer >= {self.low:g}"
        if self.low is not None and self.high is not None:
            return (f"a number in {'(' if self.low_open else '['}{self.low:g}, "
                    f"{self.high:g}{')' if self.high_open else ']'}")
        if self.low is not None:
            return f"a finite number {'>' if self.low_open else '>='} {self.low:g}"
        return "a finite number"

    def check(self, value: Any) -> None:
        """Raise a one-line ``ValueError`` unless ``value`` is allowed."""
        if not self.allows(value):
            raise ValueError(f"{self.name} must be {self.describe()}, got {value!r}")

    def allows(self, value: Any) -> bool:
        """Whether ``value`` is allowed (bools are never numbers, numbers never bools)."""
        if value is None:
            return self.none is not None
        if self.type is bool:
            return isinstance(value, bool | np.bool_)
        if self.type is str:
            return isinstance(value, str) and value in self.options
        if self.type is tuple:
            return _is_range(value)
        if isinstance(value, bool | np.bool_):
            return False
        kind = numbers.Integral if self.type is int else numbers.Real
        if not isinstance(value, kind) or not math.isfinite(value):
            return False
        return self._in_bounds(value)

    def _in_bounds(self, value: float) -> bool:
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)


def _is_range(value: Any) -> bool:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        return False
    bounds = list(value)
    if len(bounds) != 2 or not all(
            isinstance(v, numbers.Real) and not isinstance(v, bool | np.bool_) for v in bounds):
        return False
    low, high = (float(v) for v in bounds)
    return math.isfinite(low) and math.isfinite(high) and low < high


class Table(Mapping[str, Parameter]):
    """The parameters of one class, in the order of its signature.

    >>> table = Table("Example", [Parameter("k", int, 3, "a rank", low=1)])
    >>> class Example:
    ...     def __init__(self, k=3):
    ...         table.store(self, locals())
    >>> Example(k=4).k, table.read(Example()), table.defaults()
    (4, {'k': 3}, {'k': 3})
    >>> Example(k=0)
    Traceback (most recent call last):
    ...
    ValueError: k must be a positive integer, got 0
    """

    def __init__(self, owner: str, parameters: Iterable[Parameter]):
        #: The class these are the parameters of.
        self.owner = owner
        self._parameters = {parameter.name: parameter for parameter in parameters}

    def __getitem__(self, name: str) -> Parameter:
        return self._parameters[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._parameters)

    def __len__(self) -> int:
        return len(self._parameters)

    def __repr__(self) -> str:
        return f"Table({self.owner!r}, {list(self._parameters)})"

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._parameters)

    def defaults(self) -> dict[str, Any]:
        """``{name: default}``."""
        return {name: parameter.default for name, parameter in self._parameters.items()}

    def replace(self, owner: str, **changes: Mapping[str, Any]) -> Table:
        """A table for another class: the same parameters, some with fields changed."""
        unknown = set(changes) - set(self._parameters)
        if unknown:
            raise KeyError(f"not parameters of {self.owner}: {sorted(unknown)}")
        return Table(owner, (parameter.replace(**changes.get(name, {}))
                             for name, parameter in self._parameters.items()))

    def check(self, values: Mapping[str, Any]) -> None:
        """Check each parameter's value (the first bad one raises)."""
        for name, parameter in self._parameters.items():
            parameter.check(values[name])

    def store(self, owner: object, given: Mapping[str, Any]) -> None:
        """Check the constructor's arguments (its ``locals()``) and set them verbatim as
        attributes of ``owner``; names not in the table (``self``, ``model``) are left out."""
        values = {name: given[name] for name in self._parameters}
        self.check(values)
        for name, value in values.items():
            setattr(owner, name, value)

    def read(self, owner: object) -> dict[str, Any]:
        """``{name: owner.name}``: the parameters as stored."""
        return {name: getattr(owner, name) for name in self._parameters}


# ----------------------------------------------------------------------------- shared
N_COMPONENTS = Parameter("n_components", int, 10, "number of components k (the starting rank)",
                         low=1)
FORGET_FACTOR = Parameter(
    "forget_factor", float, None, "forgetting of the statistics: a sample (RecoNMF: an event) "
    "of age a weighs forget_factor**a, a memory of about 1 / (1 - forget_factor)",
    low=0, high=1, low_open=True, none="chosen by the data")
REFRESH_EVERY = Parameter("refresh_every", int, None, "samples (RecoNMF: events) between two "
                          "refreshes of the dictionary (RecoNMF: of the items)", low=1,
                          none="the automatic schedule")
MAX_ITER = Parameter("max_iter", int, 200, "most sweeps of the inner solver per solve", low=1)
TOL = Parameter("tol", float, 1e-6, "relative stopping tolerance of the inner solver", low=0)
SEED = Parameter("seed", int, 0, "seeds the initial rows: a row depends only on (seed, name)")


def _penalty(name: str, doc: str) -> Parameter:
    return Parameter(name, float, 0.0, doc, low=0)


def _count(name: str, default: int, doc: str, low: int = 1) -> Parameter:
    return Parameter(name, int, default, doc, low=low)


def _flag(name: str, default: bool, doc: str) -> Parameter:
    return Parameter(name, bool, default, doc)


# ----------------------------------------------------------------------------- the engine
#: :class:`onlinenmf.OnlineNMF`.
ENGINE = Table("OnlineNMF", [
    N_COMPONENTS,
    Parameter("beta", float, 1, "the beta-divergence fitted (2 Frobenius, 1 KL, 0 Itakura-Saito, "
              "any other >= 0 by multiplicative updates)", low=0),
    FORGET_FACTOR,
    REFRESH_EVERY,
    _penalty("l1_h", "L1 penalty on h"),
    _penalty("l2_h", "L2 penalty on h"),
    _penalty("l1_w", "L1 penalty on W per remembered sample (beta = 2 only)"),
    _penalty("l2_w", "L2 penalty on W per remembered sample (beta = 2 only)"),
    _count("refresh_sweeps", 1, "block-coordinate sweeps over W per refresh (beta = 2)"),
    MAX_ITER,
    TOL,
    _flag("reseed", True, "re-seed dead components from the residuals of bad recent samples"),
    _count("buffer_size", 128, "recent samples kept for re-seeding"),
    SEED,
    _flag("adapt_rank", False, "re-estimate the rank while streaming (ARD pruning, births)"),
    _flag("adapt_sparsity", False, "re-estimate the L1 weight on h (empirical Bayes)"),
    _flag("adapt_forgetting", False, "re-estimate the forgetting factor (drift detection)"),
    _count("reestimate_every", 1, "dictionary refreshes between two re-estimations"),
    _count("k_min", 1, "lower bound of the rank under adapt_rank"),
    Parameter("k_max", int, None, "upper bound of the rank under adapt_rank", low=1,
              none="twice the starting rank"),
    _count("prune_patience", 3, "re-estimations a component stays irrelevant before it retires"),
    Parameter("ard_strength", float, 1e-2, "weight of the relevance (ARD) penalty on h", low=0),
    Parameter("init", str, "samples", "the first dictionary: diverse samples, or their mean "
              "profile plus residuals", options=("samples", "core")),
    Parameter("drift_threshold", float, 4.5, "threshold of the CUSUM drift detector on the "
              "prequential loss", low=0, low_open=True, none="no drift detection"),
])

#: :class:`onlinenmf.river.NMFTransformer`: the engine's, with river's seed (None draws one).
RIVER = ENGINE.replace("NMFTransformer", seed={"default": None, "none": "draw a seed"})

#: :class:`onlinenmf.river.NMFClassifier`: the engine's solver and memory, per class or with
#: the labels as features.
CLASSIFIER = Table("NMFClassifier", [
    N_COMPONENTS.replace(doc="communities per class (class-wise) or in all (label-augmented)"),
    Parameter("formulation", str, "class-wise", "one model per class, or one model with the "
              "label as a feature", options=("class-wise", "label-augmented")),
    ENGINE["beta"],
    FORGET_FACTOR.replace(default=0.998),
    REFRESH_EVERY.replace(default=20),
    ENGINE["l1_h"],
    ENGINE["l2_h"],
    MAX_ITER,
    TOL,
    Parameter("label_weight", float, 20.0, "label-augmented: the label feature's value, as a "
              "multiple of the sum of the sample's values", low=0, low_open=True),
    RIVER["seed"],
])


# ----------------------------------------------------------------------------- recommender
#: :class:`onlinenmf.reco.RecoNMF`.
RECO = Table("RecoNMF", [
    N_COMPONENTS,
    Parameter("feedback", str, "explicit", "explicit ratings (masked squared loss) or implicit "
              "counts (KL NMF, zeros observed)", options=("explicit", "implicit")),
    Parameter("rating_range", tuple, None, "(low, high): explicit values outside are refused, "
              "predictions clipped", none="no bound"),
    _flag("biases", True, "explicit: model mu + b_u + b_i besides the factors"),
    Parameter("solver", str, "cd", "explicit: per-event exact solves (cd) or one projected "
              "gradient step (sgd)", options=("cd", "sgd")),
    _count("history", 50, "observed entries remembered per user"),
    Parameter("l2_bias", float, 2.0, "ridge penalty of the biases", low=0),
    Parameter("l2_factors", float, None, "ridge penalty of the factors", low=0,
              none="explicit: 2.5 x the ratings' running std; implicit: 0"),
    FORGET_FACTOR.replace(default=1.0, none=None),
    REFRESH_EVERY.replace(none="explicit 1, implicit 100"),
    Parameter("learning_rate", float, 0.01, "sgd solver: the step on the factors", low=0),
    MAX_ITER.replace(default=10),
    TOL.replace(default=1e-4),
    Parameter("implicit_transform", str, "log1p", "implicit: the transform of the values",
              options=("log1p", "binary", "none")),
    Parameter("recency", float, 0.7, "implicit: an item weighs recency**a in a user's row, a "
              "the user's events since it", low=0, high=1, low_open=True),
    Parameter("cooccurrence", float, 10.0, "implicit: weight of the co-occurrence score "
              "(items bought next to the user's last ones) beside the factors' (0: factors only)",
              low=0),
    Parameter("basket_recency", float, 0.1, "implicit: two items a user bought a events apart "
              "co-occur with weight basket_recency**a", low=0, high=1, low_open=True),
    Parameter("init_scale", float, 0.1, "initial item factors are init_scale * U(0.5, 1.5)",
              low=0),
    SEED,
])

#: :class:`onlinenmf.river.NMFRecommender`: RecoNMF's, with river's seed (None: seed 0).
RIVER_RECO = RECO.replace("NMFRecommender", seed={"default": None, "none": "seed 0"})


# ----------------------------------------------------------------------------- tracker
def _positive(name: str, default: float | None, doc: str, none: str | None) -> Parameter:
    return Parameter(name, float, default, doc, low=0, low_open=True, none=none)


def _share(name: str, default: float, doc: str) -> Parameter:
    return Parameter(name, float, default, doc, low=0, high=1, low_open=True, high_open=True)


#: :class:`onlinenmf.tracking.Tracker`.
TRACKER = Table("Tracker", [
    _positive("window", None, "growth rates over the last this many time units of a subject",
              none="all it holds"),
    _count("min_points", 3, "fewest samples with a positive abundance for a growth rate", low=2),
    Parameter("growth_of", str, "weights", "growth of the weights h (scale with depth) or of the "
              "composition h / sum h", options=("weights", "composition")),
    _share("detection", 1e-3, "abundances below this (x the mean total, or as a share) are "
           "floored before the log"),
    _share("presence", 0.05, "share at which a community appears in a subject (in each of its "
           "last hold samples)"),
    _share("absence", 0.025, "share under which a community vanishes from a subject (in each of "
           "its last hold samples; below presence)"),
    _count("hold", 2, "samples in a row a change of presence must last to make an event"),
    _positive("anomaly_z", 3.5, "robust z-score of a sample's loss, against its subject's "
              "previous ones, that marks it an anomaly", none="no marks"),
    _count("max_history", 128, "samples kept per subject (oldest dropped)"),
    _count("max_subjects", 100_000, "subjects kept (least recently seen evicted)"),
    _count("max_history_bytes", 64 * 2**20, "memory budget of the subjects' histories, in bytes "
           "(least recently seen evicted past it)"),
    _positive("ttl", None, "time units after its latest sample that a subject is kept",
              none="no limit"),
    _count("max_events", 10_000, "appear/vanish/birth/retire events kept (oldest dropped)"),
    _positive("bin_width", None, "default time-bin width of population()",
              none="10 bins over the range seen"),
    _positive("time_unit", 86400.0, "seconds per time unit when times are timestamps",
              none=None),
    _flag("warm_start", True, "start each subject's solve at its previous h"),
    _flag("reproject", False, "keep the samples and re-solve a subject's history against the "
          "current dictionary before it is read"),
])

#: Every table, by the name of its class.
TABLES = {table.owner: table for table in (ENGINE, RIVER, CLASSIFIER, RECO, RIVER_RECO,
                                            TRACKER)}
