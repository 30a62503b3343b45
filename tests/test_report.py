"""The HTML report: from a tracker, a saved tracker, a consumer checkpoint; rendered in Chromium."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess

import pytest

from consumers.checkpoint import Checkpoint, CheckpointStore
from onlinenmf import OnlineNMF, Tracker
from onlinenmf.cli import main
from onlinenmf.datasets import load_ecam
from onlinenmf.report import load_source, write_report

IMG = re.compile(r'<img alt="figure" src="data:image/png;base64,([A-Za-z0-9+/=]+)">')
SECTIONS = ("communities", "population", "subjects", "growth", "events")


@pytest.fixture(scope="module")
def tracker() -> Tracker:
    """A tracker over the first 200 ECAM samples, with a forced re-seed (birth/retire)."""
    table = load_ecam()
    t = Tracker(OnlineNMF(n_components=4, beta=1, refresh_every=40, seed=0), bin_width=30.0)
    for i, record in enumerate(table.records()):
        if i == 200:
            break
        if i == 150:
            t.model._reseed(0, "forced by the test")
        t.learn_one(record["counts"], subject=record["subject"], time=record["time"])
    return t


def _figures(page: str) -> list[bytes]:
    return [base64.b64decode(data) for data in IMG.findall(page)]


def test_report_has_every_section_and_figure(tracker, tmp_path):
    path = write_report(tracker, tmp_path / "r.html", n_subjects=4, time_unit_name="days")
    page = path.read_text()
    for section in SECTIONS:
        assert f"id='{section}'" in page
    figures = _figures(page)
    # communities, population, one page of subjects, events
    assert len(figures) == 4
    assert all(f.startswith(b"\x89PNG\r\n\x1a\n") and len(f) > 5000 for f in figures)
    assert "g__Bifidobacterium" in page or "g__Bacteroides" in page  # taxonomy names
    assert "no subject histories" not in page
    assert "birth" in page and "retire" in page and "forced by the test" in page
    assert "src=\"http" not in page and "<link" not in page  # self-contained


def test_report_from_consumer_checkpoints(tracker, tmp_path, capsys):
    model_only = tmp_path / "model_only"
    CheckpointStore(model_only, "w1").write(Checkpoint(
        offsets={"t:0": 5}, blobs={"model": tracker.model.to_bytes(), "subjects": b"\x80"}))
    out = tmp_path / "a.html"
    assert main(["report", "--checkpoint", str(model_only), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    page = out.read_text()
    assert "no subject histories" in page and len(_figures(page)) == 1

    with_tracker = tmp_path / "with_tracker"
    CheckpointStore(with_tracker, "w1").write(Checkpoint(
        offsets={"t:0": 5}, blobs={"tracker": tracker.to_bytes()}))
    restored = load_source(with_tracker)
    assert restored.subjects == tracker.subjects
    assert restored.trajectory("C001").equals(tracker.trajectory("C001"))
    out = tmp_path / "b.html"
    assert main(["report", "--checkpoint", str(with_tracker), "--out", str(out),
                 "--subjects", "C001,C002"]) == 0
    assert len(_figures(out.read_text())) == 4


def test_report_from_saved_tracker_file(tracker, tmp_path):
    tracker.save(tmp_path / "tracker.npz")
    tracker.model.save(tmp_path / "model.npz")
    assert load_source(tmp_path).subjects == tracker.subjects  # the tracker is preferred
    assert load_source(tmp_path / "model.npz").subjects == []
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        load_source(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no consumer checkpoint"):
        load_source(tmp_path / "empty")


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="LOUD SKIP: Debian's chromium is not installed "
                    "(apt-get install -y chromium); the report is not rendered in a browser")
def test_report_renders_in_headless_chromium(tracker, tmp_path):
    page = write_report(tracker, tmp_path / "r.html", n_subjects=4).read_text()
    # The test (not the report) adds a probe: after load, count the images the browser decoded.
    probe = ("<script>window.addEventListener('load', () => document.body.setAttribute("
             "'data-decoded', [...document.images].filter(i => i.complete && "
             "i.naturalWidth > 100).length));</script>")
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("</body>", probe + "</body>"))
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             "--virtual-time-budget=5000"]
    dom = subprocess.run([*flags, "--dump-dom", probed.as_uri()], capture_output=True,
                         text=True, timeout=120, check=True).stdout
    assert 'data-decoded="4"' in dom, dom[:300]
    shot = tmp_path / "shot.png"
    subprocess.run([*flags, "--window-size=1300,2000", f"--screenshot={shot}",
                    (tmp_path / "r.html").as_uri()], capture_output=True, timeout=120,
                   check=True)
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 50_000
