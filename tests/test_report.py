"""The HTML report: from a tracker, a saved tracker, a consumer checkpoint; rendered in Chromium."""

from __future__ import annotations

import base64
import html
import io
import json
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from consumers.checkpoint import Checkpoint, CheckpointStore
from consumers.cli import main
from consumers.report import (
    event_counts,
    feature_labels,
    load_source,
    time_axis,
    write_report,
)
from onlinenmf import OnlineNMF, Tracker
from onlinenmf.datasets import load_artificial_gut, load_ecam, make_poisson_stream
from tests.kafka_broker import run_cli

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


def test_report_on_a_missing_or_corrupt_checkpoint_is_a_one_line_error(tracker, tmp_path,
                                                                       capsys):
    """Issue 10, defect 7: exit 1 and one line naming the path, no traceback, no page."""
    healthy = tmp_path / "healthy"
    CheckpointStore(healthy, "w1").write(Checkpoint(
        offsets={"t:0": 5}, blobs={"tracker": tracker.to_bytes()}))
    flipped = tmp_path / "flipped"
    flipped.mkdir()
    data = bytearray((healthy / "w1.ckpt").read_bytes())
    data[len(data) // 2] ^= 0x01  # inside the tracker blob, the bulk of the file
    (flipped / "w1.ckpt").write_bytes(bytes(data))
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "w1.ckpt").write_bytes(b"not a zip archive")
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 truncated")
    out = tmp_path / "r.html"
    cases = {
        "no such": [str(tmp_path / "missing")],
        "flipped": [str(flipped)],
        "garbage": [str(garbage / "w1.ckpt")],
        "healthy": [str(healthy), "--worker", "w2"],  # no checkpoint of that worker
        "broken.npz": [str(tmp_path / "broken.npz")],
    }
    for named, source in cases.items():
        assert main(["report", "--checkpoint", *source, "--out", str(out)]) == 1, named
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("onlinenmf report: "), captured.err
        assert named in lines[0]
        assert captured.out == "" and not out.exists()


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


# ---------------------------------------------------------------------- any table (issue 14)
@pytest.fixture(scope="module")
def gut(tmp_path_factory) -> tuple[Path, Tracker]:
    """A consumer checkpoint of the artificial gut (hours; taxonomy in rank columns, no
    'Taxon'), with a short history so that samples are dropped."""
    table = load_artificial_gut()
    t = Tracker(OnlineNMF(n_components=4, beta=1, refresh_every=40, seed=0), max_history=30)
    for i, record in enumerate(table.records()):
        if i == 240:
            break
        t.learn_one(record["counts"], subject=record["subject"], time=record["time"])
    folder = tmp_path_factory.mktemp("gut")
    CheckpointStore(folder, "w1").write(Checkpoint(offsets={"t:0": 240},
                                                   blobs={"tracker": t.to_bytes()}))
    return folder, t


def _community_rows(page: str) -> list[tuple[int, int, str]]:
    """(community, rank, name) rows of the communities table."""
    block = page.split("<summary>as a table</summary>")[1].split("</details>")[0]
    rows = re.findall(r"<tr>\s*<td>(\d+)</td>\s*<td>(\d+)</td>\s*<td>(.*?)</td>", block)
    assert rows
    return [(int(c), int(r), html.unescape(name)) for c, r, name in rows]


def _named(model: OnlineNMF, page: str) -> dict[str, str]:
    """Feature -> the name the report gave it (one name per feature, checked)."""
    tops = model.components(top=8)
    out: dict[str, str] = {}
    for community, rank, name in _community_rows(page):
        feature = tops[community][rank - 1][0]
        assert out.setdefault(feature, name) == name, "one feature, one name"
    assert len(set(out.values())) == len(out), "two features shown under one name"
    return out


def test_artificial_gut_checkpoint_named_from_its_rank_columns(gut, tmp_path, capsys):
    folder, tracker = gut
    out = tmp_path / "gut.html"
    assert main(["report", "--checkpoint", str(folder), "--out", str(out)]) == 0
    page = out.read_text()
    table = load_artificial_gut()
    named = _named(tracker.model, page)
    for feature, name in named.items():
        plain = table.taxon_name(feature, unique=False)
        assert name in (plain, f"{plain} ({feature})"), (feature, name)
    assert any(name.endswith(f"({f})") for f, name in named.items())  # a shared genus
    assert "s__Bacteroides uniformis" in page and "g__Alistipes" in page
    assert "<td>time unit</td>\n      <td>hours</td>" in page  # the data set's own unit
    assert "log weights per hour" in page


