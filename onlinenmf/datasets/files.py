"""A user's own microbiome table read from files: counts, sample metadata and taxonomy.

:func:`load_table` reads what ``onlinenmf produce microbiome --table T --metadata M``
streams, into the same :class:`MicrobiomeTable` the bundled loaders return:

- counts: a TSV (or CSV) with samples as rows, or features as rows (a ``#OTU ID`` header, as
  ``biom convert --to-tsv`` writes; otherwise the side where the metadata's sample ids are
  is taken), a BIOM 1.0 JSON file, or a BIOM 2.x HDF5 file (needs ``h5py``); a
  ``taxonomy`` column of a features-as-rows TSV, and BIOM observation metadata
  ``taxonomy``, become the table's taxonomy;
- metadata: a TSV (or CSV; a QIIME 2 ``#q2:types`` row is skipped) whose sample-id,
  subject and time columns are found by their usual names (:data:`SAMPLE_COLUMNS`,
  :data:`SUBJECT_COLUMNS`, :data:`TIME_COLUMNS`, compared without case, ``#``, ``_``,
  ``-`` or spaces) or named by the caller. Times are numbers (kept as they are) or dates
  (read as days since 1970-01-01 UTC, the unit the Kafka input format gives ISO dates).

:func:`read_taxonomy` reads a QIIME 2 ``taxonomy.tsv`` (``Feature ID``, ``Taxon``), a table
of ``Kingdom`` ... ``Species`` columns, a two-column id/taxonomy TSV, or a BIOM table's
observation metadata.

Whatever is wrong with a file is a :class:`TableError`: one line naming the file, what is
wrong and how to fix it.

Examples
--------
>>> import pathlib, tempfile
>>> from onlinenmf.datasets import load_table
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> _ = (folder / "counts.tsv").write_text("#OTU ID\\tS1\\tS2\\nasv1\\t5\\t0\\nasv2\\t1\\t7\\n")
>>> _ = (folder / "samples.tsv").write_text("sample-id\\thost_subject_id\\tcollection_date\\n"
...                                          "S1\\tA\\t2020-01-03\\nS2\\tA\\t2020-01-01\\n")
>>> t = load_table(folder / "counts.tsv", folder / "samples.tsv")
>>> t.metadata[["sample_id", "subject", "time"]].values.tolist()
[['S2', 'A', 18262.0], ['S1', 'A', 18264.0]]
>>> t.sample(0)
{'asv2': 7.0}
"""

from __future__ import annotations

import gzip
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ._table import RANK_COLUMNS, MicrobiomeTable, taxon_from_ranks, time_order

__all__ = ["SAMPLE_COLUMNS", "SUBJECT_COLUMNS", "TIME_COLUMNS", "TableError", "load_table",
           "read_metadata", "read_table", "read_taxonomy"]

log = logging.getLogger(__name__)

#: Metadata column names taken as the sample id, first found wins (else the first column).
SAMPLE_COLUMNS = ("sample_id", "sample-id", "#SampleID", "sample_name", "sample", "id")
#: ... as the subject (the series a sample belongs to: a person, an animal, a vessel).
SUBJECT_COLUMNS = ("subject", "subject_id", "host_subject_id", "host_id", "host",
                   "individual", "individual_id", "participant", "participant_id", "patient",
                   "patient_id", "person", "donor", "animal", "animal_id", "mouse", "mouse_id",
                   "vessel", "reactor")
#: ... as the time: numbers first, then dates and timestamps.
TIME_COLUMNS = ("time", "day", "days", "day_of_life", "days_since_experiment_start",
                "days_since_start", "days_since_first_sample", "study_day", "collection_day",
                "collection-day", "timepoint", "time_point", "date", "collection_date",
                "collection-date", "sampling_date", "sample_date", "timestamp",
                "collection_timestamp", "datetime", "collection_time")
#: First header cell of a features-as-rows TSV.
_FEATURE_HEADERS = ("otuid", "featureid", "asvid", "otu", "asv", "feature")
_TAXONOMY_HEADERS = ("taxonomy", "taxon")
_MISSING = ("", "na", "nan", "none", "null", "missing", "not applicable", "not collected")
_EPOCH = pd.Timestamp("1970-01-01", tz="UTC")


class TableError(ValueError):
    """A counts, metadata or taxonomy file that cannot be used.

    Its message is one line: the file, what is wrong with it and how to fix it.
    """


