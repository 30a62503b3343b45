"""Hostile input messages, without a broker: the poison pills of issue 10 and a fuzzer.

Every byte sequence must end as a decoded sample or a :class:`BadMessage` with a kind from
:data:`KINDS`, never another exception (a consumer that crashes on a record crashes on it
again after every restart); a decoded sample must be learned or refused with the model
unchanged.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumers.application import Source
from consumers.loop import dead_letter_record, record_size
from consumers.messages import (
    KINDS,
    MAX_DEPTH,
    MAX_ID_CHARS,
    BadMessage,
    json_depth,
)
from consumers.microbiome import MicrobiomeApp, decode_sample, encode_sample
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


# ------------------------------------------------------------------ what outputs carry
def test_meta_may_use_half_the_record_limit():
    def with_meta(size: int) -> bytes:
        return HEAD + b'"counts": {"a": 1}, "meta": {"p": "' + b"x" * size + b'"}}'

    assert decode_sample(with_meta(400), max_bytes=1000).meta == {"p": "x" * 400}  # 408 bytes
    meta_bytes = len(b'{"p":""}') + 600
    with pytest.raises(BadMessage) as info:
        decode_sample(with_meta(600), max_bytes=1000)
    assert info.value.kind == "oversize"
    assert f"meta of {meta_bytes} bytes exceeds 500" in str(info.value)


@pytest.mark.parametrize("field", ["subject", "sample_id"])
def test_ids_are_bounded(field):
    doc = {"subject": "C1", "time": 1, "sample_id": "s1", "counts": {"a": 1}}
    assert decode_sample(json.dumps({**doc, field: "x" * MAX_ID_CHARS}).encode())
    with pytest.raises(BadMessage) as info:
        decode_sample(json.dumps({**doc, field: "x" * (MAX_ID_CHARS + 1)}).encode())
    assert info.value.kind == "schema" and f"$.{field}" in str(info.value)


# ------------------------------------------------------------------ overflowing counts
OVERFLOW = {"a": 1e308, "b": 1e308}


def _app(track: bool, beta: float = 1.0) -> MicrobiomeApp:
    app = MicrobiomeApp(model_params={"n_components": 2, "refresh_every": 3, "seed": 0,
                                      "beta": beta}, track=track)
    app.restore(None)
    return app


def _message(counts: dict, subject: str = "C1", time: float = 1.0) -> bytes:
    return json.dumps({"subject": subject, "time": time, "sample_id": "x",
                       "counts": counts}).encode()


@pytest.mark.parametrize("track", [True, False], ids=["tracked", "untracked"])
@pytest.mark.parametrize("beta", [2.0, 1.0, 0.0])
@pytest.mark.parametrize("counts", [OVERFLOW, {"a": 1e200, "b": 3.0}, {"a": 1e155}],
                         ids=["sum_overflows", "1e200", "square_overflows"])
def test_overflowing_counts_are_rejected_with_the_model_unchanged(track, beta, counts):
    app = _app(track, beta)
    rng = np.random.default_rng(0)
    for i in range(7):
        counts_i = {f"t{j}": float(rng.integers(1, 40)) for j in range(5)}
        app.process(app.decode(_message(counts_i, f"s{i % 2}", i)),
                    Source("t", 0, i, None, None, "w"))
    before = app.snapshot()
    sample = app.decode(_message(counts))  # a valid message: finite, non-negative counts
    with pytest.raises(BadMessage) as info:
        app.process(sample, Source("t", 0, 7, None, None, "w"))
    assert info.value.kind == "rejected"
    assert "rescale" in str(info.value) and "sum" in str(info.value)
    assert app.snapshot() == before


def test_largest_accepted_sum_keeps_the_statistics_finite():
    from onlinenmf import OnlineNMF
    from onlinenmf.validation import MAX_SAMPLE_SUM

    for beta in (2.0, 1.0, 0.0):
        model = OnlineNMF(n_components=3, beta=beta, refresh_every=5, seed=0)
        for i in range(50):  # the limit, over and over, new and known features
            model.learn_one({"a": MAX_SAMPLE_SUM / 2, "b": MAX_SAMPLE_SUM / 2, f"n{i}": 1.0})
        state = model.export_statistics()
        assert np.isfinite(model.W).all() and np.isfinite(model.last_loss)
        assert all(np.isfinite(np.asarray(v, dtype=float)).all() for v in state.values()
                   if isinstance(v, np.ndarray))


@pytest.mark.parametrize("sparse", [False, True])
def test_learn_many_rejects_an_overflowing_row(sparse):
    import scipy.sparse as sp

    from onlinenmf import OnlineNMF

    X = np.array([[1.0, 2.0], [1e308, 1e308], [3.0, 0.0]])
    model = OnlineNMF(n_components=2, beta=2, seed=0)
    model.learn_many(np.array([[1.0, 2.0]]), features=["a", "b"])
    before = model.to_bytes()
    with pytest.raises(ValueError, match=r"^row 1: the sum .* overflows float64.*rescale"):
        model.learn_many(sp.csr_matrix(X) if sparse else X, features=["a", "b"])
    assert model.to_bytes() == before


# ------------------------------------------------------------------ dead letters that fit
@given(key=st.one_of(st.none(), st.binary(max_size=3000)),
       value=st.one_of(st.none(), st.binary(max_size=6000)),
       reason=st.binary(max_size=600), limit=st.integers(1024, 5000))
@settings(max_examples=300, deadline=None)
def test_a_dead_letter_always_fits_the_producer(key, value, reason, limit):
    headers = [("kafka_dlt-exception-message", reason), ("onlinenmf-dlt-reason", b"schema")]
    out_key, out_value, out_headers = dead_letter_record(key, value, headers, limit)
    assert record_size(out_key, out_value, out_headers) <= limit
    said = dict(out_headers)
    assert out_headers[: len(headers)] == headers  # the reasons, untouched
    assert out_key is not None or out_value is not None  # a record Kafka clients can send
    if key is None and value is None:
        value = b""
    if record_size(key, value, headers) <= limit:
        assert (out_key, out_value, out_headers) == (key, value, headers)
    for original, kept, name in [(key, out_key, "onlinenmf-dlt-key-truncated"),
                                 (value, out_value, "onlinenmf-dlt-truncated")]:
        if name in said:  # cut: the first bytes, and the original length
            assert original.startswith(kept) and len(kept) < len(original)
            assert said[name] == str(len(original)).encode()
        else:
            assert kept == original
    if "onlinenmf-dlt-truncated" in said:  # the value keeps the room the rest leaves
        assert record_size(out_key, value[: len(out_value) + 5], out_headers) > limit


def test_one_setting_sizes_every_client():
    import argparse

    from consumers.consume import add_arguments, loop_config

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["microbiome", "--max-message-bytes", "5000000"])
    config = loop_config(args, ["t"])
    assert config.max_message_bytes == 5_000_000
    assert config.fetch_settings()["max_partition_fetch_bytes"] >= 5_000_000
    assert config.fetch_settings()["fetch_max_bytes"] >= 5_000_000
    default = loop_config(parser.parse_args(["microbiome"]), ["t"])
    assert default.max_message_bytes == 1_048_576
    assert default.fetch_settings() == {"max_partition_fetch_bytes": 1_048_576,
                                        "fetch_max_bytes": 52_428_800}  # kafka-python's


# ------------------------------------------------------------------ fuzz: any bytes at all
def _valid(i: int) -> bytes:
    return encode_sample(f"s{i % 3}", float(i), f"x{i}", {f"t{j}": j + i % 5 for j in range(4)},
                         {"diet": "bd"} if i % 2 else None)


VALID = [_valid(i) for i in range(12)]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12)
    | st.floats(allow_nan=True, allow_infinity=True),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=25)


def _splice(base: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    for at, cut, insert in edits:
        at %= len(base) + 1
        base = base[:at] + insert + base[at + cut:]
    return base


#: byte sequences a hostile or broken producer may send
payloads = st.one_of(
    st.binary(max_size=300),
    # documents of the right shape whose fields may hold anything (NaN/Infinity tokens too)
    st.fixed_dictionaries(
        {"subject": st.text(max_size=5) | json_values, "time": st.floats() | json_values,
         "sample_id": st.text(max_size=5) | json_values,
         "counts": st.dictionaries(st.text(max_size=6), st.floats(min_value=0) | json_values
                                   | st.integers(min_value=0), max_size=6)},
        optional={"meta": json_values, "extra": json_values},
    ).map(lambda doc: json.dumps(doc).encode()),
    # valid messages with bytes cut, replaced or inserted
    st.builds(_splice, st.sampled_from(VALID), st.lists(st.tuples(
        st.integers(0, 400), st.integers(0, 8), st.binary(max_size=6)), min_size=1, max_size=4)),
    # bracket soup: nesting of any depth, with quotes and escapes that hide brackets
    st.text(alphabet='[]{}",:\\ 1a', max_size=4000).map(str.encode),
    # deep nesting that parses (at the top, in counts, in meta), closed or not
    st.builds(lambda where, opener, depth, closed: where + opener * depth + b"1"
              + closed * (opener.count(b"[") * b"]" + opener.count(b"{") * b"}") * depth + b"}",
              st.sampled_from([b"", HEAD + b'"counts": ', HEAD + b'"counts": {"a": 1}, "meta": ']),
              st.sampled_from([b"[", b'{"a": ', b'{"a": [', b'[{"\\"[": ']),
              st.integers(0, 3000), st.booleans()),
)


@given(payload=payloads)
@settings(max_examples=1500, deadline=None, database=None)
def test_any_payload_decodes_or_is_a_dead_letter(payload):
    for decode in (decode_sample, decode_rating):
        try:
            decode(payload)
        except BadMessage as bad:  # nothing else may escape (RecursionError, ValueError...)
            assert bad.kind in KINDS
            assert str(bad) and "\n" not in str(bad)


@pytest.fixture(scope="module")
def learning_app():
    return _app(track=True)


@given(payload=payloads | st.sampled_from(VALID))
@settings(max_examples=400, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_decoded_sample_is_learned_or_refused_leaving_no_trace(learning_app, payload):
    app = learning_app
    try:
        sample = app.decode(payload)
    except BadMessage:
        return
    before = app.summary()
    try:
        result = app.process(sample, Source("t", 0, 0, None, None, "w"))
    except BadMessage as bad:
        assert bad.kind == "rejected"
        assert app.summary() == before
        return
    assert app.summary()["samples_learned"] == before["samples_learned"] + 1
    for _, key, value in result.outputs:  # what the producer may send
        assert record_size(key, value) <= app.max_bytes
