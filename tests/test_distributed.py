"""NMF on Dask (onlinenmf.distributed, `onlinenmf fit`, `consume --init-from`; issue 16).

The batch step of the core first: :meth:`OnlineNMF.batch_statistics` sums add up over any
split, and :meth:`OnlineNMF.refresh_from` is the textbook batch update (checked against numpy
written out from H). Then the Dask fit on Dask's own LocalCluster (2 worker processes, small
memory limits): each pass equals the single-process step (1e-8 with one partition, 1e-6 for
any partitioning, worker count, and Dask arrays, DataFrames, TSV, BIOM and Parquet files);
the feature union over files; a worker killed mid-pass; rank re-estimation per pass; one-line
errors; the CLI; and the fitted snapshot -> live consumer path against the embedded broker.
"""

from __future__ import annotations

import functools
import json
import os
import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

dask = pytest.importorskip("dask")  # the 'distributed' extra (make test installs it)
import dask.array as da  # noqa: E402
import dask.dataframe as dd  # noqa: E402
from distributed import Client, LocalCluster  # noqa: E402

from onlinenmf import OnlineNMF, distributed  # noqa: E402
from onlinenmf.datasets import TableError, make_poisson_stream  # noqa: E402

N_SAMPLES, N_FEATURES, K = 300, 40, 3
PARAMS = {"n_components": K, "beta": 1, "seed": 0, "refresh_every": 50, "reseed": False}


@functools.cache
def planted(seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """Planted Poisson data: 3 communities of 10 taxa over 40, the third absent from the
    first 100 samples (so the first file of :func:`_files` lacks its taxa). Also built on
    the workers."""
    s = make_poisson_stream(n_features=N_FEATURES, n_components=K, n_samples=N_SAMPLES,
                            seed=seed, taxa_per_community=10)
    X = np.asarray(s.X.toarray(), dtype=np.float64)
    X[:100, late_taxa(seed)] = 0.0
    return X, list(s.features)


def truth(seed: int = 0) -> np.ndarray:
    return make_poisson_stream(n_features=N_FEATURES, n_components=K, n_samples=N_SAMPLES,
                               seed=seed, taxa_per_community=10).W_at(0)


def late_taxa(seed: int = 0) -> np.ndarray:
    """The taxa of the third community."""
    return np.flatnonzero(truth(seed)[:, 2] > 1e-3)


@pytest.fixture(scope="module")
def client():
    """Dask's own LocalCluster: 2 worker processes, one thread each, small memory limits."""
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      memory_limit="700MiB", dashboard_address=":0") as cluster, \
            Client(cluster) as c:
        yield c


def single_process_passes(model: OnlineNMF, X: np.ndarray, features: list, passes: int,
                          on_pass=None) -> OnlineNMF:
    """The reference: the core's batch step over the whole matrix, in this process."""
    model = OnlineNMF.from_bytes(model.to_bytes())
    for number in range(passes):
        model.refresh_from(model.batch_statistics(X, features=features))
        if on_pass is not None:
            on_pass(number, model)
    return model


def started(X, features, params=PARAMS) -> OnlineNMF:
    """A model with a data-driven W, as a fresh fit's starts (threads, no cluster)."""
    return distributed.fit(da.from_array(X, chunks=(N_SAMPLES, -1)), params, passes=1,
                           features=features)


# ---------------------------------------------------------------------- the core's batch step
@pytest.mark.parametrize("beta", [0, 1, 1.5, 2])
def test_batch_statistics_add_up_over_any_split(beta):
    X, features = planted()
    model = OnlineNMF(n_components=K, beta=beta, refresh_every=50, seed=0)
    model.learn_many(X[:150], features=features)
    whole = model.batch_statistics(X, features=features)
    cuts = [0, 7, 120, 121, 299, N_SAMPLES]
    parts = [model.batch_statistics(X[a:b], features=features) for a, b in zip(cuts, cuts[1:])]
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    assert total.count == whole.count == N_SAMPLES
    for name in ("B", "D", "A", "usage"):
        np.testing.assert_allclose(getattr(total, name), getattr(whole, name), rtol=1e-12,
                                   atol=1e-12)
    assert total.loss == pytest.approx(whole.loss, rel=1e-12)
    assert whole.loss > 0 and whole.B.any()
    # read-only: the model's own statistics and counters are untouched
    assert model.samples_learned == 150


