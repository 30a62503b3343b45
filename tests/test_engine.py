"""The engine: optimality of the solvers, equivalences, invariants, bad input, snapshots."""

from __future__ import annotations

import copy
import os
import pickle
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import scipy.optimize
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onlinenmf import OnlineNMF, SnapshotError, beta_divergence, snapshot
from onlinenmf.datasets import make_poisson_stream

BETAS = (0, 1, 2)


def sample_dicts(stream, start=0, stop=None):
    X = stream.X.tocsr()
    for i in range(start, X.shape[0] if stop is None else stop):
        row = X.getrow(i)
        yield {stream.features[c]: float(v) for c, v in zip(row.indices, row.data)}


@pytest.fixture(scope="module")
def small_stream():
    return make_poisson_stream(n_features=60, n_components=4, n_samples=700, depth=500,
                               taxa_per_community=12, seed=3)


def trained(beta, stream, n=400, **params):
    model = OnlineNMF(n_components=4, beta=beta, refresh_every=50, seed=1, **params)
    model.learn_many(stream.X[:n], features=stream.features)
    return model


# ---------------------------------------------------------------- the inner solvers
@pytest.mark.parametrize("beta", [1, 2])
def test_solver_reaches_the_optimum(beta, small_stream):
    """h satisfies the KKT conditions of min D_beta(v | W h), h >= 0, on the whole sample."""
    model = trained(beta, small_stream)
    W = model.W
    for x in sample_dicts(small_stream, 500, 520):
        h = np.array(list(model.transform_one(x).values()))
        v = np.zeros(model.n_features)
        for name, value in x.items():
            v[model.features.index(name)] = value
        wh = W @ h
        if beta == 2:
            gradient = W.T @ (wh - v)
        else:
            gradient = W.sum(axis=0) - W.T @ (v / wh)
        scale = np.abs(W.T @ v).max() if beta == 2 else W.sum(axis=0).max()
        active = h > 1e-6 * h.max()
        # zero gradient on the support, non-negative off it
        assert np.all(np.abs(gradient[active]) <= 1e-5 * scale)
        assert np.all(gradient[~active] >= -1e-5 * scale)


def test_itakura_saito_solver_reaches_the_optimal_loss(small_stream):
    """MU converges slowly near the boundary, so check the objective: a 10x longer run with a
    100x tighter tolerance improves the loss by less than 1e-5 relative (measured: ~3e-6)."""
    model = trained(0, small_stream)
    precise = copy.deepcopy(model)
    precise.max_iter, precise.tol = 2000, 1e-8
    for x in sample_dicts(small_stream, 500, 520):
        loss, best = model.loss_one(x), precise.loss_one(x)
        assert best <= loss * (1 + 1e-12)
        assert loss - best <= 1e-5 * best


def test_frobenius_solver_matches_scipy_nnls(small_stream):
    model = trained(2, small_stream)
    for x in sample_dicts(small_stream, 600, 610):
        h = np.array(list(model.transform_one(x).values()))
        v = np.zeros(model.n_features)
        for name, value in x.items():
            v[model.features.index(name)] = value
        reference, _ = scipy.optimize.nnls(np.array(model.W), v)
        np.testing.assert_allclose(h, reference, rtol=1e-5, atol=1e-6 * reference.max())


@pytest.mark.parametrize("beta", BETAS)
def test_warm_start_reaches_the_same_optimum(beta, small_stream):
    model = trained(beta, small_stream)
    x = next(sample_dicts(small_stream, 650, 651))
    cold = model.transform_one(x)
    warm = model.transform_one(x, warm_start={c: 2.0 * w + 1.0 for c, w in cold.items()})
    np.testing.assert_allclose(list(warm.values()), list(cold.values()),
                               rtol=1e-3, atol=1e-4 * max(cold.values()))


def test_itakura_saito_handles_zeros_and_tiny_values():
    model = OnlineNMF(n_components=3, beta=0, refresh_every=2, seed=0)
    for x in [{"a": 0.0, "b": 1e-300, "c": 5.0}, {"a": 3.0, "b": 0.0}, {"c": 1e-12, "d": 2.0}]:
        h = model.learn_one(x)
        assert all(np.isfinite(list(h.values())))
        assert np.isfinite(model.last_loss)
    assert np.all(np.isfinite(model.W)) and np.all(model.W >= 0)