def _norm(name: object) -> str:
    """Column names compared without case, leading ``#``, ``_``, ``-``, ``.`` or spaces."""
    return re.sub(r"[\s_\-.]+", "", str(name).strip().lstrip("#").lower())


def _sample(values: Sequence[object], n: int = 3) -> str:
    shown = ", ".join(repr(str(v)) for v in list(values)[:n])
    return shown + (", ..." if len(values) > n else "")


# ---------------------------------------------------------------------- text files
def _check_file(path: Path, what: str) -> bytes:
    """The file's first bytes; a missing file or a zip archive is a TableError."""
    if not path.exists():
        raise TableError(f"{what} {path}: no such file")
    if path.is_dir():
        raise TableError(f"{what} {path}: is a directory, not a file")
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head.startswith(b"PK\x03\x04"):
        raise TableError(
            f"{what} {path}: a zip archive (a QIIME 2 .qza artifact or a spreadsheet?), not a "
            "text table: export it first (qiime tools export --input-path X.qza "
            "--output-path out/, or save the sheet as tab-separated text)")
    return head


def _head_lines(path: Path, what: str, n: int = 3) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8-sig") as fh:
            return [fh.readline() for _ in range(n)]
    except (UnicodeDecodeError, OSError, EOFError) as err:
        raise TableError(f"{what} {path}: not a UTF-8 text table ({err}); save it as "
                         "tab-separated text") from None


def _delimited(path: Path, what: str, *, skip: int = 0, **kwargs) -> pd.DataFrame:
    """A tab-separated (or, when the header has no tab but commas, comma-separated) table."""
    lines = _head_lines(path, what, skip + 1)
    header = lines[skip] if len(lines) > skip else ""
    if not header.strip():
        raise TableError(f"{what} {path}: the file is empty (no header line)")
    sep = "\t" if "\t" in header or "," not in header else ","
    try:
        return pd.read_csv(path, sep=sep, skiprows=skip, encoding="utf-8-sig", **kwargs)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise TableError(f"{what} {path}: not a readable tab-separated table ({first})") \
            from None


# ---------------------------------------------------------------------- counts
@dataclass
class _Counts:
    """A counts matrix as stored: ``rows_are`` says which side the file says are samples."""

    matrix: sp.csr_matrix  # rows x columns, as in the file
    rows: list[str]
    columns: list[str]
    rows_are: str | None  # "samples", "features" or None (decided by the metadata)
    taxonomy: dict[str, str] = field(default_factory=dict)

    def samples_by_features(self, samples_are_rows: bool
                            ) -> tuple[sp.csr_matrix, list[str], list[str]]:
        if samples_are_rows:
            return self.matrix, self.rows, self.columns
        return self.matrix.T.tocsr(), self.columns, self.rows


def _read_counts(path: str | Path) -> _Counts:
    path = Path(path)
    head = _check_file(path, "table")
    if head.startswith(b"\x89HDF"):
        return _read_biom_hdf5(path)
    if head.lstrip().startswith(b"{"):
        return _read_biom_json(path)
    return _read_counts_tsv(path)


def _read_counts_tsv(path: Path) -> _Counts:
    lines = _head_lines(path, "table", 2)
    skip = 1 if lines[0].startswith("# Constructed") else 0  # `biom convert --to-tsv`
    frame = _delimited(path, "table", skip=skip, index_col=0, low_memory=False)
    frame.index = frame.index.map(str)
    first = _norm(re.split(r"[\t,]", lines[skip], maxsplit=1)[0])
    rows_are = "features" if first in _FEATURE_HEADERS else None
    taxonomy: dict[str, str] = {}
    for column in [c for c in frame.columns if _norm(c) in _TAXONOMY_HEADERS]:
        if rows_are == "features":  # biom convert --header-key taxonomy
            taxonomy = {f: str(t) for f, t in frame[column].items() if isinstance(t, str)}
        frame = frame.drop(columns=column)
    if frame.shape[1] == 0:
        raise TableError(f"table {path}: no count column (read as tab-separated, the header "
                         f"is {lines[skip].strip()[:80]!r})")
    if frame.index.has_duplicates:
        twice = frame.index[frame.index.duplicated()].unique()
        raise TableError(f"table {path}: row ids appear twice ({_sample(twice)}); each "
                         "sample or feature needs one row")
    values = _numeric(frame, path)
    return _Counts(sp.csr_matrix(values), list(frame.index), [str(c) for c in frame.columns],
                   rows_are, taxonomy)


