"""The text stream kind without a broker (issue 19): its decoder, its application's records
and atomicity, and ``onlinenmf produce text``'s one-line refusals."""

from __future__ import annotations

import json

import pytest

from consumers.application import Source
from consumers.messages import BadMessage
from consumers.text import TextApp, decode_document, encode_document
from tests.kafka_broker import run_cli

NO_BROKER = "127.0.0.1:1"  # nothing listens there: a command that got this far would hang
GOLD = "Gold and silver currency; the banks hold gold and silver coin."
WAR = "The army and the navy: war, soldiers and officers of the fleet."


def _source(offset: int) -> Source:
    return Source("text.documents", 0, offset, None, b"k", "main")


@pytest.mark.parametrize(("payload", "kind", "needle"), [
    (b"not json", "not_json", "not JSON"),
    (b'{"doc_id": "d", "time": 0, "text": "war", "speaker": "x"}', "schema", "speaker"),
    (b'{"doc_id": "", "time": 0, "text": "war"}', "schema", "doc_id"),
    (b'{"doc_id": "d", "time": "soon", "text": "war"}', "bad_time", "ISO-8601"),
    (b'{"doc_id": "d", "time": 0, "text": "war"', "truncated", "truncated"),
    (None, "schema", "no value"),
])
def test_bad_documents_are_named(payload, kind, needle):
    with pytest.raises(BadMessage, match=needle) as err:
        decode_document(payload)
    assert err.value.kind == kind


def test_meta_over_half_the_limit_is_oversize():
    payload = encode_document("d", 0, "war", {"note": "x" * 600})
    with pytest.raises(BadMessage, match="meta of") as err:
        decode_document(payload, max_bytes=1000)
    assert err.value.kind == "oversize"


def test_records_carry_the_mix_before_learning_and_the_refreshed_topics():
    app = TextApp(model_params={"n_components": 2, "min_df": 2, "seed": 0})
    app.restore(None)
    outputs = []
    for offset in range(40):
        doc = decode_document(encode_document(f"d{offset}", offset, (GOLD, WAR)[offset % 2],
                                              {"n": offset}))
        outputs += app.process(doc, _source(offset)).outputs
    mixes = [json.loads(v) for topic, _, v in outputs if topic == "text.mixes"]
    topics = [json.loads(v) for topic, _, v in outputs if topic == "text.topics"]
    assert [m["doc_id"] for m in mixes] == [f"d{i}" for i in range(40)]
    assert mixes[0]["topics"] == {} and mixes[0]["dominant"] is None  # no word admitted yet
    last_gold, last_war = mixes[-2], mixes[-1]
    assert last_gold["dominant"] != last_war["dominant"]
    assert last_gold["topics"][str(last_gold["dominant"])] > 0.9
    assert last_war["meta"] == {"n": 39} and last_war["n_words"] == 6
    assert topics and topics[-1]["model_version"] == app.model.nmf.model_version


def test_a_restored_app_continues_as_if_never_stopped():
    docs = [decode_document(encode_document(f"d{i}", i, (GOLD, WAR)[i % 3 == 0]))
            for i in range(30)]
    params = {"n_components": 2, "min_df": 1, "seed": 1}
    whole, first = TextApp(model_params=params), TextApp(model_params=params)
    whole.restore(None)
    first.restore(None)
    for i, doc in enumerate(docs):
        expected = whole.process(doc, _source(i)).outputs
        if i == 15:
            first, blobs = TextApp(model_params=params), first.snapshot()
            first.restore(blobs)
        assert first.process(doc, _source(i)).outputs == expected


def test_produce_text_needs_a_table_with_its_columns(tmp_path):
    done = run_cli("produce", "text", "--bootstrap-servers", NO_BROKER)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert lines == ["onlinenmf produce: produce text needs --table: a TSV with columns "
                     "doc_id, text and time (or date)"]
    table = tmp_path / "docs.tsv"
    table.write_text("id\ttext\n1\twar\n")
    done = run_cli("produce", "text", "--table", str(table), "--bootstrap-servers", NO_BROKER)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "no column(s) ['doc_id', 'time or date']" in lines[0], lines


def test_produce_help_lists_every_registered_kind():
    """``onlinenmf produce --help`` names the kinds from the registry, text included."""
    from consumers.kinds import STREAM_KINDS
    from consumers.produce import HELP

    for name, kind in STREAM_KINDS.items():
        assert f"  {name:<12} {kind.topics.input}\n" in HELP
    assert "onlinenmf produce text --table" in HELP
