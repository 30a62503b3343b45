"""``onlinenmf consume text``'s model flags reach the TopicModel the consumer builds and its
checkpoint, a bad value is a one-line usage error, and ``onlinenmf report`` shows them
(issue 19: ``--idf-power``)."""

from __future__ import annotations

import pytest

from consumers.application import Source
from consumers.checkpoint import Checkpoint, CheckpointStore
from consumers.cli import build_parser
from consumers.consume import _flags_of_other_kinds
from consumers.kinds import STREAM_KINDS
from consumers.text import TextApp, encode_document
from onlinenmf.text import IDF_POWER
from tests.test_report import _tables

#: flag words -> the new model's (weighting, min_df, max_words, idf_power), none the default
GIVEN = ["--weighting", "log", "--min-df", "3", "--max-words", "100", "--idf-power", "1.5"]


def _app(words: list[str]) -> TextApp:
    args = build_parser().parse_args(["consume", "text", *words])
    app = STREAM_KINDS["text"].application(args)
    app.restore(None)  # a new model, as a consumer without a checkpoint builds
    return app


def _settings(app: TextApp) -> tuple:
    vectorizer = app.model.vectorizer
    return (vectorizer.weighting, vectorizer.vocabulary.min_df,
            vectorizer.vocabulary.max_words, vectorizer.idf_power)


def test_every_model_flag_reaches_the_model_and_its_checkpoint():
    app = _app(GIVEN)
    assert _settings(app) == ("log", 3, 100, 1.5)
    restored = TextApp()  # a consumer restarted without the flags keeps the checkpoint's
    restored.restore(app.snapshot())
    assert _settings(restored) == ("log", 3, 100, 1.5)


def test_not_given_the_model_keeps_topic_models_default():
    assert _app([]).model.vectorizer.idf_power == IDF_POWER
    consume = build_parser()._subparsers._group_actions[0].choices["consume"]
    assert f"(default: {IDF_POWER:g})" in consume._option_string_actions["--idf-power"].help


def test_the_environment_sets_idf_power_as_the_flag_would(monkeypatch):
    monkeypatch.setenv("ONLINENMF_IDF_POWER", "1")
    assert _app([]).model.vectorizer.idf_power == 1.0


@pytest.mark.parametrize(("value", "said"), [
    ("0", "argument --idf-power: idf_power must be a positive number, got 0.0"),
    ("-1", "argument --idf-power: idf_power must be a positive number, got -1.0"),
    ("nan", "argument --idf-power: idf_power must be a positive number, got nan"),
    ("two", "argument --idf-power: 'two' is not a number"),
])
def test_a_bad_idf_power_is_a_one_line_usage_error(value, said, capsys):
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args(["consume", "text", "--idf-power", value])
    assert done.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"onlinenmf consume: {said} ("), lines


def test_idf_power_is_refused_for_another_kind():
    args = build_parser().parse_args(["consume", "microbiome", "--idf-power", "1.5"])
    assert _flags_of_other_kinds(args, "microbiome") == "--idf-power is for the text stream only"


def test_the_report_shows_the_idf_power(tmp_path):
    from consumers.report import load_text, write_text_report

    app = _app(["--idf-power", "1.5", "--min-df", "1", "--components", "2"])
    for i in range(5):
        doc = app.decode(encode_document(f"d{i}", i, "gold silver war peace"))
        app.process(doc, Source("text.documents", 0, i, None, b"k", "w"))
    CheckpointStore(tmp_path, "w").write(Checkpoint(offsets={"text.documents:0": 5},
                                                    blobs=app.snapshot()))
    page = write_text_report(load_text(tmp_path), tmp_path / "t.html").read_text()
    overview = _tables(page)[0]
    rows = dict(zip(overview.iloc[:, 0].str.strip(), overview["value"].str.strip()))
    assert rows["idf power (tfidf: tf * idf ** power)"] == "1.5"