def _numeric(frame: pd.DataFrame, path: Path) -> np.ndarray:
    """The table's cells as float64; a word, an empty cell or a negative count is refused."""
    for column in frame.columns:
        values = frame[column]
        if pd.api.types.is_numeric_dtype(values) and values.notna().all():
            continue
        parsed = pd.to_numeric(values, errors="coerce")
        bad = parsed.isna()
        if bad.any():
            row = bad.idxmax()
            cell = values[row]
            if pd.isna(cell):
                raise TableError(f"table {path}: row {row!r}, column {column!r} is empty; "
                                 "write 0 for a taxon a sample does not have")
            raise TableError(
                f"table {path}: row {row!r}, column {column!r} holds {cell!r}, not a count; "
                "the table holds counts only (sample metadata goes in --metadata)")
    values = frame.to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values) | (values < 0)
    if bad.any():
        i, j = (int(k[0]) for k in np.nonzero(bad))
        raise TableError(f"table {path}: row {frame.index[i]!r}, column {frame.columns[j]!r} "
                         f"holds {float(values[i, j]):g}; counts must be finite and non-negative")
    return values


def _taxonomy_text(value: object) -> str | None:
    if isinstance(value, list | tuple | np.ndarray):
        parts = [p.decode() if isinstance(p, bytes) else str(p) for p in value]
        return "; ".join(p.strip() for p in parts) if parts else None
    if isinstance(value, bytes):
        value = value.decode()
    return value if isinstance(value, str) and value.strip() else None


def _read_biom_json(path: Path) -> _Counts:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        n_rows, n_cols = doc["shape"]
        if doc.get("matrix_type") == "sparse":
            data = np.array(doc["data"], dtype=np.float64).reshape(-1, 3)
            matrix = sp.coo_matrix(
                (data[:, 2], (data[:, 0].astype(int), data[:, 1].astype(int))),
                shape=(n_rows, n_cols)).tocsr()
        else:
            matrix = sp.csr_matrix(np.array(doc["data"], dtype=np.float64).reshape(n_rows,
                                                                                    n_cols))
        features = [str(r["id"]) for r in doc["rows"]]
        samples = [str(c["id"]) for c in doc["columns"]]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise TableError(f"table {path}: not a BIOM 1.0 JSON table ({type(err).__name__}: "
                         f"{err}); check the file, or convert it: biom convert -i {path} "
                         "-o table.tsv --to-tsv") from None
    taxonomy = {}
    for row in doc["rows"]:
        text = _taxonomy_text((row.get("metadata") or {}).get("taxonomy"))
        if text:
            taxonomy[str(row["id"])] = text
    if matrix.nnz and (matrix.data.min() < 0 or not np.isfinite(matrix.data).all()):
        raise TableError(f"table {path}: holds negative or non-finite counts")
    return _Counts(matrix, features, samples, "features", taxonomy)


def _read_biom_hdf5(path: Path) -> _Counts:
    try:
        import h5py
    except ImportError:
        raise TableError(f"table {path}: reading BIOM HDF5 needs h5py (pip install h5py), or "
                         f"convert it: biom convert -i {path} -o table.tsv --to-tsv") from None

    def text(values) -> list[str]:
        return [v.decode() if isinstance(v, bytes) else str(v) for v in values]

    with h5py.File(path, "r") as f:
        samples = text(f["sample/ids"][:])
        features = text(f["observation/ids"][:])
        g = f["observation/matrix"]
        matrix = sp.csr_matrix((g["data"][:], g["indices"][:], g["indptr"][:]),
                               shape=(len(features), len(samples)))
        taxonomy = {}
        if "observation/metadata/taxonomy" in f:
            for feature, value in zip(features, f["observation/metadata/taxonomy"][:]):
                name = _taxonomy_text(value)
                if name:
                    taxonomy[feature] = name
    return _Counts(matrix, features, samples, "features", taxonomy)


def read_table(path: str | Path) -> tuple[sp.csr_matrix, list[str], list[str]]:
    """A counts table as ``(matrix, row ids, column ids)``, samples as rows when the file says.

    BIOM files and TSVs with a ``#OTU ID`` header are turned samples x features; other TSVs
    are returned as in the file (:func:`load_table` finds their orientation from the
    metadata).
    """
    counts = _read_counts(path)
    return counts.samples_by_features(counts.rows_are != "features")


