"""Supervised NMF on a stream as a river classifier: communities that tell classes apart.

:class:`NMFClassifier` learns communities from labelled samples and predicts the class of a new
sample from its weights on them. The numbers come from :class:`onlinenmf.engine.OnlineNMF`
(one model per class, or one model with label features); the pooled dictionary a sample is
explained by is an engine built with :meth:`onlinenmf.engine.OnlineNMF.from_dictionary`; the
calibrated head is river's ``StandardScaler`` and ``SoftmaxRegression``.
"""

from __future__ import annotations

import collections
import functools
import math
import random
from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from river import base, linear_model, preprocessing, stats
from scipy import stats as scipy_stats

from onlinenmf import engine, snapshot
from onlinenmf.parameters import CLASSIFIER
from onlinenmf.validation import check_feature_name, parse_sample

__all__ = ["ClassComponent", "NMFClassifier"]

#: The two formulations (see :class:`NMFClassifier`).
FORMULATIONS = CLASSIFIER["formulation"].options
#: Label features of the label-augmented formulation are named this prefix + the class's rank
#: of first appearance; a sample may not use the prefix (a NUL first: no taxon starts with it).
LABEL_PREFIX = "\x00label:"
#: The head's constant feature (added after scaling, which would map a constant to 0).
BIAS = "bias"
#: Coverage of the intervals of :meth:`NMFClassifier.class_components`.
CONFIDENCE = 0.95


@dataclass(frozen=True)
class ClassComponent:
    """A community of one class, and how strongly its weight separates that class.

    ``weight`` is the community's share of a sample's activations, ``h_j / sum(h)``, solved
    against the pooled dictionary before the sample was learned. ``effect`` is the standardized
    difference of its mean in the class and in the other classes (Cohen's d, over the average
    of the two variances), ``interval`` its 95 % Welch interval (the mean difference's Welch
    t interval over the same scale). NaN until each side has two samples.
    """

    component: int
    features: list[tuple[Hashable, float]]
    effect: float
    interval: tuple[float, float]
    mean_in: float
    mean_out: float
    n_in: int
    n_out: int