@pytest.mark.parametrize("beta", [1, 2, 0.5])
def test_refresh_from_is_one_batch_nmf_step(beta):
    """Against the update written out with numpy from H = transform_many (h solved exactly):
    KL W <- W * (V / WH)^T H / sum(H); beta in (0, 1): the MM step with exponent 1/(2-beta);
    Frobenius: one block-coordinate sweep on A = H^T H, B = V^T H; then columns summing to 1."""
    X, features = planted()
    model = OnlineNMF(n_components=K, beta=beta, refresh_every=50, seed=0, reseed=False,
                      tol=1e-10, max_iter=2000, forget_factor=0.998)  # one memory, no prior
    model.learn_many(X[:200], features=features)
    W = model.W.copy()
    H = model.transform_many(X, features=features)
    V = X[:, [features.index(f) for f in model.features]]
    version, learned = model.model_version, model.samples_learned
    model.refresh_from(model.batch_statistics(X, features=features))
    WH = np.maximum(H @ W.T, 1e-300)
    if beta == 2:
        expected, A, B = W.copy(), H.T @ H, V.T @ H
        for j in range(K):
            expected[:, j] = np.maximum(expected[:, j] + (B[:, j] - expected @ A[:, j])
                                        / A[j, j], 0.0)
    else:
        gamma = 1.0 / (2.0 - beta) if beta < 1 else 1.0
        numerator = (V * WH ** (beta - 2)).T @ H
        expected = W * (numerator / ((WH ** (beta - 1)).T @ H)) ** gamma
        expected = np.maximum(expected, 1e-12)  # MU cannot leave an exact zero
    expected /= expected.sum(axis=0)
    np.testing.assert_allclose(model.W, expected, rtol=1e-8, atol=1e-15)
    assert np.abs(model.W - W).max() > 1e-4  # a real step was taken
    assert model.model_version == version + 1
    assert model.samples_learned == learned + N_SAMPLES


def test_refresh_from_weighs_the_batch_as_a_stream_would():
    X, features = planted()
    model = OnlineNMF(n_components=K, beta=1, forget_factor=0.99, refresh_every=50, seed=0)
    model.learn_many(X[:100], features=features)
    sums = model.batch_statistics(X, features=features)
    heavy = OnlineNMF.from_bytes(model.to_bytes())
    model.refresh_from(sums)
    heavy.refresh_from(sums, n_eff=float(N_SAMPLES))
    stats = model.export_statistics()
    assert stats["n_eff"] == pytest.approx((1 - 0.99**N_SAMPLES) / 0.01)
    assert heavy.export_statistics()["n_eff"] == N_SAMPLES
    np.testing.assert_allclose(model.W, heavy.W, rtol=1e-12)  # W does not depend on it
    # the lighter history lets the next samples move W more: the stream takes over
    before_light, before_heavy = model.W.copy(), heavy.W.copy()
    for m in (model, heavy):
        m.learn_many(X[:50, ::-1], features=features[::-1])
        m.refresh()
    # (2.16 times as far before a refresh restated the recent samples, 1.93 since: both move
    # further, the light one still clearly more)
    assert (np.abs(model.W - before_light).max() > 1.5 * np.abs(heavy.W - before_heavy).max())


def test_refresh_from_refuses_statistics_of_another_shape():
    X, features = planted()
    model = OnlineNMF(n_components=K, beta=1, refresh_every=50, seed=0)
    model.learn_many(X[:100], features=features)
    sums = model.batch_statistics(X, features=features)
    model.add_features(["a new taxon"])
    before = model.to_bytes()
    with pytest.raises(ValueError, match="do not fit this model") as err:
        model.refresh_from(sums)
    assert "\n" not in str(err.value)
    assert model.to_bytes() == before