# ---------------------------------------------------------------------- metadata
def read_metadata(path: str | Path) -> pd.DataFrame:
    """A sample metadata TSV as strings (empty cells are ``""``; ``#q2:types`` rows dropped)."""
    path = Path(path)
    head = _check_file(path, "metadata")
    if head.startswith(b"\x89HDF") or head.lstrip().startswith(b"{"):
        raise TableError(f"metadata {path}: a BIOM table, not sample metadata; pass the "
                         "counts as --table and a TSV of sample id, subject and time as "
                         "--metadata")
    meta = _delimited(path, "metadata", dtype=str, keep_default_na=False)
    meta.columns = [str(c).strip() for c in meta.columns]
    first = meta.columns[0]
    meta = meta[~meta[first].str.startswith("#q2:")].reset_index(drop=True)
    if meta.empty:
        raise TableError(f"metadata {path}: no rows after the header")
    return meta


def _column(columns: Sequence[str], wanted: str | None, candidates: Sequence[str],
            what: str, flag: str, path: Path) -> str | None:
    """The metadata column for ``what``: the one named, else the first usual name found."""
    if wanted:
        if wanted in columns:
            return wanted
        close = [c for c in columns if _norm(c) == _norm(wanted)]
        if close:
            return close[0]
        raise TableError(f"metadata {path}: no column {wanted!r} ({flag}); its columns are "
                         f"{list(columns)}")
    by_norm = {_norm(c): c for c in reversed(list(columns))}
    for name in candidates:
        if _norm(name) in by_norm:
            return by_norm[_norm(name)]
    return None


def _times(values: pd.Series, column: str, ids: pd.Series, path: Path) -> np.ndarray:
    """Times as floats: numbers as they are, dates as days since 1970-01-01 UTC (NaN: none)."""
    text = values.str.strip()
    missing = text.str.lower().isin(_MISSING)
    numbers = pd.to_numeric(text.where(~missing), errors="coerce")
    present = ~missing
    if numbers[present].notna().all():
        out = numbers.to_numpy(dtype=np.float64)
        bad = present.to_numpy() & ~np.isfinite(out)
        if bad.any():
            i = int(np.argmax(bad))
            raise TableError(f"metadata {path}: time column {column!r} holds "
                             f"{values.iloc[i]!r} (sample {ids.iloc[i]!r}); times must be "
                             "finite")
        return out
    if numbers[present].notna().any():  # "12" read as a date would be the 12th of this month
        i = int(np.argmax((present & numbers.notna()).to_numpy()))
        j = int(np.argmax((present & numbers.isna()).to_numpy()))
        raise TableError(f"metadata {path}: time column {column!r} mixes numbers "
                         f"({values.iloc[i]!r}, sample {ids.iloc[i]!r}) and other values "
                         f"({values.iloc[j]!r}, sample {ids.iloc[j]!r}); use one kind "
                         "(days, or dates like 2020-01-31)")
    dates = pd.to_datetime(text.where(present), errors="coerce", utc=True, format="ISO8601")
    if dates[present].isna().any():
        dates = pd.to_datetime(text.where(present), errors="coerce", utc=True, format="mixed")
    bad = (present & dates.isna()).to_numpy()
    if bad.any():
        i = int(np.argmax(bad))
        raise TableError(f"metadata {path}: time column {column!r} holds {values.iloc[i]!r} "
                         f"(sample {ids.iloc[i]!r}), neither a number nor a date; fix it, or "
                         "name the time column with --time-column")
    return ((dates - _EPOCH) / pd.Timedelta(days=1)).to_numpy(dtype=np.float64,
                                                             na_value=np.nan)


def _skipped(count: int, total: int, why: str, examples: Sequence[object]) -> None:
    if count:
        log.warning("%d of %d samples skipped: %s (e.g. %s)", count, total, why,
                    _sample(examples))