class NMFClassifier(base.Classifier):
    """Supervised online NMF: class-specific communities and a calibrated class for each sample.

    Each sample ``x`` (a dict feature -> non-negative value, e.g. taxon -> reads or their
    ``log1p``) is explained by non-negative communities, ``x ~ W h``; the class is predicted
    from the weights ``h``, and :meth:`class_components` says which communities belong to which
    class and how strongly each separates the classes. Two formulations:

    - ``"class-wise"`` (the default; Cai, Gu & Kenney 2017): each class has its own model of
      ``n_components`` communities, learned from that class's samples only. A sample is
      explained by the pool of all classes' communities, side by side; its weights on them,
      as shares of the total, plus each class's share of the reconstruction, feed the head.
    - ``"label-augmented"``: one model of ``n_components`` communities learns each sample
      with one extra feature for its class, worth ``label_weight`` times the sample's total;
      a new sample is solved without the label features, and the labels read back from
      ``W h`` (shares) feed the head with the weights.

    The head is a softmax regression on the standardized features (river's
    ``StandardScaler`` and ``SoftmaxRegression``), learned prequentially from the features a
    sample had *before* it was learned, so that the probabilities are calibrated for new
    samples. Classes may appear at any time; a class never seen gets no key, hence no mass.

    Parameters
    ----------
    n_components
        Communities per class (``"class-wise"``: the pooled dictionary has ``n_components``
        columns per class seen) or in all (``"label-augmented"``).
    formulation
        ``"class-wise"`` or ``"label-augmented"``.
    beta
        The beta-divergence of the factorization (1: generalized Kullback-Leibler).
    forget_factor
        Per-sample forgetting of each model's statistics (``1 / (1 - forget_factor)``
        samples remembered).
    refresh_every
        Samples (of the class, for ``"class-wise"``) between two dictionary refreshes.
    l1_h
        L1 penalty on ``h``.
    l2_h
        L2 penalty on ``h``.
    max_iter
        Maximum sweeps of the inner solver for ``h``.
    tol
        Relative tolerance of the inner solver for ``h``.
    label_weight
        ``"label-augmented"`` only: the label feature's value, as a multiple of the sum of the
        sample's values.
    seed
        Seeds the initial rows of new features (each depends only on the seed and the name);
        ``None`` draws one.

    Attributes
    ----------
    classes : list
        The classes seen, in order of first appearance.

    Examples
    --------
    Two classes, each with communities of its own over a shared background:

    >>> import random
    >>> from onlinenmf.river import NMFClassifier
    >>> rng = random.Random(0)
    >>> def sample(label):
    ...     own = ["Bacteroides", "Parabacteroides"] if label == "vaginal" else [
    ...         "Enterococcus", "Klebsiella"]
    ...     x = {taxon: float(rng.randint(20, 60)) for taxon in own}
    ...     x["Bifidobacterium"] = float(rng.randint(20, 60))
    ...     return x
    >>> stream = [(sample(y), y) for y in ["vaginal", "cesarean"] * 60]
    >>> model = NMFClassifier(n_components=2, refresh_every=10, seed=1)
    >>> right = 0
    >>> for x, y in stream:
    ...     right += model.predict_one(x) == y  # prequential: predict, then learn
    ...     model.learn_one(x, y)
    >>> right / len(stream) > 0.9
    True
    >>> proba = model.predict_proba_one({"Enterococcus": 40.0, "Bifidobacterium": 30.0})
    >>> sorted(proba), proba["cesarean"] > 0.8
    (['cesarean', 'vaginal'], True)

    Per class, its communities with their top features and effect sizes:

    >>> top = model.class_components(top=3)["cesarean"][0]
    >>> top.features[0][0] in {"Enterococcus", "Klebsiella"}
    True
    >>> top.effect > 1 and top.interval[0] > 0
    True

    Notes
    -----
    Per sample, ``"class-wise"`` solves ``h`` against the pooled dictionary (for the head) and
    against the class's own (to learn it); the pooled dictionary is rebuilt when a class
    model refreshes. The effect sizes treat samples as independent: repeated samples of one
    subject make the intervals too narrow.

    References
    ----------
    [^1]: Cai, Y., Gu, H. & Kenney, T. (2017). Learning microbial community structures with
        supervised and unsupervised non-negative matrix factorization. Microbiome 5:110.
    """

    def __init__(
        self,
        n_components: int = 10,
        formulation: str = "class-wise",
        beta: float = 1,
        forget_factor: float = 0.998,
        refresh_every: int = 20,
        l1_h: float = 0.0,
        l2_h: float = 0.0,
        max_iter: int = 200,
        tol: float = 1e-6,
        label_weight: float = 20.0,
        seed: int | None = None,
    ):
        # Checked, then stored verbatim: river's clone, repr and the check suite read them back
        # by name (their definitions: onlinenmf.parameters.CLASSIFIER).
        CLASSIFIER.store(self, locals())
        self._solver = {"beta": beta, "l1_h": l1_h, "l2_h": l2_h, "max_iter": max_iter,
                        "tol": tol}
        self._engine_params = {
            **self._solver, "n_components": n_components, "forget_factor": forget_factor,
            "refresh_every": refresh_every,
            "seed": random.SystemRandom().getrandbits(32) if seed is None else seed,
        }
        self._new_model()  # the engine checks what involves two parameters, at construction
        self.classes: list = []
        self._models: dict[Any, engine.OnlineNMF] = {}  # class-wise: one model per class
        self._model = self._new_model() if formulation == "label-augmented" else None
        self._pool: engine.OnlineNMF | None = None  # the dictionary samples are solved against
        self._pool_key: tuple = ()
        self._pool_ids: list = []  # the community behind each column of the pool
        self._readback = np.zeros((0, 0))  # label-augmented: label rows of W, one per class
        self._scaler = preprocessing.StandardScaler()
        self._head = linear_model.SoftmaxRegression()
        self._moments: dict[tuple, stats.Var] = {}  # (community, class) -> its share's moments

    # ------------------------------------------------------------------ river hooks
    @classmethod
    def _unit_test_params(cls) -> Iterator[dict[str, Any]]:
        # Both formulations, two divergences; short refresh intervals so that the 200-row
        # check streams rebuild the pooled dictionary many times.
        yield {"n_components": 2, "refresh_every": 10}  # seed None: runs the seeding check
        yield {"n_components": 3, "formulation": "label-augmented", "refresh_every": 7,
               "seed": 1}
        yield {"n_components": 2, "beta": 2, "l1_h": 0.1, "refresh_every": 5, "seed": 2}

    def _more_tags(self) -> set[str]:
        return {base.tags.POSITIVE_INPUT}

    @property
    def _multiclass(self) -> bool:
        return True

    # ------------------------------------------------------------------ learning
    def learn_one(self, x: Mapping[Hashable, Any], y: Any) -> None:
        """Learn a labelled sample. An invalid sample or label raises ``ValueError`` and leaves
        the model as it was; ``{}`` teaches the head only (it has no community weights)."""
        self._check_label(y)
        self._check_sample(x)
        features, shares = self._features(x)
        self._learn_communities(x, y)
        for component, share in shares.items():
            self._moments.setdefault((component, y), stats.Var()).update(share)
        self._scaler.learn_one(features)
        self._head.learn_one(self._scaled(features), y)
        if y not in self.classes:
            self.classes.append(y)
        self._refresh_pool()

    def _learn_communities(self, x: Mapping, y: Any) -> None:
        if not x:
            return
        if self._model is None:  # class-wise: the class's own model (a new class: a new one)
            model = self._models.get(y) or self._new_model()
            model.learn_one(x)
            self._models.setdefault(y, model)
            return
        labelled = dict(x)
        rank = self.classes.index(y) if y in self.classes else len(self.classes)
        labelled[f"{LABEL_PREFIX}{rank}"] = self.label_weight * float(sum(x.values()))
        self._model.learn_one(labelled)

    def _new_model(self) -> engine.OnlineNMF:
        return engine.OnlineNMF(**self._engine_params)

    # ------------------------------------------------------------------ prediction
    def predict_proba_one(self, x: Mapping[Hashable, Any]) -> dict[Any, float]:
        """Class probabilities ``{class: p}`` over the classes seen (``{}`` before any)."""
        if self._pool is None:
            self._check_sample(x)
        if not self.classes:
            return {}
        features, _ = self._features(x)
        proba = self._head.predict_proba_one(self._scaled(features))
        return {label: float(proba.get(label, 0.0)) for label in self.classes}

    def _scaled(self, features: dict) -> dict:
        scaled = self._scaler.transform_one(features)
        scaled[BIAS] = 1.0
        return scaled

    def _features(self, x: Mapping) -> tuple[dict, dict]:
        """The head's features and each community's share of the sample's activations, solved
        against the pool as it is (before the sample is learned)."""
        if self._pool is None or not x:
            h = np.zeros(len(self._pool_ids))
        else:
            h = np.fromiter(self._pool.transform_one(x).values(), float, len(self._pool_ids))
        total = float(h.sum())
        share = h / total if total > 0 else h
        shares = dict(zip(self._pool_ids, map(float, share)))
        features: dict[Hashable, float] = {("community", key): value
                                           for key, value in shares.items()}
        for label, value in zip(self.classes, self._class_shares(share)):
            features[("class", label)] = value
        return features, shares

    def _class_shares(self, share: np.ndarray) -> list[float]:
        """Each class's part of the sample: its communities' shares (class-wise) or its label
        read back from ``W h`` (label-augmented), as shares."""
        if self._model is None:
            totals = dict.fromkeys(self.classes, 0.0)
            for (label, _), value in zip(self._pool_ids, share):
                totals[label] += float(value)
            return list(totals.values())
        if not self._readback.size:
            return [0.0] * len(self.classes)
        read = self._readback @ share
        total = float(read.sum())
        return [float(v) / total if total > 0 else 0.0 for v in read]

    # ------------------------------------------------------------------ the pooled dictionary
    def _refresh_pool(self) -> None:
        """Rebuild the pool when a model's dictionary changed (a refresh), not for new rows."""
        models = self._models if self._model is None else {None: self._model}
        key = tuple((label, model.model_version) for label, model in models.items())
        if key == self._pool_key:
            return
        self._pool_key = key
        if self._model is None:
            W, names, ids = self._class_wise_pool()
        else:
            W, names, ids = self._augmented_pool()
        self._pool = engine.OnlineNMF.from_dictionary(W, names, **self._solver)
        self._pool_ids = ids
        live = set(ids)
        self._moments = {key: value for key, value in self._moments.items()
                         if key[0] in live}  # retired communities: forgotten

    def _class_wise_pool(self) -> tuple[np.ndarray, list, list]:
        """Every class's columns side by side over the union of their features (a feature a
        class never had reads 0 in its columns)."""
        names = list(dict.fromkeys(name for model in self._models.values()
                                   for name in model.features))
        row = {name: i for i, name in enumerate(names)}
        blocks, ids = [], []
        for label, model in self._models.items():
            block = np.zeros((len(names), len(model.component_ids)))
            block[[row[name] for name in model.features]] = model.W
            blocks.append(block)
            ids.extend((label, component) for component in model.component_ids)
        return np.hstack(blocks), names, ids

    def _augmented_pool(self) -> tuple[np.ndarray, list, list]:
        """The model's W without the label rows (solved against), the label rows kept apart
        (read back)."""
        model = self._model
        names = model.features
        is_label = np.array([_is_label(name) for name in names])
        label_rows = {name: i for i, name in enumerate(names) if _is_label(name)}
        self._readback = np.array([
            model.W[label_rows[f"{LABEL_PREFIX}{rank}"]]
            if f"{LABEL_PREFIX}{rank}" in label_rows else np.zeros(model.W.shape[1])
            for rank in range(len(self.classes))
        ]).reshape(len(self.classes), model.W.shape[1])
        keep = np.flatnonzero(~is_label)
        return model.W[keep], [names[i] for i in keep], list(model.component_ids)

    # ------------------------------------------------------------------ interpretation
    def class_components(self, top: int = 10) -> dict[Any, list[ClassComponent]]:
        """Per class, its communities (most separating first) with their ``top`` features.

        A class's communities are its own model's (``"class-wise"``) or those whose label
        row is largest for it (``"label-augmented"``). Each comes with the effect size of its
        weight, this class against the others, and a 95 % interval (see
        :class:`ClassComponent`).
        """
        result: dict[Any, list[ClassComponent]] = {label: [] for label in self.classes}
        for label, component, features in self._communities(top):
            inside, outside = self._split_moments(component, label)
            effect, low, high = _effect_size(inside, outside)
            result[label].append(ClassComponent(
                component=component[-1] if isinstance(component, tuple) else component,
                features=features, effect=effect, interval=(low, high),
                mean_in=inside.mean.get(), mean_out=outside.mean.get(),
                n_in=int(inside.n), n_out=int(outside.n)))
        for communities in result.values():
            communities.sort(key=lambda c: -c.effect if math.isfinite(c.effect) else math.inf)
        return result

    def _communities(self, top: int) -> Iterator[tuple[Any, Hashable, list]]:
        """(class, pooled key, top features) of every community of the models."""
        if self._model is None:
            for label, model in self._models.items():
                for component, features in model.components(top).items():
                    yield label, (label, component), features
            return
        W, names = self._model.W, self._model.features
        if not self.classes:
            return
        for j, component in enumerate(self._model.component_ids):
            label = self.classes[int(np.argmax(self._readback[:, j]))] if (
                self._readback.shape[1] == W.shape[1]) else self.classes[0]
            order = [i for i in np.argsort(-W[:, j], kind="stable") if not _is_label(names[i])]
            yield label, component, [(names[i], float(W[i, j])) for i in order[:top]]

    def _split_moments(self, component: Hashable, label: Any) -> tuple[stats.Var, stats.Var]:
        inside = self._moments.get((component, label), stats.Var())
        outside = stats.Var()
        for other in self.classes:
            if other != label and (component, other) in self._moments:
                outside += self._moments[(component, other)]
        return inside, outside

    # ------------------------------------------------------------------ persistence
    def to_bytes(self) -> bytes:
        """The classifier's whole state as snapshot bytes (:mod:`onlinenmf.snapshot`: npz +
        JSON, checksummed, no pickle): :meth:`from_bytes` gives back a classifier that goes on
        bit for bit as this one would. Classes and features must be str, int, float, bool or
        tuples of them (a ValueError otherwise)."""
        arrays, meta = self._state()
        return snapshot.dumps(arrays, meta)

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "<bytes>") -> NMFClassifier:
        """The classifier :meth:`to_bytes` wrote (a ``SnapshotError`` if unusable)."""
        arrays, meta = snapshot.loads(data, source)
        if meta.get("class") != cls.__name__:
            raise snapshot.SnapshotError(f"{source}: holds a {meta.get('class')}, not an "
                                         f"{cls.__name__}")
        model = cls(**{**meta["params"], "seed": meta["engine_seed"]})
        model.seed = meta["params"]["seed"]  # as given (None: the seed drawn is engine_seed)
        model._restore(arrays, meta, source)
        return model

    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """(arrays, JSON metadata): every number in arrays (exact, NaN-safe), keys in JSON."""
        labels = list(self._models)
        arrays: dict[str, np.ndarray] = {
            f"model_{i}": _blob(self._models[label].to_bytes()) for i, label in enumerate(labels)}
        if self._model is not None:
            arrays["model"] = _blob(self._model.to_bytes())
        if self._pool is not None:
            arrays["pool"] = _blob(self._pool.to_bytes())
        arrays["readback"] = np.asarray(self._readback, dtype=np.float64)
        scaler = self._scaler
        head = self._head
        meta: dict[str, Any] = {
            "class": type(self).__name__,
            "layout": 1,
            "params": CLASSIFIER.read(self),
            "engine_seed": self._engine_params["seed"],
            "classes": _keys(self.classes),
            "models": _keys(labels),
            "pool_key": _keys(list(self._pool_key)),
            "pool_ids": _keys(self._pool_ids),
            "scaler": {name: _keys(list(getattr(scaler, name))) for name in _SCALER},
            "head": {"labels": _keys(list(head.weights)),
                     "features": [_keys(list(w)) for w in head.weights.values()],
                     "optimizers": _keys(list(head.optimizers))},
            "moments": _keys(list(self._moments)),
        }
        for name in _SCALER:
            arrays[f"scaler_{name}"] = np.fromiter(getattr(scaler, name).values(), np.float64)
        for i, weights in enumerate(head.weights.values()):
            arrays[f"head_{i}"] = np.fromiter(weights.values(), np.float64)
        arrays["head_iterations"] = np.fromiter(
            (o.n_iterations for o in head.optimizers.values()), np.int64)
        moments = list(self._moments.values())
        arrays["moments"] = np.array([[v.mean.n, v.mean._mean, v._S] for v in moments],
                                     dtype=np.float64).reshape(len(moments), 3)
        return arrays, meta

    def _restore(self, arrays: dict[str, np.ndarray], meta: dict[str, Any], source: str) -> None:
        def engine_from(name: str) -> engine.OnlineNMF:
            return engine.OnlineNMF.from_bytes(arrays[name].tobytes(), f"{source} ({name})")

        self.classes = _unkeys(meta["classes"])
        self._models = {label: engine_from(f"model_{i}")
                        for i, label in enumerate(_unkeys(meta["models"]))}
        if "model" in arrays:
            self._model = engine_from("model")
        self._pool = engine_from("pool") if "pool" in arrays else None
        self._pool_key = tuple(_unkeys(meta["pool_key"]))
        self._pool_ids = _unkeys(meta["pool_ids"])
        self._readback = arrays["readback"]
        for name in _SCALER:
            target = getattr(self._scaler, name)
            values = arrays[f"scaler_{name}"].tolist()
            if name == "counts":
                values = [int(v) for v in values]
            dict.update(target, zip(_unkeys(meta["scaler"][name]), values))  # (not Counter's)
        head = self._head
        for i, label in enumerate(_unkeys(meta["head"]["labels"])):
            head.weights[label] = collections.defaultdict(
                float, zip(_unkeys(meta["head"]["features"][i]), arrays[f"head_{i}"].tolist()))
        for label, n in zip(_unkeys(meta["head"]["optimizers"]),
                            arrays["head_iterations"].tolist()):
            head.optimizers[label].n_iterations = int(n)
        self._moments = {}
        for key, (n, mean, s) in zip(_unkeys(meta["moments"]), arrays["moments"].tolist()):
            var = stats.Var()
            var.mean.n, var.mean._mean, var._S = n, mean, s
            self._moments[key] = var

    # ------------------------------------------------------------------ validation
    def check_one(self, x: Mapping[Hashable, Any], y: Any = None) -> None:
        """Raise the ``ValueError`` :meth:`learn_one` would raise for ``(x, y)`` (``y`` None:
        for the sample alone), changing nothing: to refuse a sample before learning anything
        else from it."""
        if y is not None:
            self._check_label(y)
        self._check_sample(x)

    def _check_sample(self, x: Mapping) -> None:
        if not isinstance(x, Mapping):
            raise ValueError(f"a sample must be a mapping feature -> value, got "
                             f"{type(x).__name__}")
        if not x:
            return
        parse_sample(x)
        for name in x:
            check_feature_name(name)
            if self._model is not None and _is_label(name):
                raise ValueError(f"feature {name!r}: names starting with {LABEL_PREFIX!r} are "
                                 "reserved for the label features; rename it")

    @staticmethod
    def _check_label(y: Any) -> None:
        if y is None:
            raise ValueError("label is None: learn_one needs the sample's class")
        try:
            hash(y)
        except TypeError:
            raise ValueError(f"label {y!r} is not hashable: use a str, int or bool") from None