def test_the_callers_sparse_matrix_is_left_as_it_was():
    """A partition's CSR chunk may be reused (a persisted Dask array): the model must not
    sort its data in place when its rows are in another order than the chunk's columns."""
    X, features = planted()
    model = OnlineNMF(n_components=K, beta=1, refresh_every=50, seed=0)
    model.add_features(features[20:])  # rows in another order than the columns
    model.add_features(features[:20])
    model.learn_many(X[:100], features=features)
    chunk = sp.csr_matrix(X)
    before = (chunk.data.copy(), chunk.indices.copy(), chunk.indptr.copy())
    sums = model.batch_statistics(chunk, features=features)
    model.transform_many(chunk, features=features)
    model.learn_many(chunk, features=features)
    for array, kept in zip((chunk.data, chunk.indices, chunk.indptr), before):
        np.testing.assert_array_equal(array, kept)
    assert sums.loss > 0


def test_add_features_gives_the_rows_learning_would():
    a = OnlineNMF(n_components=2, beta=1, seed=4)
    b = OnlineNMF(n_components=2, beta=1, seed=4)
    a.add_features(["x", "y", 3])
    b.learn_one({"x": 1.0, "y": 2.0, 3: 1.0})
    assert a.features == b.features and a.samples_learned == 0
    np.testing.assert_array_equal(a.W, b.W)
    with pytest.raises(ValueError):
        a.add_features([1.5])


# ---------------------------------------------------------------------- passes on the cluster
def test_one_partition_each_pass_equals_the_single_process_step(client):
    X, features = planted()
    start = started(X, features)
    expected = []
    single_process_passes(start, X, features, 3,
                          lambda n, m: expected.append((m.W.copy(), m.samples_learned)))
    model = start
    for W, learned in expected:
        model = distributed.fit(da.from_array(X, chunks=(N_SAMPLES, -1)), model, passes=1,
                                client=client, features=features)
        assert np.abs(model.W - W).max() <= 1e-8
        assert model.samples_learned == learned
    assert np.abs(model.W - start.W).max() > 1e-3  # the passes moved W


def _files(tmp_path: Path, X: np.ndarray, features: list) -> list[str]:
    """The planted samples over three files: a '#OTU ID' TSV and a BIOM JSON with the taxa
    their samples have, a Parquet file of two row groups with every taxon."""
    ids = [f"S{i}" for i in range(N_SAMPLES)]
    tsv = tmp_path / "part1.tsv"
    keep = np.flatnonzero(X[:100].any(axis=0))
    frame = pd.DataFrame(X[:100, keep].T, index=[features[j] for j in keep],
                         columns=ids[:100])
    frame.index.name = "#OTU ID"
    frame.to_csv(tsv, sep="\t")
    biom = tmp_path / "part2.biom"
    keep = np.flatnonzero(X[100:180].any(axis=0))
    block = sp.coo_matrix(X[100:180, keep].T)
    biom.write_text(json.dumps({
        "id": "t", "format": "Biological Observation Matrix 1.0.0", "type": "OTU table",
        "matrix_type": "sparse", "shape": list(block.shape),
        "rows": [{"id": features[j], "metadata": None} for j in keep],
        "columns": [{"id": s, "metadata": None} for s in ids[100:180]],
        "data": [[int(r), int(c), float(v)] for r, c, v in zip(block.row, block.col,
                                                                  block.data)]}))
    parquet = tmp_path / "part3.parquet"
    table = pd.DataFrame(X[180:], columns=features)
    table.insert(0, "sample_id", ids[180:])
    table.to_parquet(parquet, row_group_size=50, index=False)
    return [str(tsv), str(biom), str(parquet)]


def test_any_partitioning_source_and_worker_count_gives_the_same_W(client, tmp_path):
    X, features = planted()
    start = started(X, features)
    reference = single_process_passes(start, X, features, 3)
    index = pd.Index(np.arange(N_SAMPLES))
    frame = dd.from_pandas(pd.DataFrame(X, columns=features, index=index), npartitions=5)
    sources = {
        "array, 7 partitions": (da.from_array(X, chunks=(43, -1)), features),
        "sparse array": (da.from_array(sp.csr_matrix(X), chunks=(100, N_FEATURES),
                                       asarray=False), features),
        "dataframe": (frame, None),
        "files": (_files(tmp_path, X, features), None),
    }
    for name, (data, names) in sources.items():
        for on in (client, None):  # 2 worker processes; Dask's local threads
            model = distributed.fit(data, start, passes=3, client=on, features=names)
            assert model.features == start.features, name
            assert np.abs(model.W - reference.W).max() <= 1e-6, name
            assert model.component_ids == reference.component_ids