def test_taxonomy_file_takes_precedence_over_bundled_names(gut, tmp_path, capsys):
    folder, tracker = gut
    features = tracker.model.features
    qiime = tmp_path / "taxonomy.tsv"
    qiime.write_text("Feature ID\tTaxon\tConfidence\n" + "".join(
        f"{f}\tk__Bacteria; g__Mine{f[4:]}; s__none\t0.9\n" for f in features))
    biom = tmp_path / "table.biom"
    biom.write_text(json.dumps({
        "shape": [len(features), 1], "matrix_type": "sparse", "data": [[0, 0, 1]],
        "columns": [{"id": "S1"}],
        "rows": [{"id": f, "metadata": {"taxonomy": ["k__Bacteria", "g__Biom" + f[4:]]}}
                 for f in features]}))
    for path, prefix in ((qiime, "g__Mine"), (biom, "g__Biom")):
        out = tmp_path / f"{path.suffix}.html"
        assert main(["report", "--checkpoint", str(folder), "--out", str(out),
                     "--taxonomy", str(path)]) == 0
        page = out.read_text()
        named = _named(tracker.model, page)
        assert named == {f: f"{prefix}{f[4:]}" for f in named}
        assert "g__Alistipes" not in page and "uniformis" not in page
        assert f"{len(features)} of {len(features)} features named" in page


def test_feature_labels_precedence():
    names = feature_labels(["a", "b", "seq_2", "seq_1", "zz"],
                           taxonomy={"a": "k__Bacteria; g__Blautia; s__none"},
                           tracker_labels={"a": "L", "b": "M", "seq_2": "N"})
    assert names == {"a": "g__Blautia", "b": "M", "seq_2": "N", "seq_1": "g__Alistipes"}


