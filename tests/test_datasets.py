"""Bundled data sets (shapes, time order, provenance) and the synthetic generators."""

from __future__ import annotations

import glob
import gzip
import hashlib
import json
import re
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy.optimize import nnls

from onlinenmf import datasets as ds
from onlinenmf.datasets._table import data_path, read_counts

ROOT = Path(__file__).resolve().parents[1]
PKG = Path(ds.__file__).parent
FOLDERS = [
    "ecam",
    "artificial_gut",
    "moving_pictures",
    "movietweetings",
    "online_retail",
    "swimmer",
]


def assert_counts(X: sp.csr_matrix) -> None:
    assert sp.isspmatrix_csr(X) and X.dtype == np.float64
    assert X.data.min() >= 0
    assert np.array_equal(X.data, np.round(X.data))


def assert_time_order(meta) -> None:
    t = meta["time"].to_numpy()
    assert np.all(np.diff(t) >= 0)
    same = t[1:] == t[:-1]
    subj = meta["subject"].to_numpy(dtype=str)
    assert np.all(subj[1:][same] >= subj[:-1][same]), "ties must be ordered by subject"


# --- microbiome tables -------------------------------------------------------------------


@pytest.fixture(scope="module")
def ecam():
    return ds.load_ecam()


def test_ecam_infants(ecam):
    meta = ecam.metadata
    assert ecam.counts.shape == (699, 3347)
    assert meta["subject"].nunique() == 42
    assert meta["subject"].str.startswith("C").all()
    assert_counts(ecam.counts)
    assert_time_order(meta)
    assert (meta["time"] == meta["day_of_life"]).all() and meta["time"].dtype == float
    assert meta["time"].max() == 739 and meta["month"].between(0, 24).all()
    per_infant = meta.groupby("subject").size()
    assert per_infant.min() == 7 and per_infant.max() == 29
    first = meta.drop_duplicates("subject").set_index("subject")
    assert first["delivery"].value_counts().to_dict() == {"Vaginal": 24, "Cesarean": 18}
    assert first["diet"].value_counts().to_dict() == {"bd": 30, "fd": 12}
    assert (ecam.counts.sum(axis=1).A1 > 0).all()


def test_ecam_with_mothers_matches_source_counts():
    t = ds.load_ecam(include_mothers=True)
    assert t.counts.shape == (741, 3347)
    assert t.metadata["subject"].str.startswith("M").sum() == 42
    assert t.metadata["subject"].nunique() == 42 + 38
    assert_time_order(t.metadata)
    # totals measured in SOURCE.md on the original TSV
    depth = t.counts.sum(axis=1).A1
    assert t.counts.nnz == 47297 and depth.sum() == 11_611_128
    assert depth.min() == 2085 and depth.max() == 68174


def test_ecam_rows_follow_their_metadata(ecam):
    # the row permutation is applied to counts and metadata alike
    raw = read_counts("ecam")
    src = pd.read_csv(data_path("ecam", "samples.tsv.gz"), sep="\t")
    pos = {s: i for i, s in enumerate(src["sample_id"])}
    for i in (0, 123, 698):
        j = pos[ecam.metadata["sample_id"].iloc[i]]
        assert (ecam.counts[i] != raw[j]).nnz == 0


def test_ecam_taxonomy_and_names(ecam):
    assert set(ecam.taxonomy) == set(ecam.features)
    names = ecam.taxon_names()
    assert len(set(names)) == len(names)
    plain = ecam.taxon_names(unique=False)
    assert "g__Bifidobacterium" in plain and "f__Enterobacteriaceae" in plain
    # ids appear only where needed
    once = [n for n in plain if plain.count(n) == 1][0]
    assert once in names
    with pytest.raises(KeyError, match="unknown feature"):
        ecam.taxon_name("not-a-feature")


def test_short_taxon_rules():
    assert ds.short_taxon("k__Bacteria; p__Firmicutes; c__; o__; f__; g__; s__") == "p__Firmicutes"
    assert ds.short_taxon("k__Bacteria; g__Alistipes; s__onderdonkii") == "s__Alistipes onderdonkii"
    assert ds.short_taxon("Unassigned") == "Unassigned"


