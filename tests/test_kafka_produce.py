"""`onlinenmf produce microbiome`: tables and the bundled cohort replayed in time order."""

from __future__ import annotations

import json

import pytest

from consumers.microbiome import decode_sample
from consumers.microbiome.producer import read_table
from tests.kafka_broker import create_topic, read_topic, run_cli, unique

METADATA = "sample_id\tsubject_id\tday_of_life\tdiet\nS1\tA\t10\tbd\nS2\tB\t3\tfd\nS3\tA\t1\tbd\n"
SAMPLES_AS_ROWS = "sample_id\tt1\tt2\tt3\nS1\t5\t0\t1\nS2\t0\t7\t0\nS3\t2\t2\t0\n"
BIOM_TSV = ("# Constructed from biom file\n#OTU ID\tS1\tS2\tS3\n"
            "t1\t5\t0\t2\nt2\t0\t7\t2\nt3\t1\t0\t0\n")
EXPECTED = [("S3", "A", 1.0, {"t1": 2.0, "t2": 2.0}), ("S2", "B", 3.0, {"t2": 7.0}),
            ("S1", "A", 10.0, {"t1": 5.0, "t3": 1.0})]


@pytest.mark.parametrize("table", [SAMPLES_AS_ROWS, BIOM_TSV], ids=["samples-rows", "biom-tsv"])
def test_produce_table_in_time_order(kafka_broker, tmp_path, table):
    (tmp_path / "table.tsv").write_text(table)
    (tmp_path / "meta.tsv").write_text(METADATA)
    topic = create_topic(kafka_broker.bootstrap, unique("prod"))
    out = run_cli("produce", "microbiome", "--bootstrap-servers", kafka_broker.bootstrap,
                  "--topic", topic, "--table", str(tmp_path / "table.tsv"),
                  "--metadata", str(tmp_path / "meta.tsv"), "--no-progress")
    assert out.returncode == 0, out.stderr
    assert "sent 3 messages" in out.stderr
    got = [(m.key(), decode_sample(m.value())) for m in read_topic(
        kafka_broker.bootstrap, topic, 3, idle=0.5)]
    assert [(s.sample_id, s.subject, s.time, s.counts) for _, s in got] == EXPECTED
    assert [k for k, _ in got] == [b"A", b"B", b"A"]
    assert got[0][1].meta == {"diet": "bd"}


def test_biom_json_table(tmp_path):
    doc = {"shape": [2, 2], "matrix_type": "sparse", "data": [[0, 0, 4], [1, 1, 3]],
           "rows": [{"id": "t1"}, {"id": "t2"}], "columns": [{"id": "S1"}, {"id": "S2"}]}
    (tmp_path / "t.biom").write_text(json.dumps(doc))
    counts, samples, features = read_table(tmp_path / "t.biom")
    assert samples == ["S1", "S2"] and features == ["t1", "t2"]
    assert counts.toarray().tolist() == [[4.0, 0.0], [0.0, 3.0]]


def test_missing_time_column_is_named(kafka_broker, tmp_path):
    (tmp_path / "table.tsv").write_text(SAMPLES_AS_ROWS)
    (tmp_path / "meta.tsv").write_text("sample_id\tsubject_id\nS1\tA\nS2\tB\nS3\tA\n")
    out = run_cli("produce", "microbiome", "--bootstrap-servers", kafka_broker.bootstrap,
                  "--topic", unique("prod"), "--table", str(tmp_path / "table.tsv"),
                  "--metadata", str(tmp_path / "meta.tsv"), "--no-progress")
    assert out.returncode == 2 and "--time-column" in out.stderr
    assert "Traceback" not in out.stderr


def test_produce_bundled_ecam(kafka_broker):
    topic = create_topic(kafka_broker.bootstrap, unique("ecam"))
    out = run_cli("produce", "microbiome", "--bootstrap-servers", kafka_broker.bootstrap,
                  "--topic", topic, "--limit", "60", "--no-progress")
    assert out.returncode == 0, out.stderr
    samples = [decode_sample(m.value()) for m in read_topic(
        kafka_broker.bootstrap, topic, 60, idle=0.5)]
    assert len(samples) == 60
    times = [s.time for s in samples]
    assert times == sorted(times)
    assert samples[0].sample_id == "10249.C001.01SS" and len(samples[0].counts) > 5