@pytest.mark.parametrize("start", distributed.STARTS)
def test_a_fresh_fit_starts_alike_on_any_partitioning(client, start):
    """NNDSVDa's sums are taken in partition order; the stream start's seeding rows are
    chosen by a hash of (seed, row id), not by partition."""
    X, features = planted()
    one = distributed.fit(da.from_array(X, chunks=(N_SAMPLES, -1)), PARAMS, passes=2,
                          features=features, start=start)
    frame = dd.from_pandas(pd.DataFrame(X, columns=features), npartitions=4)
    other = distributed.fit(frame, PARAMS, passes=2, client=client, start=start)
    assert np.abs(one.W - other.W).max() <= 1e-6
    if start == "stream":
        seeded = distributed.fit(frame, {**PARAMS, "seed": 1}, passes=2, client=client,
                                 start=start)
        assert np.abs(seeded.W - other.W).max() > 1e-3  # another seed: other rows, other start


def test_the_nndsvda_start_is_scikit_learns(client):
    """The feature side of scikit-learn's NNDSVDa (its H, rows normalised), from sums over 4
    partitions on 2 workers: never the samples' side, never a row on the client."""
    from sklearn.decomposition._nmf import _initialize_nmf

    from onlinenmf.distributed import start

    X, features = planted()
    model = OnlineNMF(n_components=K, beta=1, seed=0)
    model.add_features(features)
    source = distributed.sources.partitions(da.from_array(X, chunks=(75, -1)), features)
    total = functools.partial(distributed.partition_total, source, model, client=client)
    W = start.nndsvda(total, K, N_FEATURES, seed=0)
    _, H = _initialize_nmf(X, K, init="nndsvda", random_state=0)
    expected = H.T / H.T.sum(axis=0)
    np.testing.assert_allclose(W, expected, rtol=1e-6, atol=1e-12)


def test_on_ecam_a_fresh_fit_from_nndsvda_ends_nearer_the_batch_optimum():
    """ECAM (699 x 3,347, k = 10, KL), 30 passes on Dask's local threads: from NNDSVDa (the
    default) the loss ends 4 % below that from the stream's start (measured: 1.013 against
    1.058 x scikit-learn's 500 MU iterations; benchmarks/output/distributed.md)."""
    from onlinenmf.datasets import load_ecam

    table = load_ecam()
    data = da.from_array(table.counts.toarray(), chunks=(175, -1))
    final = {}
    for start in (*distributed.STARTS, None):
        reports = []
        chosen = {} if start is None else {"start": start}
        distributed.fit(data, {"n_components": 10, "beta": 1, "seed": 0}, passes=30,
                        features=list(table.features), progress=reports.append, **chosen)
        final[start] = reports[-1].loss
    assert final["nndsvda"] < 0.97 * final["stream"]
    assert final[None] == final["nndsvda"]


def test_feature_union_over_files_and_the_model_keeps_learning(client, tmp_path):
    X, features = planted()
    files = _files(tmp_path, X, features)
    whole = tmp_path / "whole.tsv"
    pd.DataFrame(X, index=[f"S{i}" for i in range(N_SAMPLES)], columns=features).to_csv(
        whole, sep="\t")
    first = set(pd.read_csv(files[0], sep="\t", index_col=0).index)
    assert not first & {features[j] for j in late_taxa()}  # seen only in the later files
    parts = distributed.fit(files, PARAMS, passes=4, client=client)
    single = distributed.fit([str(whole)], PARAMS, passes=4, client=client)
    assert sorted(parts.features) == sorted(features)
    position = [parts.features.index(f) for f in single.features]
    assert np.abs(parts.W[position] - single.W).max() <= 1e-6
    # the planted communities were found, the late one too: cosine >= 0.95 each
    planted_W = truth()
    W = parts.W[[parts.features.index(f) for f in features]]
    cos = (planted_W / np.linalg.norm(planted_W, axis=0)).T @ (W / np.linalg.norm(W, axis=0))
    assert cos.max(axis=1).min() >= 0.95
    learned = parts.samples_learned
    h = parts.learn_one({features[0]: 5.0, "a taxon never seen": 2.0})
    assert set(h) == set(parts.component_ids) and parts.samples_learned == learned + 1


