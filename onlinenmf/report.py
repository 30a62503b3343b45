"""Write a self-contained HTML report of communities, trajectories, growth and events.

``onlinenmf report --checkpoint D [--out report.html]`` reads ``D``: a directory of Kafka
consumer checkpoints (``*.ckpt``: the newest one, or ``--worker``'s) or of snapshots
(``*.npz``: a saved :class:`~onlinenmf.Tracker` preferred over a bare model), or one such
file. A checkpoint holding a ``tracker`` blob gives the full report; one holding only the
``model`` blob gives the communities (sections needing trajectories say they have none).

The HTML has every figure embedded (base64 PNGs from matplotlib) and no script or link to
fetch: it can be mailed or archived as one file. Features are named by taxonomy when the
tracker carries labels, when ``--taxonomy`` gives a TSV (feature id, taxonomy string), or
when the features are those of a bundled data set (ECAM, artificial gut, Moving Pictures).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import html
import io
import json
import zipfile
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from onlinenmf import snapshot
from onlinenmf.engine import OnlineNMF
from onlinenmf.tracking import Tracker

__all__ = ["add_arguments", "load_source", "run", "write_report"]

CHECKPOINT_FORMAT = "onlinenmf-checkpoint/1"  # consumers/checkpoint.py writes it


# ---------------------------------------------------------------------- loading
def _from_snapshot(data: bytes, source: str) -> Tracker:
    arrays, meta = snapshot.loads(data, source)
    if meta.get("class") == "Tracker":
        return Tracker._from_state(arrays, meta, source)
    if meta.get("class") == "OnlineNMF":
        return Tracker(OnlineNMF._from_state(arrays, meta, source))
    raise snapshot.SnapshotError(f"{source}: holds a {meta.get('class')!r}, not a Tracker "
                                 "or an OnlineNMF")


def _read_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Header and state blobs of a consumer checkpoint (a zip: header.json + state/<name>).

    Read here with zipfile rather than through ``consumers``: the engine package does not
    import the Kafka adapters.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            header = json.loads(archive.read("header.json"))
            if header.get("format") != CHECKPOINT_FORMAT:
                raise ValueError(f"{path}: format {header.get('format')!r} is not "
                                 f"{CHECKPOINT_FORMAT!r}")
            blobs = {}
            for name, digest in header["blobs"].items():
                blob = archive.read(f"state/{name}")
                if hashlib.sha256(blob).hexdigest() != digest:
                    raise ValueError(f"{path}: state blob {name!r} fails its checksum")
                blobs[name] = blob
    except (OSError, zipfile.BadZipFile, KeyError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a readable consumer checkpoint: {err}") from None
    return header, blobs


def _from_checkpoint(path: Path) -> Tracker:
    _, blobs = _read_checkpoint(path)
    for name in ("tracker", "model"):
        if name in blobs:
            return _from_snapshot(blobs[name], f"{path}:{name}")
    raise ValueError(f"{path}: the checkpoint holds neither a 'tracker' nor a 'model' blob "
                     f"(it has {sorted(blobs)})")


def load_source(path: str | Path, worker: str | None = None) -> Tracker:
    """A :class:`Tracker` from a checkpoint directory, a checkpoint file or a snapshot file.

    In a directory: ``<worker>.ckpt`` if ``worker`` is given, else the newest ``*.ckpt``;
    without checkpoints, a Tracker snapshot (``*.npz``) is preferred over a model snapshot,
    the newest first. A model alone is wrapped in an empty Tracker.

    >>> import tempfile, pathlib
    >>> from onlinenmf import OnlineNMF
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> model = OnlineNMF(n_components=2, seed=0)
    >>> _ = model.learn_one({"a": 1, "b": 2})
    >>> model.save(folder / "model.npz")
    >>> load_source(folder).model == model
    True
    """
    path = Path(path)
    if path.is_file():
        if path.suffix == ".ckpt":
            return _from_checkpoint(path)
        return _from_snapshot(path.read_bytes(), str(path))
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such checkpoint directory or file")
    if worker is not None:
        return _from_checkpoint(path / f"{worker}.ckpt")
    checkpoints = sorted(path.glob("*.ckpt"), key=lambda p: p.stat().st_mtime, reverse=True)
    if checkpoints:
        return _from_checkpoint(checkpoints[0])
    found: list[tuple[int, float, Tracker]] = []
    for candidate in path.glob("*.npz"):
        try:
            tracker = _from_snapshot(candidate.read_bytes(), str(candidate))
        except (snapshot.SnapshotError, KeyError):
            continue  # some other npz file
        found.append((len(tracker), candidate.stat().st_mtime, tracker))
    if not found:
        raise FileNotFoundError(f"{path}: no consumer checkpoint (*.ckpt) nor onlinenmf "
                                "snapshot (*.npz) here")
    return max(found, key=lambda item: (item[0] > 0, item[1]))[2]


def bundled_labels(features: Sequence[Hashable]) -> dict[Hashable, str]:
    """Taxonomy names of features found in a bundled microbiome data set (else empty)."""
    from onlinenmf.datasets import short_taxon
    from onlinenmf.datasets._table import data_path

    wanted = {f for f in features if isinstance(f, str)}
    labels: dict[Hashable, str] = {}
    for name in ("ecam", "artificial_gut", "moving_pictures"):
        if not wanted:
            break
        table = pd.read_csv(data_path(name, "taxonomy.tsv.gz"), sep="\t", dtype=str,
                            keep_default_na=False)
        hits = table[table["feature_id"].isin(wanted)]
        labels.update(zip(hits["feature_id"], map(short_taxon, hits["Taxon"])))
        wanted -= set(hits["feature_id"])
    return labels


def read_taxonomy(path: str | Path) -> dict[str, str]:
    """A TSV of feature id and taxonomy string (a header line is skipped if present)."""
    from onlinenmf.datasets import short_taxon

    table = pd.read_csv(path, sep="\t", dtype=str, header=None, keep_default_na=False)
    if table.shape[1] < 2:
        raise ValueError(f"{path}: expected two tab-separated columns: feature id, taxonomy")
    if str(table.iloc[0, 0]).lower() in ("feature_id", "feature id", "#otu id", "id"):
        table = table.iloc[1:]
    return dict(zip(table[0], map(short_taxon, table[1])))


# ---------------------------------------------------------------------- figures
def _png(figure) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    data = base64.b64encode(buffer.getvalue()).decode()
    return f'<img alt="figure" src="data:image/png;base64,{data}">'


def _colour(component: int):
    import matplotlib

    return matplotlib.colormaps["tab20"](component % 20)


def _top_features(model: OnlineNMF, labels: Mapping[Hashable, str], top: int
                  ) -> dict[int, list[tuple[str, float]]]:
    """Each component's top features, named; repeated names get an id prefix."""
    out = {}
    for component, pairs in model.components(top=top).items():
        names = [labels.get(f, str(f)) for f, _ in pairs]
        repeated = Counter(names)
        out[component] = [
            (f"{name} ({str(f)[:8]})" if repeated[name] > 1 and name != str(f) else name, share)
            for name, (f, share) in zip(names, pairs)]
    return out