@pytest.mark.parametrize(("taxon", "expected"), [
    ("k__Bacteria; g__Bacteroides; s__none", "g__Bacteroides"),  # not "s__Bacteroides none"
    ("k__Bacteria; f__Lachnospiraceae; g__uncultured; s__uncultured_bacterium",
     "f__Lachnospiraceae"),
    ("k__Bacteria; o__Clostridiales; f__unclassified; g__; s__", "o__Clostridiales"),
    ("d__Bacteria; p__Firmicutes; g__Blautia; s__Ambiguous_taxa", "g__Blautia"),
    ("Bacteria;Bacteroidetes;Bacteroidia;unclassified", "Bacteroidia"),
    ("k__Bacteria; g__Blautia; s__unidentified", "g__Blautia"),
    ("k__Bacteria; g__Faecalibacterium; s__gut_metagenome", "g__Faecalibacterium"),
    ("d__Bacteria; g__Bacteroides; s__Bacteroides_dorei", "s__Bacteroides dorei"),
    ("k__Bacteria; f__[Tissierellaceae]; g__WAL_1855D; s__", "g__WAL_1855D"),
    ("Unassigned", "Unassigned"),
])
def test_placeholder_ranks_fall_back_to_the_deepest_named_rank(taxon, expected):
    assert ds.short_taxon(taxon) == expected


def test_unique_names_suffix_shared_names_only():
    names = ds.unique_names({
        "ac5402de1ddf427ab8d2b0a8a0a44f19": "g__Bacteroides",
        "4b5eeb300368260019c1fbc7a3c718fc": "g__Bacteroides",
        "fe30ff0f71a38a39cf1717ec2be3a2fc": "g__Neisseria",
        "seq_3": "g__Alistipes", "seq_44": "g__Alistipes",
        "abcdefgh11": "f__X", "abcdefgh22": "f__X",  # 8-char prefixes alike: longer ones
    })
    assert names == {
        "ac5402de1ddf427ab8d2b0a8a0a44f19": "g__Bacteroides (ac5402de)",
        "4b5eeb300368260019c1fbc7a3c718fc": "g__Bacteroides (4b5eeb30)",
        "fe30ff0f71a38a39cf1717ec2be3a2fc": "g__Neisseria",
        "seq_3": "g__Alistipes (seq_3)", "seq_44": "g__Alistipes (seq_44)",
        "abcdefgh11": "f__X (abcdefgh11)", "abcdefgh22": "f__X (abcdefgh22)",
    }
    assert len(set(names.values())) == len(names)


# --- a user's own files ------------------------------------------------------------------


OTU_ROWS = ("# Constructed from biom file\n#OTU ID\tS1\tS2\tS3\tS4\ttaxonomy\n"
            "asv1\t5\t0\t2\t0\tk__Bacteria; g__Bacteroides; s__\n"
            "asv2\t0\t7\t2\t0\tk__Bacteria; g__Bacteroides; s__none\n"
            "asv3\t1\t0\t0\t0\tk__Bacteria; g__Bacteroides; s__uniformis\n")


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(("column", "values", "times"), [
    ("day", ["10", "3", "1", "4"], [1.0, 3.0, 10.0]),
    ("days", ["10", "3", "1.5", "4"], [1.5, 3.0, 10.0]),
    ("collection-day", ["10", "3", "1", "4"], [1.0, 3.0, 10.0]),
    ("day_of_life", ["10", "3", "1", "4"], [1.0, 3.0, 10.0]),
    # dates: days since 1970-01-01 (2020-01-02 is day 18263)
    ("date", ["2020-01-11", "2020-01-04", "2020-01-02", "2020-01-05"],
     [18263.0, 18265.0, 18272.0]),
    ("collection_date", ["01/11/2020", "01/04/2020", "01/02/2020", ""],
     [18263.0, 18265.0, 18272.0]),
    ("timestamp", ["2020-01-11T12:00:00Z", "2020-01-04 00:00", "2020-01-02", "2020-01-05"],
     [18263.0, 18265.0, 18272.5]),
])
def test_load_table_finds_common_time_columns(tmp_path, column, values, times):
    meta = f"#SampleID\thost_subject_id\t{column}\tdiet\n#q2:types\tcategorical\tnumeric\t" \
           "categorical\n" + "".join(f"S{i + 1}\t{'AB'[i % 2]}\t{v}\tbd\n"
                                     for i, v in enumerate(values))
    t = ds.load_table(_write(tmp_path / "t.tsv", OTU_ROWS), _write(tmp_path / "m.tsv", meta))
    assert t.features == ["asv1", "asv2", "asv3"]
    # S4 has no reads: left out; the rest in time order, counts from their own column
    assert t.metadata["sample_id"].tolist() == ["S3", "S2", "S1"]
    assert t.metadata["time"].tolist() == times
    assert t.metadata["subject"].tolist() == ["A", "B", "A"]
    assert [t.sample(i) for i in range(3)] == [{"asv1": 2.0, "asv2": 2.0}, {"asv2": 7.0},
                                               {"asv1": 5.0, "asv3": 1.0}]
    # s__ and s__none skipped: two features named g__Bacteroides, told apart by their ids
    assert [t.taxon_name("asv1"), t.taxon_name("asv2")] == ["g__Bacteroides (asv1)",
                                                            "g__Bacteroides (asv2)"]
    assert t.taxon_name("asv3") == "s__Bacteroides uniformis"
    assert next(t.records())["meta"] == {"diet": "bd"}


