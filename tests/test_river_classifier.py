"""NMFClassifier (issue 17): river's check suite, the pooled dictionary, classes that appear
mid-stream, calibration, class_components and its effect sizes, refused input."""

from __future__ import annotations

import math
import pickle
import random

import numpy as np
import pandas  # noqa: F401  (river's suite is the full one only with pandas)
import pytest
import sklearn  # noqa: F401  (river's dataset checks import it)
from river import checks, stats
from scipy import stats as scipy_stats

from onlinenmf import OnlineNMF
from onlinenmf.river import NMFClassifier
from onlinenmf.river_classifier import FORMULATIONS, LABEL_PREFIX, _effect_size


def _cases():
    for params in NMFClassifier._unit_test_params():
        estimator = NMFClassifier(**params)
        for check in checks.yield_checks(estimator):
            if check.__name__ in estimator._unit_test_skips():
                continue
            label = ",".join(f"{k}={v}" for k, v in params.items())
            yield pytest.param(estimator, check, id=f"NMFClassifier({label}):{check.__name__}")


CASES = list(_cases())


@pytest.mark.parametrize("estimator, check", CASES)
def test_river_check(estimator, check):
    check(estimator.clone())


def test_suite_is_the_full_one():
    """Every parameter set runs the dataset, classifier, seeding and memory checks, none
    skipped, and both formulations are among them."""
    names = {param.values[1].__name__ for param in CASES}
    assert {"check_predict_proba_one", "check_classifier_tracks_seen_labels",
            "check_shuffle_features_no_impact", "check_emerging_features",
            "check_no_state_aliasing_with_input", "check_seeding_is_idempotent",
            "check_bounded_memory_growth"} <= names
    assert {params.get("formulation", "class-wise")
            for params in NMFClassifier._unit_test_params()} == set(FORMULATIONS)
    assert all(not NMFClassifier(**params)._unit_test_skips()
               for params in NMFClassifier._unit_test_params())


# ============================================================================ planted streams
TAXA = {"a": ["a1", "a2", "a3"], "b": ["b1", "b2", "b3"], "c": ["c1", "c2", "c3"]}
SHARED = ["s1", "s2"]


def planted(label: str, rng: random.Random) -> dict:
    """A sample of its class's own taxa over a background every class shares."""
    x = {taxon: float(rng.randint(10, 50)) for taxon in TAXA[label]}
    x.update({taxon: float(rng.randint(10, 50)) for taxon in SHARED})
    return x


