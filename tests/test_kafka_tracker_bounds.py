"""The subject tracker's memory bounds in the microbiome consumer (issue 10, defect 5).

Every bound of the Tracker is a flag of ``onlinenmf consume`` (and an ``ONLINENMF_*``
variable), checked at the command line with a one-line error; the bounds given on a restart
apply to the tracker restored from the checkpoint; and a consumer SIGKILLed while its memory
budget evicts subjects ends with the tracker of an uninterrupted run, bit for bit.
"""

from __future__ import annotations

import pytest

from consumers.application import Source
from consumers.checkpoint import CheckpointStore
from consumers.cli import build_parser
from consumers.kinds import STREAM_KINDS
from consumers.microbiome import MicrobiomeApp
from onlinenmf.tracking import Tracker
from tests.kafka_broker import (
    FAST_GROUP_FLAGS,
    TopicReader,
    create_topic,
    kill_and_drain,
    produce,
    reference_app,
    synthetic_messages,
    unique,
)

BOUND_FLAGS = ["--max-subjects", "500", "--max-history", "6", "--max-history-bytes", "96K",
               "--subject-ttl", "10000", "--max-events", "300"]
#: what BOUND_FLAGS ask of the Tracker
BOUNDS = {"max_subjects": 500, "max_history": 6, "max_history_bytes": 96 * 1024, "ttl": 10000.0,
          "max_events": 300}
PARAMS = {"n_components": 5, "refresh_every": 50, "seed": 2, "beta": 1.0}  # as the flags give them
MODEL_FLAGS = ["--components", "5", "--refresh-every", "50", "--seed", "2", "--beta", "1"]


def _app(*flags: str) -> MicrobiomeApp:
    args = build_parser().parse_args(["consume", "microbiome", *flags])
    return STREAM_KINDS["microbiome"].application(args)


def test_every_tracker_bound_is_a_flag():
    app = _app(*BOUND_FLAGS)
    app.restore(None)
    assert {name: getattr(app.tracker, name) for name in Tracker.BOUNDS} == BOUNDS
    defaults = _app()
    defaults.restore(None)
    assert defaults.tracker._params() == Tracker(defaults.model)._params()


def test_bounds_come_from_the_environment_too(monkeypatch):
    monkeypatch.setenv("ONLINENMF_MAX_HISTORY_BYTES", "2M")
    monkeypatch.setenv("ONLINENMF_MAX_SUBJECTS", "7")
    app = _app()
    app.restore(None)
    assert (app.tracker.max_history_bytes, app.tracker.max_subjects) == (2 << 20, 7)


@pytest.mark.parametrize(("flags", "env", "said"), [
    (["--max-subjects", "0"], {},
     "argument --max-subjects: max_subjects must be a positive integer, got 0"),
    (["--max-history", "1.5"], {}, "argument --max-history: '1.5' is not an integer"),
    (["--max-history-bytes", "12Q"], {}, "argument --max-history-bytes: '12Q' is not a size"),
    (["--max-history-bytes", "0K"], {}, "argument --max-history-bytes: must be at least 1"),
    (["--subject-ttl", "nan"], {},
     "argument --subject-ttl: ttl must be a finite number > 0 or None (no limit), got nan"),
    ([], {"ONLINENMF_MAX_EVENTS": "-3"},
     "argument --max-events: max_events must be a positive integer, got -3"),
])
def test_bad_bounds_are_refused_in_one_line(flags, env, said, monkeypatch, capsys):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args(["consume", "microbiome", *flags])
    assert done.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert said in err[-1] and "Traceback" not in "".join(err)


def test_a_restart_applies_the_bounds_it_is_given():
    # A checkpoint written under a large budget, restored under a small one: the tracker is
    # brought under the new budget before the first record (least recently seen evicted).
    big = MicrobiomeApp(model_params=PARAMS, tracker_params={"max_history_bytes": 1 << 30})
    big.restore(None)
    for offset, (_, value) in enumerate(synthetic_messages(600, seed=5, subjects=300)):
        big.process(big.decode(value), Source("t", 0, offset, None, None, "w"))
    assert big.tracker.history_bytes > 200_000
    small = MicrobiomeApp(tracker_params={"max_history_bytes": 200_000, "window": 3.0})
    small.restore(big.snapshot())
    assert small.tracker.max_history_bytes == 200_000
    assert small.tracker.history_bytes <= 200_000
    assert small.tracker.metrics["evicted_budget"] > 0
    assert small.tracker.subjects == big.tracker.subjects[-len(small.tracker):]
    assert small.tracker.window is None  # not a bound: the checkpoint's own setting stays
    assert small.summary()["tracker_history_bytes"] == small.tracker.history_bytes


def test_sigkilled_consumer_under_a_memory_budget_ends_bit_identical(kafka_broker, tmp_path):
    # 4,000 records of 800 subjects against a 96 KiB budget (about 70 subjects' worth):
    # the tracker evicts all along, and two SIGKILLs land at random points among them, each
    # with work left to redo (kill_and_drain: checkpoints by record count alone, 300 not
    # dividing 4,000).
    bootstrap = kafka_broker.bootstrap
    topic = create_topic(bootstrap, unique("bounds"), partitions=1)
    messages = synthetic_messages(4000, seed=13, subjects=800)
    produce(bootstrap, topic, messages)
    ckpt_dir, log = tmp_path / "ckpt", tmp_path / "consumer.log"
    args = ["consume", "microbiome", "--bootstrap-servers", bootstrap, "--topic", topic,
            "--group", unique("g"), "--checkpoint-dir", str(ckpt_dir), "--worker-id", "w",
            "--output-topic", topic + ".out", "--model-topic", "",
            "--checkpoint-every", "300", "--checkpoint-interval", "3600",
            *MODEL_FLAGS, *BOUND_FLAGS, *FAST_GROUP_FLAGS]
    outputs = TopicReader(bootstrap, topic + ".out")
    try:
        records = kill_and_drain(outputs, lambda *extra: [*args, *extra], expected=4000,
                                 kills=2, seed=3, between=(500, 1500), log=log,
                                 store=CheckpointStore(ckpt_dir, "w"))
    finally:
        outputs.close()
    assert len(records) > 4000, "no output was redone: were the kills effective?"

    reference = reference_app([v for _, v in messages], model_params=PARAMS,
                              tracker_params={"window": None, **BOUNDS})
    ckpt = CheckpointStore(ckpt_dir, "w").read()
    assert ckpt.offsets == {f"{topic}:0": 4000}
    tracker = Tracker.from_bytes(ckpt.blobs["tracker"])
    assert tracker.metrics["evicted_budget"] > 1000
    assert tracker.history_bytes == reference.tracker.history_bytes <= 96 * 1024
    assert ckpt.summary["tracker_history_bytes"] == tracker.history_bytes
    assert ckpt.blobs["tracker"] == reference.snapshot()["tracker"]
