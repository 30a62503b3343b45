"""The rating consumer (`onlinenmf consume reco`) against the embedded broker: dead letters
(one case per bad kind), a prediction for every valid offset, recommendations, and
crash consistency under SIGKILL (modelled on test_kafka_consumer / test_kafka_crash)."""

from __future__ import annotations

import json

import pytest

from consumers.application import Source
from consumers.checkpoint import CheckpointStore
from consumers.loop import ConsumerLoop, LoopConfig
from consumers.messages import BadMessage
from consumers.metrics import ConsumerMetrics
from consumers.reco import RecoApp, encode_rating
from onlinenmf.datasets import load_movietweetings
from onlinenmf.reco import RecoNMF
from tests.kafka_broker import (
    FAST_GROUP,
    FAST_GROUP_FLAGS,
    TopicReader,
    create_topic,
    kill_and_drain,
    produce,
    run_cli,
    unique,
)

pytestmark = pytest.mark.kafka

PARAMS = {"n_components": 4, "rating_range": (0.0, 10.0), "seed": 1}
MAX_BYTES = 2_000


def movietweetings(n: int) -> list[tuple[bytes, bytes]]:
    df = load_movietweetings().iloc[:n]
    return [(str(u).encode(), encode_rating(u, i, v, t)) for u, i, v, t in
            zip(df["user"].tolist(), df["item"].tolist(), df["value"].tolist(),
                df["time"].tolist())]


def reference_app(values, **kwargs) -> RecoApp:
    """The application fed ``values`` in order, in-process: what the consumer must end with."""
    app = RecoApp(**kwargs)
    app.restore(None)
    for offset, value in enumerate(values):
        try:
            app.process(app.decode(value), Source("ref", 0, offset, None, None, "ref"))
        except BadMessage:
            pass
    return app


def _doc(**changes) -> bytes:
    doc = {"user": 1, "item": "tt1", "value": 7, "time": 1362062307}
    doc.update(changes)
    return json.dumps(doc).encode()


_VALID = _doc()
#: case -> (payload, dead-letter kind, words the reason must contain)
BAD = {
    "not_json": (b"user=1;item=2", "not_json", "not JSON"),
    "unknown_field": (_doc(rating=5), "schema", "unknown field"),
    "missing_field": (json.dumps({"user": 1, "item": "tt1", "time": 0}).encode(), "schema",
                      "value"),
    "value_type": (_doc(value="seven"), "schema", "value"),
    "user_type": (_doc(user=[1]), "schema", "user"),
    "nan": (_VALID.replace(b'"value": 7', b'"value": NaN'), "bad_value", "NaN"),
    "inf": (_VALID.replace(b'"value": 7', b'"value": Infinity'), "bad_value", "infinite"),
    "out_of_range": (_doc(value=11), "bad_value", "outside rating_range"),
    "bad_time": (_doc(time="next week"), "bad_time", "ISO-8601"),
    "truncated": (_VALID[:-7], "truncated", "truncated"),
    "oversize": (_doc(item="x" * 200, user="y" * MAX_BYTES), "oversize", "exceeds"),
    "tombstone": (None, "schema", "no value"),
}


def _headers(msg) -> dict[str, str]:
    return {k: v.decode() for k, v in (msg.headers() or [])}


@pytest.fixture(scope="module")
def run(kafka_broker, tmp_path_factory):
    bootstrap = kafka_broker.bootstrap
    topic = create_topic(bootstrap, unique("ratings"), partitions=1)
    valid = movietweetings(1200)
    stream = list(valid)
    for i, (payload, _, _) in enumerate(BAD.values()):
        stream.insert(30 + i * 70, (b"1", payload))
    bad_offsets = {name: next(o for o, (_, v) in enumerate(stream) if v is payload)
                   for name, (payload, _, _) in BAD.items()}
    produce(bootstrap, topic, stream)
    ckpt_dir = tmp_path_factory.mktemp("ckpt")
    app = RecoApp(model_params=PARAMS, output_topic=topic + ".pred",
                  recommendations_topic=topic + ".recs", recommend_every=250, top_n=5,
                  max_bytes=MAX_BYTES)
    metrics = ConsumerMetrics()
    loop = ConsumerLoop(app, LoopConfig(
        bootstrap_servers=bootstrap, topics=[topic], group_id=unique("g"),
        checkpoint_dir=ckpt_dir, worker_id="w1", checkpoint_every=300, checkpoint_interval=60,
        exit_when_idle=1.5, consumer_config=dict(FAST_GROUP)), metrics)
    assert loop.run() == 0
    traces = {}
    for suffix in (".DLT", ".pred", ".recs"):
        reader = TopicReader(bootstrap, topic + suffix)
        traces[suffix] = reader.drain(idle=1.0)
        reader.close()
    return {"topic": topic, "stream": stream, "valid": valid, "bad_offsets": bad_offsets,
            "app": app, "metrics": metrics, "ckpt_dir": ckpt_dir, **traces}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_rating_goes_to_dead_letter_topic(run, name):
    payload, kind, needle = BAD[name]
    offset = run["bad_offsets"][name]
    matches = [m for m in run[".DLT"] if _headers(m)["kafka_dlt-original-offset"] == str(offset)]
    assert len(matches) == 1
    headers = _headers(matches[0])
    assert matches[0].value() == payload
    assert headers["onlinenmf-dlt-reason"] == kind
    assert needle in headers["kafka_dlt-exception-message"], headers
    # the consumer kept going: the next record has its prediction
    assert any(json.loads(m.value())["source"]["offset"] == offset + 1 for m in run[".pred"])


