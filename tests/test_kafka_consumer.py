"""The consumer loop against the embedded broker: dead letters (one test per bad kind),
outputs for every offset, metrics, and `onlinenmf inspect --json`.

One consumer run (module fixture) over a single-partition stream of valid messages with
one bad message of each kind inserted at known offsets; the tests then check its traces.
"""

from __future__ import annotations

import json
import math
import urllib.request

import msgspec
import numpy as np
import pytest

from consumers.broker_process import free_port
from consumers.checkpoint import CheckpointStore
from consumers.loop import ConsumerLoop, LoopConfig
from consumers.metrics import ConsumerMetrics
from consumers.microbiome import MicrobiomeApp, model_from_blobs, w_sha256
from tests.kafka_broker import (
    FAST_GROUP,
    TopicReader,
    create_topic,
    produce,
    reference_app,
    run_cli,
    synthetic_messages,
    unique,
)

MAX_BYTES = 20_000
MAX_FEATURES = 300
PARAMS = {"n_components": 4, "refresh_every": 40, "seed": 1}


def _value(**changes) -> bytes:
    doc = {"subject": "s1", "time": 1.0, "sample_id": "bad", "counts": {"t1": 5, "t2": 1}}
    doc.update(changes)
    return json.dumps(doc).encode()


_VALID = _value()
#: name of the test case -> (payload, dead-letter kind, words the reason must contain)
BAD = {
    "not_json": (b"<xml>hello</xml>", "not_json", "not JSON"),
    "wrong_schema": (json.dumps({"user": 3, "item": 4, "rating": 5}).encode(), "schema",
                     "unknown field"),
    "missing_field": (json.dumps({"subject": "s1", "time": 1, "counts": {"t1": 1}}).encode(),
                      "schema", "sample_id"),
    "wrong_types": (_value(counts={"t1": "five"}), "schema", "'t1' is str"),
    "negative": (_value(counts={"t1": 5, "t9": -2}), "bad_count", "'t9' is negative"),
    "nan": (_VALID.replace(b'"t2": 1', b'"t2": NaN'), "bad_count", "'t2' is NaN"),
    "inf": (_VALID.replace(b'"t2": 1', b'"t2": Infinity'), "bad_count", "'t2' is infinite"),
    "empty_counts": (_value(counts={}), "empty_counts", "empty"),
    "oversize": (_value(meta={"padding": "x" * MAX_BYTES}), "oversize", "exceeds"),
    "too_many_features": (_value(counts={f"t{i}": 1 for i in range(MAX_FEATURES + 1)}),
                          "too_many_features", str(MAX_FEATURES + 1)),
    "truncated": (_VALID[: len(_VALID) - 9], "truncated", "truncated"),
    "bad_time": (_value(time="the day after tomorrow"), "bad_time", "ISO-8601"),
    "tombstone": (None, "schema", "no value"),
}


@pytest.fixture(scope="module")
def run(kafka_broker, tmp_path_factory):
    """Produce valid + bad messages, run the loop in-process until idle, collect traces."""
    bootstrap = kafka_broker.bootstrap
    topic = create_topic(bootstrap, unique("bad"), partitions=1)
    out_topic, model_topic = topic + ".out", topic + ".model"
    valid = synthetic_messages(400, seed=5)
    stream: list[tuple[bytes | None, bytes | None]] = list(valid)
    bad_offsets = {}
    for i, (name, (payload, _, _)) in enumerate(BAD.items()):
        position = 20 + i * 25  # spread through the stream, between valid records
        stream.insert(position, (b"s1", payload))
    for offset, (_, value) in enumerate(stream):
        for name, (payload, _, _) in BAD.items():
            if value is payload:
                bad_offsets[name] = offset
    assert len(bad_offsets) == len(BAD)
    produce(bootstrap, topic, stream)

    ckpt_dir = tmp_path_factory.mktemp("ckpt")
    metrics = ConsumerMetrics()
    port = free_port()
    metrics.serve(port, addr="127.0.0.1")
    app = MicrobiomeApp(model_params=PARAMS, output_topic=out_topic, model_topic=model_topic,
                        max_bytes=MAX_BYTES, max_features=MAX_FEATURES)
    loop = ConsumerLoop(app, LoopConfig(
        bootstrap_servers=bootstrap, topics=[topic], group_id=unique("g"),
        checkpoint_dir=ckpt_dir, worker_id="w1", checkpoint_every=150,
        checkpoint_interval=60, exit_when_idle=1.5, consumer_config=dict(FAST_GROUP),
    ), metrics)
    assert loop.run() == 0
    scrape = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()

    dlt = TopicReader(bootstrap, topic + ".DLT")
    dead = dlt.drain(idle=1.0)
    dlt.close()
    outputs = TopicReader(bootstrap, out_topic)
    outs = outputs.drain(idle=1.0)
    outputs.close()
    models = TopicReader(bootstrap, model_topic)
    model_records = models.drain(idle=0.5)
    models.close()
    return {
        "topic": topic, "stream": stream, "valid": valid, "bad_offsets": bad_offsets,
        "dead": dead, "outputs": outs, "models": model_records, "app": app, "loop": loop,
        "metrics": metrics, "scrape": scrape.decode(), "ckpt_dir": ckpt_dir,
    }


