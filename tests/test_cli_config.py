"""`onlinenmf consume --config FILE`: every key sets the option of the flag it names, flags
and environment variables win over the file, and a file (or -X setting, or ratings table) the
command cannot use is one line on stderr with exit status 2, before anything is consumed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from consumers.cli import main, parse
from consumers.kinds import STREAM_KINDS
from tests.kafka_broker import ROOT, run_cli

EXAMPLE = ROOT / "examples" / "consumer.toml"
NO_BROKER = "127.0.0.1:1"  # nothing listens there: a command that got this far would hang


def app_of(argv: list[str]):
    """The application ``onlinenmf consume ARGV`` would run (topics resolved)."""
    from consumers.consume import resolve_topics

    args = parse(["consume", *argv])
    resolve_topics(args)
    return args, STREAM_KINDS[args.kind].application(args)


def test_the_example_file_sets_model_tracker_kafka_topics_and_consumer_options():
    args, app = app_of(["microbiome", "--config", str(EXAMPLE)])
    assert app.model_params["n_components"] == 8
    assert app.model_params["beta"] == 1.0
    assert app.tracker_params["max_history"] == 400
    assert app.tracker_params["window"] == 30.0
    assert args.bootstrap_servers == "127.0.0.1:9092"
    assert args.group == "onlinenmf"
    assert "session_timeout_ms=10000" in args.kafka_config
    assert args.topic == "microbiome.samples"
    assert args.exit_when_idle == 10.0
    assert args.checkpoint_dir == Path("checkpoints")


def test_flags_and_environment_win_over_the_file(tmp_path, monkeypatch):
    config = tmp_path / "c.toml"
    config.write_text("[model]\nn_components = 4\nseed = 7\nadapt_rank = true\n"
                      "[tracker]\nmax_history = 300\n"
                      "[kafka]\nsession_timeout_ms = 9000\n[consumer]\nmax_poll_records = 50\n")
    monkeypatch.setenv("ONLINENMF_MAX_HISTORY", "99")
    args, app = app_of(["microbiome", "--config", str(config), "--components", "6",
                        "-X", "session_timeout_ms=12000"])
    assert app.model_params["n_components"] == 6      # the flag
    assert app.model_params["seed"] == 7              # the file
    assert app.model_params["adapt_rank"] is True     # a switch, from the file
    assert app.tracker_params["max_history"] == 99    # the environment
    assert args.max_poll_records == 50
    from consumers.options import parse_kafka_settings

    assert parse_kafka_settings(args.kafka_config)["session_timeout_ms"] == 12000


def test_reco_takes_its_own_model_parameters_by_their_names(tmp_path):
    config = tmp_path / "reco.toml"
    config.write_text('[model]\nfeedback = "implicit"\nforget_factor = 0.99\nhistory = 20\n'
                      'rating_range = [1, 5]\n'
                      '[consumer]\ntop_n = 3\n[topics]\ninput = "my.ratings"\n')
    args, app = app_of(["reco", "--config", str(config)])
    assert app.model_params["rating_range"] == (1.0, 5.0)
    assert app.model_params["feedback"] == "implicit"
    assert app.model_params["forget_factor"] == 0.99
    assert app.model_params["history"] == 20
    assert args.top_n == 3 and args.topic == "my.ratings"


@pytest.mark.parametrize("kind, text, expected", [
    ("microbiome", "[model]\nn_compnents = 3\n",
     ["[model]", "'n_compnents'", "did you mean 'n_components'", "beta", "seed"]),
    ("microbiome", "[modle]\nseed = 1\n", ["unknown section [modle]", "[tracker]"]),
    ("microbiome", '[tracker]\nmax_history = "many"\n',
     ["[tracker] max_history = 'many'", "not an integer"]),
    ("microbiome", "[tracker]\nmax_history = 0\n",
     ["[tracker] max_history = 0", "positive integer"]),
    ("microbiome", "[model]\nn_components = true\n", ["[model] n_components = True"]),
    ("microbiome", "[consumer]\nno_track = 1\n", ["[consumer] no_track = 1", "true or false"]),
    ("microbiome", "[consumer]\ncheckpoint_every = [1, 2]\n", ["checkpoint_every"]),
    ("reco", "[tracker]\nmax_history = 5\n", ["unknown section [tracker]"]),
    ("reco", "[model]\nbeta = 2\n", ["unknown key 'beta' in [model]", "feedback"]),
    ("reco", "[consumer]\nmax_features = 5\n", ["unknown key 'max_features'"]),
    ("microbiome", "[kafka]\nsesion_timeout_ms = 5000\n",
     ["[kafka]", "'sesion_timeout_ms'", "did you mean 'session_timeout_ms'"]),
    ("microbiome", "[kafka]\nsession_timeout_ms = 2000\n",
     ["[kafka]", "heartbeat_interval_ms must be below session_timeout_ms"]),
    ("microbiome", '[kafka]\nsession_timeout_ms = "soon"\n', ["session_timeout_ms", "number"]),
    ("microbiome", "[model\nseed = 1\n", ["not valid TOML"]),
    ("microbiome", "[model]\nforget_factor = 1.5\n",
     ["[model] forget_factor = 1.5", "forget_factor must be a number in (0, 1]"]),
    ("microbiome", "[model]\nadapt_rank = 1\n", ["[model] adapt_rank = 1", "true or false"]),
    ("text", '[topics]\noutput = "my topics"\n',
     ["[topics] output = 'my topics'", "not a Kafka topic name"]),
])
def test_a_bad_file_is_one_line_naming_file_section_and_key(tmp_path, capsys, kind, text,
                                                            expected):
    config = tmp_path / "bad.toml"
    config.write_text(text)
    status = main(["consume", kind, "--config", str(config), "--bootstrap-servers",
                   NO_BROKER, "--checkpoint-dir", str(tmp_path / "ck")])
    err = capsys.readouterr().err
    assert status == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("onlinenmf consume: "), err
    assert str(config) in lines[0]
    for part in expected:
        assert part in lines[0], lines[0]
    assert not (tmp_path / "ck").exists()  # refused before the checkpoint store is touched


@pytest.mark.parametrize("argv, env, flag", [
    (["consume", "microbiome", "--topic", "my samples"], {}, "--topic"),
    (["consume", "reco", "--output-topic", "predictions/2026"], {}, "--output-topic"),
    (["consume", "text", "--model-topic", ".."], {}, "--model-topic"),
    (["consume", "microbiome", "--share-dictionary"], {"ONLINENMF_STATS_TOPIC": "s" * 250},
     "--stats-topic"),
    (["produce", "microbiome", "--topic", "échantillons"], {}, "--topic"),
])
def test_a_topic_name_kafka_refuses_is_one_line_with_status_2(tmp_path, capsys, monkeypatch,
                                                             argv, env, flag):
    """kafka-python raised a traceback at subscribe for such an input topic, after the
    broker answered; Tansu took such an output topic silently, Apache Kafka refused it."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    where = ["--checkpoint-dir", str(tmp_path / "ck")] if argv[0] == "consume" else []
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--bootstrap-servers", NO_BROKER, *where])
    err = capsys.readouterr().err
    assert exit_.value.code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"onlinenmf {argv[0]}: argument {flag}: ")
    assert "is not a Kafka topic name" in lines[0] and "--help` lists the options" in lines[0]
    assert not (tmp_path / "ck").exists()


