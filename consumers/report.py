"""Write a self-contained HTML report of communities, trajectories, growth and events.

``onlinenmf report --checkpoint D [--out report.html]`` reads ``D``: a directory of Kafka
consumer checkpoints (``*.ckpt``: the newest one, or ``--worker``'s) or of snapshots
(``*.npz``: a saved :class:`~onlinenmf.Tracker` preferred over a bare model), or one such
file. A checkpoint holding a ``tracker`` blob gives the full report; one holding only the
``model`` blob gives the communities (sections needing trajectories say they have none). A
recommender (reco) checkpoint is refused with a message saying so. The checkpoint of a
supervised consumer (``--label``, :mod:`consumers.microbiome.supervised`) adds a section of each
class's communities, their top taxa and how strongly each separates the classes. A text
consumer's checkpoint (``onlinenmf consume text``) gets its own report
(:func:`write_text_report`): topics' word lists, prevalence over time, births, retirements,
splits and top-word shifts, words in two topics.

The HTML has every figure embedded (base64 PNGs from matplotlib) and no script or link to
fetch: it can be mailed or archived as one file. Features are named, in this order of
precedence, by ``--taxonomy`` (a QIIME 2 ``taxonomy.tsv``, a table of Kingdom ... Species
columns, or a BIOM table's observation metadata: :func:`onlinenmf.datasets.read_taxonomy`),
by the tracker's labels, or by the taxonomy of a bundled data set (ECAM, artificial gut,
Moving Pictures) that holds them; otherwise by their ids. A name is the deepest named rank
(placeholders such as ``s__`` or ``g__uncultured`` skipped), with a short id suffix when two
features shown share it.
"""

from __future__ import annotations

import argparse
import base64
import functools
import html
import io
import sys
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from consumers.checkpoint import CheckpointError, read_checkpoint
from onlinenmf import snapshot
from onlinenmf.engine import OnlineNMF
from onlinenmf.tracking import Tracker

__all__ = ["HELP", "TimeAxis", "add_arguments", "bundled_labels", "coarser_prevalence",
           "event_counts", "feature_labels", "load_classifier", "load_source", "load_text",
           "read_taxonomy", "run", "time_axis", "time_unit", "write_report",
           "write_text_report"]

#: Bundled microbiome data sets whose features the report can name, with their time unit.
BUNDLED_TIME_UNITS = {"ecam": "days", "artificial_gut": "hours", "moving_pictures": "days"}
#: Seconds per time unit -> its name (for trackers whose times are timestamps).
_UNIT_NAMES = {1.0: "seconds", 60.0: "minutes", 3600.0: "hours", 86400.0: "days",
               604800.0: "weeks"}

#: ``onlinenmf report --help`` (plain text for the command line).
HELP = """\
Write a self-contained HTML report (figures embedded, nothing fetched) of what a consumer
or a saved tracker has learned: the communities and their top taxa, population and
subject trajectories, growth rates and events; for a supervised consumer (--label), each
class's communities with their top taxa and effect sizes. A text consumer's checkpoint
(onlinenmf consume text) gives the topics' word lists, their prevalence over time as a
streamgraph (--bin-width in days), births, retirements, splits and top-word shifts, and words
in two topics.

--checkpoint takes a consumer's checkpoint directory (the newest *.ckpt, or --worker's),
one .ckpt file, or a snapshot (.npz) saved by Tracker.save or OnlineNMF.save.

Features are named from --taxonomy when given, then from the tracker's own labels, then
from a bundled data set holding them (ECAM, artificial gut, Moving Pictures), else shown
by id. --taxonomy reads:
  a QIIME 2 taxonomy.tsv          Feature ID <TAB> Taxon [<TAB> Confidence]
  rank columns                    id, Kingdom (or Domain), Phylum, ..., Genus, Species
  id <TAB> taxonomy lines         no header
  a BIOM table (JSON or HDF5)     its 'taxonomy' observation metadata
A name is the deepest named rank ('s__', 's__none', 'g__uncultured', 'unclassified' are
skipped), with a short id suffix when two features shown share it.

Times of a consumer's stream are days unless the data set says otherwise (the bundled
artificial gut counts hours); name the unit with --time-unit-name. A table whose times were
dates is streamed as days since 1970-01-01: --dates draws them as calendar dates.

examples:
  onlinenmf report --checkpoint demo-output/checkpoints
  onlinenmf report --checkpoint ckpt --taxonomy taxonomy.tsv --out my-report.html
  onlinenmf report --checkpoint ckpt --taxonomy feature-table.biom --subjects A,B --dates
  onlinenmf report --checkpoint tracker.npz --time-unit-name hours --bin-width 24
"""


# ---------------------------------------------------------------------- loading
def _not_microbiome(source: str) -> ValueError:
    return ValueError(f"{source}: a recommender (reco) model: this report draws microbiome "
                      "communities and trajectories; see the model with onlinenmf inspect "
                      "--checkpoint-dir DIR --json")


def _from_snapshot(data: bytes, source: str) -> Tracker:
    """A Tracker from a snapshot, through the classes' public readers: a Tracker's as it is,
    an OnlineNMF's wrapped in an empty Tracker."""
    kind = snapshot.loads(data, source)[1].get("class")
    if kind == "Tracker":
        return Tracker.from_bytes(data, source)
    if kind == "OnlineNMF":
        return Tracker(OnlineNMF.from_bytes(data, source))
    if kind == "RecoNMF":
        raise _not_microbiome(source)
    raise snapshot.SnapshotError(f"{source}: holds a {kind!r}, not a Tracker or an OnlineNMF")