# ---------------------------------------------------------------- cost: rows outside the sample
@pytest.mark.parametrize("beta", BETAS)
def test_rows_outside_the_sample_are_untouched_between_refreshes(beta, small_stream):
    model = trained(beta, small_stream, n=420)  # 420 = mid-way between refreshes
    stats = model._statistics  # the stored arrays: what a sample writes (forgetting is lazy)
    before = {name: getattr(stats, name).copy() for name in ("W", "B", "D")}
    version = model.model_version
    x = {small_stream.features[0]: 7.0, small_stream.features[5]: 2.0, "brand-new": 1.0}
    model.learn_one(x)
    touched = [model.features.index(name) for name in x]
    untouched = np.setdiff1d(np.arange(len(before["W"])), touched)
    untouched = untouched[untouched < model.n_features]
    assert model.model_version == version, "the sample must not trigger a refresh"
    for name, array in before.items():
        if array.size:  # D: multiplicative updates with a per-feature denominator only
            assert np.array_equal(getattr(stats, name)[untouched], array[untouched]), name
    assert before["D"].size == (0 if beta else before["B"].size)
    # the touched rows did change: the test can fail
    assert not np.array_equal(stats.B[touched[:2]], before["B"][touched[:2]])


# ---------------------------------------------------------------- equivalences
@pytest.mark.parametrize("beta", BETAS)
def test_learn_many_equals_learn_one_loop(beta, small_stream):
    rows = small_stream.X[:300].toarray()
    one = OnlineNMF(n_components=4, beta=beta, refresh_every=40, seed=2)
    for row in rows:
        one.learn_one(dict(zip(small_stream.features, row)))
    many = OnlineNMF(n_components=4, beta=beta, refresh_every=40, seed=2)
    for start in range(0, 300, 64):  # batches that straddle refreshes
        many.learn_many(rows[start : start + 64], features=small_stream.features)
    assert one.model_version == many.model_version == 7
    assert one.features == many.features
    scale = np.abs(one.W).max()
    np.testing.assert_allclose(many.W, one.W, rtol=1e-8, atol=1e-8 * scale)
    # sparse input gives the same model as dense
    sparse = OnlineNMF(n_components=4, beta=beta, refresh_every=40, seed=2)
    sparse.learn_many(sp.csr_matrix(rows), features=small_stream.features)
    np.testing.assert_allclose(sparse.W, many.W, rtol=1e-10, atol=1e-12 * scale)


@pytest.mark.parametrize("beta", BETAS)
def test_deterministic_and_independent_of_feature_order(beta, small_stream):
    rows = small_stream.X[:260].toarray()
    names = list(small_stream.features)
    a = OnlineNMF(n_components=4, beta=beta, refresh_every=50, seed=7)
    b = OnlineNMF(n_components=4, beta=beta, refresh_every=50, seed=7)
    a.learn_many(rows, features=names)
    b.learn_many(rows, features=names)
    assert a == b and np.array_equal(a.W, b.W)
    order = np.random.default_rng(0).permutation(len(names))
    c = OnlineNMF(n_components=4, beta=beta, refresh_every=50, seed=7)
    for row in rows[:, order]:
        c.learn_one(dict(zip([names[i] for i in order], row)))
    in_order = OnlineNMF(n_components=4, beta=beta, refresh_every=50, seed=7)
    for row in rows:
        in_order.learn_one(dict(zip(names, row)))
    # same rows in the same order, same arithmetic: equal to the last bit
    assert c.features == in_order.features and np.array_equal(c.W, in_order.W)
    # the seed sets the initial rows (the first refresh then starts from the data itself)
    d = OnlineNMF(n_components=4, beta=beta, refresh_every=50, seed=8)
    e = OnlineNMF(n_components=4, beta=beta, refresh_every=50, seed=7)
    d.learn_many(rows[:10], features=names)
    e.learn_many(rows[:10], features=names)
    assert not np.allclose(d.W, e.W), "another seed must give other initial rows"


