"""The container the microbiome loaders return, and readable taxon names."""

from __future__ import annotations

import math
import re
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp


def data_path(*parts: str) -> Path:
    """Path of a file bundled under ``onlinenmf/datasets/data``."""
    return Path(str(resources.files("onlinenmf.datasets").joinpath("data", *parts)))


#: Rank names that say "not known" rather than name a taxon (compared lower-case, with
#: ``_``/``-`` read as spaces): a label falls back past them to the deepest named rank.
PLACEHOLDERS = frozenset({
    "", "none", "na", "n/a", "nan", "null", "unknown", "unclassified", "unidentified",
    "uncultured", "unassigned", "ambiguous taxa", "incertae sedis", "metagenome",
    "uncultured bacterium", "uncultured organism", "uncultured prokaryote",
    "unidentified bacterium", "bacterium", "gut metagenome", "human gut metagenome",
    "mouse gut metagenome",
})
#: Prefixes of names that are placeholders too (``uncultured Lachnospiraceae bacterium``,
#: ``unclassified_Clostridiales``).
_PLACEHOLDER_PREFIXES = ("uncultured ", "unclassified ", "unidentified ", "unknown ")
_RANK_PREFIX = re.compile(r"^([a-zA-Z])__")
#: Rank columns of a taxonomy table and the Greengenes letter of each.
RANK_COLUMNS = {"kingdom": "k", "domain": "d", "phylum": "p", "class": "c", "order": "o",
                "family": "f", "genus": "g", "species": "s"}


def is_placeholder(rank: str) -> bool:
    """Is this rank (``g__uncultured``, ``s__``, ``unclassified``...) a non-name?

    Examples
    --------
    >>> [is_placeholder(r) for r in ("s__", "s__none", "g__uncultured", "Unclassified",
    ...                              "g__Bacteroides", "f__[Tissierellaceae]")]
    [True, True, True, True, False, False]
    """
    name = _RANK_PREFIX.sub("", str(rank).strip()).strip().strip("[]'\"").lower()
    name = re.sub(r"[_\-\s]+", " ", name).strip()
    return name in PLACEHOLDERS or name.startswith(_PLACEHOLDER_PREFIXES) \
        or name.endswith(" metagenome")


def short_taxon(taxon: str) -> str:
    """Deepest named rank of a taxonomy string (Greengenes, SILVA, GTDB or plain ranks).

    Placeholder ranks (``g__``, ``s__none``, ``g__uncultured``, ``unclassified``... see
    :func:`is_placeholder`) are skipped; a species is written with its genus, since an
    epithet alone (``s__longum``) reads poorly, unless the species name already starts with
    it (SILVA, GTDB). Underscores inside a species name are read as spaces.

    Examples
    --------
    >>> short_taxon("k__Bacteria; p__Actinobacteria; g__Bifidobacterium; s__")
    'g__Bifidobacterium'
    >>> short_taxon("k__Bacteria; f__Enterobacteriaceae; g__; s__")
    'f__Enterobacteriaceae'
    >>> short_taxon("k__Bacteria; g__Bifidobacterium; s__longum")
    's__Bifidobacterium longum'
    >>> short_taxon("d__Bacteria; f__Bacteroidaceae; g__Bacteroides; s__Bacteroides_dorei")
    's__Bacteroides dorei'
    >>> short_taxon("k__Bacteria; g__Bacteroides; s__none")
    'g__Bacteroides'
    >>> short_taxon("Bacteria;Firmicutes;Clostridia;Clostridiales;uncultured")
    'Clostridiales'
    >>> short_taxon("Unassigned")
    'Unassigned'
    """
    ranks = [r.strip() for r in str(taxon).split(";") if r.strip()]
    named = [r for r in ranks if not is_placeholder(r)]
    if not named:
        return ranks[0] if ranks else "Unassigned"
    deepest = named[-1]
    if deepest.startswith("s__"):
        species = deepest[3:].replace("_", " ").strip()
        genus = [r[3:].strip() for r in named if r.startswith("g__")]
        if genus and not species.lower().startswith(genus[-1].lower()):
            return f"s__{genus[-1]} {species}"
        return f"s__{species}"
    return deepest


def taxon_from_ranks(ranks: Mapping[str, Any]) -> str:
    """A Greengenes-style string from rank columns (``Kingdom`` ... ``Species``, any case).

    Missing and empty ranks are left empty (``g__``), so :func:`short_taxon` skips them.

    Examples
    --------
    >>> taxon_from_ranks({"Kingdom": "Bacteria", "Genus": "Bacteroides", "Species": ""})
    'k__Bacteria; g__Bacteroides; s__'
    """
    parts = []
    for column, value in ranks.items():
        letter = RANK_COLUMNS.get(str(column).strip().lower())
        if letter is not None:
            text = "" if value is None or (isinstance(value, float) and math.isnan(value)) \
                else str(value).strip()
            parts.append(f"{letter}__{_RANK_PREFIX.sub('', text)}")
    return "; ".join(parts)


def unique_names(names: Mapping[Hashable, str], width: int = 8) -> dict[Hashable, str]:
    """Make names unique by a short id suffix where two ids share a name.

    ``name (id[:width])``, the prefix lengthened until the names differ (an id no longer
    than ``width + 2`` characters is written whole). Names that are the id itself, and
    names no other id shares, are left as they are.

    Examples
    --------
    >>> unique_names({"ac5402de1ddf": "g__Bacteroides", "4b5eeb300368": "g__Bacteroides",
    ...               "seq_9": "g__Alistipes", "x1": "x1"})  # doctest: +NORMALIZE_WHITESPACE
    {'ac5402de1ddf': 'g__Bacteroides (ac5402de)', '4b5eeb300368': 'g__Bacteroides (4b5eeb30)',
     'seq_9': 'g__Alistipes', 'x1': 'x1'}
    """
    groups: dict[str, list[Hashable]] = {}
    for key, name in names.items():
        groups.setdefault(name, []).append(key)
    out = dict(names)
    for name, keys in groups.items():
        if len(keys) < 2:
            continue
        ids = [str(k) for k in keys]
        size = width
        while len({_cut(i, size) for i in ids}) < len(ids) and size < max(map(len, ids)):
            size += 4
        for key, text in zip(keys, ids, strict=True):
            out[key] = name if text == name else f"{name} ({_cut(text, size)})"
    return out


