"""Each bundled microbiome data set through the command line only, as a user with their own
files would run it (issue 14, part 5):

``onlinenmf broker`` -> ``onlinenmf produce microbiome --table FILE --metadata FILE`` (a TSV
with samples as rows, a BIOM JSON table, a TSV with features as rows) -> ``onlinenmf consume
microbiome --config consumer.toml`` (no timeout flags: the fast start on the embedded broker)
-> ``onlinenmf inspect --json`` -> ``onlinenmf report`` without and with a taxonomy -> the
report rendered in headless Chromium, its screenshot checked for drawn plots (pixels, not
only HTML).
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from onlinenmf.datasets import load_artificial_gut, load_ecam, load_moving_pictures
from tests.kafka_broker import ROOT, cli, cli_env, run_cli, unique

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SAMPLES = 120  # per data set: the first ones in time order (every subject's early samples)


def _counts(table) -> tuple[np.ndarray, list[str], list[str]]:
    n = min(SAMPLES, table.n_samples)
    X = table.counts[:n].toarray()
    used = np.flatnonzero(X.sum(axis=0) > 0)  # features seen in these samples only
    ids = list(table.metadata["sample_id"].astype(str)[:n])
    return X[:, used], ids, [table.features[j] for j in used]


def write_samples_as_rows(table, folder: Path) -> Path:
    """A TSV with one sample per row (the sample id first), as a spreadsheet exports it."""
    X, ids, features = _counts(table)
    path = folder / "counts.tsv"
    lines = ["sample_id\t" + "\t".join(features)]
    lines += [sid + "\t" + "\t".join(str(int(v)) for v in row) for sid, row in zip(ids, X)]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_features_as_rows(table, folder: Path) -> Path:
    """A TSV with one feature per row under '#OTU ID', as `biom convert --to-tsv` writes."""
    X, ids, features = _counts(table)
    path = folder / "feature-table.tsv"
    lines = ["# Constructed from biom file", "#OTU ID\t" + "\t".join(ids)]
    lines += [f + "\t" + "\t".join(f"{v:.1f}" for v in X[:, j]) for j, f in enumerate(features)]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_biom(table, folder: Path) -> Path:
    """A BIOM 1.0 JSON table (features as rows, taxonomy in the observation metadata)."""
    X, ids, features = _counts(table)
    rows, cols = np.nonzero(X.T)
    doc = {
        "id": table.name, "format": "Biological Observation Matrix 1.0.0",
        "format_url": "http://biom-format.org", "type": "OTU table",
        "generated_by": "tests/test_cli_end_to_end.py", "date": "2026-01-01T00:00:00",
        "rows": [{"id": f, "metadata": {"taxonomy": [r.strip() for r in
                                                     table.taxonomy.get(f, "").split(";")]}}
                 for f in features],
        "columns": [{"id": sid, "metadata": None} for sid in ids],
        "matrix_type": "sparse", "matrix_element_type": "int",
        "shape": [len(features), len(ids)],
        "data": [[int(r), int(c), int(X.T[r, c])] for r, c in zip(rows, cols)],
    }
    path = folder / "table.biom"
    path.write_text(json.dumps(doc))
    return path


def write_metadata(table, folder: Path) -> Path:
    """Sample metadata with a usual time column name ('day') and a subject column."""
    n = min(SAMPLES, table.n_samples)
    meta = table.metadata.iloc[:n]
    path = folder / "samples.tsv"
    lines = ["sample_id\tsubject\tday"]
    lines += [f"{s}\t{subject}\t{t:g}" for s, subject, t in
              zip(meta["sample_id"], meta["subject"], meta["time"])]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_taxonomy(features: list[str], folder: Path) -> Path:
    """A QIIME 2 taxonomy.tsv naming every feature g__Marker<i>, names the bundled data never
    use: the report with it must show them, the report without it must not."""
    path = folder / "taxonomy.tsv"
    lines = ["Feature ID\tTaxon\tConfidence"]
    lines += [f"{f}\tk__Bacteria; p__Firmicutes; g__Marker{i}\t0.9"
              for i, f in enumerate(features)]
    path.write_text("\n".join(lines) + "\n")
    return path


DATASETS = {
    "ecam": (load_ecam, write_samples_as_rows),
    "artificial_gut": (load_artificial_gut, write_biom),
    "moving_pictures": (load_moving_pictures, write_features_as_rows),
}


@pytest.fixture
def cli_broker():
    """``onlinenmf broker`` as a user starts it: its address is the first line it prints."""
    proc = subprocess.Popen(cli("broker"), cwd=ROOT, env=cli_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        address = proc.stdout.readline().strip()
        assert address.startswith("127.0.0.1:"), address
        yield address
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _ok(done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert done.returncode == 0, (done.args, done.stderr[-3000:])
    return done


def coloured_fraction(png: bytes) -> float:
    """Fraction of the screenshot's pixels that are strongly coloured (plot marks, not the
    page's white, grey and black)."""
    from PIL import Image

    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    return float(((rgb.max(axis=2) - rgb.min(axis=2)) > 60).mean())


