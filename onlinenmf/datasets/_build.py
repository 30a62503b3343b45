"""Rebuild the bundled data under ``onlinenmf/datasets/data`` from the staged copies.

Run ``python -m onlinenmf.datasets._build /work/shared/data`` (or any folder laid out like
it). The output is deterministic: gzip members carry no timestamp, and count tables become
scipy sparse ``.npz`` files whose rows and columns are in the order of the metadata and
taxonomy files written beside them. Only what the sources' terms allow is written
(CBCL faces are not). Each folder's ``CHANGES.md`` (and ``LICENSE`` where the source has no
file to copy) is written by hand and says what this script changed.
"""

from __future__ import annotations

import gzip
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

DATA = Path(__file__).with_name("data")


def _gzip_bytes(raw: bytes, dest: Path) -> None:
    # mtime=0 and no file name: the same input always gives the same bytes
    dest.write_bytes(gzip.compress(raw, compresslevel=9, mtime=0))


def _counts_npz(counts_tsv: Path, dest: Path, samples: pd.Series, features: pd.Series) -> None:
    table = pd.read_csv(counts_tsv, sep="\t", index_col=0)
    if list(table.index) != list(samples) or list(table.columns) != list(features):
        raise ValueError(f"{counts_tsv}: rows/columns are not in metadata/taxonomy order")
    values = table.to_numpy()
    if (values < 0).any() or values.max() > np.iinfo(np.int32).max:
        raise ValueError(f"{counts_tsv}: counts outside the int32 range")
    sp.save_npz(dest, sp.csr_matrix(values.astype(np.int32)), compressed=True)


def _copy(src: Path, dest_dir: Path) -> None:
    shutil.copyfile(src, dest_dir / src.name)


def build_ecam(src: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    meta = pd.read_csv(src / "sample_metadata.tsv", sep="\t", dtype=str)
    tax = pd.read_csv(src / "taxonomy.tsv.gz", sep="\t", dtype=str)
    _counts_npz(src / "counts.tsv.gz", out / "counts.npz", meta.sample_id, tax.feature_id)
    _gzip_bytes((src / "sample_metadata.tsv").read_bytes(), out / "samples.tsv.gz")
    shutil.copyfile(src / "taxonomy.tsv.gz", out / "taxonomy.tsv.gz")
    _copy(src / "SOURCE.md", out)


def build_artificial_gut(src: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    meta = pd.read_csv(src / "sample_metadata.tsv.gz", sep="\t", dtype=str)
    tax = pd.read_csv(src / "taxonomy.tsv.gz", sep="\t", dtype=str)
    _counts_npz(src / "counts.tsv.gz", out / "counts.npz", meta.sample_id, tax.feature_id)
    shutil.copyfile(src / "sample_metadata.tsv.gz", out / "samples.tsv.gz")
    shutil.copyfile(src / "taxonomy.tsv.gz", out / "taxonomy.tsv.gz")
    _copy(src / "SOURCE.md", out)


def build_moving_pictures(src: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    meta = pd.read_csv(src / "sample_metadata.tsv", sep="\t", dtype=str)
    tax = pd.read_csv(src / "taxonomy.tsv", sep="\t", dtype=str)
    _counts_npz(src / "counts.tsv", out / "counts.npz", meta.sample_id, tax.feature_id)
    _gzip_bytes((src / "sample_metadata.tsv").read_bytes(), out / "samples.tsv.gz")
    _gzip_bytes((src / "taxonomy.tsv").read_bytes(), out / "taxonomy.tsv.gz")
    _copy(src / "SOURCE.md", out)


def build_reco(src: Path, out: Path, with_license: bool) -> None:
    # byte copies: the sha256 sums in SOURCE.md stay checkable
    out.mkdir(parents=True, exist_ok=True)
    for name in ("ratings.tsv.gz", "items.tsv.gz", "SOURCE.md"):
        _copy(src / name, out)
    if with_license:
        _copy(src / "LICENSE", out)


def build_swimmer(src: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    _copy(src / "Swimmer.mat", out)
    _copy(src / "SOURCE.md", out)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m onlinenmf.datasets._build SHARED_DATA_DIR", file=sys.stderr)
        return 2
    src = Path(argv[0])
    build_ecam(src / "ecam", DATA / "ecam")
    build_artificial_gut(src / "silverman_artificial_gut", DATA / "artificial_gut")
    build_moving_pictures(src / "moving_pictures", DATA / "moving_pictures")
    build_reco(src / "reco" / "movietweetings-100k", DATA / "movietweetings", with_license=True)
    build_reco(src / "reco" / "uci-online-retail", DATA / "online_retail", with_license=False)
    build_swimmer(src / "faces", DATA / "swimmer")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