def _cut(text: str, size: int) -> str:
    return text if len(text) <= size + 2 else text[:size]


@dataclass(frozen=True, eq=False)
class MicrobiomeTable:
    """Read counts of samples over features (taxa), with taxonomy and per-sample metadata.

    Attributes
    ----------
    counts : scipy.sparse.csr_matrix
        Samples x features, float64 holding integer read counts; row i is ``metadata.iloc[i]``.
    features : list of str
        Feature (ASV) ids, the column names of ``counts``.
    taxonomy : dict of str to str
        Feature id -> Greengenes-style taxonomy string (``k__...; p__...; ...; s__...``).
    metadata : pandas.DataFrame
        One row per sample in time order, with at least ``sample_id``, ``subject`` and
        ``time`` (float).
    name : str
        Short name of the data set.
    """

    counts: sp.csr_matrix
    features: list[str]
    taxonomy: dict[str, str]
    metadata: pd.DataFrame
    name: str = ""

    def __post_init__(self) -> None:
        n, m = self.counts.shape
        if len(self.metadata) != n or len(self.features) != m:
            raise ValueError(
                f"{self.name}: counts are {n} x {m} but metadata has {len(self.metadata)} rows "
                f"and features has {len(self.features)} names"
            )

    @property
    def n_samples(self) -> int:
        return self.counts.shape[0]

    @property
    def n_features(self) -> int:
        return self.counts.shape[1]

    @cached_property
    def _short(self) -> list[str]:
        return [short_taxon(self.taxonomy.get(f, f)) for f in self.features]

    @cached_property
    def _unique(self) -> dict[str, str]:
        # Many ASVs share a genus: an id suffix only where the short name repeats.
        return unique_names(dict(zip(self.features, self._short, strict=True)))

    def taxon_name(self, feature: str, unique: bool = True) -> str:
        """Readable short name of a feature: its deepest assigned rank.

        Parameters
        ----------
        feature : str
            A feature id from :attr:`features`.
        unique : bool
            Append the first 8 characters of the id (more if needed) when other features
            share the short name, so names stay unique across the table.

        Examples
        --------
        >>> from onlinenmf.datasets import load_moving_pictures
        >>> t = load_moving_pictures()
        >>> names = [t.taxon_name(f) for f in t.features]
        >>> len(set(names)) == t.n_features
        True
        """
        if unique:
            try:
                return self._unique[feature]
            except KeyError:
                raise KeyError(f"{self.name}: unknown feature {feature!r}") from None
        return short_taxon(self.taxonomy.get(feature, feature))

    def taxon_names(self, unique: bool = True) -> list[str]:
        """:meth:`taxon_name` of every feature, in column order."""
        return [self.taxon_name(f, unique) for f in self.features]

    def sample(self, i: int) -> dict[str, float]:
        """Row ``i`` as a sparse dict {feature id: count} (non-zero entries only)."""
        return row_dict(self.counts, self.features, i)

    def records(self) -> Iterator[dict[str, Any]]:
        """Samples in time order as message-shaped dicts.

        Each is ``{"subject", "time", "sample_id", "counts": {feature: count}, "meta": {...}}``
        (the microbiome Kafka input format); ``meta`` holds the other metadata columns as
        JSON-ready values (missing values become None).
        """
        cols = [c for c in self.metadata.columns if c not in ("subject", "time", "sample_id")]
        for i, row in enumerate(self.metadata.itertuples(index=False)):
            d = row._asdict()
            yield {
                "subject": str(d["subject"]),
                "time": float(d["time"]),
                "sample_id": str(d["sample_id"]),
                "counts": self.sample(i),
                "meta": {c: _plain(d[c]) for c in cols},
            }

    def select(self, rows: Sequence[int] | np.ndarray | pd.Series) -> MicrobiomeTable:
        """A table of the given rows (integer positions or a boolean mask), same features."""
        idx = np.asarray(rows)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        return MicrobiomeTable(
            counts=self.counts[idx],
            features=self.features,
            taxonomy=self.taxonomy,
            metadata=self.metadata.iloc[idx].reset_index(drop=True),
            name=self.name,
        )


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is pd.NA or value is None:
        return None
    return value


def row_dict(X: sp.csr_matrix, features: Sequence[str], i: int) -> dict[str, float]:
    """Row ``i`` of a CSR matrix as {feature name: value}, stored non-zeros only."""
    start, stop = X.indptr[i], X.indptr[i + 1]
    cols, vals = X.indices[start:stop], X.data[start:stop]
    return {features[c]: float(v) for c, v in zip(cols, vals, strict=True) if v != 0}


def read_counts(name: str) -> sp.csr_matrix:
    """The bundled count matrix of data set ``name`` as float64 CSR."""
    return sp.load_npz(data_path(name, "counts.npz")).tocsr().astype(np.float64)


def time_order(meta: pd.DataFrame) -> np.ndarray:
    """Row positions sorted by (time, subject), stable: ties keep the source order."""
    return np.lexsort((meta["subject"].to_numpy(dtype=str), meta["time"].to_numpy(dtype=float)))