def test_an_empty_output_topic_still_switches_the_output_off():
    args, app = app_of(["microbiome", "--output-topic", "", "--model-topic", ""])
    assert app.topics_written() == []


def test_a_missing_config_file_is_one_line(tmp_path, capsys):
    assert main(["consume", "microbiome", "--config", str(tmp_path / "none.toml")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "none.toml" in lines[0] and "No such file" in lines[0]


@pytest.mark.parametrize("setting, expected", [
    ("session_timeout_ms=2000", ["session_timeout_ms=2000", "heartbeat_interval_ms=3000",
                                 "heartbeat_interval_ms must be below session_timeout_ms"]),
    ("session_timeout_ms=abc", ["session_timeout_ms", "expected a number"]),
    ("request_timeout_ms=100", ["fetch_max_wait_ms must be below request_timeout_ms"]),
    ("sesion_timeout_ms=5000", ["did you mean 'session_timeout_ms'"]),
    ("nothing", ["-X expects key=value"]),
])
def test_a_kafka_setting_the_client_refuses_is_one_line_before_anything_starts(
        tmp_path, setting, expected):
    done = run_cli("consume", "microbiome", "--bootstrap-servers", NO_BROKER,
                   "--broker-timeout", "20", "--checkpoint-dir", str(tmp_path / "ck"),
                   "-X", setting, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("onlinenmf consume: "), done.stderr[-2000:]
    for part in expected:
        assert part in lines[0], lines[0]
    assert not (tmp_path / "ck").exists()


@pytest.mark.parametrize("content, expected", [
    (None, "no such file"),
    ("user\titem\n", "no column value, time"),
    ("user\titem\tvalue\ttime\nu1\ti1\tfive\t3\n", "line 2 has no number as value"),
    ("", "not a readable"),
])
def test_produce_reco_refuses_a_bad_table_in_one_line_with_status_2(tmp_path, content,
                                                                     expected):
    table = tmp_path / "ratings.tsv"
    if content is not None:
        table.write_text(content)
    done = run_cli("produce", "reco", "--table", str(table), "--bootstrap-servers", NO_BROKER,
                   "-X", "bootstrap_timeout_ms=5000", timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("onlinenmf produce: "), done.stderr[-2000:]
    assert str(table) in lines[0] and expected in lines[0]


def test_produce_says_so_in_one_line_when_no_broker_answers(tmp_path):
    table = tmp_path / "ratings.csv"
    table.write_text("user,item,value,time\nu1,i1,4,1\n")
    done = run_cli("produce", "reco", "--table", str(table), "--bootstrap-servers", NO_BROKER,
                   "-X", "bootstrap_timeout_ms=2000", timeout=120)
    assert done.returncode == 3, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1].startswith(
        f"onlinenmf produce: no Kafka broker at {NO_BROKER} answered")


def test_inspect_json_shows_the_settings_as_given_and_in_force(tmp_path, capsys):
    import json

    from consumers.checkpoint import Checkpoint, CheckpointStore
    from consumers.microbiome import w_sha256
    from onlinenmf import OnlineNMF, Tracker

    tracker = Tracker(OnlineNMF(n_components=3, beta=1, seed=0), max_history=77)
    for i in range(30):
        tracker.learn_one({"a": 1.0 + i % 3, "b": 2.0, "c": float(i % 5)}, subject="s",
                          time=float(i))
    CheckpointStore(tmp_path, "w1").write(Checkpoint(
        offsets={"t:0": 30}, summary={"w_sha256": w_sha256(tracker.model.W)},
        blobs={"tracker": tracker.to_bytes()}))
    assert main(["inspect", "--checkpoint-dir", str(tmp_path), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)["settings"]
    assert shown["model"]["n_components"] == 3 and shown["model"]["beta"] == 1
    assert shown["model"]["forget_factor"] is None  # as given: chosen by the data ...
    assert 0 < shown["model_in_force"]["forget_factor"] <= 1  # ... and the value chosen
    assert shown["tracker"]["max_history"] == 77