def test_model_is_exactly_the_valid_events(run):
    assert len(run[".DLT"]) == len(BAD)
    reference = reference_app([v for _, v in run["valid"]], model_params=PARAMS,
                              recommend_every=250)
    assert run["app"].model == reference.model
    assert run["app"].model.events_learned == len(run["valid"])
    ckpt = CheckpointStore(run["ckpt_dir"], "w1").read()
    assert RecoNMF.from_bytes(ckpt.blobs["reco"]) == reference.model
    assert ckpt.offsets == {f"{run['topic']}:0": len(run["stream"])}
    out = run_cli("inspect", "--checkpoint-dir", str(run["ckpt_dir"]), "--json", "--verify")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["samples_learned"] == len(run["valid"])
    assert info["summary"]["n_users"] == reference.model.n_users
    assert run["metrics"].value("onlinenmf_dead_letters_total", topic=run["topic"],
                                reason="bad_value") == 3


def test_every_valid_offset_has_a_prequential_prediction(run):
    records = [json.loads(m.value()) for m in run[".pred"]]
    assert {r["source"]["offset"] for r in records} == (
        set(range(len(run["stream"]))) - set(run["bad_offsets"].values()))
    assert all(0 <= r["prediction"] <= 10 for r in records)
    assert all(abs(r["error"] - (r["prediction"] - r["value"])) < 1e-9 for r in records)
    first = min(records, key=lambda r: r["source"]["offset"])
    assert (first["source"]["offset"], first["events_learned"]) == (0, 1)
    assert first["prediction"] == 5.0, first  # nothing learned yet: the middle of the range
    assert all(m.key().decode() == str(json.loads(m.value())["user"]) for m in run[".pred"])


def test_recommendations_for_recently_active_users(run):
    records = [json.loads(m.value()) for m in run[".recs"]]
    rounds = sorted({r["events_learned"] for r in records})
    assert rounds == list(range(250, len(run["valid"]) + 1, 250))
    for r in records:
        assert 1 <= len(r["items"]) <= 5
        scores = [s for _, s in r["items"]]
        assert scores == sorted(scores, reverse=True)


# ---------------------------------------------------------------------- SIGKILL
CHECKPOINT_EVERY = 1_000
#: Not a multiple of CHECKPOINT_EVERY: a consumer that reached the end of the stream has its
#: last outputs past its last checkpoint, so that kill_and_drain(store=...) can always kill
#: it with work left to redo (at 12,000 the last record's checkpoint covered every output:
#: a fast consumer restarted near the end finished before the reader saw a kill point).
N_EVENTS = 12_500
N_KILLS = 4


def _consume_args(bootstrap, topic, group, ckpt_dir, *extra):
    return ["consume", "reco", "--bootstrap-servers", bootstrap, "--topic", topic,
            "--group", group, "--checkpoint-dir", str(ckpt_dir), "--worker-id", "w",
            "--output-topic", topic + ".pred", "--model-topic", topic + ".recs",
            # checkpoints by the record count alone: one on an idle stream would cover every
            # output, and kill_and_drain(store=...) needs work left to redo at each kill
            "--checkpoint-every", str(CHECKPOINT_EVERY), "--checkpoint-interval", "3600",
            "--components", "4", "--seed", "1", "--rating-range", "0,10",
            "--recommend-every", "2000", "--top-n", "5", "--log-level", "INFO",
            *FAST_GROUP_FLAGS, *extra]


def test_sigkill_gives_the_uninterrupted_model(kafka_broker, tmp_path):
    bootstrap = kafka_broker.bootstrap
    topic = create_topic(bootstrap, unique("reco-crash"), partitions=1)
    table = tmp_path / "ratings.tsv"
    df = load_movietweetings().iloc[:N_EVENTS]
    df[["user", "item", "value", "time"]].to_csv(table, sep="\t", index=False)
    out = run_cli("produce", "reco", "--bootstrap-servers", bootstrap, "--topic", topic,
                  "--table", str(table), "--no-progress")
    assert out.returncode == 0, out.stderr

    group, log, ckpt_dir = unique("g"), tmp_path / "consumer.log", tmp_path / "ckpt"
    outputs = TopicReader(bootstrap, topic + ".pred")
    try:
        predictions = kill_and_drain(
            outputs, lambda *extra: _consume_args(bootstrap, topic, group, ckpt_dir, *extra),
            expected=N_EVENTS, kills=N_KILLS, seed=3, between=(300, 1500), log=log,
            store=CheckpointStore(ckpt_dir, "w"))
    finally:
        outputs.close()

    seen = {json.loads(m.value())["source"]["offset"] for m in predictions}
    assert seen == set(range(N_EVENTS))  # at-least-once outputs
    assert len(predictions) > N_EVENTS, "no output was redone: were the kills effective?"
    # the table was read as text: ids are strings on the wire, as the reference sees them
    values = [encode_rating(str(u), str(i), float(v), t) for u, i, v, t in
              zip(df["user"], df["item"], df["value"], df["time"].tolist())]
    reference = reference_app(values, model_params={**PARAMS, "rating_range": (0.0, 10.0),
                                                    "history": 50})
    ckpt = CheckpointStore(ckpt_dir, "w").read()
    model = RecoNMF.from_bytes(ckpt.blobs["reco"])
    assert model.events_learned == N_EVENTS
    assert model == reference.model  # bit for bit: factors, statistics, histories, ids
    assert ckpt.offsets == {f"{topic}:0": N_EVENTS}
