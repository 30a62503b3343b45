"""Checkpoint files: atomic replacement, verification, the shared frontier, worker locks;
and the microbiome application's state round trip (the basis of crash consistency)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from consumers import checkpoint as ckpt_mod
from consumers.application import Source
from consumers.checkpoint import Checkpoint, CheckpointError, CheckpointStore
from consumers.cli import main
from consumers.microbiome import MicrobiomeApp, encode_sample
from tests.kafka_broker import (
    FAST_GROUP_FLAGS,
    create_topic,
    produce,
    read_topic,
    run_cli,
    synthetic_messages,
    unique,
)


def test_write_read_round_trip(tmp_path):
    store = CheckpointStore(tmp_path, "w1")
    assert store.read() is None
    original = Checkpoint(offsets={"t:0": 10, "t:1": 3}, owned=["t:0"], learned={"t:0": 9},
                          dead_letters={"t:0": 1}, summary={"samples_learned": 9},
                          blobs={"model": b"\x00" * 1000, "subjects": b"{}"})
    store.write(original)
    store.write(Checkpoint(offsets={"t:0": 12}, blobs={"model": b"x"}))
    back = store.read()
    assert back.sequence == 2 and back.offsets == {"t:0": 12} and back.blobs == {"model": b"x"}
    # a new store object continues the sequence from the file
    assert CheckpointStore(tmp_path, "w1").write(Checkpoint()) and store.read().sequence == 3
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []


def test_failed_write_leaves_previous_checkpoint(tmp_path, monkeypatch):
    store = CheckpointStore(tmp_path, "w1")
    store.write(Checkpoint(offsets={"t:0": 5}, blobs={"model": b"old"}))

    def boom(src, dst):
        raise OSError("disk on fire")

    monkeypatch.setattr(ckpt_mod.os, "replace", boom)
    with pytest.raises(OSError):
        store.write(Checkpoint(offsets={"t:0": 9}, blobs={"model": b"new"}))
    monkeypatch.undo()
    back = store.read()
    assert back.offsets == {"t:0": 5} and back.blobs["model"] == b"old"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_corrupt_blob_is_detected(tmp_path):
    store = CheckpointStore(tmp_path, "w1")
    store.write(Checkpoint(blobs={"model": b"a" * 100}))
    # rewrite the archive with a different blob but the old header
    with zipfile.ZipFile(store.path) as zf:
        header = zf.read("header.json")
    with zipfile.ZipFile(store.path, "w") as zf:
        zf.writestr("header.json", header)
        zf.writestr("state/model", b"b" * 100)
    with pytest.raises(CheckpointError, match="checksum"):
        store.read()
    store.path.write_bytes(b"garbage")
    with pytest.raises(CheckpointError):
        store.read()


def test_frontier_is_max_over_workers(tmp_path):
    CheckpointStore(tmp_path, "a").write(Checkpoint(offsets={"t:0": 100, "t:1": 40}))
    CheckpointStore(tmp_path, "b").write(Checkpoint(offsets={"t:0": 500, "t:2": 7}))
    (tmp_path / "junk.ckpt").write_bytes(b"not a zip")  # unreadable files do not count
    assert CheckpointStore(tmp_path, "c").frontier() == {"t:0": 500, "t:1": 40, "t:2": 7}


def test_worker_id_is_locked_across_processes(tmp_path):
    store = CheckpointStore(tmp_path, "w1")
    store.lock()
    code = ("import sys; from consumers.checkpoint import CheckpointStore, CheckpointError\n"
            f"s = CheckpointStore({str(tmp_path)!r}, 'w1')\n"
            "try:\n    s.lock()\nexcept CheckpointError as e:\n    print(e); sys.exit(3)\n")
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 3 and "--worker-id" in out.stdout
    store.unlock()
    assert subprocess.run([sys.executable, "-c", code], env=env).returncode == 0


def test_bad_worker_id():
    with pytest.raises(ValueError):
        CheckpointStore("/tmp", "../etc")


def _stream(n: int, seed: int = 0) -> list[bytes]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        taxa = rng.choice(120, rng.integers(3, 25), replace=False)
        counts = {f"t{t}": int(c) for t, c in zip(taxa, rng.integers(1, 400, taxa.size))}
        out.append(encode_sample(f"s{i % 23}", float(i), f"x{i}", counts))
    return out


@pytest.mark.parametrize("track", [True, False])
def test_app_state_round_trip_is_bit_exact(track):
    """Snapshot + restore at arbitrary points must not change the final state."""
    params = {"n_components": 4, "refresh_every": 25, "seed": 3}
    stream = _stream(500)

    def run(cuts, forget_warm_at=None):
        app = MicrobiomeApp(model_params=params, track=track)
        app.restore(None)
        for i, payload in enumerate(stream):
            if i in cuts:
                blobs = app.snapshot()
                # parameters come from the blobs, not from the new object
                app = MicrobiomeApp(model_params={"n_components": 9}, track=track)
                app.restore(blobs)
            if i == forget_warm_at:
                app.last_h = {}
            app.process(app.decode(payload), Source("t", 0, i, None, None, "w"))
        return app

    straight, cut = run(set()), run({1, 99, 100, 101, 333, 499})
    assert np.array_equal(straight.model.W, cut.model.W)
    assert straight.model == cut.model
    assert straight.summary() == cut.summary()
    if track:
        assert set(straight.snapshot()) == {"tracker", "app"}
        for subject in ("s0", "s7"):
            assert straight.tracker.trajectory(subject).equals(cut.tracker.trajectory(subject))
            assert straight.tracker.growth(subject) == cut.tracker.growth(subject)
        assert straight.tracker.events == cut.tracker.events
    else:
        assert straight.last_h == cut.last_h
        # the warm starts matter: without them W differs (so they must be checkpointed)
        cold = run(set(), forget_warm_at=250)
        assert not np.array_equal(cold.model.W, straight.model.W)


def test_engine_refusal_is_a_rejected_dead_letter_and_leaves_no_trace():
    from consumers.messages import BadMessage

    app = MicrobiomeApp(model_params={"n_components": 3, "refresh_every": 10, "seed": 0})
    app.restore(None)
    stream = _stream(30)
    for i, payload in enumerate(stream[:20]):
        app.process(app.decode(payload), Source("t", 0, i, None, None, "w"))
    before = app.snapshot()

    def refuse(*args, **kwargs):
        raise ValueError("time 'tuesday' is neither a number nor a timestamp")

    app.tracker.learn_one = refuse
    with pytest.raises(BadMessage) as info:
        app.process(app.decode(stream[20]), Source("t", 0, 20, None, None, "w"))
    assert info.value.kind == "rejected" and "tuesday" in str(info.value)
    assert isinstance(info.value.__cause__, ValueError)
    del app.tracker.learn_one
    assert app.snapshot() == before


def _flip_byte_inside(path, blob: bytes) -> None:
    """Flip one bit in the middle of ``blob``'s bytes in the (stored, uncompressed) archive."""
    data = bytearray(path.read_bytes())
    at = bytes(data).find(blob)
    assert at >= 0
    data[at + len(blob) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_inspect_verifies_by_default(tmp_path, capsys):
    """Issue 10, defect 6: a flipped byte in a state blob is an error without --verify."""
    app = MicrobiomeApp(model_params={"n_components": 3, "refresh_every": 10, "seed": 0})
    app.restore(None)
    for i, payload in enumerate(_stream(40)):
        app.process(app.decode(payload), Source("t", 0, i, None, None, "w"))
    blobs = app.snapshot()
    store = CheckpointStore(tmp_path, "w1")
    store.write(Checkpoint(offsets={"t:0": 40}, learned={"t:0": 40}, summary=app.summary(),
                           blobs=blobs))
    healthy = store.path.read_bytes()
    _flip_byte_inside(store.path, blobs["tracker"])
    for flags in ([], ["--json"], ["--verify"]):
        assert main(["inspect", "--checkpoint-dir", str(tmp_path), *flags]) == 1, flags
        captured = capsys.readouterr()
        assert captured.out == ""
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("onlinenmf inspect: ")
        assert str(store.path) in lines[0] and "state/tracker" in lines[0]
    # --no-verify reads the headers only (and says so by leaving 'verified' out)
    assert main(["inspect", "--checkpoint-dir", str(tmp_path), "--json", "--no-verify"]) == 0
    assert "verified" not in json.loads(capsys.readouterr().out)

    store.path.write_bytes(healthy)
    assert main(["inspect", "--checkpoint-dir", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["verified"] is True


def _unwritable_dir(tmp_path):
    """A checkpoint directory this process cannot write: a read-only directory holding a
    previous run's lock file (as the issue found it) or, where permissions do not bind
    (root), a path under a regular file."""
    directory = tmp_path / "read-only"
    directory.mkdir()
    (directory / "w.lock").touch()
    directory.chmod(0o555)
    try:
        (directory / "probe").touch()
    except PermissionError:
        return directory
    (directory / "probe").unlink()
    directory.chmod(0o755)
    blocker = tmp_path / "a-regular-file"
    blocker.write_text("not a directory")
    return blocker / "checkpoints"


def test_unwritable_checkpoint_dir_is_refused_when_locking(tmp_path):
    directory = _unwritable_dir(tmp_path)
    with pytest.raises(CheckpointError, match="is not writable .*--checkpoint-dir"):
        CheckpointStore(directory, "w").lock()


def test_consume_refuses_unwritable_checkpoint_dir_before_consuming(kafka_broker, tmp_path):
    """Issue 10, defect 7: found at start (one line, exit 2), not at the first checkpoint
    after records were learned and their outputs emitted."""
    bootstrap = kafka_broker.bootstrap
    topic = create_topic(bootstrap, unique("ro"))
    out_topic = create_topic(bootstrap, topic + ".out")
    produce(bootstrap, topic, synthetic_messages(200, seed=7))
    directory = _unwritable_dir(tmp_path)
    done = run_cli("consume", "microbiome", "--bootstrap-servers", bootstrap, "--topic", topic,
                   "--group", unique("g"), "--checkpoint-dir", str(directory),
                   "--worker-id", "w", "--output-topic", out_topic, "--model-topic", "",
                   "--exit-when-idle", "3", "--checkpoint-every", "50", *FAST_GROUP_FLAGS)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("onlinenmf consume")]
    assert len(lines) == 1 and str(directory) in lines[0] and "not writable" in lines[0]
    assert read_topic(bootstrap, out_topic, idle=1.0) == []  # nothing learned nor emitted