def test_load_table_samples_as_rows_csv_and_biom_json(tmp_path):
    meta = _write(tmp_path / "m.csv", "sample_name,subject,date\nS1,A,2021-03-02\n"
                                      "S2,A,2021-03-01\n")
    rows = _write(tmp_path / "rows.csv", "id,asv1,asv2\nS1,5,0\nS2,1,3\n")
    t = ds.load_table(rows, meta)
    assert t.metadata["sample_id"].tolist() == ["S2", "S1"]
    assert [t.sample(0), t.sample(1)] == [{"asv1": 1.0, "asv2": 3.0}, {"asv1": 5.0}]
    biom = {"shape": [2, 2], "matrix_type": "sparse", "data": [[0, 0, 5], [0, 1, 1], [1, 1, 3]],
            "rows": [{"id": "asv1", "metadata": {"taxonomy": ["k__Bacteria", "g__Blautia"]}},
                     {"id": "asv2", "metadata": None}],
            "columns": [{"id": "S1"}, {"id": "S2"}]}
    t = ds.load_table(_write(tmp_path / "t.biom", json.dumps(biom)), meta)
    assert [t.sample(0), t.sample(1)] == [{"asv1": 1.0, "asv2": 3.0}, {"asv1": 5.0}]
    assert t.taxonomy == {"asv1": "k__Bacteria; g__Blautia"}


@pytest.mark.parametrize(("table", "meta", "flags", "message"), [
    (None, "sample_id\tsubject\tday\nS1\tA\t1\n", {}, "no such file"),
    (OTU_ROWS, "sample_id\tsubject\tweek\nS1\tA\t1\n", {}, "--time-column"),
    (OTU_ROWS, "sample_id\tsubject\tday\nS1\tA\t1\n", {"time_column": "visit"},
     "no column 'visit'"),
    (OTU_ROWS, "sample_id\tcage\tday\nS1\tA\t1\n", {}, "--subject-column"),
    (OTU_ROWS, "sample_id\tsubject\tday\nX1\tA\t1\n", {}, "--sample-column"),
    (OTU_ROWS, "sample_id\tsubject\tday\nS1\tA\tday one\n", {}, "neither a number nor a date"),
    (OTU_ROWS, "sample_id\tsubject\tday\nS1\tA\t1\nS1\tB\t2\n", {}, "appear twice"),
    ("#OTU ID\tS1\nasv1\tfive\n", "sample_id\tsubject\tday\nS1\tA\t1\n", {}, "'five'"),
    ("#OTU ID\tS1\nasv1\t-3\n", "sample_id\tsubject\tday\nS1\tA\t1\n", {},
     "row 'asv1', column 'S1' holds -3; counts must be finite and non-negative"),
    ("#OTU ID\tS1\nasv1\t1e400\n", "sample_id\tsubject\tday\nS1\tA\t1\n", {},
     "holds inf; counts must"),
    (b"PK\x03\x04zip", "sample_id\tsubject\tday\nS1\tA\t1\n", {}, "qiime tools export"),
    (b"\xff\xfe\x00binary\x00", "sample_id\tsubject\tday\nS1\tA\t1\n", {}, "UTF-8"),
    ("{not json", "sample_id\tsubject\tday\nS1\tA\t1\n", {}, "not a BIOM 1.0 JSON table"),
])
def test_load_table_mistakes_are_one_line_errors(tmp_path, table, meta, flags, message):
    path = tmp_path / "t.tsv"
    if isinstance(table, bytes):
        path.write_bytes(table)
    elif table is not None:
        path.write_text(table)
    with pytest.raises(ds.TableError, match=re.escape(message)) as caught:
        ds.load_table(path, _write(tmp_path / "m.tsv", meta), **flags)
    assert "\n" not in str(caught.value)