def render(page: Path, folder: Path) -> tuple[int, bytes]:
    """(images the browser decoded, screenshot PNG) of the page in headless Chromium."""
    probe = ("<script>window.addEventListener('load', () => document.body.setAttribute("
             "'data-decoded', [...document.images].filter(i => i.complete && "
             "i.naturalWidth > 100).length));</script>")
    probed = folder / f"probed-{page.name}"
    probed.write_text(page.read_text().replace("</body>", probe + "</body>"))
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             "--virtual-time-budget=5000"]
    dom = subprocess.run([*flags, "--dump-dom", probed.as_uri()], capture_output=True,
                         text=True, timeout=180, check=True).stdout
    decoded = dom.split('data-decoded="', 1)[1].split('"', 1)[0] if "data-decoded" in dom \
        else "0"
    shot = folder / f"{page.stem}.png"
    subprocess.run([*flags, "--window-size=1300,2400", f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, timeout=180, check=True)
    return int(decoded), shot.read_bytes()


@pytest.mark.skipif(CHROMIUM is None, reason="LOUD SKIP: Debian's chromium is not installed "
                    "(apt-get install -y chromium); the end-to-end reports are not rendered")
@pytest.mark.parametrize("name", sorted(DATASETS))
def test_a_bundled_data_set_from_files_to_a_rendered_report(name, cli_broker, tmp_path):
    load, write_table = DATASETS[name]
    table = load()
    counts = write_table(table, tmp_path)
    metadata = write_metadata(table, tmp_path)
    n = min(SAMPLES, table.n_samples)
    topic, output = unique(f"{name}.samples"), unique(f"{name}.communities")

    _ok(run_cli("produce", "microbiome", "--bootstrap-servers", cli_broker, "--topic", topic,
                "--table", str(counts), "--metadata", str(metadata), "--no-progress",
                timeout=300))

    checkpoints = tmp_path / "ck"
    config = tmp_path / "consumer.toml"
    config.write_text(f"""
[model]
n_components = 4
seed = 1

[tracker]
max_history = 400

[kafka]
bootstrap_servers = "{cli_broker}"
group_id = "{unique('e2e')}"

[topics]
input = "{topic}"
output = "{output}"
model = ""

[consumer]
checkpoint_dir = "{checkpoints}"
worker_id = "w1"
exit_when_idle = 2.0
""")
    consumed = _ok(run_cli("consume", "microbiome", "--config", str(config), timeout=600))
    assert "embedded broker: session_timeout_ms=2000" in consumed.stderr

    shown = json.loads(_ok(run_cli("inspect", "--checkpoint-dir", str(checkpoints),
                                   "--json")).stdout)
    assert shown["samples_learned"] == n
    assert shown["n_components"] == 4  # the config file's, not the default 10
    assert shown["settings"]["model"]["seed"] == 1
    assert shown["settings"]["tracker"]["max_history"] == 400
    assert {key.rsplit(":", 1)[0] for key in shown["offsets"]} == {topic}
    assert sum(shown["offsets"].values()) == n  # every partition read to its end

    plain, named = tmp_path / "plain.html", tmp_path / "named.html"
    _ok(run_cli("report", "--checkpoint", str(checkpoints), "--out", str(plain)))
    _, _, features = _counts(table)
    taxonomy = write_taxonomy(features, tmp_path)
    _ok(run_cli("report", "--checkpoint", str(checkpoints), "--out", str(named),
                "--taxonomy", str(taxonomy)))
    assert "g__Marker" not in plain.read_text()
    assert "g__Marker" in named.read_text() or "Marker" in named.read_text()

    for page in (plain, named):
        decoded, png = render(page, tmp_path)
        assert decoded >= 2, f"{page.name}: {decoded} figures decoded"
        assert png.startswith(b"\x89PNG")
        # drawn plots: a blank or unstyled page has (almost) no strongly coloured pixels
        assert coloured_fraction(png) > 0.02, f"{page.name}: {coloured_fraction(png):.4f}"