def _flaky_rows(start: int, stop: int, marker: str) -> np.ndarray:
    """Rows start:stop of the planted data; at its second read (the first pass, after the
    survey) the task kills its own worker process, as a lost machine would."""
    with open(marker, "a") as fh:
        fh.write("x")
    if Path(marker).stat().st_size == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return planted()[0][start:stop]


def test_a_worker_killed_mid_pass_is_survived_with_the_same_result(tmp_path):
    from dask import delayed

    X, features = planted()
    marker = str(tmp_path / "reads")
    cuts = [0, 100, 200, N_SAMPLES]
    blocks = [da.from_array(X[a:b], chunks=(b - a, -1)) for a, b in zip(cuts, cuts[1:])]
    blocks[1] = da.from_delayed(delayed(_flaky_rows)(100, 200, marker), (100, N_FEATURES),
                                dtype=np.float64)
    flaky = da.concatenate(blocks, axis=0)
    steady = da.concatenate([da.from_array(X[a:b], chunks=(b - a, -1))
                             for a, b in zip(cuts, cuts[1:])], axis=0)
    expected = distributed.fit(steady, PARAMS, passes=3, features=features)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      memory_limit="700MiB", dashboard_address=":0") as cluster, \
            Client(cluster) as c:
        before = set(c.run(os.getpid).values())
        model = distributed.fit(flaky, PARAMS, passes=3, client=c, features=features)
        c.wait_for_workers(2, timeout=120)
        after = set(c.run(os.getpid).values())
    assert Path(marker).stat().st_size >= 3  # killed, then read again by a live worker
    assert before - after  # a worker process died (the nanny started another)
    assert np.abs(model.W - expected.W).max() <= 1e-12
    assert model.samples_learned == expected.samples_learned


@pytest.mark.parametrize(("start", "passes"), [("stream", 10), ("nndsvda", 16)])
def test_rank_is_reestimated_per_pass_across_the_cluster(client, start, passes):
    """Started at k=6 on 3 planted communities, ARD relevance from the summed statistics
    prunes per pass to 3, as the single-process batch steps do (from NNDSVDa, whose extra
    columns are halves of noise vectors, it takes 13 passes: measured)."""
    s = make_poisson_stream(n_features=N_FEATURES, n_components=K, n_samples=N_SAMPLES,
                            seed=0, taxa_per_community=10)  # all 3 throughout
    X, features = s.X.toarray(), list(s.features)
    params = {**PARAMS, "n_components": 6, "adapt_rank": True, "forget_factor": 0.99}
    ranks = []
    model = distributed.fit(da.from_array(X, chunks=(70, -1)), params, passes=passes,
                            client=client, features=features, start=start,
                            progress=lambda report: ranks.append(report.n_components))
    assert ranks[0] == 6 and model.n_components_ == K
    assert [e["kind"] for e in model.events if e["kind"] == "prune"] == ["prune"] * 3
    first = distributed.fit(da.from_array(X, chunks=(N_SAMPLES, -1)), params, passes=1,
                            features=features, start=start)
    reference = single_process_passes(first, X, features, passes - 1)
    assert model.component_ids == reference.component_ids
    assert np.abs(model.W - reference.W).max() <= 1e-6


