"""river's own check suite (river 0.26.1) on the adapters, one pytest case per check.

Mirrors river's ``tests/test_estimators.py``: one instance per ``_unit_test_params`` set, one
case per check that ``river.checks.yield_checks`` generates, minus the model's declared
``_unit_test_skips``, each run on a fresh ``clone()``. The mini-batch checks are generated only
when pandas is installed, and the dataset checks need scikit-learn: both are required here, so a
missing one fails loudly instead of shrinking the suite.
"""

from __future__ import annotations

import pandas  # noqa: F401  (the mini-batch checks exist only when pandas is importable)
import pytest
import sklearn  # noqa: F401  (river's dataset checks import it)
from river import checks, utils

from onlinenmf.river import NMFTransformer

ESTIMATORS = [NMFTransformer]


def _instances():
    for cls in ESTIMATORS:
        for params in cls._unit_test_params():
            yield cls(**params)


def _cases():
    for estimator in _instances():
        for check in checks.yield_checks(estimator):
            if check.__name__ in estimator._unit_test_skips():
                continue
            yield pytest.param(estimator, check, id=f"{estimator!s}({_short(estimator)}):"
                                                    f"{check.__name__}")


def _short(estimator) -> str:
    defaults = type(estimator)().__dict__
    return ",".join(f"{k}={v}" for k, v in estimator._get_params().items() if defaults[k] != v)


CASES = list(_cases())


@pytest.mark.parametrize("estimator, check", CASES)
def test_river_check(estimator, check):
    check(estimator.clone())


def test_suite_includes_minibatch_and_seeding_checks():
    """The suite we pass is the full one: pandas present, mini-batch and seeding checks run."""
    assert utils.pandas.PANDAS_INSTALLED
    names = {param.values[1].__name__ for param in CASES}
    assert {"check_learn_many_matches_learn_one", "check_transform_many_matches_transform_one",
            "check_seeding_is_idempotent", "check_shuffle_features_no_impact",
            "check_bounded_memory_growth"} <= names
    assert all(not cls()._unit_test_skips() for cls in ESTIMATORS)
