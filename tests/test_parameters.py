"""The parameter table (onlinenmf/parameters.py): one definition per parameter, read by every
class that takes it, with one rule for bad values."""

import importlib
import inspect
import warnings

import numpy as np
import pytest

from onlinenmf import OnlineNMF, Tracker, parameters
from onlinenmf.reco import RecoNMF
from onlinenmf.river import NMFClassifier, NMFRecommender, NMFTransformer

#: each class and the table it takes its parameters from
CLASSES = [(OnlineNMF, parameters.ENGINE), (NMFTransformer, parameters.RIVER),
           (NMFClassifier, parameters.CLASSIFIER), (RecoNMF, parameters.RECO),
           (NMFRecommender, parameters.RIVER_RECO),
           (Tracker, parameters.TRACKER)]
#: constructor arguments that are not parameters: the tracker's model and feature labels
NOT_PARAMETERS = {"model", "labels"}


def build(cls, **params):
    return cls(OnlineNMF(n_components=2), **params) if cls is Tracker else cls(**params)


@pytest.mark.parametrize(("cls", "table"), CLASSES, ids=lambda c: getattr(c, "__name__", ""))
def test_each_signature_is_its_table(cls, table):
    """The signatures stay explicit (for IDEs and river's clone): they must not drift from the
    table, in names, order or defaults."""
    signature = {name: p.default for name, p in inspect.signature(cls).parameters.items()
                 if name not in NOT_PARAMETERS}
    assert list(signature) == list(table.names)
    assert signature == table.defaults()
    assert table.owner == cls.__name__


@pytest.mark.parametrize(("cls", "table"), CLASSES, ids=lambda c: getattr(c, "__name__", ""))
def test_defaults_pass_their_own_checks_and_are_stored_verbatim(cls, table):
    model = build(cls)
    assert {name: getattr(model, name) for name in table} == table.defaults()


def _int_and_float_parameters():
    for cls, table in CLASSES:
        for name, parameter in table.items():
            if parameter.type in (int, float):
                yield pytest.param(cls, name, id=f"{cls.__name__}.{name}")


@pytest.mark.parametrize(("cls", "name"), list(_int_and_float_parameters()))
@pytest.mark.parametrize("flag", [True, False])
def test_a_bool_is_never_a_number(cls, name, flag):
    """One rule in every class: True is not the integer 1 (n_components=True used to build a
    rank-1 engine, max_events=True a tracker keeping one event)."""
    with pytest.raises(ValueError) as err:
        build(cls, **{name: flag})
    message = str(err.value)
    assert message.startswith(f"{name} must be ") and message.endswith(f"got {flag!r}")
    assert "\n" not in message


def _bad_values():
    """A value of the wrong kind and one out of range (where there is a range), per entry."""
    for cls, table in CLASSES:
        for name, parameter in table.items():
            wrong = {bool: 1, str: "nope", tuple: (5, 1)}.get(parameter.type, "3")
            yield pytest.param(cls, name, wrong, id=f"{cls.__name__}.{name}={wrong!r}")
            if parameter.low is not None:
                low = parameter.low - 1 if parameter.type is int else parameter.low - 0.5
                yield pytest.param(cls, name, low, id=f"{cls.__name__}.{name}={low!r}")
            if parameter.high is not None:
                yield pytest.param(cls, name, parameter.high + 0.5,
                                   id=f"{cls.__name__}.{name}={parameter.high + 0.5!r}")


@pytest.mark.parametrize(("cls", "name", "value"), list(_bad_values()))
def test_bad_value_is_one_line_naming_parameter_value_and_range(cls, name, value):
    with pytest.raises(ValueError) as err:
        build(cls, **{name: value})
    description = parameters.TABLES[cls.__name__][name].describe()
    assert str(err.value) == f"{name} must be {description}, got {value!r}"


def test_numpy_scalars_are_numbers():
    model = OnlineNMF(n_components=np.int64(3), beta=np.float64(1.0), l1_h=np.float32(0.5))
    assert model.n_components == 3 and model.W.shape[1] == 3


def test_the_engine_keeps_the_given_rank_apart_from_the_rank_in_force():
    """n_components is stored as given (snapshots and clones rebuild the model from it); the
    rank adapt_rank re-estimates is n_components_, as scikit-learn keeps fitted values apart."""
    from onlinenmf.datasets import make_poisson_stream

    s = make_poisson_stream(n_features=60, n_components=3, n_samples=1500, seed=0,
                            taxa_per_community=10)
    model = OnlineNMF(n_components=6, seed=0, forget_factor=0.995, refresh_every=50,
                      adapt_rank=True)
    model.learn_many(s.X, features=s.features)
    assert model.n_components_ == len(model.component_ids) < 6
    assert model.n_components == 6 and model._params()["n_components"] == 6
    assert model.hyperparameters["n_components"] == model.n_components_
    assert model.rank_bounds == (1, 12) and model.k_max is None  # in force, and as given


def test_river_adapter_old_name_warns_once():
    river = importlib.import_module("onlinenmf.river")
    river._deprecation_warned = False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        old = river.OnlineNMF
        from onlinenmf.river import OnlineNMF as again
    assert old is again is NMFTransformer
    assert [w.category for w in caught] == [DeprecationWarning]
    assert "NMFTransformer" in str(caught[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from onlinenmf.river import NMFTransformer as New  # the new name: no warning
    assert New is NMFTransformer
    with pytest.raises(AttributeError):
        river.NoSuchName  # noqa: B018


def test_shared_parameters_are_one_definition():
    """A parameter two classes share is one entry; what differs is stated with replace."""
    assert parameters.RECO["n_components"] is parameters.ENGINE["n_components"]
    assert parameters.RECO["seed"] is parameters.ENGINE["seed"]
    assert parameters.RECO["max_iter"].doc == parameters.ENGINE["max_iter"].doc
    assert parameters.RIVER.defaults() == {
        **parameters.ENGINE.defaults(), "seed": None}