def _from_checkpoint(path: Path) -> Tracker:
    """The Tracker in a consumer checkpoint, read and verified by
    :func:`consumers.checkpoint.read_checkpoint`."""
    try:
        blobs = read_checkpoint(path).blobs
    except CheckpointError as err:
        raise ValueError(f"{path}: not a readable consumer checkpoint: {err}") from None
    for name in ("tracker", "model"):
        if name in blobs:
            return _from_snapshot(blobs[name], f"{path}:{name}")
    if "reco" in blobs:  # consumers/reco's state
        raise _not_microbiome(str(path))
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
    if path.is_file() and path.suffix != ".ckpt":
        return _from_snapshot(path.read_bytes(), str(path))
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such checkpoint directory or file")
    checkpoint = _checkpoint_file(path, worker)
    if checkpoint is not None:
        return _from_checkpoint(checkpoint)
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


def _checkpoint_file(path: Path, worker: str | None) -> Path | None:
    """The consumer checkpoint a report on ``path`` reads: the file itself, ``worker``'s in a
    directory, else the directory's newest; None when there is none (snapshots only)."""
    if path.is_file():
        return path if path.suffix == ".ckpt" else None
    if worker is not None:
        return path / f"{worker}.ckpt"
    checkpoints = sorted(path.glob("*.ckpt"), key=lambda p: p.stat().st_mtime, reverse=True)
    return checkpoints[0] if checkpoints else None


def load_classifier(path: str | Path, worker: str | None = None) -> Any:
    """The :class:`onlinenmf.river.NMFClassifier` of a supervised consumer's checkpoint (the
    one :func:`load_source` reads), or None: not a checkpoint, or an unsupervised one's."""
    from consumers.microbiome.supervised import BLOB
    from onlinenmf.river import NMFClassifier

    path = Path(path)
    checkpoint = _checkpoint_file(path, worker) if path.exists() else None
    if checkpoint is None:
        return None
    try:
        blobs = read_checkpoint(checkpoint).blobs
    except CheckpointError as err:
        raise ValueError(f"{checkpoint}: not a readable consumer checkpoint: {err}") from None
    if BLOB not in blobs:
        return None
    return NMFClassifier.from_bytes(blobs[BLOB], f"{checkpoint}:{BLOB}")


@functools.cache
def _bundled_taxonomy(name: str) -> dict[str, str]:
    from onlinenmf.datasets import read_taxonomy as read
    from onlinenmf.datasets._table import data_path

    return read(data_path(name, "taxonomy.tsv.gz"))


def bundled_dataset(features: Sequence[Hashable]) -> str | None:
    """The bundled data set that holds most of ``features`` (at least half), else None."""
    wanted = {f for f in features if isinstance(f, str)}
    if not wanted:
        return None
    shares = {name: len(wanted & _bundled_taxonomy(name).keys()) for name in BUNDLED_TIME_UNITS}
    best = max(shares, key=shares.get)
    return best if shares[best] * 2 >= len(features) else None


def bundled_labels(features: Sequence[Hashable]) -> dict[Hashable, str]:
    """Short taxonomy names of features found in a bundled microbiome data set (else empty)."""
    from onlinenmf.datasets import short_taxon

    labels: dict[Hashable, str] = {}
    wanted = {f for f in features if isinstance(f, str)}
    for name in BUNDLED_TIME_UNITS:
        if not wanted:
            break
        taxonomy = _bundled_taxonomy(name)
        for feature in wanted & taxonomy.keys():
            labels[feature] = short_taxon(taxonomy[feature])
        wanted -= taxonomy.keys()
    return labels


def read_taxonomy(path: str | Path) -> dict[str, str]:
    """Feature id -> short name from a taxonomy file (see
    :func:`onlinenmf.datasets.read_taxonomy` for the formats)."""
    from onlinenmf.datasets import read_taxonomy as read
    from onlinenmf.datasets import short_taxon

    return {feature: short_taxon(taxon) for feature, taxon in read(path).items()}


def feature_labels(
    features: Sequence[Hashable],
    *,
    taxonomy: Mapping[Hashable, str] | None = None,
    tracker_labels: Mapping[Hashable, str] | None = None,
    bundled: bool = True,
) -> dict[Hashable, str]:
    """Readable names of ``features``: from ``taxonomy`` (taxonomy strings, shortened),
    else ``tracker_labels`` (names as they are), else a bundled data set's taxonomy.

    Features none of them names are left out (a report shows their id).
    """
    from onlinenmf.datasets import short_taxon

    names: dict[Hashable, str] = {}
    taxonomy = taxonomy or {}
    tracker_labels = tracker_labels or {}
    for feature in features:
        if feature in taxonomy:
            names[feature] = short_taxon(taxonomy[feature])
        elif feature in tracker_labels:
            names[feature] = str(tracker_labels[feature])
    if bundled:
        rest = [f for f in features if f not in names]
        names.update(bundled_labels(rest) if rest else {})
    return names


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


def _fit(name: str, width: int = 48) -> str:
    """``name`` cut to ``width`` characters, keeping an id suffix ``(...)`` whole."""
    if len(name) <= width:
        return name
    head, sep, suffix = name.rpartition(" (")
    if sep and suffix.endswith(")") and len(suffix) + 4 < width:
        return head[:width - len(suffix) - 4] + "… (" + suffix
    return name[:width - 1] + "…"


def _top_features(model: OnlineNMF, labels: Mapping[Hashable, str], top: int
                  ) -> dict[int, list[tuple[str, float]]]:
    """Each community's top features by name; names shared by features shown get an id
    suffix, so one feature has one name across the communities and two never share one."""
    from onlinenmf.datasets import unique_names

    tops = model.components(top=top)
    shown = {f: labels.get(f, str(f)) for pairs in tops.values() for f, _ in pairs}
    names = unique_names(shown)
    return {c: [(names[f], share) for f, share in pairs] for c, pairs in tops.items()}