def test_read_taxonomy_formats(tmp_path):
    qiime = _write(tmp_path / "taxonomy.tsv", "Feature ID\tTaxon\tConfidence\n"
                   "a\tk__Bacteria; g__Blautia; s__\t0.99\nb\tk__Bacteria; g__Dorea\t0.9\n")
    assert ds.read_taxonomy(qiime) == {"a": "k__Bacteria; g__Blautia; s__",
                                       "b": "k__Bacteria; g__Dorea"}
    ranks = _write(tmp_path / "ranks.tsv", "ASV\tKingdom\tPhylum\tGenus\tSpecies\n"
                   "a\tBacteria\tFirmicutes\tBlautia\t\nb\tBacteria\tFirmicutes\t\tNA\n")
    assert ds.read_taxonomy(ranks) == {"a": "k__Bacteria; p__Firmicutes; g__Blautia; s__",
                                       "b": "k__Bacteria; p__Firmicutes; g__; s__NA"}
    assert ds.short_taxon(ds.read_taxonomy(ranks)["b"]) == "p__Firmicutes"
    bare = _write(tmp_path / "bare.tsv", "a\tk__Bacteria; g__Blautia\n")
    assert ds.read_taxonomy(bare) == {"a": "k__Bacteria; g__Blautia"}
    gut = ds.read_taxonomy(data_path("artificial_gut", "taxonomy.tsv.gz"))  # rank columns
    assert ds.short_taxon(gut["seq_2"]) == "s__Bacteroides uniformis"
    biom = {"shape": [1, 1], "matrix_type": "dense", "data": [[4]],
            "rows": [{"id": "a", "metadata": {"taxonomy": ["k__Bacteria", "g__Blautia"]}}],
            "columns": [{"id": "S1"}]}
    assert ds.read_taxonomy(_write(tmp_path / "t.biom", json.dumps(biom))) == {
        "a": "k__Bacteria; g__Blautia"}
    one_column = _write(tmp_path / "one.tsv", "a\nb\n")
    with pytest.raises(ds.TableError, match="Feature ID, Taxon"):
        ds.read_taxonomy(one_column)


def test_records_and_select(ecam):
    rec = next(ecam.records())
    assert set(rec) == {"subject", "time", "sample_id", "counts", "meta"}
    assert rec["subject"] == ecam.metadata["subject"].iloc[0]
    assert sum(rec["counts"].values()) == ecam.counts[0].sum()
    assert all(v > 0 for v in rec["counts"].values())
    sub = ecam.select(ecam.metadata["delivery"] == "Cesarean")
    assert sub.metadata["subject"].nunique() == 18 and sub.n_features == ecam.n_features
    assert_time_order(sub.metadata)


def test_artificial_gut():
    t = ds.load_artificial_gut()
    assert t.counts.shape == (627, 413)
    assert sorted(t.metadata["subject"].unique()) == [f"vessel_{v}" for v in (1, 2, 3, 4)]
    assert t.metadata["time"].notna().all() and t.metadata["time"].max() == 672
    assert (t.counts.sum(axis=1).A1 > 0).all()
    assert_counts(t.counts)
    assert_time_order(t.metadata)
    assert t.taxonomy["seq_2"].startswith("k__Bacteria; p__Bacteroidetes")
    assert t.taxon_name("seq_2") == "s__Bacteroides uniformis"
    assert ds.load_artificial_gut(include_empty=True).counts.shape[0] == 632
    assert read_counts("artificial_gut").sum() == 13_470_699  # SOURCE.md


