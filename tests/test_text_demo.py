"""`onlinenmf demo text` (`make demo-text`): State of the Union chunks through the embedded
broker and the text consumer's application, the report written (issue 19)."""

from __future__ import annotations

import json

import pytest

from consumers.cli import main
from consumers.demo import run_text_demo

pytestmark = pytest.mark.kafka


def test_demo_text_streams_a_slice_through_kafka_and_reports(tmp_path, capsys):
    out = tmp_path / "demo"
    summary = run_text_demo(out, components=5, every=40, limit=300)
    printed = capsys.readouterr().out
    assert summary["documents_produced"] == summary["documents_learned"] == 300
    assert summary["output_records"] == 300 and summary["topic_versions"] >= 1
    assert summary["dead_letters"] == 0 and summary["checkpoints"] >= 1
    mixes = [json.loads(line) for line in (out / "mixes.jsonl").read_text().splitlines()]
    assert mixes[0]["doc_id"].startswith("1790")  # time order: Washington's first address
    assert "5 topics after 300 documents" in printed
    page = (out / "report.html").read_text()
    for section in ("topics", "prevalence", "topic-events", "polysemy"):
        assert f"id='{section}'" in page
    assert "State of the Union through Kafka" in page
    # the checkpoint left behind is reported on by the command too
    again = tmp_path / "again.html"
    assert main(["report", "--checkpoint", str(out / "checkpoints"), "--out", str(again),
                 "--dates"]) == 0
    assert "id='prevalence'" in again.read_text()


def test_demo_text_without_the_data_is_one_line(tmp_path, capsys):
    assert main(["demo", "text", "--data", str(tmp_path / "none.tsv.xz"),
                 "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "none.tsv.xz" in err[0] and "--data" in err[0], err
