"""Bundled longitudinal microbiome tables: ECAM, the Silverman artificial gut, Moving Pictures.

Each loader returns a :class:`MicrobiomeTable` whose rows are in time order, ready to be
streamed sample by sample. Provenance, terms and what was converted are in
``data/<name>/SOURCE.md`` and ``CHANGES.md``.
"""

from __future__ import annotations

import pandas as pd

from ._table import MicrobiomeTable, data_path, read_counts, taxon_from_ranks, time_order

_RANKS = ("Kingdom", "Phylum", "Class", "Order", "Family", "Genus", "Species")


def _read_tsv(name: str, file: str) -> pd.DataFrame:
    return pd.read_csv(data_path(name, file), sep="\t", dtype=str, keep_default_na=False)


def _assemble(
    name: str, meta: pd.DataFrame, taxonomy: dict[str, str], features: list[str], keep
) -> MicrobiomeTable:
    counts = read_counts(name)
    if counts.shape != (len(meta), len(features)):
        raise ValueError(f"bundled {name} data are inconsistent: counts {counts.shape}")
    meta = meta[keep].copy()
    counts = counts[keep.to_numpy()]
    order = time_order(meta)
    return MicrobiomeTable(
        counts=counts[order],
        features=features,
        taxonomy=taxonomy,
        metadata=meta.iloc[order].reset_index(drop=True),
        name=name,
    )


def _front(meta: pd.DataFrame, first: list[str]) -> pd.DataFrame:
    return meta[first + [c for c in meta.columns if c not in first]]


def load_ecam(include_mothers: bool = False) -> MicrobiomeTable:
    """ECAM infant gut cohort (Bokulich et al. 2016), 16S ASV read counts, in time order.

    42 infants sampled from birth to 24 months (699 samples; 7-29 per infant) over 3,347
    deblur ASVs, plus (on request) 42 samples of 38 mothers. Rows are sorted by day of life,
    ties by subject (stable). Features that are all zero among the rows returned are kept,
    so the columns are the same with or without mothers.

    Parameters
    ----------
    include_mothers : bool
        Also return the 42 maternal samples (subjects ``M###``; their ``time`` is days
        after the delivery of their child, 1-232, and ``diet``/antibiotic columns are missing).

    Returns
    -------
    MicrobiomeTable
        ``counts`` (samples x 3,347, float64 integer counts), ``features`` (ASV ids, md5 of
        the sequence), ``taxonomy`` (Greengenes strings) and ``metadata`` with columns
        ``sample_id``, ``subject`` (``C###`` infant, ``M###`` mother), ``time`` (day of life,
        float), ``delivery`` (Vaginal/Cesarean), ``diet`` (bd breast-dominated /
        fd formula-dominated, first 3 months), ``month`` (0-24), then ``dyad_id``,
        ``mom_child``, ``day_of_life``, ``month_of_life``, ``collection_timestamp``,
        ``diet_3``, ``antiexposedall`` (antibiotics so far, y/n), ``abx_all_sources``,
        ``sex`` (of the infant, also on the mother's rows), ``sampletype``.

    Notes
    -----
    Cite Bokulich et al. (2016) Sci Transl Med 8:343ra82, and Martino et al. (2021)
    Nat Biotechnol 39:165 for this processed table (gemelli, BSD-3-Clause).

    Examples
    --------
    >>> from onlinenmf.datasets import load_ecam
    >>> t = load_ecam()
    >>> t.counts.shape, t.metadata["subject"].nunique()
    ((699, 3347), 42)
    >>> bool(t.metadata["time"].is_monotonic_increasing)
    True
    >>> first = t.metadata.iloc[0]
    >>> first["subject"], float(first["time"]), first["delivery"], first["diet"]
    ('C001', 0.0, 'Vaginal', 'bd')
    """
    meta = pd.read_csv(data_path("ecam", "samples.tsv.gz"), sep="\t")
    meta = meta.rename(columns={"subject_id": "subject"})
    meta["time"] = meta["day_of_life"].astype(float)
    meta = _front(meta, ["sample_id", "subject", "time", "delivery", "diet", "month"])
    tax = _read_tsv("ecam", "taxonomy.tsv.gz")
    keep = meta["mom_child"].eq("C") | include_mothers
    return _assemble(
        "ecam", meta, dict(zip(tax.feature_id, tax.Taxon, strict=True)), list(tax.feature_id), keep
    )