def prequential_accuracy(model, stream) -> float:
    right = []
    for x, y in stream:
        right.append(model.predict_one(x) == y)
        model.learn_one(x, y)
    return float(np.mean(right[len(right) // 2:]))


#: Per formulation, a model for the planted streams: class-wise, 2 communities per class (its
#: own and the background); label-augmented, 4 in all.
SMALL = {"class-wise": {"n_components": 2}, "label-augmented": {"n_components": 4}}


def small(formulation: str, **params) -> NMFClassifier:
    return NMFClassifier(formulation=formulation, **SMALL[formulation],
                         **{"refresh_every": 10, "seed": 0, **params})


@pytest.mark.parametrize("formulation", FORMULATIONS)
def test_multiclass_stream_is_learned(formulation):
    rng = random.Random(0)
    stream = [(planted(y, rng), y) for y in ["a", "b", "c"] * 80]
    assert prequential_accuracy(small(formulation), stream) > 0.95


@pytest.mark.parametrize("formulation", FORMULATIONS)
def test_classes_appear_mid_stream_and_unseen_ones_get_no_mass(formulation):
    rng = random.Random(1)
    model = small(formulation)
    assert model.predict_proba_one(planted("a", rng)) == {}
    assert model.predict_one(planted("a", rng)) is None
    model.learn_one(planted("a", rng), "a")
    assert model.predict_proba_one(planted("c", rng)) == {"a": 1.0}
    for y in ["a", "b"] * 30:
        model.learn_one(planted(y, rng), y)
    proba = model.predict_proba_one(planted("c", rng))
    assert set(proba) == {"a", "b"}  # c not seen yet: no key, no mass
    for y in ["a", "b", "c"] * 40:  # c joins
        model.learn_one(planted(y, rng), y)
    proba = model.predict_proba_one(planted("c", rng))
    assert set(proba) == {"a", "b", "c"} and math.isclose(sum(proba.values()), 1.0)
    assert max(proba, key=proba.get) == "c"
    assert model.classes == ["a", "b", "c"]


def test_probabilities_are_calibrated_on_uninformative_features():
    """Labels drawn with P(True) = 0.3 whatever the sample: the probabilities settle near 0.3
    (a share of the reconstruction would not), and the Brier score near its floor 0.21."""
    rng = random.Random(2)
    labels = [rng.random() < 0.3 for _ in range(1500)]
    stream = [(planted(rng.choice("ab"), rng), y) for y in labels]
    model = NMFClassifier(n_components=2, refresh_every=10, seed=0)
    p = []
    for x, y in stream:
        p.append(model.predict_proba_one(x).get(True, 0.0))
        model.learn_one(x, y)
    late = slice(len(p) // 2, None)
    p_late, y_late = np.array(p[late]), np.array(labels[late], dtype=float)
    assert abs(p_late.mean() - y_late.mean()) < 0.05
    assert np.mean((p_late - y_late) ** 2) < y_late.mean() * (1 - y_late.mean()) + 0.02


# ============================================================================ interpretation
@pytest.mark.parametrize("formulation", FORMULATIONS)
def test_class_components_find_each_class_own_community(formulation):
    rng = random.Random(3)
    model = small(formulation)
    assert model.class_components() == {}
    for y in ["a", "b"] * 100:
        model.learn_one(planted(y, rng), y)
    components = model.class_components(top=3)
    assert set(components) == {"a", "b"}
    for label, communities in components.items():
        best = communities[0]  # the most separating: the class's own taxa, no other class's
        top = {name for name, _ in best.features}
        assert top & set(TAXA[label]) and not top & set(TAXA["b" if label == "a" else "a"])
        assert best.effect > 1.0 and best.interval[0] > 0.0
        assert best.interval[0] < best.effect < best.interval[1]
        assert best.mean_in > best.mean_out and best.n_in > 50 and best.n_out > 50
        assert all(len(c.features) <= 3 for c in communities)


def test_effect_size_is_welch_interval_over_the_average_variance():
    rng = np.random.default_rng(4)
    a, b = rng.normal(0.4, 0.1, 30), rng.normal(0.3, 0.2, 50)
    inside, outside = stats.Var(), stats.Var()
    for value in a:
        inside.update(float(value))
    for value in b:
        outside.update(float(value))
    effect, low, high = _effect_size(inside, outside)
    scale = math.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2)
    assert math.isclose(effect, (a.mean() - b.mean()) / scale, rel_tol=1e-9)
    interval = scipy_stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert math.isclose(low, interval.low / scale, rel_tol=1e-9)
    assert math.isclose(high, interval.high / scale, rel_tol=1e-9)
    assert all(math.isnan(v) for v in _effect_size(inside, stats.Var()))


# ============================================================================ refused input
def _trained(formulation: str) -> NMFClassifier:
    rng = random.Random(5)
    model = NMFClassifier(n_components=2, formulation=formulation, refresh_every=5, seed=0)
    for y in ["a", "b"] * 10:
        model.learn_one(planted(y, rng), y)
    return model


BAD_SAMPLES = [
    ({"a1": -1.0}, "negative"),
    ({"a1": float("nan")}, "NaN"),
    ({"a1": "12"}, "string"),
    ({("a", 1): 1.0}, "feature names must be str or int"),
    ([1.0, 2.0], "mapping"),
]


@pytest.mark.parametrize("formulation", FORMULATIONS)
@pytest.mark.parametrize("x, message", BAD_SAMPLES)
def test_bad_samples_are_refused_in_one_line_leaving_no_trace(formulation, x, message):
    for model in (NMFClassifier(formulation=formulation, seed=0), _trained(formulation)):
        before = pickle.dumps(model)
        with pytest.raises(ValueError, match=message) as error:
            model.learn_one(x, "a")
        assert "\n" not in str(error.value)
        with pytest.raises(ValueError, match=message):
            model.predict_proba_one(x)
        assert pickle.dumps(model) == before


@pytest.mark.parametrize("y, message", [(None, "label is None"), ([1], "not hashable")])
def test_bad_labels_are_refused_leaving_no_trace(y, message):
    model = _trained("class-wise")
    before = pickle.dumps(model)
    with pytest.raises(ValueError, match=message):
        model.learn_one({"a1": 3.0}, y)
    assert pickle.dumps(model) == before


def test_label_feature_names_are_reserved():
    model = _trained("label-augmented")
    before = pickle.dumps(model)
    with pytest.raises(ValueError, match="reserved"):
        model.learn_one({f"{LABEL_PREFIX}0": 3.0}, "a")
    assert pickle.dumps(model) == before


def test_bad_parameters_are_refused_at_construction():
    with pytest.raises(ValueError, match="formulation"):
        NMFClassifier(formulation="both")
    with pytest.raises(ValueError, match="label_weight"):
        NMFClassifier(label_weight=0)
    with pytest.raises(ValueError, match="forget_factor"):
        NMFClassifier(forget_factor=1.5)


def test_empty_sample_teaches_the_head_only():
    model = _trained("class-wise")
    W = {label: m.W.copy() for label, m in model._models.items()}
    model.learn_one({}, "a")
    assert all(np.array_equal(W[label], m.W) for label, m in model._models.items())
    proba = model.predict_proba_one({})
    assert set(proba) == {"a", "b"} and math.isclose(sum(proba.values()), 1.0)


# ============================================================================ the core's entry
def _planted_engine(beta: float) -> OnlineNMF:
    rng = random.Random(6)
    model = OnlineNMF(n_components=3, beta=beta, refresh_every=10, seed=0)
    for label in ["a", "b", "c"] * 30:
        model.learn_one(planted(label, rng))
    return model


@pytest.mark.parametrize("beta", [0, 1, 2])
def test_from_dictionary_solves_as_the_model_does(beta):
    """A model built from another's W and features answers the same h, whatever the order
    of the rows given."""
    model = _planted_engine(beta)
    order = np.random.default_rng(0).permutation(len(model.features))
    names = [model.features[i] for i in order]
    copy = OnlineNMF.from_dictionary(model.W[order], names, beta=beta)
    assert copy.features == names and np.array_equal(copy.W, model.W[order])
    assert copy.samples_learned == 0
    rng = random.Random(7)
    for label in "abc":
        x = planted(label, rng)
        x["unknown"] = 5.0
        assert np.allclose(list(copy.transform_one(x).values()),
                           list(model.transform_one(x).values()), rtol=1e-6, atol=1e-9)


def test_from_dictionary_pools_models_side_by_side():
    """Two models' columns side by side: a sample of one model's taxa is explained by its
    columns."""
    rng = random.Random(8)
    left, right = (OnlineNMF(n_components=2, refresh_every=10, seed=0) for _ in range(2))
    for _ in range(40):
        left.learn_one(planted("a", rng))
        right.learn_one(planted("b", rng))
    names = list(dict.fromkeys(left.features + right.features))
    W = np.zeros((len(names), 4))
    for block, model in enumerate((left, right)):
        W[[names.index(n) for n in model.features], 2 * block: 2 * block + 2] = model.W
    pooled = OnlineNMF.from_dictionary(W, names)
    h = np.array(list(pooled.transform_one(planted("b", rng)).values()))
    assert h[2:].sum() > 0.99 * h.sum()


def test_from_dictionary_can_learn():
    model = _planted_engine(1)
    copy = OnlineNMF.from_dictionary(model.W, model.features, refresh_every=10)
    rng = random.Random(9)
    for label in ["a", "b", "c"] * 4:
        copy.learn_one(planted(label, rng))
    assert copy.samples_learned == 12 and copy.model_version == 1
    assert np.allclose(copy.W.sum(axis=0), 1.0) and not np.array_equal(copy.W, model.W)


@pytest.mark.parametrize("W, features, params, message", [
    (-np.ones((2, 1)), ["a", "b"], {}, "non-negative"),
    (np.full((2, 1), np.nan), ["a", "b"], {}, "finite"),
    (np.ones((3, 1)), ["a", "b"], {}, "shape"),
    (np.ones(2), ["a", "b"], {}, "shape"),
    (np.ones((2, 1)), ["a", "a"], {}, "distinct"),
    (np.ones((2, 1)), ["a", 1.5], {}, "feature names must be str or int"),
    (np.ones((2, 1)), ["a", "b"], {"n_components": 1}, "n_components"),
    (np.ones((2, 1)), ["a", "b"], {"beta": -1}, "beta"),
])
def test_from_dictionary_refuses_what_it_cannot_use(W, features, params, message):
    with pytest.raises(ValueError, match=message):
        OnlineNMF.from_dictionary(W, features, **params)