def _community_figure(tops: dict[int, list[tuple[str, float]]]) -> str:
    import matplotlib.pyplot as plt

    columns = 3
    rows = max(1, -(-len(tops) // columns))
    figure, axes = plt.subplots(rows, columns, figsize=(13, 2.6 * rows), squeeze=False)
    for axis in axes.ravel()[len(tops):]:
        axis.set_visible(False)
    for axis, (component, pairs) in zip(axes.ravel(), tops.items()):
        names = [name[:48] for name, _ in pairs][::-1]
        axis.barh(names, [share for _, share in pairs][::-1], color=_colour(component))
        axis.set_title(f"community {component}", fontsize=10)
        axis.tick_params(labelsize=7)
        axis.set_xlabel("share of the community", fontsize=7)
    figure.tight_layout()
    return _png(figure)


def _population_figure(tracker: Tracker, population: pd.DataFrame, unit: str) -> str:
    import matplotlib.pyplot as plt

    figure, (share_axis, carrier_axis) = plt.subplots(1, 2, figsize=(13, 4))
    for component, part in population.groupby("component"):
        x = _bin_axis(tracker, part["bin"])
        share_axis.plot(x, part["mean_share"], marker="o", ms=3, color=_colour(component),
                        label=str(component))
        carrier_axis.plot(x, part["carriers"] / part["n_subjects"], marker="o", ms=3,
                          color=_colour(component))
    share_axis.set(title="mean share per time bin", xlabel=f"time ({unit})", ylabel="share")
    carrier_axis.set(title="subjects carrying the community",
                     xlabel=f"time ({unit})", ylabel="fraction of subjects in the bin")
    share_axis.legend(title="community", fontsize=7, ncol=2)
    figure.tight_layout()
    return _png(figure)


def _bin_axis(tracker: Tracker, bins: pd.Series):
    if tracker._timestamps:
        return pd.to_datetime(bins.to_numpy() * tracker.time_unit, unit="s")
    return bins.to_numpy()


def _subject_figures(tracker: Tracker, subjects: Sequence[Hashable], per_page: int = 12
                     ) -> list[str]:
    import matplotlib.pyplot as plt

    pages = []
    for start in range(0, len(subjects), per_page):
        chunk = subjects[start:start + per_page]
        columns = 3
        rows = -(-len(chunk) // columns)
        figure, axes = plt.subplots(rows, columns, figsize=(13, 2.5 * rows), squeeze=False)
        for axis in axes.ravel()[len(chunk):]:
            axis.set_visible(False)
        for axis, subject in zip(axes.ravel(), chunk):
            frame = tracker.trajectory(subject, "composition").fillna(0.0)
            if len(frame) == 1:  # a stackplot needs two points: draw one bar instead
                frame = pd.concat([frame, frame])
            axis.stackplot(frame.index, frame.to_numpy().T,
                           colors=[_colour(c) for c in frame.columns],
                           labels=[str(c) for c in frame.columns])
            axis.set_title(f"subject {subject}", fontsize=9)
            axis.set_ylim(0, 1)
            axis.tick_params(labelsize=7)
        handles, names = axes.ravel()[0].get_legend_handles_labels()
        figure.legend(handles, names, title="community", loc="upper right", fontsize=7,
                      ncol=min(len(names), 10))
        figure.tight_layout(rect=(0, 0, 1, 0.93))
        pages.append(_png(figure))
    return pages


def _events_figure(tracker: Tracker, events: list[dict[str, Any]], unit: str) -> str:
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(13, 3.5))
    styles = {"appear": ("^", "tab:green"), "vanish": ("v", "tab:red"),
              "birth": ("*", "tab:blue"), "retire": ("x", "black")}
    for kind, (marker, colour) in styles.items():
        chosen = [e for e in events if e["kind"] == kind and e.get("time") is not None]
        if chosen:
            times = pd.Series([e["time"] for e in chosen], dtype=float)
            axis.scatter(_bin_axis(tracker, times), [e["component"] for e in chosen],
                         marker=marker, color=colour, label=f"{kind} ({len(chosen)})",
                         alpha=0.7, s=40 if kind in ("birth", "retire") else 18)
    axis.set(xlabel=f"time ({unit})", ylabel="community", title="events")
    axis.legend(fontsize=8, loc="upper left")
    figure.tight_layout()
    return _png(figure)


# ---------------------------------------------------------------------- HTML
def _table(frame: pd.DataFrame, float_format: str = "{:.4g}") -> str:
    return frame.to_html(index=False, border=0, classes="data", na_rep="",
                         float_format=float_format.format, escape=True)


def _growth_summary(table: pd.DataFrame) -> pd.DataFrame:
    if table.empty:
        return table
    table = table.assign(up=table["low"] > 0, down=table["high"] < 0)
    summary = table.groupby("component").agg(
        subjects=("subject", "nunique"), median_rate=("rate", "median"),
        growing=("up", "sum"), declining=("down", "sum"), mean_share=("share", "mean"))
    return summary.reset_index()


STYLE = """
body { font-family: sans-serif; margin: 2em; max-width: 1300px; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; }
table.data { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
table.data td, table.data th { padding: 2px 8px; border-bottom: 1px solid #eee;
  text-align: right; }
img { max-width: 100%; display: block; margin: 0.5em 0; }
.note { color: #666; font-size: 0.9em; }
"""


def write_report(
    source: Tracker | OnlineNMF | str | Path,
    out: str | Path = "report.html",
    *,
    labels: Mapping[Hashable, str] | None = None,
    subjects: Sequence[Hashable] | None = None,
    n_subjects: int = 12,
    top: int = 8,
    bin_width: float | None = None,
    time_unit_name: str | None = None,
    title: str = "onlinenmf report",
    max_rows: int = 300,
) -> Path:
    """Write the HTML report of a tracker (or a bare model, or a path for :func:`load_source`).

    Parameters
    ----------
    source
        What to report on.
    out
        The HTML file to write (its folder is created).
    labels
        Feature -> readable name; by default the tracker's labels, then bundled taxonomies.
    subjects, n_subjects
        Subjects drawn as stacked-area trajectories (default: the ``n_subjects`` with the most
        samples held), 12 per figure.
    top
        Features listed per community.
    bin_width
        Time bin of the population view (default: the tracker's, else 10 bins).
    time_unit_name
        How to name the time axis (default "days" for timestamps, else "time units").
    title
        The page title.
    max_rows
        Longest growth and event tables.

    Returns
    -------
    Path
        The file written.
    """
    import matplotlib

    matplotlib.use("Agg")
    if isinstance(source, str | Path):
        tracker = load_source(source)
    elif isinstance(source, OnlineNMF):
        tracker = Tracker(source)
    else:
        tracker = source
    model = tracker.model
    names: dict[Hashable, str] = {}
    if labels is None:
        names.update(bundled_labels(model.features))
        names.update(tracker.labels)
    else:
        names.update(labels)
    unit = time_unit_name or ("days" if tracker._timestamps else "time units")
    esc = html.escape
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
             f"<style>{STYLE}</style></head><body><h1>{esc(title)}</h1>"]
    overview = pd.DataFrame([
        ("communities", len(model.component_ids)), ("features", model.n_features),
        ("samples learned", model.samples_learned), ("model version", model.model_version),
        ("beta", model.beta), ("subjects held", len(tracker)),
        ("events", len(tracker.events)),
        *[(name.replace("_", " "), value) for name, value in tracker.metrics.items()],
    ], columns=["", "value"])
    parts.append(_table(overview))

    parts.append("<h2 id='communities'>Communities: top taxa</h2>")
    if model.n_features == 0:
        parts.append("<p class='note'>The model has learned nothing yet.</p>")
    else:
        tops = _top_features(model, names, top)
        parts.append(_community_figure(tops))
        rows = [{"community": c, "rank": r + 1, "taxon": n, "share": s}
                for c, pairs in tops.items() for r, (n, s) in enumerate(pairs)]
        parts.append("<details><summary>as a table</summary>" + _table(pd.DataFrame(rows))
                     + "</details>")

    no_history = ("<p class='note'>This source holds no subject histories (a model without "
                  "its tracker): nothing to draw here.</p>")
    parts.append("<h2 id='population'>Population trajectories by time bin</h2>")
    population = tracker.population(bin_width=bin_width)
    if population.empty:
        parts.append(no_history)
    else:
        parts.append(_population_figure(tracker, population, unit))
        parts.append("<p class='note'>Mean share of each community over the samples in each "
                     "bin (absent = 0); right: the fraction of the bin's subjects in which the "
                     f"community reached a share of {tracker.presence:g}.</p>")

    parts.append("<h2 id='subjects'>Subject trajectories</h2>")
    held = tracker.subjects
    if subjects is None:
        sizes = {s: len(tracker._subjects[s].times) for s in held}
        chosen = sorted(held, key=lambda s: (-sizes[s], str(s)))[:n_subjects]
        chosen = sorted(chosen, key=str)
    else:
        missing = [s for s in subjects if s not in tracker]
        if missing:
            raise KeyError(f"subjects not held by the tracker: {missing}")
        chosen = list(subjects)
    if not chosen:
        parts.append(no_history)
    else:
        parts.append(f"<p class='note'>Composition (h / sum h) of {len(chosen)} of "
                     f"{len(held)} subjects.</p>")
        parts.extend(_subject_figures(tracker, chosen))

    parts.append("<h2 id='growth'>Growth rates</h2>")
    table = tracker.growth_table()
    if table.empty:
        parts.append(no_history if not held else
                     "<p class='note'>No subject has enough samples for a growth rate.</p>")
    else:
        parts.append(f"<p class='note'>Theil-Sen slope of log {tracker.growth_of} per "
                     f"{unit[:-1] if unit.endswith('s') else unit} with its 95 % interval; "
                     "growing / declining: subjects whose interval excludes 0.</p>")
        parts.append(_table(_growth_summary(table)))
        shown = table[table["subject"].isin(chosen)] if len(table) > max_rows else table
        parts.append("<details><summary>per subject</summary>"
                     + _table(shown.head(max_rows)) + "</details>")

    parts.append("<h2 id='events'>Events</h2>")
    events = tracker.events
    if not events:
        parts.append("<p class='note'>No events.</p>")
    else:
        parts.append(_events_figure(tracker, events, unit))
        frame = pd.DataFrame(events)[["time", "kind", "component", "subject", "detail"]]
        parts.append(f"<details><summary>last {min(len(frame), max_rows)} events</summary>"
                     + _table(frame.tail(max_rows)) + "</details>")
    parts.append("</body></html>")
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


# ---------------------------------------------------------------------- command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, type=Path, metavar="D",
                        help="checkpoint directory, checkpoint file (.ckpt) or snapshot (.npz)")
    parser.add_argument("--out", type=Path, default=Path("report.html"),
                        help="HTML file to write (default: report.html)")
    parser.add_argument("--worker", help="report on this worker's checkpoint (default: newest)")
    parser.add_argument("--taxonomy", type=Path,
                        help="TSV of feature id and taxonomy string, to name the features")
    parser.add_argument("--subjects", help="comma-separated subjects to draw (default: the "
                        "--n-subjects with the most samples)")
    parser.add_argument("--n-subjects", type=int, default=12)
    parser.add_argument("--top", type=int, default=8, help="features listed per community")
    parser.add_argument("--bin-width", type=float, help="time bin of the population view")
    parser.add_argument("--time-unit-name", help="name of the time axis (e.g. days)")
    parser.add_argument("--title", default="onlinenmf report")


def run(args: argparse.Namespace) -> int:
    tracker = load_source(args.checkpoint, worker=args.worker)
    labels = None
    if args.taxonomy is not None:
        labels = {**bundled_labels(tracker.model.features), **tracker.labels,
                  **read_taxonomy(args.taxonomy)}
    subjects = None
    if args.subjects:
        subjects = [_subject_key(tracker, s.strip()) for s in args.subjects.split(",")]
    path = write_report(tracker, args.out, labels=labels, subjects=subjects,
                        n_subjects=args.n_subjects, top=args.top, bin_width=args.bin_width,
                        time_unit_name=args.time_unit_name, title=args.title)
    print(path)
    return 0


def _subject_key(tracker: Tracker, text: str) -> Hashable:
    """A subject named on the command line: as given, or as an int if that is what is held."""
    if text not in tracker and text.lstrip("-").isdigit() and int(text) in tracker:
        return int(text)
    return text


if __name__ == "__main__":  # pragma: no cover
    import sys

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    sys.exit(run(parser.parse_args()))