def load_artificial_gut(include_empty: bool = False) -> MicrobiomeTable:
    """Silverman et al. (2018) artificial gut: 4 vessels sampled daily then hourly, 0-672 h.

    639 samples of 413 sequence variants in the source; the 7 samples without a time stamp are
    left out (they cannot be placed in a stream) and so, by default, are the 5 with no reads.
    Rows are sorted by hours since the first sample, ties by vessel (stable).

    Parameters
    ----------
    include_empty : bool
        Keep the 5 samples whose counts are all zero (an engine rejects empty samples).

    Returns
    -------
    MicrobiomeTable
        ``metadata`` columns ``sample_id``, ``subject`` (``vessel_1`` ... ``vessel_4``),
        ``time`` (hours since the first sample), ``vessel`` (int), then the source columns
        (``SampleType`` Daily/Hourly, ``Pre_Post_Challenge``, ``Normal_Noise_Sample`` where
        ``Noise_Estimation`` marks the 79 technical replicates, ...). ``taxonomy`` strings
        are built from the source's rank columns as ``k__Bacteria; p__...; s__...``.

    Examples
    --------
    >>> from onlinenmf.datasets import load_artificial_gut
    >>> t = load_artificial_gut()
    >>> t.counts.shape, sorted(t.metadata["subject"].unique())[:2]
    ((627, 413), ['vessel_1', 'vessel_2'])
    >>> bool((t.counts.sum(axis=1) > 0).all())
    True
    """
    meta = pd.read_csv(data_path("artificial_gut", "samples.tsv.gz"), sep="\t")
    meta["vessel"] = meta["Vessel"].astype(int)
    meta["subject"] = "vessel_" + meta["vessel"].astype(str)
    meta["time"] = meta["hours_since_first_sample"].astype(float)
    meta = _front(meta, ["sample_id", "subject", "time", "vessel"])
    tax = _read_tsv("artificial_gut", "taxonomy.tsv.gz")
    ranks = tax[list(_RANKS)].to_dict("records")
    taxonomy = dict(zip(tax["feature_id"], map(taxon_from_ranks, ranks), strict=True))
    keep = meta["time"].notna()
    if not include_empty:
        depth = read_counts("artificial_gut").sum(axis=1).A1
        keep &= depth > 0
    return _assemble("artificial_gut", meta, taxonomy, list(tax.feature_id), keep)


def load_moving_pictures() -> MicrobiomeTable:
    """QIIME 2 "Moving Pictures" subset (Caporaso et al. 2011): 34 samples, for smoke tests.

    Two people, four body sites each, up to five time points (days 0-168); 759 ASVs.
    Each person-bodysite pair is a subject. Rows are sorted by day, ties by subject.

    Returns
    -------
    MicrobiomeTable
        ``metadata`` columns ``sample_id``, ``subject`` (e.g. ``subject-1/gut``), ``time``
        (days since the start), ``host``, ``body_site``, then the source columns.

    Examples
    --------
    >>> from onlinenmf.datasets import load_moving_pictures
    >>> t = load_moving_pictures()
    >>> t.counts.shape, t.metadata["subject"].nunique()
    ((34, 759), 8)
    """
    meta = pd.read_csv(data_path("moving_pictures", "samples.tsv.gz"), sep="\t")
    meta["host"] = meta["Subject"]
    meta["body_site"] = meta["BodySite"]
    meta["subject"] = meta["host"] + "/" + meta["body_site"]
    meta["time"] = meta["DaysSinceExperimentStart"].astype(float)
    meta = _front(meta, ["sample_id", "subject", "time", "host", "body_site"])
    tax = _read_tsv("moving_pictures", "taxonomy.tsv.gz")
    keep = pd.Series(True, index=meta.index)
    return _assemble(
        "moving_pictures",
        meta,
        dict(zip(tax.feature_id, tax.Taxon, strict=True)),
        list(tax.feature_id),
        keep,
    )