def test_new_feature_rows_depend_only_on_seed_and_name():
    a = OnlineNMF(n_components=3, seed=5)
    b = OnlineNMF(n_components=3, seed=5)
    a.learn_one({"x": 1.0, "y": 2.0, "z": 0.0})
    b.learn_one({"z": 0.0, "y": 2.0, "x": 1.0})
    assert a.features == b.features == ["x", "y", "z"] and np.array_equal(a.W, b.W)


def test_pure_python_path_gives_the_same_model():
    """NUMBA_DISABLE_JIT=1 runs the same solver loops interpreted: same W."""
    script = (
        "import numpy as np, sys; from onlinenmf import OnlineNMF, COMPILED;"
        "from onlinenmf.datasets import make_poisson_stream;"
        "s = make_poisson_stream(n_features=30, n_components=3, n_samples=120, depth=200,"
        " taxa_per_community=8, seed=1);"
        "m = OnlineNMF(n_components=3, beta=int(sys.argv[1]), refresh_every=30, seed=0);"
        "m.learn_many(s.X, features=s.features);"
        "sys.stdout.buffer.write(np.ascontiguousarray(m.W).tobytes() + bytes([COMPILED]))"
    )
    for beta in BETAS:
        outputs = []
        for disable in ("1", "0"):
            env = {**os.environ, "NUMBA_DISABLE_JIT": disable}
            result = subprocess.run([sys.executable, "-c", script, str(beta)], env=env,
                                    capture_output=True, check=True, timeout=300)
            outputs.append(result.stdout)
        assert outputs[0][-1] == 0 and outputs[1][-1] == 1  # interpreted, then compiled
        interpreted, compiled = (np.frombuffer(o[:-1]) for o in outputs)
        np.testing.assert_allclose(interpreted, compiled, rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------- invariants (property tests)
counts = st.dictionaries(
    st.sampled_from([f"t{i}" for i in range(12)] + [0, 1, 2]),
    st.floats(min_value=0, max_value=1e4, allow_nan=False, allow_infinity=False),
    min_size=1, max_size=10,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(samples=st.lists(counts, min_size=1, max_size=25), beta=st.sampled_from(BETAS))
def test_nonnegative_and_finite_on_arbitrary_streams(samples, beta):
    model = OnlineNMF(n_components=3, beta=beta, refresh_every=4, seed=0)
    for x in samples:
        h = model.learn_one(x)
        assert all(value >= 0 and np.isfinite(value) for value in h.values())
    assert np.all(model.W >= 0) and np.all(np.isfinite(model.W))
    read_only = copy.deepcopy(model)
    model.transform_one(samples[0])
    model.loss_one(samples[0])
    model.transform_many(np.ones((2, 3)), features=["t0", "t1", "unknown"])
    assert model == read_only


bad_values = st.one_of(
    st.floats(max_value=-1e-9), st.just(float("nan")), st.just(float("inf")),
    st.just(float("-inf")), st.text(min_size=1, max_size=3), st.none(), st.just([1.0]),
)


@settings(max_examples=60, deadline=None)
@given(bad=bad_values, beta=st.sampled_from(BETAS), position=st.integers(0, 3))
def test_rejected_samples_leave_no_trace(bad, beta, position):
    model = OnlineNMF(n_components=2, beta=beta, refresh_every=3, seed=0)
    for x in ({"a": 1.0, "b": 2.0}, {"b": 1.0, "c": 4.0}):
        model.learn_one(x)
    before = copy.deepcopy(model)
    x = {"a": 1.0, "new-feature": 3.0, "c": 2.0, "d": 1.0}
    name = list(x)[position]
    x[name] = bad
    with pytest.raises(ValueError, match=repr(name)):
        model.learn_one(x)
    assert model == before and model.features == before.features


@pytest.mark.parametrize(
    "x, message",
    [({}, "empty sample"), ([1, 2], "must be a mapping"), ({1.5: 1.0}, "feature name 1.5"),
     ({True: 1.0}, "feature name True"), ({("a",): 1.0}, "must be str or int")],
)
def test_bad_samples_are_named(x, message):
    model = OnlineNMF(n_components=2)
    model.learn_one({"a": 1.0})
    before = copy.deepcopy(model)
    with pytest.raises(ValueError, match=message):
        model.learn_one(x)
    assert model == before


def test_bad_matrices_are_named():
    model = OnlineNMF(n_components=2)
    with pytest.raises(ValueError, match="3 columns but 2 feature names"):
        model.learn_many(np.ones((2, 3)), features=["a", "b"])
    with pytest.raises(ValueError, match=r"row 1, feature 'b': value -2.0 is negative"):
        model.learn_many(np.array([[1.0, 0.0], [0.0, -2.0]]), features=["a", "b"])
    with pytest.raises(ValueError, match=r"row 0, feature 'a': value is NaN"):
        model.learn_many(sp.csr_matrix(np.array([[np.nan, 1.0]])), features=["a", "b"])
    with pytest.raises(ValueError, match="'a' appears twice"):
        model.learn_many(np.ones((1, 2)), features=["a", "a"])
    with pytest.raises(ValueError, match="2-D"):
        model.learn_many(np.ones(3))
    assert model.samples_learned == 0 and model.n_features == 0


@pytest.mark.parametrize("params, message", [
    ({"beta": -1}, r"beta must be a finite number >= 0, got -1"),
    ({"beta": float("nan")}, "beta must be a finite number"), ({"beta": "2"}, "beta must be"),
    ({"beta": 0, "adapt_rank": True}, "Itakura-Saito"), ({"n_components": 0}, "n_components"),
    ({"forget_factor": 1.5}, "forget_factor"), ({"l1_h": -1.0}, "l1_h"),
    ({"beta": 1, "l1_w": 0.1}, "beta=2 only"),
])
def test_bad_parameters_are_named(params, message):
    with pytest.raises(ValueError, match=message):
        OnlineNMF(**params)


def test_transform_before_learning_gives_zeros():
    model = OnlineNMF(n_components=3)
    assert model.transform_one({"a": 1.0}) == {0: 0.0, 1: 0.0, 2: 0.0}
    assert model.transform_many(np.ones((2, 1)), features=["a"]).shape == (2, 3)


# ---------------------------------------------------------------- snapshots
@pytest.mark.parametrize("beta", BETAS)
def test_snapshot_round_trip_is_bit_for_bit(beta, small_stream, tmp_path):
    model = trained(beta, small_stream, n=333)
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = OnlineNMF.load(path)
    assert loaded == model
    for other in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model),
                  OnlineNMF.from_bytes(model.to_bytes())):
        assert other == model
    # the restored model continues exactly as the original
    rest = small_stream.X[333:500]
    model.learn_many(rest, features=small_stream.features)
    loaded.learn_many(rest, features=small_stream.features)
    assert loaded == model and np.array_equal(loaded.W, model.W)


