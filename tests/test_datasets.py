"""Bundled data sets (shapes, time order, provenance) and the synthetic generators."""

from __future__ import annotations

import glob
import gzip
import hashlib
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