def _community_figure(tops: dict[int, list[tuple[str, float]]], noun: str = "community"
                      ) -> str:
    import matplotlib.pyplot as plt

    columns = min(3, max(1, len(tops)))
    rows = max(1, -(-len(tops) // columns))
    figure, axes = plt.subplots(rows, columns, figsize=(13, 2.6 * rows), squeeze=False)
    for axis in axes.ravel()[len(tops):]:
        axis.set_visible(False)
    for axis, (component, pairs) in zip(axes.ravel(), tops.items()):
        names = [_fit(name) for name, _ in pairs][::-1]
        axis.barh(names, [share for _, share in pairs][::-1], color=_colour(component))
        axis.set_title(f"{noun} {component}", fontsize=10)
        axis.tick_params(labelsize=7)
        axis.set_xlabel(f"share of the {noun}", fontsize=7)
    figure.tight_layout()
    return _png(figure)


@dataclass(frozen=True)
class TimeAxis:
    """How the report draws time: in ``unit``, or as calendar dates when ``seconds`` (per
    time unit since 1970-01-01) is set."""

    unit: str
    seconds: float | None = None

    @property
    def label(self) -> str:
        return "date" if self.seconds else f"time ({self.unit})"

    def x(self, values) -> Any:
        """Times as plotted: the numbers, or datetimes."""
        values = np.asarray(values, dtype=float)
        return pd.to_datetime(values * self.seconds, unit="s") if self.seconds else values

    def width(self, width: float) -> float:
        """A bar ``width`` time units wide, in the axis' own units (days for dates)."""
        return width * self.seconds / 86400.0 if self.seconds else width

    def ticks(self, axis) -> None:
        """Few, short date labels on a small plot (default ones overlap)."""
        if self.seconds:
            import matplotlib.dates as mdates

            locator = mdates.AutoDateLocator(minticks=3, maxticks=6)
            axis.xaxis.set_major_locator(locator)
            axis.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
            axis.xaxis.get_offset_text().set_fontsize(7)


def _population_figure(population: pd.DataFrame, time: TimeAxis) -> str:
    import matplotlib.pyplot as plt

    figure, (share_axis, carrier_axis) = plt.subplots(1, 2, figsize=(13, 4))
    for component, part in population.groupby("component"):
        x = time.x(part["bin"])
        share_axis.plot(x, part["mean_share"], marker="o", ms=3, color=_colour(component),
                        label=str(component))
        carrier_axis.plot(x, part["carriers"] / part["n_subjects"], marker="o", ms=3,
                          color=_colour(component))
    share_axis.set(title="mean share per time bin", xlabel=time.label, ylabel="share")
    time.ticks(share_axis)
    time.ticks(carrier_axis)
    carrier_axis.set(title="subjects carrying the community",
                     xlabel=time.label, ylabel="fraction of subjects in the bin")
    share_axis.legend(title="community", fontsize=7, ncol=2)
    figure.tight_layout()
    return _png(figure)


def _subject_figures(tracker: Tracker, subjects: Sequence[Hashable], time: TimeAxis,
                     per_page: int = 12) -> list[str]:
    """Stacked-area compositions, 3 per row; fewer subjects get the full width."""
    import matplotlib.pyplot as plt

    pages = []
    for start in range(0, len(subjects), per_page):
        chunk = subjects[start:start + per_page]
        columns = min(3, len(chunk))
        rows = -(-len(chunk) // columns)
        height = {1: 4.5, 2: 3.5}.get(columns, 2.5)
        figure, axes = plt.subplots(rows, columns, figsize=(13, height * rows), squeeze=False)
        for axis in axes.ravel()[len(chunk):]:
            axis.set_visible(False)
        for i, (axis, subject) in enumerate(zip(axes.ravel(), chunk)):
            if i + columns >= len(chunk):  # the lowest plot of its column
                axis.set_xlabel(time.label, fontsize=8)
            frame = tracker.trajectory(subject, "composition").fillna(0.0)
            if len(frame) == 1:  # a stackplot needs two points: draw one bar instead
                frame = pd.concat([frame, frame])
            x = frame.index if isinstance(frame.index, pd.DatetimeIndex) else time.x(frame.index)
            axis.stackplot(x, frame.to_numpy().T,
                           colors=[_colour(c) for c in frame.columns],
                           labels=[str(c) for c in frame.columns])
            axis.set_title(f"subject {subject}", fontsize=9)
            time.ticks(axis)
            axis.set_ylim(0, 1)
            axis.tick_params(labelsize=7)
        handles, names = axes.ravel()[0].get_legend_handles_labels()
        figure.legend(handles, names, title="community", loc="upper right", fontsize=7,
                      ncol=min(len(names), 10))
        figure.tight_layout(rect=(0, 0, 1, 0.93 if rows > 1 else 0.85))
        pages.append(_png(figure))
    return pages


_EVENT_COLOURS = {"appear": "tab:green", "vanish": "tab:red", "birth": "tab:blue",
                  "retire": "black", "split": "tab:purple", "shift": "tab:orange"}


def event_bin_width(events: Sequence[Mapping[str, Any]], n_bins: int = 20) -> float:
    """A bin width giving ``n_bins`` bins over the events' times (1 if they share one)."""
    times = [float(e["time"]) for e in events if e.get("time") is not None]
    span = max(times) - min(times) if times else 0.0
    return span / n_bins if span > 0 else 1.0


def event_counts(events: Sequence[Mapping[str, Any]], bin_width: float) -> pd.DataFrame:
    """Events counted per time bin (rows: bin start) and kind (columns, appear / vanish /
    birth / retire first). Events without a time are left out."""
    frame = pd.DataFrame([(e.get("time"), e.get("kind")) for e in events],
                         columns=["time", "kind"]).dropna()
    if frame.empty:
        return pd.DataFrame()
    times = frame["time"].astype(float).to_numpy()
    frame["bin"] = np.floor(times / bin_width) * bin_width
    counts = frame.groupby(["bin", "kind"]).size().unstack("kind", fill_value=0)
    known = [k for k in _EVENT_COLOURS if k in counts.columns]
    return counts[known + sorted(set(counts.columns) - set(known))]


def _events_figure(counts: pd.DataFrame, width: float, time: TimeAxis) -> str:
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(13, 3.5))
    x = time.x(counts.index.to_numpy() + width / 2)
    bar = time.width(width * 0.9)
    bottom = np.zeros(len(counts))
    for kind in counts.columns:
        values = counts[kind].to_numpy()
        axis.bar(x, values, width=bar, bottom=bottom, label=f"{kind} ({values.sum()})",
                 color=_EVENT_COLOURS.get(kind, "tab:grey"), alpha=0.85)
        bottom += values
    time.ticks(axis)
    axis.set(xlabel=time.label, ylabel="events in the bin",
             title="events per time bin")
    axis.legend(fontsize=8, loc="upper left")
    figure.tight_layout()
    return _png(figure)


# ---------------------------------------------------------------------- HTML
def _table(frame: pd.DataFrame, float_format: str = "{:.4g}") -> str:
    return frame.to_html(index=False, border=0, classes="data", na_rep="",
                         float_format=float_format.format, escape=True)


def _note(text: str, warn: bool = False) -> str:
    return f"<p class='{'warn' if warn else 'note'}'>{html.escape(text)}</p>"


def _growth_summary(table: pd.DataFrame) -> pd.DataFrame:
    if table.empty:
        return table
    table = table.assign(up=table["low"] > 0, down=table["high"] < 0)
    summary = table.groupby("component").agg(
        subjects=("subject", "nunique"), median_rate=("rate", "median"),
        growing=("up", "sum"), declining=("down", "sum"), mean_share=("share", "mean"))
    return summary.reset_index()


#: Days since 1970-01-01 of 1990-01-01 and 2100-01-01: times between them look like dates
#: read as days (what produce and the consumer make of dates).
_DATE_DAYS = (7305.0, 47482.0)


def _looks_like_dates(tracker: Tracker) -> bool:
    times = [t for s in tracker.subjects for t in tracker._subjects[s].times]
    return bool(times) and _DATE_DAYS[0] <= min(times) and max(times) <= _DATE_DAYS[1]


def time_axis(tracker: Tracker, dataset: str | None = None, unit: str | None = None,
              dates: bool = False) -> tuple[TimeAxis, list[str]]:
    """How to draw the tracker's times, and notes on what was assumed.

    ``dates``: the times are days since 1970-01-01 (a stream whose times were dates) and are
    drawn as calendar dates. ``unit`` names the unit; default: see :func:`time_unit`.
    """
    if tracker._timestamps:
        return TimeAxis(unit or time_unit(tracker)[0], float(tracker.time_unit)), []
    if dates:
        return TimeAxis("days", 86400.0), []
    notes = []
    if unit is None:
        unit, note = time_unit(tracker, dataset)
        notes += [note] if note else []
    if _looks_like_dates(tracker):
        notes.append("These times look like dates read as days since 1970-01-01 (how produce "
                     "and the consumer read dates): --dates draws them as calendar dates.")
    return TimeAxis(unit), notes


def time_unit(tracker: Tracker, dataset: str | None = None) -> tuple[str, str | None]:
    """The name of the tracker's time unit, and a note when it is an assumption.

    Timestamps: the tracker's ``time_unit`` (days by default). Numbers: the unit of the
    bundled data set the features come from, else days (the unit of the consumer's input
    format), with a note saying how to name another.
    """
    if tracker._timestamps:
        return _UNIT_NAMES.get(float(tracker.time_unit), f"units of {tracker.time_unit:g} s"), None
    if dataset is not None:
        return BUNDLED_TIME_UNITS[dataset], None
    return "days", ("Times are read as days (the unit of the consumer's input format); if "
                    "they are in another unit, name it with --time-unit-name.")


def _history_notes(tracker: Tracker) -> list[str]:
    """What the tracker's bounds dropped, in words (from its public metrics)."""
    metrics = tracker.metrics
    notes = []
    dropped = int(metrics.get("history_dropped", 0))
    if dropped:
        notes.append(
            f"History was cut: the tracker keeps at most {tracker.max_history} samples per "
            f"subject and dropped {dropped} older samples, so trajectories and growth rates "
            "start later than the stream did. Raise the tracker's max_history to keep them.")
    evicted = int(metrics.get("evicted_lru", 0)) + int(metrics.get("evicted_ttl", 0))
    if evicted:
        notes.append(f"{evicted} subjects were evicted (max_subjects {tracker.max_subjects}, "
                     f"ttl {tracker.ttl}): they are not drawn.")
    if int(metrics.get("events_dropped", 0)):
        notes.append(f"{metrics['events_dropped']} of the oldest events were dropped "
                     f"(max_events {tracker.max_events}).")
    return notes


STYLE = """
body { font-family: sans-serif; margin: 2em; max-width: 1300px; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; }
table.data { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
table.data td, table.data th { padding: 2px 8px; border-bottom: 1px solid #eee;
  text-align: right; }
img { max-width: 100%; display: block; margin: 0.5em 0; }
.note { color: #666; font-size: 0.9em; }
.warn { background: #fff4d6; border-left: 4px solid #e0a800; padding: 0.4em 0.8em; }
"""


def _as_tracker(source: Tracker | OnlineNMF | str | Path) -> Tracker:
    if isinstance(source, str | Path):
        return load_source(source)
    if isinstance(source, OnlineNMF):
        return Tracker(source)
    return source


def _taxonomy_strings(taxonomy: Mapping[Hashable, str] | str | Path | None
                      ) -> dict[Hashable, str]:
    """Taxonomy strings by feature, read from a file when given a path."""
    if taxonomy is None:
        return {}
    if isinstance(taxonomy, str | Path):
        from onlinenmf.datasets import read_taxonomy as read

        return dict(read(taxonomy))
    return dict(taxonomy)


def _naming_notes(model: OnlineNMF, names: Mapping[Hashable, str],
                  taxonomy: Mapping[Hashable, str]) -> list[str]:
    notes = []
    if taxonomy:
        found = sum(1 for f in model.features if f in taxonomy)
        if model.n_features and not found:
            return [f"None of the model's {model.n_features} feature ids is in the taxonomy "
                    f"given (the model has e.g. {', '.join(map(repr, model.features[:2]))}; "
                    f"the taxonomy {', '.join(map(repr, list(taxonomy)[:2]))})."]
        notes.append(f"{found} of {model.n_features} features named from the taxonomy given.")
    unnamed = sum(1 for f in model.features if f not in names)
    if unnamed and model.n_features:
        notes.append(f"{unnamed} of {model.n_features} features have no taxonomy and are "
                     "shown by id (name them with --taxonomy).")
    return notes


def write_report(
    source: Tracker | OnlineNMF | str | Path,
    out: str | Path = "report.html",
    *,
    labels: Mapping[Hashable, str] | None = None,
    taxonomy: Mapping[Hashable, str] | str | Path | None = None,
    subjects: Sequence[Hashable] | None = None,
    n_subjects: int = 12,
    top: int = 8,
    bin_width: float | None = None,
    time_unit_name: str | None = None,
    dates: bool = False,
    title: str = "onlinenmf report",
    max_rows: int = 300,
    classifier: Any = None,
) -> Path:
    """Write the HTML report of a tracker (or a bare model, or a path for :func:`load_source`).

    Parameters
    ----------
    source
        What to report on.
    out
        The HTML file to write (its folder is created).
    labels
        Feature -> readable name, used as given (features it leaves out are shown by id).
        Default: named as :func:`feature_labels` does, from ``taxonomy``, the tracker's
        labels and the bundled taxonomies.
    taxonomy
        Feature -> taxonomy string, or a file :func:`onlinenmf.datasets.read_taxonomy`
        reads; it takes precedence over every other name.
    subjects, n_subjects
        Subjects drawn as stacked-area trajectories (default: the ``n_subjects`` with the most
        samples held), 12 per figure.
    top
        Features listed per community.
    bin_width
        Time bin of the population view and of the event counts (default: the tracker's,
        else 10 and 20 bins over the times seen).
    time_unit_name
        How to name the time unit (default: see :func:`time_unit`).
    dates
        The times are days since 1970-01-01 (dates, as produce and the consumer read them):
        draw them as calendar dates.
    title
        The page title.
    max_rows
        Longest growth and event tables.
    classifier
        A supervised consumer's :class:`onlinenmf.river.NMFClassifier`: each class's
        communities are shown (default: the one in ``source``'s checkpoint, when it is a path
        to one; none otherwise).

    Returns
    -------
    Path
        The file written.
    """
    import matplotlib

    matplotlib.use("Agg")
    if classifier is None and isinstance(source, str | Path):
        classifier = load_classifier(source)
    tracker = _as_tracker(source)
    model = tracker.model
    if subjects is not None:
        missing = [s for s in subjects if s not in tracker]
        if missing:
            raise KeyError(f"subjects not held by the tracker: {missing}")
    strings = _taxonomy_strings(taxonomy)
    dataset = bundled_dataset(model.features)
    if labels is None:
        names = feature_labels(model.features, taxonomy=strings,
                               tracker_labels=tracker.labels)
    else:
        names = dict(labels)
    time, time_notes = time_axis(tracker, dataset, time_unit_name, dates)
    esc = html.escape
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
             f"<style>{STYLE}</style></head><body><h1>{esc(title)}</h1>"]
    parts.extend(_note(text, warn=True) for text in _history_notes(tracker))
    parts.append(_overview(tracker, dataset, time.unit))
    parts.extend(_communities_section(model, names, top, strings))
    if classifier is not None:
        parts.extend(_classes_section(classifier, names, top))
    parts.extend(_population_section(tracker, bin_width, time, time_notes))
    chosen = subjects if subjects is not None else _busiest(tracker, n_subjects)
    parts.extend(_subjects_section(tracker, list(chosen), time))
    parts.extend(_growth_section(tracker, chosen, time.unit, max_rows))
    parts.extend(_events_section(tracker, bin_width, time, max_rows))
    parts.append("</body></html>")
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


_NO_HISTORY = _note("This source holds no subject histories (a model without its tracker): "
                    "nothing to draw here.")


def _overview(tracker: Tracker, dataset: str | None, unit: str) -> str:
    model = tracker.model
    rows = [
        ("communities", len(model.component_ids)), ("features", model.n_features),
        ("samples learned", model.samples_learned), ("model version", model.model_version),
        ("beta", model.beta), ("subjects held", len(tracker)),
        ("samples kept per subject (max_history)", tracker.max_history),
        ("events", len(tracker.events)), ("time unit", unit),
        *[(name.replace("_", " "), value) for name, value in tracker.metrics.items()],
    ]
    if dataset is not None:
        rows.append(("bundled data set", dataset))
    return _table(pd.DataFrame(rows, columns=["", "value"]))


def _communities_section(model: OnlineNMF, names: Mapping[Hashable, str], top: int,
                         taxonomy: Mapping[Hashable, str]) -> list[str]:
    parts = ["<h2 id='communities'>Communities: top taxa</h2>"]
    if model.n_features == 0:
        return [*parts, _note("The model has learned nothing yet.")]
    tops = _top_features(model, names, top)
    parts.extend(_note(text) for text in _naming_notes(model, names, taxonomy))
    parts.append(_community_figure(tops))
    rows = [{"community": c, "rank": r + 1, "taxon": n, "share": s}
            for c, pairs in tops.items() for r, (n, s) in enumerate(pairs)]
    parts.append("<details><summary>as a table</summary>" + _table(pd.DataFrame(rows))
                 + "</details>")
    return parts


def _classes_section(classifier: Any, names: Mapping[Hashable, str], top: int) -> list[str]:
    """Each class's communities (the supervised consumer's classifier), most separating first:
    top taxa and the effect size of the community's share, this class against the others."""
    from onlinenmf.datasets import unique_names

    parts = ["<h2 id='classes'>Classes: their communities</h2>"]
    per_class = classifier.class_components(top=top)
    # one name per feature, two features never under one name (as in the communities section)
    names = unique_names({f: names.get(f, str(f)) for communities in per_class.values()
                          for c in communities for f, _ in c.features})
    if not per_class:
        return [*parts, _note("The classifier has learned no labelled sample yet.")]
    parts.append(_note(
        f"Supervised on {len(per_class)} classes ({classifier.formulation}). Effect: Cohen's d "
        "of the community's share of a sample's weights (solved before the sample was learned), "
        "in the class against the other classes, with its 95 % Welch interval; blank until "
        "each side has two samples. Samples count as independent: repeated samples of a "
        "subject make the intervals too narrow."))
    for label, communities in per_class.items():
        rows = [{"community": c.component, "effect": c.effect, "interval low": c.interval[0],
                 "interval high": c.interval[1], "mean share in class": c.mean_in,
                 "mean share in others": c.mean_out, "samples in class": c.n_in,
                 "samples in others": c.n_out,
                 "top taxa": ", ".join(f"{names[f]} ({w:.2g})"
                                       for f, w in c.features)} for c in communities]
        parts.append(f"<h3>{html.escape(str(label))}</h3>" + _table(pd.DataFrame(rows)))
    return parts


def _population_section(tracker: Tracker, bin_width: float | None, time: TimeAxis,
                        notes: Sequence[str]) -> list[str]:
    parts = ["<h2 id='population'>Population trajectories by time bin</h2>"]
    parts.extend(_note(text) for text in notes)
    if len(tracker) == 1:
        return [*parts, _note("One subject: its trajectory below is the whole population.")]
    population = tracker.population(bin_width=bin_width)
    if population.empty:
        return [*parts, _NO_HISTORY]
    parts.append(_population_figure(population, time))
    parts.append(_note("Mean share of each community over the samples in each bin (absent = "
                       "0); right: the fraction of the bin's subjects in which the community "
                       f"reached a share of {tracker.presence:g}."))
    return parts


def _busiest(tracker: Tracker, n: int) -> list[Hashable]:
    sizes = {s: len(tracker._subjects[s].times) for s in tracker.subjects}
    chosen = sorted(sizes, key=lambda s: (-sizes[s], str(s)))[:n]
    return sorted(chosen, key=str)


def _subjects_section(tracker: Tracker, chosen: list[Hashable], time: TimeAxis
                      ) -> list[str]:
    parts = ["<h2 id='subjects'>Subject trajectories</h2>"]
    if not chosen:
        return [*parts, _NO_HISTORY]
    parts.append(_note(f"Composition (h / sum h) of {len(chosen)} of {len(tracker)} "
                       "subjects."))
    if tracker.metrics.get("history_dropped", 0):
        parts.append(_note(f"Each subject shows at most its last {tracker.max_history} "
                           "samples (see the note at the top).", warn=True))
    parts.extend(_subject_figures(tracker, chosen, time))
    return parts


def _growth_section(tracker: Tracker, chosen: Sequence[Hashable], unit: str,
                    max_rows: int) -> list[str]:
    parts = ["<h2 id='growth'>Growth rates</h2>"]
    table = tracker.growth_table()
    if table.empty:
        return [*parts, _NO_HISTORY if not len(tracker) else
                _note("No subject has enough samples for a growth rate.")]
    per = unit[:-1] if unit.endswith("s") else unit
    parts.append(_note(f"Theil-Sen slope of log {tracker.growth_of} per {per} with its 95 % "
                       "interval; growing / declining: subjects whose interval excludes 0."))
    parts.append(_table(_growth_summary(table)))
    shown = table[table["subject"].isin(chosen)] if len(table) > max_rows else table
    parts.append("<details><summary>per subject</summary>" + _table(shown.head(max_rows))
                 + "</details>")
    return parts


def _events_section(tracker: Tracker, bin_width: float | None, time: TimeAxis,
                    max_rows: int) -> list[str]:
    parts = ["<h2 id='events'>Events</h2>"]
    events = tracker.events
    if not events:
        return [*parts, _note("No events.")]
    width = bin_width or tracker.bin_width or event_bin_width(events)
    counts = event_counts(events, width)
    if not counts.empty:
        parts.append(_events_figure(counts, width, time))
    frame = pd.DataFrame(events)
    summary = frame.groupby("kind").agg(
        events=("kind", "size"), communities=("component", "nunique"),
        subjects=("subject", "nunique")).reset_index()
    parts.append(_note("Events counted per kind and time bin: appear / vanish (a community "
                       "crosses its presence threshold in a subject and stays there), birth / "
                       "retire (the model adds or drops a community), anomaly (a sample whose "
                       "loss is unusual for its subject)."))
    parts.append(_table(summary))
    model_events = frame[frame["kind"].isin(["birth", "retire"])]
    if not model_events.empty:
        columns = [c for c in ("time", "kind", "component", "detail") if c in frame]
        parts.append("<p>Births and retirements:</p>" + _table(model_events[columns].tail(
            max_rows)))
    marked = frame[frame["kind"] == "anomaly"]
    if not marked.empty:
        parts.append("<p>Samples marked unusual for their subject:</p>" + _table(
            marked[[c for c in ("time", "subject", "detail") if c in frame]].tail(max_rows)))
    columns = [c for c in ("time", "kind", "component", "subject", "detail") if c in frame]
    parts.append(f"<details><summary>last {min(len(frame), max_rows)} events</summary>"
                 + _table(frame[columns].tail(max_rows)) + "</details>")
    return parts


# ---------------------------------------------------------------------- text streams
def load_text(path: str | Path, worker: str | None = None) -> Any:
    """The :class:`consumers.text.TextApp` restored from a text consumer's checkpoint (the
    one :func:`load_source` would read), or None when ``path`` holds no such checkpoint."""
    from consumers.text import TextApp

    path = Path(path)
    checkpoint = _checkpoint_file(path, worker) if path.exists() else None
    if checkpoint is None or not checkpoint.exists():
        return None
    try:
        blobs = read_checkpoint(checkpoint).blobs
    except CheckpointError as err:
        raise ValueError(f"{checkpoint}: not a readable consumer checkpoint: {err}") from None
    if "text" not in blobs:
        return None
    app = TextApp()
    app.restore(blobs)
    return app


def coarser_prevalence(prevalence: pd.DataFrame, width: float) -> pd.DataFrame:
    """Prevalence (``bin``, ``topic``, ``share``, ``n_docs``) merged into bins ``width``
    wide from the first bin: each topic's share is the mean over the merged bins' documents.

    >>> table = pd.DataFrame({"bin": [1.0, 2.0, 1.0, 2.0], "topic": [1, 1, 2, 2],
    ...                       "share": [1.0, 0.0, 0.0, 1.0], "n_docs": [3, 1, 3, 1]})
    >>> merged = coarser_prevalence(table, 2.0)
    >>> merged["bin"].tolist(), merged["share"].tolist()
    ([1.0, 1.0], [0.75, 0.25])
    """
    first = float(prevalence["bin"].min())
    frame = prevalence.assign(bin=first + np.floor((prevalence["bin"] - first) / width) * width,
                              mass=prevalence["share"] * prevalence["n_docs"])
    merged = frame.groupby(["bin", "topic"], as_index=False)[["mass", "n_docs"]].sum()
    merged["share"] = merged["mass"] / merged["n_docs"]
    return merged[["bin", "topic", "share", "n_docs"]]


def _prevalence_figure(prevalence: pd.DataFrame, time: TimeAxis,
                       names: Mapping[int, str]) -> str:
    """A streamgraph: each topic's mean share of the documents per time bin, stacked around
    a centre line (matplotlib's ``baseline='wiggle'``)."""
    import matplotlib.pyplot as plt

    wide = prevalence.pivot(index="bin", columns="topic", values="share").fillna(0.0)
    figure, axis = plt.subplots(figsize=(13, 5))
    axis.stackplot(time.x(wide.index), wide.to_numpy().T, baseline="wiggle",
                   colors=[_colour(t) for t in wide.columns],
                   labels=[names.get(t, str(t)) for t in wide.columns])
    time.ticks(axis)
    axis.set(xlabel=time.label, ylabel="mean share of the documents",
             title="topic prevalence per time bin")
    axis.set_yticks([])
    axis.legend(title="topic", fontsize=7, ncol=1 + len(wide.columns) // 16,
                loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.tight_layout()
    return _png(figure)


def write_text_report(app: Any, out: str | Path = "report.html", *, top: int = 10,
                      bin_width: float | None = None, dates: bool = False,
                      title: str = "onlinenmf report: topics") -> Path:
    """Write the HTML report of a text consumer (:class:`consumers.text.TextApp`, e.g. from
    :func:`load_text`): the topics' word lists, their prevalence over time as a streamgraph,
    when each emerged, peaked and faded, the births, retirements, splits and top-word shifts
    (:class:`onlinenmf.text.TopicWatch`), polysemous words.

    ``bin_width``: time bin of the prevalence, in days (default: 20 bins, at least a year);
    ``dates``: the times are days since 1970-01-01, drawn as calendar dates.
    """
    import matplotlib

    matplotlib.use("Agg")
    model, nmf = app.model, app.model.nmf
    time = TimeAxis("days", 86400.0) if dates else TimeAxis("days")
    esc = html.escape
    overview = pd.DataFrame([
        ("topics", len(nmf.component_ids)), ("words in the model", nmf.n_features),
        ("words admitted", len(model.vectorizer.vocabulary.admitted)),
        ("documents learned", model.docs_learned), ("model version", nmf.model_version),
        ("weighting", model.vectorizer.weighting),
        ("idf power (tfidf: tf * idf ** power)", model.vectorizer.idf_power), ("beta", nmf.beta),
        ("topic births, retirements, splits and shifts", len(app.topic_events))],
        columns=["", "value"])
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
             f"<style>{STYLE}</style></head><body><h1>{esc(title)}</h1>", _table(overview)]
    parts.extend(_topics_section(app, top))
    parts.extend(_prevalence_section(app, bin_width, time))
    parts.extend(_topic_events_section(app, bin_width, time))
    parts.extend(_polysemy_section(app))
    parts.append("</body></html>")
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def _topics_section(app: Any, top: int) -> list[str]:
    parts = ["<h2 id='topics'>Topics: top words</h2>"]
    nmf = app.model.nmf
    if nmf.n_features == 0:
        return [*parts, _note("The model has learned nothing yet.")]
    tops = {t: [(str(w), s) for w, s in pairs] for t, pairs in nmf.components(top=top).items()}
    rows = [{"topic": t, "top words": ", ".join(w for w, _ in pairs)}
            for t, pairs in tops.items()]
    parts.append(_table(pd.DataFrame(rows)))
    parts.append(_community_figure(tops, noun="topic"))
    return parts


def _prevalence_section(app: Any, bin_width: float | None, time: TimeAxis) -> list[str]:
    from onlinenmf.text import eras

    parts = ["<h2 id='prevalence'>Topic prevalence over time</h2>"]
    prevalence = app.prevalence()
    if prevalence.empty:
        return [*parts, _note("No document has been mixed against a dictionary yet.")]
    # 20 bins over the span, each a whole number of the year bins the checkpoint keeps
    year = _year_bin()
    span = float(prevalence["bin"].max() - prevalence["bin"].min()) + year
    width = bin_width or year * max(1, round(span / 20 / year))
    prevalence = coarser_prevalence(prevalence, width)
    names = {t: f"{t}: {', '.join(map(str, words))}"  # a topic's 3 top words name it
             for t, words in app.model.topics(3).items()}
    parts.append(_prevalence_figure(prevalence, time, names))
    parts.append(_note(f"Each topic's mean share of the documents in bins of {width:.4g} "
                       "days (documents mixed before the first dictionary are not counted)."))
    table = pd.DataFrame(eras(prevalence))
    if not table.empty:
        for column in ("emerged", "peak", "faded"):
            table[column] = [_when(v, time) for v in table[column]]
        parts.append("<p>When each topic emerged (first bin with a share of 5 %), peaked, "
                     "and faded (under 2.5 % after its peak; blank: still there):</p>"
                     + _table(table))
    return parts


def _year_bin() -> float:
    from consumers.text.application import PREVALENCE_BIN

    return PREVALENCE_BIN


def _when(value: Any, time: TimeAxis) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return str(time.x([value])[0].date()) if time.seconds else f"{value:g}"


def _topic_events_section(app: Any, bin_width: float | None, time: TimeAxis) -> list[str]:
    parts = ["<h2 id='topic-events'>Births, retirements, splits and shifts</h2>"]
    if not app.topic_events:
        return [*parts, _note("No topic was born, retired, split or shifted.")]
    parts.append(_note("A split: a new topic took words that were among another's top "
                       "words, which lost them. A shift: a topic keeps its id but fewer than "
                       "half of its top words are still those it had (when first watched, or "
                       "at its last shift)."))
    width = bin_width or event_bin_width(app.topic_events)
    parts.append(_events_figure(event_counts(app.topic_events, width), width, time))
    frame = pd.DataFrame(app.topic_events)
    frame["time"] = [_when(v, time) for v in frame["time"]]
    parts.append(_table(frame[["time", "kind", "topic", "reason"]]))
    return parts


def _polysemy_section(app: Any, top: int = 30) -> list[str]:
    from onlinenmf.text import polysemous

    parts = ["<h2 id='polysemy'>Words in two topics</h2>"]
    pairs = polysemous(app.model, top)
    if not pairs:
        return [*parts, _note(f"No word is among the top {top} words of two topics.")]
    parts.append(_note(f"Words among the top {top} words of two topics (the seed's 'lead' "
                       "in two senses)."))
    parts.append(_table(pd.DataFrame(pairs, columns=["word", "topic", "other topic"])))
    return parts


# ---------------------------------------------------------------------- command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, type=Path, metavar="D",
                        help="checkpoint directory, checkpoint file (.ckpt) or snapshot (.npz)")
    parser.add_argument("--out", type=Path, default=Path("report.html"),
                        help="HTML file to write (default: report.html)")
    parser.add_argument("--worker", help="report on this worker's checkpoint (default: newest)")
    parser.add_argument("--taxonomy", type=Path, metavar="FILE",
                        help="names for the features: QIIME 2 taxonomy.tsv, Kingdom..Species "
                        "columns, id<TAB>taxonomy lines, or a BIOM table with taxonomy")
    parser.add_argument("--subjects", help="comma-separated subjects to draw (default: the "
                        "--n-subjects with the most samples)")
    parser.add_argument("--n-subjects", type=int, default=12,
                        help="subjects drawn by default (default: %(default)s)")
    parser.add_argument("--top", type=int, default=8,
                        help="features listed per community (default: %(default)s)")
    parser.add_argument("--bin-width", type=float,
                        help="time bin of the population view and event counts, in the "
                        "stream's time unit (default: 10 or 20 bins)")
    parser.add_argument("--time-unit-name", metavar="UNIT",
                        help="the stream's time unit, e.g. days or hours (default: days, or "
                        "the bundled data set's)")
    parser.add_argument("--dates", action="store_true",
                        help="the times are days since 1970-01-01 (the table's times were "
                        "dates): draw calendar dates")
    parser.add_argument("--title", default="onlinenmf report", help="title of the page")