@pytest.mark.parametrize(("start", "passes"), [("stream", 8), ("nndsvda", 16)])
def test_a_community_missing_from_the_start_rank_is_born_in_a_pass(client, start, passes):
    """4 planted communities, a fit started at k=3 under adapt_rank: once the passes settle,
    the residuals of the pass's worst rows (gathered over the partitions) seed a 4th
    component, and every community ends with a column of its own. The same births and W on
    one partition in one process (the worst rows do not depend on the partitioning)."""
    s = make_poisson_stream(n_features=N_FEATURES, n_components=4, n_samples=400, seed=0,
                            taxa_per_community=10)
    X, features = s.X.toarray().astype(float), list(s.features)
    params = {**PARAMS, "adapt_rank": True, "forget_factor": 0.99}
    ranks = []
    model = distributed.fit(da.from_array(X, chunks=(70, -1)), params, passes=passes,
                            client=client, features=features, start=start,
                            progress=lambda report: ranks.append(report.n_components))
    assert ranks[0] == K and model.n_components_ == 4
    grown = [e for e in model.events if e["kind"] == "grow"]
    assert len(grown) == 1 and grown[0]["reason"].startswith("pass ")
    W = model.W[[model.features.index(f) for f in features]]
    planted_W = s.W_at(0)
    cosine = (planted_W / np.linalg.norm(planted_W, axis=0)).T @ (W / np.linalg.norm(W, axis=0))
    assert cosine.max(axis=1).min() >= 0.9  # each community has its column (others < 0.3)
    one = distributed.fit(da.from_array(X, chunks=(400, -1)), params, passes=passes,
                          features=features, start=start)
    assert one.component_ids == model.component_ids
    assert np.abs(one.W - model.W).max() <= 1e-6


def test_no_birth_where_every_community_is_fitted(client):
    """The worst rows' residuals look alike even on a fitted model (Poisson noise); a column
    from them would cut their loss by about a tenth, under BIRTH_GAIN: no birth."""
    s = make_poisson_stream(n_features=N_FEATURES, n_components=K, n_samples=N_SAMPLES,
                            seed=0, taxa_per_community=10)
    params = {**PARAMS, "adapt_rank": True, "forget_factor": 0.99}
    model = distributed.fit(da.from_array(s.X.toarray(), chunks=(70, -1)), params, passes=10,
                            client=client, features=list(s.features), start="stream")
    assert model.n_components_ == K
    assert not [e for e in model.events if e["kind"] == "grow"]


def test_sparsity_is_reestimated_per_pass_across_the_cluster(client):
    """adapt_sparsity: the L1 weight on h is re-fitted from the summed statistics after a
    pass (an 'l1_h' event), the same on 2 workers as in the single-process batch steps."""
    X, features = planted()
    params = {**PARAMS, "adapt_sparsity": True, "forget_factor": 0.99}
    model = distributed.fit(da.from_array(X, chunks=(70, -1)), params, passes=4,
                            client=client, features=features)
    first = distributed.fit(da.from_array(X, chunks=(N_SAMPLES, -1)), params, passes=1,
                            features=features)
    reference = single_process_passes(first, X, features, 3)
    assert [e["kind"] for e in model.events].count("l1_h") >= 1
    assert model.hyperparameters["l1_h"] > 0
    assert model.hyperparameters["l1_h"] == pytest.approx(reference.hyperparameters["l1_h"],
                                                          rel=1e-9)
    assert np.abs(model.W - reference.W).max() <= 1e-6


def test_progress_is_reported_per_pass_with_a_falling_loss(client):
    X, features = planted()
    reports = []
    distributed.fit(da.from_array(X, chunks=(100, -1)), PARAMS, passes=4, client=client,
                    features=features, progress=reports.append)
    assert [r.number for r in reports] == [1, 2, 3, 4]
    assert all(r.samples == N_SAMPLES and r.passes == 4 for r in reports)
    losses = [r.mean_loss for r in reports]
    assert losses == sorted(losses, reverse=True) and losses[-1] < losses[0]
    assert str(reports[-1]).startswith("pass 4/4: 300 samples, loss per sample")