def test_moving_pictures():
    t = ds.load_moving_pictures()
    assert t.counts.shape == (34, 759) and t.counts.nnz == 2290
    assert t.metadata["subject"].nunique() == 8
    assert set(t.metadata["time"]) == {0, 84, 112, 140, 168}
    assert_counts(t.counts)
    assert_time_order(t.metadata)


# --- recommender streams --------------------------------------------------------------------


def test_movietweetings():
    df = ds.load_movietweetings()
    assert df.shape == (100_000, 6)
    assert df["user"].nunique() == 16554 and df["item"].nunique() == 10506
    assert df["time"].is_monotonic_increasing
    assert df["value"].between(0, 10).all() and df["value"].mean() == pytest.approx(7.325, 1e-3)
    assert df["item"].str.fullmatch(r"\d{7}").all() and df["title"].notna().all()


def test_online_retail():
    df = ds.load_online_retail()
    assert df.shape == (386_326, 5)
    assert df["user"].nunique() == 4334 and df["item"].nunique() == 3659
    assert df["time"].is_monotonic_increasing and (df["value"] >= 1).all()
    assert df["description"].str.len().gt(0).all()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("folder", ["movietweetings", "online_retail"])
def test_reco_files_are_the_staged_bytes(folder):
    source = data_path(folder, "SOURCE.md").read_text()
    listed = dict(
        re.findall(
            r"^\| (\S+\.tsv(?:\.gz)?)(?: \(optional\))? \| [\d,]+ \| ([0-9a-f]{64})", source, re.M
        )
    )
    gz = data_path(folder, "ratings.tsv.gz").read_bytes()
    assert _sha(gz) == listed["ratings.tsv.gz"]
    assert _sha(gzip.decompress(gz)) == listed["ratings.tsv"]
    items = gzip.decompress(data_path(folder, "items.tsv.gz").read_bytes())
    assert _sha(items) == listed["items.tsv"]


def test_movielens_user_copy(tmp_path, monkeypatch):
    (tmp_path / "u.data").write_text("2\t10\t4\t500\n1\t9\t5\t500\n1\t3\t2\t100\n")
    (tmp_path / "u.item").write_bytes(
        "3|Caf\xe9 (1995)|x\n9|B (1996)|x\n10|C (1997)|x\n".encode("latin-1")
    )
    df = ds.load_movielens(tmp_path / "u.data")
    assert df[["user", "item", "time"]].values.tolist() == [
        [1, "3", 100],
        [1, "9", 500],
        [2, "10", 500],
    ]
    assert df["value"].dtype == np.float64 and df["title"].iloc[0] == "Caf\xe9 (1995)"
    monkeypatch.setenv("ONLINENMF_MOVIELENS", str(tmp_path))
    assert len(ds.load_movielens()) == 3
    monkeypatch.delenv("ONLINENMF_MOVIELENS")
    with pytest.raises(FileNotFoundError, match="not bundled"):
        ds.load_movielens()
    with pytest.raises(FileNotFoundError, match="u.data"):
        ds.load_movielens(tmp_path / "nowhere")


# --- images -------------------------------------------------------------------------------


def test_swimmer_is_torso_plus_four_limbs():
    X, shape = ds.load_swimmer()
    assert X.shape == (256, 220) and shape == (20, 11) and X.dtype == np.float64
    P = ds.swimmer_parts(X)
    assert P.shape == (17, 220) and P[:16].sum(axis=1).tolist() == [3.0] * 16
    used = (X @ P.T) == P.sum(axis=1)  # part fully on in the image
    assert used[:, 16].all() and (used[:, :16].sum(axis=1) == 4).all()
    assert np.array_equal(used.astype(float) @ P, X)
    assert len({row.tobytes() for row in X}) == 256
    # upright: the torso is a vertical bar in the middle column
    torso = P[16].reshape(shape)
    assert torso[:, 5].sum() >= 10


