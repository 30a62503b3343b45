"""The microbiome consumer in supervised mode (``--label`` / ``[supervised] label``, issue 17).

In-process (no Kafka): the classifier's snapshot round trip; the record's probabilities made
before the sample is learned; an unlabelled sample learned by the communities but not by the
classes; a bad label refused with nothing learned. Against the embedded broker: a consumer
configured by a ``--config`` file, SIGKILLed twice and restarted, ends with the model and the
classifier of an uninterrupted run, emits the same probabilities for every sample as that run
did, and sends each bad label to the dead-letter topic.
"""

from __future__ import annotations

import json
import math
import random

import msgspec
import numpy as np
import pytest

from consumers.application import Source
from consumers.checkpoint import CheckpointStore
from consumers.messages import BadMessage
from consumers.microbiome import encode_sample, model_from_blobs
from consumers.microbiome.supervised import SupervisedMicrobiomeApp, Supervision
from onlinenmf import snapshot
from onlinenmf.river import NMFClassifier
from tests.kafka_broker import (
    FAST_GROUP_FLAGS,
    TopicReader,
    create_topic,
    kill_and_drain,
    produce,
    unique,
)

PARAMS = {"n_components": 3, "refresh_every": 20, "seed": 3}
CLASSIFIER = {"n_components": 2, "refresh_every": 10, "seed": 3}
CLASSES = ("vaginal", "cesarean")
#: bad labels (meta) -> words the dead letter's reason must hold; each after labelled samples
BAD_LABELS = {
    "float": ({"delivery": 0.5}, "a number"),
    "object": ({"delivery": {"mode": "c"}}, "an object"),
    "list": ({"delivery": ["c"]}, "a list"),
    "other type": ({"delivery": 1}, "one type per label"),
}


def _meta(i: int, label: str) -> dict | None:
    """Every 4th sample unlabelled (no field), every 7th null, one with no meta at all."""
    if i % 4 == 3:
        return {"week": i}
    if i % 7 == 6:
        return {"delivery": None}
    if i == 10:
        return None
    return {"delivery": label, "week": i}