def test_snapshot_errors_name_the_file(small_stream, tmp_path):
    model = trained(1, small_stream, n=100)
    path = tmp_path / "model.npz"
    model.save(path)
    data = path.read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(SnapshotError, match="truncated.npz.*truncated or corrupted"):
        OnlineNMF.load(truncated)
    table = tmp_path / "counts.tsv"  # a user's table given where a model goes
    table.write_text("sample\ttaxonA\nS1\t3\n")
    with pytest.raises(SnapshotError, match=r"counts.tsv: not an onlinenmf snapshot \(an "
                                            r"\.npz file .*; it begins b'sample\\ttaxon'$"):
        OnlineNMF.load(table)
    arrays, meta = snapshot.read(path)
    arrays["W"] = arrays["W"] + 1e-9  # the data changed but not the checksum
    tampered = tmp_path / "tampered.npz"
    meta_body = {k: v for k, v in meta.items() if k not in ("format", "version", "sha256")}
    good = snapshot.dumps(snapshot.read(path)[0], meta_body)
    with zipfile.ZipFile(tampered, "w") as archive, zipfile.ZipFile(
        __import__("io").BytesIO(good)
    ) as source:
        for item in source.namelist():
            payload = source.read(item)
            if item == "W.npy":
                payload = payload[:-8] + b"\x00" * 8
            archive.writestr(item, payload)
    with pytest.raises(SnapshotError, match="tampered.npz: checksum mismatch"):
        OnlineNMF.load(tampered)
    newer = tmp_path / "newer.npz"
    newer_meta = {**meta_body}
    body = snapshot.dumps(arrays, newer_meta)
    current = f'"version": {snapshot.FORMAT_VERSION}'.encode()
    assert current in body
    newer.write_bytes(body.replace(current, b'"version": 99'))
    with pytest.raises(SnapshotError, match="newer.npz"):
        OnlineNMF.load(newer)
    with pytest.raises(SnapshotError, match="missing.npz"):
        OnlineNMF.load(tmp_path / "missing.npz")