def _coloured_width(png: bytes) -> float:
    """Fraction of the image's width holding strongly coloured pixels (plotted areas)."""
    from PIL import Image

    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    saturated = (rgb.max(axis=2) - rgb.min(axis=2)) > 60
    columns = np.flatnonzero(saturated.sum(axis=0) > rgb.shape[0] // 4)
    return (columns.max() - columns.min()) / rgb.shape[1] if columns.size else 0.0


def test_one_subject_unnamed_features_full_width_and_days(tmp_path):
    rng = np.random.default_rng(0)
    t = Tracker(OnlineNMF(n_components=3, beta=1, refresh_every=10, seed=0))
    for day in range(40):
        counts = {f"otu_{j}": float(c) for j, c in enumerate(rng.poisson(20, 12)) if c}
        t.learn_one(counts, subject="patient", time=float(day))
    page = write_report(t, tmp_path / "one.html").read_text()
    named = _named(t.model, page)
    assert named == {f: f for f in named}  # no taxonomy anywhere: the ids
    assert "have no taxonomy and are shown by id" in page
    assert "Times are read as days" in page and "log weights per day" in page
    assert "One subject" in page  # no population panels that repeat it
    subjects = page.split("id='subjects'")[1].split("id='growth'")[0]
    (figure,) = _figures(subjects)
    assert _coloured_width(figure) > 0.8  # the trajectory spans the page, not a third of it
    # the same subject in a 3-column grid (the old layout) would not
    crowded = Tracker.from_bytes(t.to_bytes())
    for name in ("b", "c"):
        crowded.learn_one({"otu_1": 3.0}, subject=name, time=50.0)
    page = write_report(crowded, tmp_path / "three.html", subjects=["patient"]).read_text()
    assert _coloured_width(_figures(page.split("id='subjects'")[1])[0]) > 0.8


def _switching_subjects(subjects: int = 6, visits: int = 24, stay: int = 4) -> Tracker:
    """Subjects that switch between 3 planted communities (disjoint taxa, one per sample)
    every ``stay`` visits, a visit every 6 hours: each switch is a genuine appear/vanish
    pair (5 per subject), 4 visits per day."""
    s = make_poisson_stream(n_features=40, n_components=3, n_samples=600, active=1,
                            taxa_per_community=10, depth=2000, seed=0)
    pools = [list(np.flatnonzero(s.H_true.argmax(axis=1) == c)) for c in range(3)]
    model = OnlineNMF(n_components=3, beta=1, refresh_every=40, seed=0)
    model.learn_many(s.X[:150], features=s.features)  # the communities known before
    tracker = Tracker(model)
    for visit in range(visits):
        for n in range(subjects):
            rows = pools[(n + visit // stay) % 3]
            tracker.learn_one(s.sample(rows.pop()), subject=f"s{n}", time=6.0 * visit)
    return tracker


def test_events_summarised_per_kind_and_time_bin(tmp_path):
    # Planted switches, not the gut fixture: the tracker rightly makes few appear/vanish
    # events on the gut's 240 samples (9 since issue 13), and this test needs many.
    tracker = _switching_subjects()
    events = tracker.events
    kinds = Counter(e["kind"] for e in events)
    assert kinds["appear"] > 10  # enough to have drawn a crowd of marks before
    counts = event_counts(events, 24.0)
    assert counts.sum().to_dict() == dict(kinds)
    for e in events[:50]:
        assert counts.loc[np.floor(e["time"] / 24.0) * 24.0, e["kind"]] >= 1
    assert list(counts.index) == sorted({np.floor(e["time"] / 24.0) * 24.0 for e in events})
    page = write_report(tracker, tmp_path / "e.html", bin_width=24.0).read_text()
    section = page.split("id='events'")[1]
    assert len(_figures(section)) == 1
    for kind, n in kinds.items():
        assert re.search(rf"<td>{kind}</td>\s*<td>{n}</td>", section), kind


def test_a_visible_note_when_history_was_dropped(gut, tracker, tmp_path):
    _, cut = gut
    dropped = cut.metrics["history_dropped"]
    assert dropped > 0
    page = write_report(cut, tmp_path / "cut.html").read_text()
    assert f"keeps at most 30 samples per subject and dropped {dropped} older" in page
    assert page.index("History was cut") < page.index("id='communities'")  # at the top
    assert tracker.metrics["history_dropped"] == 0
    assert "History was cut" not in write_report(tracker, tmp_path / "ok.html").read_text()


def test_reco_checkpoint_gets_a_message_not_a_crash(tmp_path, capsys):
    from onlinenmf.reco import RecoNMF

    model = RecoNMF(n_components=2, rating_range=(1, 5), seed=0)
    for user, item, r in [("ann", "matrix", 5), ("bob", "up", 2), ("ann", "up", 3)]:
        model.learn_one(user, item, r)
    CheckpointStore(tmp_path / "reco", "w1").write(Checkpoint(
        offsets={"reco.ratings:0": 3}, blobs={"reco": model.to_bytes(), "app": b"{}"}))
    model.save(tmp_path / "reco.npz")
    for source in (tmp_path / "reco", tmp_path / "reco.npz"):
        assert main(["report", "--checkpoint", str(source), "--out",
                     str(tmp_path / "r.html")]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "a recommender (reco) model" in err[0], err
        assert "onlinenmf inspect" in err[0] and not (tmp_path / "r.html").exists()


def test_report_mistakes_are_one_line_and_exit_2(gut, tmp_path):
    """Through the command line as a user runs it: one line on stderr, status 2, no page."""
    folder, _ = gut
    (tmp_path / "artifact.qza").write_bytes(b"PK\x03\x04 a zip")
    (tmp_path / "one-column.tsv").write_text("seq_1\nseq_2\n")
    cases = {
        "no such file": ["--taxonomy", str(tmp_path / "missing.tsv")],
        "qiime tools export": ["--taxonomy", str(tmp_path / "artifact.qza")],
        "Feature ID, Taxon": ["--taxonomy", str(tmp_path / "one-column.tsv")],
        "vessel_9 not held": ["--subjects", "vessel_1,vessel_9"],
    }
    out = tmp_path / "r.html"
    for expected, flags in cases.items():
        done = run_cli("report", "--checkpoint", str(folder), "--out", str(out), *flags)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1, done.stderr
        assert lines[0].startswith("onlinenmf report: ") and expected in lines[0], lines
        assert not out.exists()


def test_times_that_were_dates_can_be_drawn_as_dates(tmp_path):
    """produce and the consumer turn dates into days since 1970-01-01: the report says so and
    --dates draws the calendar."""
    t = Tracker(OnlineNMF(n_components=2, beta=1, refresh_every=5, seed=0))
    for day in range(12):
        for subject in ("A", "B"):
            t.learn_one({"x": 5.0 + day, "y": 3.0, "z": float(day % 3)}, subject=subject,
                        time=18262.0 + day)  # 2020-01-01 onwards
    axis, notes = time_axis(t)
    assert axis.label == "time (days)" and any("--dates" in n for n in notes)
    axis, notes = time_axis(t, dates=True)
    assert axis.label == "date" and notes == []
    assert list(axis.x([18262.0, 18262.5])) == [pd.Timestamp("2020-01-01"),
                                                pd.Timestamp("2020-01-01 12:00")]
    assert "--dates draws them" in write_report(t, tmp_path / "a.html").read_text()
    page = write_report(t, tmp_path / "b.html", dates=True).read_text()
    assert "--dates draws them" not in page and len(_figures(page)) == 4
    young = Tracker(OnlineNMF(n_components=2, seed=0))
    young.learn_one({"x": 1.0}, subject="A", time=30.0)  # day of life: no such note
    assert all("--dates" not in n for n in time_axis(young)[1])


@pytest.fixture(scope="module")
def classifier():
    """A supervised consumer's classifier: the first 200 ECAM samples (log1p counts, as the
    consumer gives them) with their delivery mode."""
    from onlinenmf.river import NMFClassifier

    model = NMFClassifier(n_components=3, refresh_every=20, seed=0)
    for i, record in enumerate(load_ecam().records()):
        if i == 200:
            break
        x = {taxon: float(np.log1p(count)) for taxon, count in record["counts"].items()}
        model.learn_one(x, record["meta"]["delivery"])
    return model


def _classes_section(page: str) -> str:
    start = page.index("id='classes'")
    return page[start:page.index("<h2", start)]


def _tables(block: str) -> list[pd.DataFrame]:
    """The HTML tables of ``block`` as frames of text (no HTML parser library needed)."""
    frames = []
    for table in re.findall(r"<table.*?</table>", block, re.S):
        header = [html.unescape(h) for h in re.findall(r"<th>(.*?)</th>", table, re.S)]
        rows = [[html.unescape(c) for c in re.findall(r"<td>(.*?)</td>", row, re.S)]
                for row in re.findall(r"<tr>(.*?)</tr>", table, re.S)]
        frames.append(pd.DataFrame([r for r in rows if r], columns=header))
    return frames


def test_supervised_checkpoint_shows_each_class_communities_and_effects(tracker, classifier,
                                                                       tmp_path, capsys):
    folder = tmp_path / "supervised"
    CheckpointStore(folder, "w1").write(Checkpoint(offsets={"t:0": 200}, blobs={
        "tracker": tracker.to_bytes(), "classifier": classifier.to_bytes()}))
    out = tmp_path / "s.html"
    assert main(["report", "--checkpoint", str(folder), "--out", str(out), "--top", "3"]) == 0
    section = _classes_section(out.read_text())
    tables = _tables(section)
    expected = classifier.class_components(top=3)
    assert sorted(expected) == ["Cesarean", "Vaginal"]
    assert [f"<h3>{label}</h3>" in section for label in expected] == [True, True]
    assert len(tables) == 2
    for table, (label, communities) in zip(tables, expected.items()):
        assert list(table["community"]) == [str(c.component) for c in communities]
        effects = [float(e) if e else np.nan for e in table["effect"]]
        assert np.isfinite(effects).any()
        assert np.allclose(effects, [c.effect for c in communities], rtol=1e-3, equal_nan=True)
        assert list(table["samples in class"]) == [str(c.n_in) for c in communities]
        first = communities[0].features[0][0]
        assert table["top taxa"][0].startswith(feature_labels([first])[first])
        for cell in table["top taxa"]:  # two taxa of a community never share a name
            shown = [name.rsplit(" (", 1)[0] for name in cell.split(", ")]
            assert len(shown) == len(set(shown)) == 3

    plain = tmp_path / "plain"
    CheckpointStore(plain, "w1").write(Checkpoint(offsets={"t:0": 200},
                                                  blobs={"tracker": tracker.to_bytes()}))
    assert main(["report", "--checkpoint", str(plain), "--out", str(out)]) == 0
    assert "id='classes'" not in out.read_text()


# ---------------------------------------------------------------------- text streams (issue 19)
TEXT_ERAS = ("gold silver currency banks coin specie bullion notes",
             "army navy war soldiers battle officers fleet troops")


@pytest.fixture(scope="module")
def text_checkpoint(tmp_path_factory) -> Path:
    """A text consumer's checkpoint: 300 documents of gold words over 1800-1900, then 300 of
    war words over 1900-2000 (days since 1970), a topic re-seeded between two documents."""
    import random

    from consumers.application import Source
    from consumers.text import TextApp, encode_document

    rng = random.Random(0)
    app = TextApp(model_params={"n_components": 2, "min_df": 2, "seed": 0,
                                "refresh_every": 20})
    app.restore(None)
    for i in range(600):
        words = TEXT_ERAS[i >= 300].split()
        day = -62_000 + i * 100.0
        if i == 450:
            app.model.nmf._reseed(0, "forced by the test")
        app.process(app.decode(encode_document(f"d{i}", day, " the ".join(
            rng.choices(words, k=12)))), Source("text.documents", 0, i, None, b"k", "w"))
    folder = tmp_path_factory.mktemp("text_ckpt")
    CheckpointStore(folder, "w").write(Checkpoint(offsets={"text.documents:0": 600},
                                                  blobs=app.snapshot()))
    return folder


def test_text_checkpoint_report_topics_prevalence_events_polysemy(text_checkpoint, tmp_path,
                                                                  capsys):
    from consumers.report import load_text
    from onlinenmf.text import polysemous

    out = tmp_path / "topics.html"
    assert main(["report", "--checkpoint", str(text_checkpoint), "--out", str(out),
                 "--dates"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    page = out.read_text()
    for section in ("topics", "prevalence", "topic-events", "polysemy"):
        assert f"id='{section}'" in page
    # word lists, a streamgraph, the events per bin
    assert len(_figures(page)) == 3
    app = load_text(text_checkpoint)
    tables = _tables(page)
    words = next(t for t in tables if "top words" in t.columns)
    assert dict(zip(words["topic"], words["top words"])) == {
        str(t): ", ".join(w) for t, w in app.model.topics(8).items()}  # --top's default
    # the streamgraph: about 20 bins over the span, whole numbers of the checkpoint's years
    span = app.prevalence()["bin"].max() - app.prevalence()["bin"].min() + 365.25
    assert f"in bins of {365.25 * round(span / 20 / 365.25):.4g} days" in page
    eras = next(t for t in tables if "emerged" in t.columns)
    first = pd.Timestamp("1970-01-01") + pd.Timedelta(days=app.prevalence()["bin"].min())
    assert str(first.date()) in set(eras["emerged"])  # bins start at the first year bin
    assert eras["faded"].iloc[0] != "" and eras["faded"].iloc[-1] == ""  # retired, still there
    events = next(t for t in tables if "reason" in t.columns)
    assert events["reason"].tolist() == [e["reason"] for e in app.topic_events]
    assert "forced by the test" in set(events["reason"])
    assert {"birth", "retire"} <= set(events["kind"])
    polysemy = next(t for t in tables if "other topic" in t.columns)
    assert polysemy["word"].tolist() == [w for w, _, _ in polysemous(app.model, 30)]


@pytest.mark.skipif(CHROMIUM is None, reason="LOUD SKIP: Debian's chromium is not installed "
                    "(apt-get install -y chromium); the report is not rendered in a browser")
def test_text_report_renders_in_headless_chromium(text_checkpoint, tmp_path):
    from consumers.report import load_text, write_text_report

    page = write_text_report(load_text(text_checkpoint), tmp_path / "t.html").read_text()
    probe = ("<script>window.addEventListener('load', () => document.body.setAttribute("
             "'data-decoded', [...document.images].filter(i => i.complete && "
             "i.naturalWidth > 100).length));</script>")
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("</body>", probe + "</body>"))
    dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                          "--virtual-time-budget=5000", "--dump-dom", probed.as_uri()],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    assert 'data-decoded="3"' in dom, dom[:300]