def labelled_messages(n: int, seed: int = 0) -> list[tuple[bytes, bytes]]:
    """``n`` samples of 20 subjects, half of each class; each class has taxa of its own."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        subject = f"s{i % 20}"
        label = CLASSES[(i % 20) % 2]
        own = [f"{label[0]}{t}" for t in rng.choice(8, 3, replace=False)]
        shared = [f"t{t}" for t in rng.choice(30, 5, replace=False)]
        counts = {taxon: int(rng.integers(5, 200)) for taxon in own + shared}
        out.append((subject.encode(),
                    encode_sample(subject, float(i), f"x{i}", counts, _meta(i, label))))
    return out


def with_bad_labels(messages: list[tuple[bytes, bytes]]) -> tuple[list, dict[str, int]]:
    """The stream with one sample of each bad label inserted; name -> its offset."""
    stream, where = list(messages), {}
    for k, (name, (meta, _)) in enumerate(BAD_LABELS.items()):
        offset = 30 + 40 * k
        stream.insert(offset, (b"s1", encode_sample("s1", 1.0, f"bad{k}", {"t1": 5}, meta)))
        where[name] = offset
    return stream, where


def new_app(**kwargs) -> SupervisedMicrobiomeApp:
    app = SupervisedMicrobiomeApp(Supervision("meta.delivery", CLASSIFIER), model_params=PARAMS,
                                  **kwargs)
    app.restore(None)
    return app


def feed(app, values) -> dict[int, dict]:
    """Process ``values`` in order as offsets 0, 1, ...; offset -> output record (refused
    records are skipped, as the consumer dead-letters them)."""
    records = {}
    for offset, value in enumerate(values):
        try:
            result = app.process(app.decode(value), Source("t", 0, offset, None, None, "ref"))
        except BadMessage:
            continue
        records[offset] = msgspec.json.decode(result.outputs[0][2])
    return records


# ---------------------------------------------------------------------- in-process
def test_the_classifier_snapshot_goes_on_bit_for_bit():
    for params in [CLASSIFIER, {**CLASSIFIER, "formulation": "label-augmented"}]:
        rng = random.Random(0)
        stream = [({f"t{rng.randrange(9)}": float(rng.randint(1, 9)) for _ in range(4)},
                   rng.choice([True, False])) for _ in range(80)]
        model = NMFClassifier(**params)
        for x, y in stream[:40]:
            model.learn_one(x, y)
        copy = NMFClassifier.from_bytes(model.to_bytes())
        assert snapshot.same_state(copy, model)
        for x, y in stream[40:]:
            assert copy.predict_proba_one(x) == model.predict_proba_one(x)
            model.learn_one(x, y)
            copy.learn_one(x, y)
        assert snapshot.same_state(copy, model)
        assert copy.classes == model.classes and len(copy.classes) == 2


def test_probabilities_are_made_before_the_sample_is_learned():
    app = new_app()
    values = [v for _, v in labelled_messages(60)]
    feed(app, values[:58])
    sample = app.decode(values[58])  # labelled (58 % 4 != 3, 58 % 7 != 6)
    x = {t: math.log1p(c) for t, c in sample.counts.items()}
    before = app.supervision.classifier.predict_proba_one(x)
    record = msgspec.json.decode(app.process(sample, Source("t", 0, 58, None, None, "r"))
                                 .outputs[0][2])
    after = app.supervision.classifier.predict_proba_one(x)
    assert record["proba"] == before != after
    assert record["label"] == "vaginal" and set(record["proba"]) == set(CLASSES)
    assert record["predicted"] == max(before, key=before.__getitem__)
    assert sum(record["proba"].values()) == pytest.approx(1.0)


def test_an_unlabelled_sample_teaches_the_communities_not_the_classes():
    app = new_app()
    values = [v for _, v in labelled_messages(40)]
    feed(app, values[:39])
    assert values[39] and 39 % 4 == 3  # unlabelled
    classifier = NMFClassifier.from_bytes(app.supervision.classifier.to_bytes())
    learned = app.model.samples_learned
    record = msgspec.json.decode(app.process(app.decode(values[39]), Source(
        "t", 0, 39, None, None, "r")).outputs[0][2])
    assert app.model.samples_learned == learned + 1
    assert snapshot.same_state(app.supervision.classifier, classifier)
    assert "label" not in record and set(record["proba"]) == set(CLASSES)
    assert record["weights"]


@pytest.mark.parametrize("name", list(BAD_LABELS))
def test_a_bad_label_is_refused_and_nothing_is_learned(name):
    app = new_app()
    feed(app, [v for _, v in labelled_messages(30)])
    before = app.snapshot()
    meta, words = BAD_LABELS[name]
    sample = app.decode(encode_sample("s1", 99.0, "bad", {"t1": 5, "v1": 3}, meta))
    with pytest.raises(BadMessage) as refused:
        app.process(sample, Source("t", 0, 30, None, None, "r"))
    assert refused.value.kind == "schema" and words in str(refused.value)
    assert "\n" not in str(refused.value)
    assert app.snapshot() == before


def test_first_record_has_no_class_yet_and_a_new_class_beyond_the_limit_is_rejected():
    from consumers.microbiome import supervised

    app = new_app()
    first = feed(app, [labelled_messages(1)[0][1]])[0]
    assert first["proba"] == {} and "predicted" not in first and first["label"] == "vaginal"
    for k in range(supervised.MAX_CLASSES - 1):
        feed(app, [encode_sample("s", 1.0, "x", {"a": 1}, {"delivery": f"c{k}"})])
    before = app.snapshot()
    with pytest.raises(BadMessage) as refused:
        feed_one = encode_sample("s", 1.0, "x", {"a": 1}, {"delivery": "one too many"})
        app.process(app.decode(feed_one), Source("t", 0, 0, None, None, "r"))
    assert refused.value.kind == "rejected"
    assert app.snapshot() == before


@pytest.mark.parametrize("text, words", [
    ('[supervised]\nlabel = "delivery"\n', "write meta.<key>"),
    ('[supervised]\nlabel = "meta.delivery"\nformulation = "both"\n', "'class-wise' or"),
    ('[supervised]\nlabel = "meta.delivery"\nn_compnents = 2\n', "did you mean 'n_components'"),
])
def test_a_bad_supervised_section_is_one_line_naming_it(tmp_path, capsys, text, words):
    from consumers.cli import main

    config = tmp_path / "c.toml"
    config.write_text(text)
    assert main(["consume", "microbiome", "--config", str(config)]) == 2
    error = capsys.readouterr().err.strip()
    assert words in error and "[supervised]" in error and "\n" not in error


def test_the_config_file_and_the_flags_make_the_supervised_app():
    from consumers.cli import parse
    from consumers.kinds import STREAM_KINDS

    make_app = STREAM_KINDS["microbiome"].application
    args = parse(["consume", "microbiome", "--label", "meta.abx", "--seed", "5",
                  "--supervised-formulation", "label-augmented"])
    app = make_app(args)
    assert isinstance(app, SupervisedMicrobiomeApp) and app.supervision.keys == ("abx",)
    assert app.supervision.classifier_params == {"formulation": "label-augmented", "seed": 5}
    assert type(make_app(parse(["consume", "microbiome"]))) is not SupervisedMicrobiomeApp
    automatic = make_app(parse(["consume", "microbiome", "--label", "meta.abx",
                                "--supervised-refresh-every", "none"]))
    assert automatic.supervision.classifier_params == {"refresh_every": None, "seed": 0}
    automatic.restore(None)
    assert automatic.supervision.classifier.refresh_every is None
    with pytest.raises(ValueError, match="give --label FIELD too"):
        make_app(parse(["consume", "microbiome", "--supervised-n-components", "4"]))


# ---------------------------------------------------------------------- Kafka
N_MESSAGES = 600


def _consume_args(bootstrap, topic, group, ckpt_dir, config, *extra):
    return ["consume", "microbiome", "--bootstrap-servers", bootstrap, "--topic", topic,
            "--group", group, "--checkpoint-dir", str(ckpt_dir), "--worker-id", "w",
            "--output-topic", topic + ".out", "--model-topic", topic + ".model",
            # checkpoints by the record count alone, never by the clock: one on an idle stream
            # would cover every output, and kill_and_drain needs work left to redo at each
            # kill; 37 is no multiple of the refresh periods (20, 10), so the restarts resume
            # part-way between refreshes
            "--checkpoint-every", "37", "--checkpoint-interval", "3600", "--config",
            str(config), "--log-level", "INFO", *FAST_GROUP_FLAGS, *extra]


def _config(path):
    """The supervised mode and every parameter of this test, set by the config file."""
    path.write_text(
        "[model]\nn_components = 3\nrefresh_every = 20\nseed = 3\n"
        "[supervised]\nlabel = \"meta.delivery\"\nn_components = 2\nrefresh_every = 10\n")
    return path


def test_kill_and_restart_gives_the_uninterrupted_model_classifier_and_outputs(
        kafka_broker, tmp_path):
    bootstrap = kafka_broker.bootstrap
    topic = create_topic(bootstrap, unique("sup"), partitions=1)
    stream, bad = with_bad_labels(labelled_messages(N_MESSAGES, seed=4))
    produce(bootstrap, topic, stream)
    reference = new_app()
    expected = feed(reference, [v for _, v in stream])
    assert len(expected) == len(stream) - len(bad)

    config, ckpt, log = _config(tmp_path / "c.toml"), tmp_path / "ckpt", tmp_path / "log"
    group, outputs = unique("g"), TopicReader(bootstrap, topic + ".out")
    try:
        # SIGKILLed twice part-way, each time with outputs past its checkpoint (redone)
        records = kill_and_drain(
            outputs, lambda *extra: _consume_args(bootstrap, topic, group, ckpt, config, *extra),
            expected=len(expected), kills=2, seed=4, between=(120, 260), log=log,
            store=CheckpointStore(ckpt, "w"))
    finally:
        outputs.close()

    state = CheckpointStore(ckpt, "w").read()
    model = model_from_blobs(state.blobs)
    assert model == reference.model
    classifier = NMFClassifier.from_bytes(state.blobs["classifier"])
    assert snapshot.same_state(classifier, reference.supervision.classifier)
    assert classifier.classes == list(CLASSES)
    assert state.learned == {f"{topic}:0": len(expected)}
    assert state.summary["supervised"]["classes"] == list(CLASSES)

    seen: dict[int, list[dict]] = {}
    for msg in records:
        record = json.loads(msg.value())
        seen.setdefault(record["source"]["offset"], []).append(record)
    assert set(seen) == set(expected)
    assert any(len(copies) > 1 for copies in seen.values()), "no work redone after a kill?"
    for offset, copies in seen.items():
        for record in copies:  # a redone sample gets the probabilities it had the first time
            assert record["proba"] == expected[offset]["proba"]
            assert record.get("label") == expected[offset].get("label")
    unlabelled = [o for o, r in expected.items() if "label" not in r]
    assert len(unlabelled) > N_MESSAGES // 5
    late = [r["predicted"] == r["label"] for o, r in expected.items()
            if o > N_MESSAGES // 2 and "label" in r]
    assert np.mean(late) > 0.9  # the classes are learned: the taxa tell them apart

    dlt = TopicReader(bootstrap, topic + ".DLT")
    dead = dlt.drain(idle=1.0)
    dlt.close()
    headers = [{k: v.decode() for k, v in m.headers()} for m in dead]
    reasons = {int(h["kafka_dlt-original-offset"]): h for h in headers}
    assert set(reasons) == set(bad.values())
    for name, offset in bad.items():
        assert reasons[offset]["onlinenmf-dlt-reason"] == "schema"
        assert BAD_LABELS[name][1] in reasons[offset]["kafka_dlt-exception-message"]