def run(args: argparse.Namespace) -> int:
    try:
        text = load_text(args.checkpoint, worker=args.worker)
    except (OSError, ValueError) as err:
        print(f"onlinenmf report: {err}", file=sys.stderr)
        return 1
    if text is not None:  # a text consumer's checkpoint: its topics over time
        print(write_text_report(text, args.out, top=args.top, bin_width=args.bin_width,
                                dates=args.dates,
                                title=_default(args.title, "onlinenmf report: topics")))
        return 0
    try:
        tracker = load_source(args.checkpoint, worker=args.worker)
        classifier = load_classifier(args.checkpoint, worker=args.worker)
    except (OSError, ValueError) as err:  # missing, unreadable or corrupt (SnapshotError)
        print(f"onlinenmf report: {err}", file=sys.stderr)
        return 1
    try:  # a --taxonomy or --subjects the report cannot use: one line, nothing written
        taxonomy = _taxonomy_strings(args.taxonomy)
        subjects = _subjects_option(tracker, args.subjects)
    except (OSError, ValueError) as err:
        print(f"onlinenmf report: {err}", file=sys.stderr)
        return 2
    path = write_report(tracker, args.out, taxonomy=taxonomy, subjects=subjects,
                        n_subjects=args.n_subjects, top=args.top, bin_width=args.bin_width,
                        time_unit_name=args.time_unit_name, dates=args.dates,
                        title=args.title, classifier=classifier)
    print(path)
    return 0


def _default(title: str, text_title: str) -> str:
    """The page title: the one given, else the text report's own."""
    return text_title if title == "onlinenmf report" else title


def _subjects_option(tracker: Tracker, text: str | None) -> list[Hashable] | None:
    """``--subjects A,B``: the subjects as held; one not held is a ValueError naming it."""
    if not text:
        return None
    subjects = [_subject_key(tracker, s.strip()) for s in text.split(",") if s.strip()]
    missing = [s for s in subjects if s not in tracker]
    if missing:
        held = sorted(map(str, tracker.subjects))
        raise ValueError(f"--subjects: {', '.join(map(str, missing))} not held by the tracker "
                         f"(it holds {len(held)}: {', '.join(held[:5])}"
                         f"{', ...' if len(held) > 5 else ''})")
    return subjects


def _subject_key(tracker: Tracker, text: str) -> Hashable:
    """A subject named on the command line: as given, or as an int if that is what is held."""
    if text not in tracker and text.lstrip("-").isdigit() and int(text) in tracker:
        return int(text)
    return text


if __name__ == "__main__":  # pragma: no cover
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    sys.exit(run(parser.parse_args()))