# ---------------------------------------------------------------- quality against batch NMF
def batch_oracle(X, k, beta, seed=0):
    """Per-sample loss of scikit-learn's batch NMF on X (a test-only dependency)."""
    from sklearn.decomposition import NMF

    loss = "frobenius" if beta == 2 else "kullback-leibler"
    nmf = NMF(k, beta_loss=loss, solver="cd" if beta == 2 else "mu", init="nndsvdar",
              max_iter=400, tol=1e-6, random_state=seed)
    H = nmf.fit_transform(X)
    dense = X.toarray()
    per_sample = [beta_divergence(dense[i : i + 1], H[i : i + 1] @ nmf.components_, beta)
                  for i in range(dense.shape[0])]
    return np.array(per_sample), nmf.components_.T


def matched_cosines(W_true, W_est):
    a = W_true / np.linalg.norm(W_true, axis=0)
    b = W_est / np.linalg.norm(W_est, axis=0)
    similarity = a.T @ b
    rows, columns = scipy.optimize.linear_sum_assignment(-similarity)
    return similarity[rows, columns]


def aligned(model, stream, W):
    """The model's W with rows in the stream's feature order (zeros for unseen features)."""
    out = np.zeros_like(W)
    for i, name in enumerate(stream.features):
        if name in model._index:
            out[i] = model.W[model._index[name]]
    return out


@pytest.mark.slow
@pytest.mark.parametrize("beta", [1, 2])
def test_stationary_stream_matches_batch_nmf(beta):
    stream = make_poisson_stream(n_features=300, n_components=8, n_samples=16000, seed=11)
    model = OnlineNMF(n_components=8, beta=beta, seed=0)
    model.learn_many(stream.X, features=stream.features)
    online = model.last_losses[-4000:].mean()
    oracle, _ = batch_oracle(stream.X, 8, beta)  # fitted on the whole stream
    assert online <= 1.02 * oracle[-4000:].mean(), (online, oracle[-4000:].mean())
    cosines = matched_cosines(stream.W_true, aligned(model, stream, stream.W_true))
    assert cosines.min() >= 0.98, cosines


@pytest.mark.slow
def test_planted_drift_recovers_within_four_memory_lengths():
    """2 of 8 communities replaced at 8000: by 4/(1-rho) = 2000 samples later the loss (mean of
    the 500 samples centred there) is within 5 % of a batch NMF fitted on post-drift data."""
    drift = 8000
    stream = make_poisson_stream(n_features=300, n_components=8, n_samples=12000, seed=5,
                                 drift_at=drift, n_replaced=2)
    model = OnlineNMF(n_components=8, beta=2, seed=0, forget_factor=0.998)
    model.learn_many(stream.X, features=stream.features)
    horizon = drift + int(4 * model.memory_length)
    oracle, _ = batch_oracle(stream.X[drift:], 8, 2)
    level = model.last_losses[horizon - 250 : horizon + 250].mean()
    assert level <= 1.05 * oracle.mean(), (level / oracle.mean())
    assert model.last_losses[drift : drift + 200].mean() > 3 * oracle.mean()  # a real drift
    cosines = matched_cosines(stream.W_after_drift, aligned(model, stream, stream.W_after_drift))
    assert cosines.min() >= 0.95, cosines
    assert [e["kind"] for e in model.events].count("birth") >= 2


@pytest.mark.parametrize("beta", BETAS)
def test_all_zero_samples_before_the_first_refresh(beta):
    """An all-zero start leaves nothing to initialise from: the data-driven first refresh waits
    for enough non-empty samples instead of producing NaN."""
    import warnings

    model = OnlineNMF(n_components=2, beta=beta, refresh_every=2, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for x in [{"a": 0.0}, {"b": 0.0}, {"a": 0.0, "b": 0.0}, {"a": 3.0, "b": 1.0},
                  {"c": 2.0}, {"a": 1.0, "c": 4.0}]:
            model.learn_one(x)
    assert model.model_version == 3 and np.all(np.isfinite(model.W))
    assert model._initialised  # it started from the data once there was data
