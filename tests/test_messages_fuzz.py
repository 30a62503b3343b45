"""Hostile input messages, without a broker: the poison pills of issue 10 and a fuzzer.

Every byte sequence must end as a decoded sample or a :class:`BadMessage` with a kind from
:data:`KINDS`, never another exception (a consumer that crashes on a record crashes on it
again after every restart); a decoded sample must be learned or refused with the model
unchanged.
"""

from __future__ import annotations

import json

import pytest

from consumers.messages import MAX_DEPTH, BadMessage, decode_sample, json_depth
from consumers.reco import decode_rating

HEAD = b'{"subject": "C1", "time": 1, "sample_id": "s1", '


def nested_objects(depth: int) -> bytes:
    return b'{"a": ' * depth + b"1" + b"}" * depth


#: the issue's deeply nested messages: a 10,000-level array, 10,000 nested objects inside
#: counts, a 5,000-level meta (objects, then arrays)
DEEP = {
    "array": b"[" * 10_000 + b"]" * 10_000,
    "unclosed_array": b"[" * 10_000,
    "counts": HEAD + b'"counts": ' + nested_objects(10_000) + b"}",
    "meta_objects": HEAD + b'"counts": {"a": 1}, "meta": ' + nested_objects(5_000) + b"}",
    "meta_arrays": HEAD + b'"counts": {"a": 1}, "meta": {"x": ' + b"[" * 5_000
    + b"]" * 5_000 + b"}}",
}


@pytest.mark.parametrize("name", list(DEEP))
@pytest.mark.parametrize("decode", [decode_sample, decode_rating], ids=["sample", "rating"])
def test_deep_nesting_is_a_dead_letter_not_a_recursion_error(name, decode):
    with pytest.raises(BadMessage) as info:
        decode(DEEP[name])
    assert info.value.kind == "schema"
    assert "levels deep" in str(info.value) and str(MAX_DEPTH) in str(info.value)


def test_nesting_up_to_the_limit_is_carried_through():
    # the document is level 1 and meta level 2: MAX_DEPTH - 2 objects inside meta fit
    inner = MAX_DEPTH - 2
    sample = decode_sample(HEAD + b'"counts": {"a": 1}, "meta": {"x": '
                           + nested_objects(inner) + b"}}")
    depth, node = 1, sample.meta
    while isinstance(node, dict):
        node, depth = next(iter(node.values())), depth + 1
    assert depth == MAX_DEPTH
    with pytest.raises(BadMessage, match="levels deep"):
        decode_sample(HEAD + b'"counts": {"a": 1}, "meta": {"x": ' + nested_objects(inner + 1)
                      + b"}}")


def test_brackets_inside_strings_do_not_count():
    taxa = {f"g__[Ruminococcus]{'[' * 50}{i}": i + 1 for i in range(10)}
    payload = json.dumps({"subject": "C1", "time": 1, "sample_id": "s1", "counts": taxa,
                          "meta": {"note": '"]]]{{{[[[\\'}}).encode()
    assert json_depth(payload) == 2  # the document, then counts and meta
    assert decode_sample(payload).counts == taxa


def test_json_depth_is_linear_on_escaped_quotes():
    # a string pattern that could fail would rescan from every later quote (quadratic)
    assert json_depth(b'"\\"' * 300_000) == 0
    assert json_depth(b'["' + b"\\" * 100_001) == 1