def test_cbcl_missing_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("ONLINENMF_CBCL", str(tmp_path / "absent.npy.gz"))
    with pytest.raises(FileNotFoundError, match="not bundled.*ONLINENMF_CBCL"):
        ds.load_cbcl()


def test_cbcl_reads_gzip_and_normalizes(tmp_path):
    faces = np.random.default_rng(0).random((4, 19, 19)).astype(np.float32)
    with gzip.open(tmp_path / "f.npy.gz", "wb") as f:
        np.save(f, faces)
    X, shape = ds.load_cbcl(tmp_path / "f.npy.gz")
    assert shape == (19, 19) and np.array_equal(X, faces.reshape(4, -1).astype(np.float64))
    Xn, _ = ds.load_cbcl(tmp_path / "f.npy.gz", normalize=True)
    assert Xn.min() >= 0 and Xn.max() <= 1
    # Lee & Seung: mean and std 0.25 before clipping to [0, 1]
    z = (X - X.mean(axis=1, keepdims=True)) / X.std(axis=1, keepdims=True)
    assert np.allclose(Xn, np.clip(0.25 + 0.25 * z, 0, 1))
    assert 0 < (Xn == 0).mean() < 0.3


def test_cbcl_staged_copy_when_present():
    try:
        X, shape = ds.load_cbcl()
    except FileNotFoundError:
        pytest.skip("CBCL faces not staged on this machine (never bundled)")
    assert X.shape == (2429, 361) and shape == (19, 19)


# --- provenance and packaging -------------------------------------------------------------


@pytest.mark.parametrize("folder", FOLDERS)
def test_provenance_beside_the_data(folder):
    d = data_path(folder)
    assert (d / "SOURCE.md").stat().st_size > 500
    assert (d / "CHANGES.md").stat().st_size > 200
    if folder in ("ecam", "moving_pictures", "movietweetings"):
        assert "Copyright (c)" in (d / "LICENSE").read_text()
    assert not list(d.glob("*.py")), "a .py under data/ would be collected by --doctest-modules"


def test_package_data_globs_cover_every_data_file():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = cfg["tool"]["setuptools"]["package-data"]["onlinenmf.datasets"]
    shipped = {Path(p) for pat in patterns for p in glob.glob(pat, root_dir=PKG, recursive=True)}
    files = {p.relative_to(PKG) for p in (PKG / "data").rglob("*") if p.is_file()}
    assert len(files) >= 25 and files <= shipped
    assert Path("README.md") in shipped


# --- synthetic generators -----------------------------------------------------------------


def test_poisson_stream_deterministic():
    a = ds.make_poisson_stream(n_samples=2000, seed=7)
    b = ds.make_poisson_stream(n_samples=2000, seed=7)
    c = ds.make_poisson_stream(n_samples=2000, seed=8)
    assert (a.X != b.X).nnz == 0 and np.array_equal(a.W_true, b.W_true)
    assert np.array_equal(a.H_true, b.H_true)
    assert not np.array_equal(a.W_true, c.W_true)


def test_poisson_stream_planted_structure():
    s = ds.make_poisson_stream(seed=0)
    assert s.X.shape == (16000, 300) and s.W_true.shape == (300, 8)
    assert_counts(s.X)
    assert np.allclose(s.W_true.sum(axis=0), 1) and ((s.W_true > 0).sum(axis=0) == 30).all()
    assert ((s.H_true > 0).sum(axis=1) == 3).all()
    assert np.allclose(s.H_true.sum(axis=1), 5000)
    assert s.W_after_drift is None and s.replaced == ()
    # E[X] = H W^T: column totals within 5 Poisson sd of their expectation
    expected = s.H_true.sum(axis=0) @ s.W_true.T
    observed = s.X.sum(axis=0).A1
    assert np.all(np.abs(observed - expected) <= 5 * np.sqrt(expected) + 1e-9)
    # reads only on taxa of the sample's communities
    support = (s.H_true @ s.W_true.T) > 0
    assert not s.X.multiply(sp.csr_matrix(~support)).nnz
    x = s.sample(0)
    assert x and sum(x.values()) == s.X[0].sum() and all(k.startswith("taxon_") for k in x)