def _is_label(name: Hashable) -> bool:
    return isinstance(name, str) and name.startswith(LABEL_PREFIX)


def _effect_size(inside: stats.Var, outside: stats.Var) -> tuple[float, float, float]:
    """Cohen's d of the two groups and its Welch interval, from their running moments."""
    n1, n0 = inside.n, outside.n
    if n1 < 2 or n0 < 2:
        return math.nan, math.nan, math.nan
    v1, v0 = inside.get(), outside.get()
    scale = math.sqrt((v1 + v0) / 2.0)
    if scale == 0.0:
        return math.nan, math.nan, math.nan
    difference = inside.mean.get() - outside.mean.get()
    a, b = v1 / n1, v0 / n0
    se = math.sqrt(a + b)
    df = (a + b) ** 2 / (a**2 / (n1 - 1) + b**2 / (n0 - 1)) if a + b > 0 else n1 + n0 - 2
    half = float(scipy_stats.t.ppf(0.5 + CONFIDENCE / 2, df)) * se
    return difference / scale, (difference - half) / scale, (difference + half) / scale


#: The running statistics of river's ``StandardScaler``, saved in their own key order.
_SCALER = ("counts", "means", "vars")


def _blob(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=np.uint8)


@functools.singledispatch
def _key(value: Any) -> Any:
    """A class or feature key as JSON (tuples as lists: a key is never a list)."""
    if isinstance(value, np.generic):
        return _key(value.item())
    raise ValueError(f"{value!r} (a {type(value).__name__}) cannot be saved: classes and "
                     "features must be str, int, float, bool or tuples of them")


@_key.register(str)
@_key.register(int)
@_key.register(type(None))  # (the label-augmented pool's key: one model, no class)
def _plain(value: Any) -> Any:
    return value


@_key.register(float)
def _number(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(f"{value!r} cannot be saved: a float class must be finite")
    return value


@_key.register(tuple)
def _tuple(value: tuple) -> list:
    return [_key(item) for item in value]


def _keys(values: list) -> list:
    return [_key(value) for value in values]


def _unkey(value: Any) -> Any:
    return tuple(_unkey(item) for item in value) if isinstance(value, list) else value


def _unkeys(values: list) -> list:
    return [_unkey(value) for value in values]