# ---------------------------------------------------------------------- the table
def load_table(
    table: str | Path,
    metadata: str | Path,
    *,
    subject_column: str | None = None,
    time_column: str | None = None,
    sample_column: str | None = None,
) -> MicrobiomeTable:
    """Read a counts table and its sample metadata into a :class:`MicrobiomeTable`.

    Parameters
    ----------
    table
        Counts: TSV/CSV (samples or features as rows), BIOM 1.0 JSON or BIOM 2.x HDF5.
    metadata
        Sample metadata TSV/CSV with a sample id, a subject and a time per sample.
    subject_column, time_column, sample_column
        The metadata columns to use (default: found by their usual names, see
        :data:`SUBJECT_COLUMNS`, :data:`TIME_COLUMNS`, :data:`SAMPLE_COLUMNS`; the sample id
        defaults to the first column).

    Returns
    -------
    MicrobiomeTable
        Rows in time order (ties by subject); ``metadata`` holds ``sample_id``, ``subject``,
        ``time`` (float: the numbers given, or days since 1970-01-01 for dates) and the
        other metadata columns as strings. Samples without a metadata row, without a time or
        subject, or with no reads are left out (a warning is logged with their count).

    Raises
    ------
    TableError
        A file is missing or unreadable, a column cannot be found, a value is unusable, or
        no sample of the metadata is in the table; the message says how to fix it.
    """
    table, metadata = Path(table), Path(metadata)
    counts = _read_counts(table)
    meta = read_metadata(metadata)
    columns = list(meta.columns)
    id_col = _column(columns, sample_column, SAMPLE_COLUMNS, "sample id", "--sample-column",
                     metadata) or columns[0]
    subject_col = _column(columns, subject_column, SUBJECT_COLUMNS, "subject",
                          "--subject-column", metadata)
    if subject_col is None:
        raise TableError(
            f"metadata {metadata}: cannot tell which column is the subject (none of "
            f"{', '.join(SUBJECT_COLUMNS[:6])}, ...); name it with --subject-column (its "
            f"columns are {columns}; one series: add a column with one value)")
    time_col = _column(columns, time_column, TIME_COLUMNS, "time", "--time-column", metadata)
    if time_col is None:
        raise TableError(
            f"metadata {metadata}: cannot tell which column is the time (none of "
            f"{', '.join(TIME_COLUMNS[:4])}, date, collection_date, timestamp, ...); name it "
            f"with --time-column (its columns are {columns})")
    ids = meta[id_col].str.strip()
    if ids.duplicated().any():
        raise TableError(f"metadata {metadata}: sample ids appear twice in column {id_col!r} "
                         f"({_sample(ids[ids.duplicated()].unique())}); name the id column "
                         "with --sample-column if it is another")
    samples_are_rows = _orientation(counts, set(ids), table, metadata, id_col, ids)
    matrix, samples, features = counts.samples_by_features(samples_are_rows)
    position = {s: i for i, s in enumerate(samples)}
    times = _times(meta[time_col], time_col, ids, metadata)
    in_table = ids.isin(position).to_numpy()
    timed = ~np.isnan(times)
    subjects = meta[subject_col].str.strip()
    named = ~subjects.str.lower().isin(_MISSING).to_numpy()
    _skipped(int((~in_table).sum()), len(meta), f"in {metadata.name} but not in {table.name}",
             ids[~in_table].tolist())
    missing = sorted(set(samples) - set(ids))
    _skipped(len(missing), len(samples), f"in {table.name} but not in {metadata.name}",
             missing)
    _skipped(int((in_table & ~timed).sum()), len(meta), f"no {time_col!r}",
             ids[in_table & ~timed].tolist())
    _skipped(int((in_table & timed & ~named).sum()), len(meta), f"no {subject_col!r}",
             ids[in_table & timed & ~named].tolist())
    keep = in_table & timed & named
    rows = np.array([position[s] for s in ids[keep]], dtype=np.int64)
    depth = np.asarray(matrix[rows].sum(axis=1)).ravel() if len(rows) else np.zeros(0)
    _skipped(int((depth <= 0).sum()), len(rows), "no reads", ids[keep][depth <= 0].tolist())
    keep[np.flatnonzero(keep)[depth <= 0]] = False
    rows = rows[depth > 0]
    if not len(rows):
        raise TableError(f"metadata {metadata}: no sample has a time, a subject and reads in "
                         f"{table}")
    others = [c for c in columns if c not in (id_col, subject_col, time_col)]
    out = pd.DataFrame({"sample_id": ids[keep].to_numpy(), "subject": subjects[keep].to_numpy(),
                        "time": times[keep]})
    for c in others:
        out[c] = meta.loc[keep, c].to_numpy()
    order = time_order(out)
    taxonomy = {f: counts.taxonomy[f] for f in features if f in counts.taxonomy}
    return MicrobiomeTable(counts=matrix[rows[order]].astype(np.float64), features=features,
                           taxonomy=taxonomy, metadata=out.iloc[order].reset_index(drop=True),
                           name=table.name)