def test_poisson_stream_sparse_like_16s():
    s = ds.make_poisson_stream(n_samples=3000, taxa_per_community=5, active=1, seed=1)
    zeros = 1 - s.X.nnz / np.prod(s.X.shape)
    assert zeros > 0.98


def test_poisson_stream_drift():
    s = ds.make_poisson_stream(n_samples=4000, drift_at=1500, n_replaced=2, seed=3)
    assert len(s.replaced) == 2 and s.drift_at == 1500
    kept = [j for j in range(8) if j not in s.replaced]
    assert np.array_equal(s.W_after_drift[:, kept], s.W_true[:, kept])
    for j in s.replaced:
        cos = s.W_after_drift[:, j] @ s.W_true[:, j]
        cos /= np.linalg.norm(s.W_after_drift[:, j]) * np.linalg.norm(s.W_true[:, j])
        assert cos < 0.5
    assert np.allclose(s.W_after_drift.sum(axis=0), 1)
    assert s.W_at(1499) is s.W_true and s.W_at(1500) is s.W_after_drift
    # taxa used only by new communities appear only after the drift
    new_only = (s.W_after_drift > 0).any(axis=1) & ~(s.W_true > 0).any(axis=1)
    assert new_only.any()
    before, after = s.X[:1500][:, new_only].nnz, s.X[1500:][:, new_only].nnz
    assert before == 0 and after > 0


def test_poisson_stream_rejects_bad_arguments():
    with pytest.raises(ValueError, match="active"):
        ds.make_poisson_stream(active=9)
    with pytest.raises(ValueError, match="taxa_per_community"):
        ds.make_poisson_stream(taxa_per_community=301)
    with pytest.raises(ValueError, match="drift_at"):
        ds.make_poisson_stream(n_samples=10, drift_at=11)


def test_longitudinal_stream_structure():
    s = ds.make_longitudinal_stream(seed=0)
    a = ds.make_longitudinal_stream(seed=0)
    assert (s.X != a.X).nnz == 0 and np.array_equal(s.rates, a.rates, equal_nan=True)
    assert s.X.shape == (400, 300) and s.rates.shape == (40, 8)
    assert_counts(s.X)
    assert np.all(np.diff(s.times) >= 0) and s.times.min() >= 0 and s.times.max() <= 100
    meta = s.metadata
    assert meta.groupby("subject").size().eq(10).all() and meta["sample_id"].is_unique
    assert (np.isfinite(s.rates).sum(axis=1) == 4).all()
    r = np.abs(s.rates[np.isfinite(s.rates)])
    assert r.min() >= 0.01 and r.max() <= 0.03
    assert ((s.rates > 0).sum() > 40) and ((s.rates < 0).sum() > 40)
    # H follows a_k exp(r_k t) per subject
    idx = {sid: i for i, sid in enumerate(s.subject_ids)}
    for i in (0, 77, 399):
        si = idx[s.subjects[i]]
        want = s.baseline[si] * np.exp(np.nan_to_num(s.rates[si]) * s.times[i])
        assert np.allclose(s.H_true[i], want)
    # one sample per cell of the jittered grid
    cells = np.floor(s.times / 10).astype(int)
    for sid in s.subject_ids[:5]:
        assert sorted(cells[s.subjects == sid]) == list(range(10))


def test_longitudinal_rates_recoverable_from_counts():
    # Given the planted W, per-sample NNLS then a log-linear fit recovers the planted rates:
    # the generator carries the signal the tracking tests look for.
    s = ds.make_longitudinal_stream(n_subjects=8, seed=4)
    W = s.W_true
    rel = []
    for si, sid in enumerate(s.subject_ids):
        rows = np.flatnonzero(s.subjects == sid)
        H = np.array([nnls(W, s.X[i].toarray().ravel())[0] for i in rows])
        for k in np.flatnonzero(np.isfinite(s.rates[si])):
            slope = np.polyfit(s.times[rows], np.log(H[:, k] + 1.0), 1)[0]
            rel.append(abs(slope - s.rates[si, k]) / abs(s.rates[si, k]))
    assert np.median(rel) < 0.2
