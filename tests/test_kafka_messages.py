"""Input message validation: every bad kind is refused with a reason naming the culprit."""

from __future__ import annotations

import json

import msgspec
import pytest

from consumers.messages import KINDS, BadMessage, parse_time
from consumers.microbiome import decode_sample, encode_sample

GOOD = {"subject": "C001", "time": 36, "sample_id": "s1", "counts": {"a": 3, "b": 0.5}}


def raw(**changes) -> bytes:
    doc = {**GOOD, **changes}
    return json.dumps({k: v for k, v in doc.items() if v is not ...}).encode()


def kind_of(payload: bytes, **limits) -> tuple[str, str]:
    with pytest.raises(BadMessage) as info:
        decode_sample(payload, **limits)
    return info.value.kind, str(info.value)


def test_valid_message_round_trips():
    sample = decode_sample(encode_sample("C001", 36, "s1", {"a": 3, "b": 0.5}, {"diet": "bd"}))
    assert (sample.subject, sample.time, sample.sample_id) == ("C001", 36.0, "s1")
    assert sample.counts == {"a": 3.0, "b": 0.5}
    assert sample.meta == {"diet": "bd"}


def test_iso_time_becomes_days():
    assert decode_sample(raw(time="2012-03-16")).time == parse_time("2012-03-15") + 1
    assert parse_time("1970-01-02T00:00:00+02:00") == pytest.approx(1 - 2 / 24)


@pytest.mark.parametrize("payload", [b"not json at all", b"\xff\xfe\x00", b""])
def test_not_json(payload):
    assert kind_of(payload)[0] in ("not_json", "truncated")
    assert kind_of(b"{'subject': 'x'}")[0] == "not_json"


def test_truncated_record():
    full = raw()
    kind, message = kind_of(full[: len(full) // 2])
    assert kind == "truncated" and "truncated" in message


@pytest.mark.parametrize("doc, needle", [
    ({"subject": "C001", "time": 1, "counts": {"a": 1}}, "sample_id"),   # missing
    ({**GOOD, "colour": "red"}, "colour"),                                 # unknown field
    ([1, 2, 3], "array"),                                                  # not an object
    ({**GOOD, "subject": ""}, "subject"),                                  # empty id
])
def test_wrong_schema(doc, needle):
    kind, message = kind_of(json.dumps(doc).encode())
    assert kind == "schema" and needle in message


@pytest.mark.parametrize("change, needle", [
    ({"subject": 17}, "$.subject"),
    ({"counts": ["a", "b"]}, "$.counts"),
    ({"counts": {"a": "3"}}, "'a' is str"),
    ({"counts": {"a": True}}, "'a' is bool"),
    ({"time": [1]}, "$.time"),
])
def test_wrong_types(change, needle):
    kind, message = kind_of(raw(**change))
    assert kind == "schema" and needle in message


@pytest.mark.parametrize("payload, needle", [
    (raw(counts={"a": 1, "b": -2}), "'b' is negative"),
    (b'{"subject":"C","time":1,"sample_id":"s","counts":{"a":NaN}}', "'a' is NaN"),
    (b'{"subject":"C","time":1,"sample_id":"s","counts":{"a":Infinity}}', "'a' is infinite"),
    (b'{"subject":"C","time":1,"sample_id":"s","counts":{"a":-Infinity}}', "'a' is negative"),
    (b'{"subject":"C","time":1,"sample_id":"s","counts":{"a":1e999}}', "'a' is infinite"),
])
def test_bad_counts(payload, needle):
    kind, message = kind_of(payload)
    assert kind == "bad_count" and needle in message


@pytest.mark.parametrize("counts", [{}, {"a": 0, "b": 0.0}])
def test_empty_counts(counts):
    assert kind_of(raw(counts=counts))[0] == "empty_counts"


def test_bad_time():
    assert kind_of(raw(time="next tuesday"))[0] == "bad_time"
    assert kind_of(b'{"subject":"C","time":NaN,"sample_id":"s","counts":{"a":1}}')[0] == "bad_time"


def test_oversize_and_too_many_features():
    big = raw(counts={f"taxon{i}": 1 for i in range(2000)})
    kind, message = kind_of(big, max_bytes=1000)
    assert kind == "oversize" and str(len(big)) in message
    kind, message = kind_of(big, max_features=1999)
    assert kind == "too_many_features" and "2000" in message
    assert len(decode_sample(big, max_features=2000).counts) == 2000


def test_tombstone():
    assert kind_of(None)[0] == "schema"


def test_kinds_are_closed():
    with pytest.raises(ValueError):
        BadMessage("whatever", "x")
    assert len(set(KINDS)) == len(KINDS)


def test_cause_is_kept_for_dead_letter_headers():
    with pytest.raises(BadMessage) as info:
        decode_sample(raw(counts={"a": "x"}))
    assert isinstance(info.value.__cause__ or info.value.__context__, msgspec.ValidationError)