def _headers(msg) -> dict[str, str]:
    return {k: v.decode() for k, v in (msg.headers() or [])}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_message_goes_to_dead_letter_topic(run, name):
    payload, kind, needle = BAD[name]
    offset = run["bad_offsets"][name]
    matches = [m for m in run["dead"]
               if _headers(m)["kafka_dlt-original-offset"] == str(offset)]
    assert len(matches) == 1, f"{name}: {len(matches)} dead letters for offset {offset}"
    msg = matches[0]
    headers = _headers(msg)
    assert msg.value() == payload  # the original bytes, untouched
    assert msg.key() == b"s1"
    assert headers["kafka_dlt-original-topic"] == run["topic"]
    assert headers["kafka_dlt-original-partition"] == "0"
    assert headers["onlinenmf-dlt-reason"] == kind
    assert needle in headers["kafka_dlt-exception-message"]
    assert headers["kafka_dlt-exception-fqcn"]  # the class of the underlying error
    # ... and the consumer kept going: the record after it was learned
    assert any(m.value() and json.loads(m.value())["source"]["offset"] == offset + 1
               for m in run["outputs"])


def test_no_other_dead_letters(run):
    assert len(run["dead"]) == len(BAD)


def test_model_untouched_by_bad_messages(run):
    reference = reference_app([v for _, v in run["valid"]], model_params=PARAMS)
    assert np.array_equal(run["app"].model.W, reference.model.W)
    assert run["app"].model.samples_learned == len(run["valid"])
    assert run["app"].model == reference.model  # every array and counter, bit for bit


def test_every_valid_offset_has_an_output_record(run):
    records = [json.loads(m.value()) for m in run["outputs"]]
    seen = {r["source"]["offset"] for r in records}
    bad = set(run["bad_offsets"].values())
    assert seen == set(range(len(run["stream"]))) - bad
    first = records[0]
    assert set(first) >= {"subject", "time", "sample_id", "source", "model_version",
                          "weights", "composition", "dominant", "loss", "worker", "growth",
                          "events"}
    assert any(r["growth"] for r in records) and any(r["events"] for r in records)
    assert abs(sum(first["composition"].values()) - 1) < 1e-9
    assert str(first["dominant"]) == max(first["weights"], key=first["weights"].get)
    assert all(m.key().decode() == json.loads(m.value())["subject"] for m in run["outputs"])


def test_model_versions_published(run):
    versions = [json.loads(m.value()) for m in run["models"]]
    assert [v["model_version"] for v in versions] == list(
        range(1, run["app"].model.model_version + 1))
    last = versions[-1]
    assert last["w_sha256"] == w_sha256(run["app"].model.W)
    assert len(last["components"]) == last["n_components"]


def test_checkpoint_and_inspect_json(run):
    out = run_cli("inspect", "--checkpoint-dir", str(run["ckpt_dir"]), "--json", "--verify")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    model = run["app"].model
    assert info["offsets"] == {f"{run['topic']}:0": len(run["stream"])}
    assert info["samples_learned"] == len(run["valid"]) == model.samples_learned
    assert info["model_version"] == model.model_version
    assert info["n_components"] == len(model.component_ids)
    assert info["w_sha256"] == w_sha256(model.W)
    assert info["dead_letters"] == {f"{run['topic']}:0": len(BAD)}
    ckpt = CheckpointStore(run["ckpt_dir"], "w1").read()
    assert model_from_blobs(ckpt.blobs) == model
    assert set(ckpt.blobs) == {"tracker", "app"}
    assert run["loop"].checkpoints_written >= 3  # every 150 records, and the final one


def test_metrics(run):
    m, topic = run["metrics"], run["topic"]
    assert m.value("onlinenmf_records_consumed_total", topic=topic, partition="0") == len(
        run["stream"])
    assert m.value("onlinenmf_samples_learned_total", topic=topic, partition="0") == len(
        run["valid"])
    assert m.value("onlinenmf_dead_letters_total", topic=topic, reason="bad_count") == 3
    assert m.value("onlinenmf_dead_letters_total", topic=topic, reason="schema") == 4
    assert m.value("onlinenmf_model_version") == run["app"].model.model_version
    assert m.value("onlinenmf_model_refreshes_total") == run["app"].model.model_version
    assert m.value("onlinenmf_model_components") == 4
    assert m.value("onlinenmf_consumer_lag_records", topic=topic, partition="0") == 0
    assert m.value("onlinenmf_checkpoint_duration_seconds_count") >= 3
    assert m.value("onlinenmf_sample_loss_count") == len(run["valid"])
    # the losses are observed a poll batch at a time: every learned record's, once
    losses = [json.loads(out.value())["loss"] for out in run["outputs"]]
    assert m.value("onlinenmf_sample_loss_sum") == pytest.approx(math.fsum(losses), rel=1e-9)
    assert m.value("onlinenmf_rebalances_total", kind="assigned") >= 1
    assert "onlinenmf_records_consumed_total{" in run["scrape"]
    assert "onlinenmf_checkpoint_duration_seconds_bucket" in run["scrape"]


def test_output_records_decode_with_the_schema(run):
    from consumers.microbiome import CommunityRecord

    record = msgspec.json.decode(run["outputs"][0].value(), type=CommunityRecord)
    assert record.source.topic == run["topic"]
