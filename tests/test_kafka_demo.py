"""`make demo`: ECAM through the embedded broker and the consumer, outputs left in a folder."""

from __future__ import annotations

import json

from consumers.demo import run_demo
from tests.kafka_broker import run_cli


def test_demo_streams_ecam_through_kafka(tmp_path, capsys):
    out = tmp_path / "demo"
    summary = run_demo(out, components=6, report=False)
    printed = capsys.readouterr().out
    assert summary["samples_learned"] == summary["samples_produced"] == 699
    assert summary["output_records"] >= 699 and summary["model_versions"] >= 1
    assert summary["dead_letters"] == 0 and summary["subjects"] == 42
    lines = (out / "communities.jsonl").read_text().splitlines()
    assert {json.loads(x)["sample_id"] for x in lines} >= {"10249.C001.01SS"}
    assert "6 communities after 699 samples" in printed
    assert "Bifidobacterium" in printed  # taxa printed by name, not by ASV hash
    assert "C001: d0 " in printed       # a trajectory
    info = json.loads(run_cli("inspect", "--checkpoint-dir", str(out / "checkpoints"),
                              "--json").stdout)
    assert info["samples_learned"] == 699
    assert sum(info["learned"].values()) == 699