# ---------------------------------------------------------------------- mistakes
def test_bad_input_is_one_line_naming_where(client, tmp_path):
    X, features = planted()
    bad = X.copy()
    bad[205, 3] = -1.0
    with pytest.raises(ValueError, match=r"^rows 200-299 of the array: row 5") as err:
        distributed.fit(da.from_array(bad, chunks=(100, -1)), PARAMS, passes=1, client=client,
                        features=features)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match=r"^rows 200-299 of the array: row 5"):  # in a pass
        distributed.fit(da.from_array(bad, chunks=(100, -1)), started(X, features), passes=1,
                        client=client, features=features)
    with pytest.raises(TableError, match="no such file"):
        distributed.fit([str(tmp_path / "missing.tsv")], PARAMS, passes=1, client=client)
    words = tmp_path / "words.tsv"
    words.write_text("sample\ta\tb\nS1\t1\tmany\n")
    with pytest.raises(TableError, match="not a count") as err:
        distributed.fit([str(words)], PARAMS, passes=1, client=client)
    assert "\n" not in str(err.value)
    frame = dd.from_pandas(pd.DataFrame({"a": [1.0, 2.0], "who": ["x", "y"]}), npartitions=1)
    with pytest.raises(ValueError, match="who are not"):
        distributed.fit(frame, PARAMS, passes=1, client=client)
    with pytest.raises(ValueError, match="unknown model parameter 'components'"):
        distributed.fit([str(words)], {"components": 3}, passes=1)
    with pytest.raises(ValueError, match="passes must be a positive integer"):
        distributed.fit([str(words)], PARAMS, passes=0)
    with pytest.raises(ValueError, match="no samples"):
        distributed.fit(da.zeros((0, 4), chunks=(1, 4)), PARAMS, passes=1)


def test_a_partition_is_solved_a_few_rows_at_a_time_and_errors_still_say_where():
    """A partition longer than SOLVE_ROWS is solved in slices (a task's temporary arrays
    grow with a slice, not the partition): the same statistics as whole, and a bad value in
    a later slice named by the partition and the slice's first row."""
    X, features = planted()
    rows = np.vstack([X] * 15)[: distributed.SOLVE_ROWS + 400]  # two slices
    model = started(X, features)
    block = distributed.sources.partitions(da.from_array(rows, chunks=(rows.shape[0], -1)),
                                           features).partitions[0].compute()
    found = distributed._partition_sums(model, block)
    whole = model.batch_statistics(rows, features=features)
    assert found.sums.count == rows.shape[0]
    np.testing.assert_allclose(found.sums.B, whole.B, rtol=1e-10)
    assert found.sums.loss == pytest.approx(whole.loss, rel=1e-10)
    rows[distributed.SOLVE_ROWS + 7, 2] = -1.0
    with pytest.raises(ValueError, match=rf"^rows 0-{rows.shape[0] - 1} of the array \(from "
                                         rf"its row {distributed.SOLVE_ROWS} on\): row 7"):
        distributed.fit(da.from_array(rows, chunks=(rows.shape[0], -1)), model, passes=1,
                        features=features)


