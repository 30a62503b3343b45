"""Python integers beyond int64 or float64 in a sample: a one-line ValueError, or the value,
never another exception, and the model unchanged after a refusal (found by the hot-path work:
``{"a": 2**64}`` raised AttributeError, ``{"a": 10**400}`` OverflowError)."""

from __future__ import annotations

import numpy as np
import pytest

from onlinenmf import OnlineNMF
from onlinenmf.validation import parse_sample


def test_an_int_beyond_int64_is_read_as_its_float():
    names, values = parse_sample({"a": 2**64, "b": 1})
    assert names == ["a", "b"] and values.tolist() == [float(2**64), 1.0]


@pytest.mark.parametrize("value, words", [
    (10**400, "integer of 401 digits, beyond float64"),
    (-(2**70), "is negative"),
])
def test_an_int_beyond_float64_or_negative_is_one_line_and_leaves_no_trace(value, words):
    model = OnlineNMF(n_components=2, seed=0)
    model.learn_one({"a": 3.0, "b": 1.0})
    before = model.to_bytes()
    with pytest.raises(ValueError, match=words) as info:
        model.learn_one({"a": value, "b": 1})
    assert "\n" not in str(info.value) and "feature 'a'" in str(info.value)
    assert model.to_bytes() == before
    assert np.isfinite(model.W).all()