def _orientation(counts: _Counts, ids: set[str], table: Path, metadata: Path, id_col: str,
                 examples: pd.Series) -> bool:
    """Are the table's rows its samples? The side holding the metadata's sample ids is."""
    in_rows, in_cols = len(ids & set(counts.rows)), len(ids & set(counts.columns))
    if in_rows == in_cols == 0:
        raise TableError(
            f"table {table}: none of the sample ids of {metadata} (column {id_col!r}: "
            f"{_sample(examples)}) is a row ({_sample(counts.rows)}) or a column "
            f"({_sample(counts.columns)}) of the table; name the metadata's id column with "
            "--sample-column, or check that the two files go together")
    if counts.rows_are is not None and (in_rows > in_cols) != (counts.rows_are == "samples"):
        log.warning("table %s: the header says %s are rows, but the metadata's sample ids "
                    "are found as %s: read that way", table, counts.rows_are,
                    "rows" if in_rows > in_cols else "columns")
    return in_rows > in_cols


# ---------------------------------------------------------------------- taxonomy
def read_taxonomy(path: str | Path) -> dict[str, str]:
    """Feature id -> taxonomy string, from a taxonomy file or a BIOM table's metadata.

    Reads a QIIME 2 ``taxonomy.tsv`` (``Feature ID``, ``Taxon``, optional ``Confidence``;
    any table with an id column first and a ``Taxon``/``taxonomy`` column, such as a
    features-as-rows counts TSV with a taxonomy column), a table of rank columns
    (``Kingdom`` or ``Domain`` ... ``Species``: joined as ``k__...; p__...; s__...``), a
    headerless two-column TSV (id, taxonomy string), or the observation metadata
    ``taxonomy`` of a BIOM table (JSON or HDF5). A ``.gz`` file is read as gzip.

    Raises
    ------
    TableError
        The file is missing, unreadable, or names no taxonomy.
    """
    path = Path(path)
    head = _check_file(path, "taxonomy")
    if head.startswith(b"\x89HDF") or head.lstrip().startswith(b"{"):
        taxonomy = _read_counts(path).taxonomy
        if not taxonomy:
            raise TableError(f"taxonomy {path}: this BIOM table has no 'taxonomy' observation "
                             "metadata; pass a taxonomy.tsv (Feature ID, Taxon) instead")
        return taxonomy
    lines = _head_lines(path, "taxonomy", 2)
    skip = 1 if lines[0].startswith("# Constructed") else 0
    raw = _delimited(path, "taxonomy", skip=skip, header=None, dtype=str,
                     keep_default_na=False)
    raw = raw[~raw[0].str.startswith("#q2:")]
    header = [_norm(c) for c in raw.iloc[0]]
    ranks = [j for j, name in enumerate(header) if name in RANK_COLUMNS]
    named = [j for j, name in enumerate(header) if name in _TAXONOMY_HEADERS]
    body = raw.iloc[1:]
    if named:
        taxa = body[named[0]]
    elif len(ranks) >= 2:
        taxa = pd.Series([taxon_from_ranks({header[j]: row[j] for j in ranks})
                          for row in body.itertuples(index=False)], index=body.index)
    elif raw.shape[1] >= 2:  # headerless id, taxonomy (a header of id names is dropped)
        body = raw.iloc[1:] if header[0] in _FEATURE_HEADERS + ("id", "featureid") else raw
        taxa = body[1]
    else:
        raise TableError(f"taxonomy {path}: expected a QIIME 2 taxonomy.tsv (Feature ID, "
                         "Taxon), Kingdom..Species columns, or id<TAB>taxonomy lines; the "
                         f"first line is {lines[skip].strip()[:80]!r}")
    taxonomy = {str(f).strip(): str(t).strip() for f, t in zip(body[0], taxa, strict=True)
                if str(t).strip()}
    if not taxonomy:
        raise TableError(f"taxonomy {path}: no feature has a taxonomy")
    return taxonomy

