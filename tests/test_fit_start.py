"""`onlinenmf fit --start nndsvda | stream | MODEL.npz` through the real command line (issue 16).

The planted history of tests/test_distributed.py, as its three table files (TSV, BIOM,
Parquet). Each run starts its own LocalCluster of one worker process; the mistakes are refused
before a cluster starts.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("dask")  # the 'distributed' extra (make test installs it)

from onlinenmf import OnlineNMF, distributed  # noqa: E402
from tests.kafka_broker import run_cli  # noqa: E402
from tests.test_distributed import PARAMS, _files, planted  # noqa: E402

#: Model flags equal to tests/test_distributed.py's PARAMS (with the config below).
MODEL_FLAGS = ("--components", "3", "--beta", "1", "--seed", "0")
CONFIG = "[model]\nrefresh_every = 50\nreseed = false\n"


def fit_cli(*args: str):
    done = run_cli("fit", "--scheduler", "local:1", *args, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def test_start_stream_then_a_saved_model_continues(tmp_path):
    """--start stream is the API's start='stream'; --start model.npz continues that model's
    passes (its W, features, parameters and sample count), as fit(model) does."""
    files = _files(tmp_path, *planted())
    config = tmp_path / "fit.toml"
    config.write_text(CONFIG)
    first, second = tmp_path / "first.npz", tmp_path / "second.npz"
    fit_cli("--table", *files, *MODEL_FLAGS, "--config", str(config), "--passes", "2",
            "--start", "stream", "--out", str(first))
    streamed = OnlineNMF.load(first)
    expected = distributed.fit(files, PARAMS, passes=2, start="stream")
    assert np.abs(streamed.W - expected.W).max() <= 1e-6
    nndsvda = distributed.fit(files, PARAMS, passes=2)
    assert np.abs(streamed.W - nndsvda.W).max() > 1e-3  # the start did change

    done = fit_cli("--table", *files[1:], "--passes", "3", "--start", str(first),
                   "--out", str(second))
    assert [line.split(":")[0] for line in done.stderr.splitlines()
            if line.startswith("pass ")] == ["pass 1/3", "pass 2/3", "pass 3/3"]
    continued = OnlineNMF.load(second)
    expected = distributed.fit(files[1:], streamed, passes=3)
    assert continued.samples_learned == streamed.samples_learned + 3 * 200
    assert continued.component_ids == streamed.component_ids
    assert np.abs(continued.W - expected.W).max() <= 1e-6


@pytest.mark.parametrize("start, extra, message", [
    ("svd", [], "--start svd: expected nndsvda or stream, or the path of a saved model "
                "(.npz), and there is no such file"),
    ("{words}", [], "--start {words}: not a usable model snapshot ("),
    ("{model}", ["--components", "4"], "--start {model}: a saved model brings its own "
                                       "parameters; leave out --components"),
    ("{model}", ["--config", "{config}"], "--start {model}: a saved model brings its own "
                                          "parameters; leave out [model]"),
])
def test_bad_start_is_one_line_and_exit_2(tmp_path, start, extra, message):
    words = tmp_path / "words.tsv"
    words.write_text("sample\ta\tb\nS1\t1\t2\n")
    model = tmp_path / "model.npz"
    OnlineNMF(n_components=2).save(model)
    config = tmp_path / "fit.toml"
    config.write_text(CONFIG)
    names = {"words": words, "model": model, "config": config}
    out = tmp_path / "out.npz"
    done = run_cli("fit", "--table", str(words), "--start", start.format(**names),
                   *[a.format(**names) for a in extra], "--scheduler", "local:1",
                   "--out", str(out), timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("onlinenmf fit: ")
    assert message.format(**names) in lines[0]
    assert not out.exists()