# ---------------------------------------------------------------------- the command line
def test_cli_fit_writes_the_snapshot_the_api_gives(tmp_path):
    from tests.kafka_broker import run_cli

    X, features = planted()
    files = _files(tmp_path, X, features)
    out = tmp_path / "model.npz"
    config = tmp_path / "fit.toml"
    config.write_text('[model]\nrefresh_every = 50\nreseed = false\n[fit]\npasses = 3\n')
    done = run_cli("fit", "--table", *files, "--components", "3", "--beta", "1", "--seed", "0",
                   "--scheduler", "local:1", "--config", str(config), "--out", str(out),
                   timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert [line.split(":")[0] for line in done.stderr.splitlines()
            if line.startswith("pass ")] == ["pass 1/3", "pass 2/3", "pass 3/3"]
    assert "wrote" in done.stdout
    model = OnlineNMF.load(out)
    expected = distributed.fit(files, PARAMS, passes=3)
    assert model.features == expected.features
    assert np.abs(model.W - expected.W).max() <= 1e-6


@pytest.mark.parametrize("args, message", [
    (["--table", "missing.tsv", "--out", "m.npz"], "no such file"),
    (["--table", "{words}", "--out", "m.npz"], "not a count"),
    (["--out", "m.npz"], "no table"),
    (["--table", "{words}"], "no output"),
    (["--table", "{words}", "--out", "m.npz", "--scheduler", "locale"], "expected local"),
    (["--table", "{words}", "--out", "m.npz", "--scheduler", "local:0"], "local:N"),
    (["--table", "{words}", "--out", "m.npz", "--config", "{config}"], "unknown key 'passe'"),
    (["--table", "{words}", "--out", "m.npz", "--beta", "-1"], "beta must be"),
])
def test_cli_fit_mistakes_are_one_line_and_exit_2(tmp_path, args, message):
    from tests.kafka_broker import run_cli

    words = tmp_path / "words.tsv"
    words.write_text("sample\ta\tb\nS1\t1\tmany\n")
    config = tmp_path / "fit.toml"
    config.write_text("[fit]\npasse = 3\n")
    args = [a.format(words=words, config=config) for a in args]
    if "--scheduler" not in args:
        args += ["--scheduler", "local:1"]
    done = run_cli("fit", *args, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("onlinenmf fit: ")
    assert message in lines[0]
    assert not (tmp_path / "m.npz").exists()


# ---------------------------------------------------------------------- fitted -> live
@pytest.mark.kafka
def test_a_fitted_snapshot_starts_the_live_consumer_once(kafka_broker, tmp_path):
    """onlinenmf fit -> model.npz -> consume --init-from: the consumer continues the fitted
    model (not a fresh one), the checkpoint records it, and a restart with the same flag
    continues the checkpoint instead of starting over from the snapshot."""
    from consumers.checkpoint import CheckpointStore
    from consumers.microbiome import encode_sample, model_from_blobs, w_sha256
    from tests.kafka_broker import (
        FAST_GROUP_FLAGS,
        create_topic,
        produce,
        reference_app,
        run_cli,
        unique,
    )

    X, features = planted()
    files = _files(tmp_path, X, features)
    snapshot = tmp_path / "model.npz"
    done = run_cli("fit", "--table", *files, "--components", "3", "--beta", "1", "--passes",
                   "4", "--scheduler", "local:1", "--out", str(snapshot), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    fitted = OnlineNMF.load(snapshot)

    live, _ = planted(seed=1)
    records = [(f"s{i % 7}".encode(),
                encode_sample(f"s{i % 7}", float(i), f"live{i}",
                              {features[j]: float(v) for j, v in enumerate(row) if v}))
               for i, row in enumerate(live[:160])]
    bootstrap = kafka_broker.bootstrap
    topic = create_topic(bootstrap, unique("fitted"), partitions=1)
    ckpt = tmp_path / "ckpt"

    def consume() -> None:
        run = run_cli("consume", "microbiome", "--bootstrap-servers", bootstrap, "--topic",
                      topic, "--group", "g", "--checkpoint-dir", str(ckpt), "--worker-id",
                      "w", "--output-topic", "", "--model-topic", "", "--init-from",
                      str(snapshot), "--exit-when-idle", "2", *FAST_GROUP_FLAGS, timeout=300)
        assert run.returncode == 0, run.stderr[-3000:]

    values = [value for _, value in records]
    for start, upto in ((0, 100), (100, 160)):  # a first run, then a restart with more
        produce(bootstrap, topic, records[start:upto])
        consume()
        state = CheckpointStore(ckpt, "w").read()
        model = model_from_blobs(state.blobs)
        expected = reference_app(values[:upto], init_from=snapshot).model
        assert w_sha256(model.W) == w_sha256(expected.W)
        assert model.samples_learned == fitted.samples_learned + upto
        assert set(fitted.features) <= set(model.features)
        header = CheckpointStore(ckpt, "w").read_header()
        assert json.dumps(header).count(snapshot.name) >= 1
    fresh = reference_app(values).model
    assert w_sha256(fresh.W) != w_sha256(model.W)
    twice = reference_app(values[100:], init_from=snapshot).model  # re-applied on restart
    assert w_sha256(twice.W) != w_sha256(model.W)


@pytest.mark.parametrize("content, message", [(None, "No such file"),
                                              (b"not a snapshot", "--init-from")])
def test_consume_init_from_an_unusable_snapshot_is_one_line_and_exit_2(tmp_path, content,
                                                                       message):
    from tests.kafka_broker import run_cli

    snapshot = tmp_path / "model.npz"
    if content is not None:
        snapshot.write_bytes(content)
    done = run_cli("consume", "microbiome", "--bootstrap-servers", "127.0.0.1:1",
                   "--checkpoint-dir", str(tmp_path / "ckpt"), "--init-from", str(snapshot))
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("onlinenmf consume: ") and message in lines[0]
