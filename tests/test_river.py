"""What river's check suite does not exercise: clustering, learn_many == learn_one on real
frames, pipelines and unions, bad input."""

from __future__ import annotations

import copy
import math
import pickle

import numpy as np
import pandas as pd
import polars as pl
import pytest
from river import compose, linear_model, preprocessing
from sklearn.metrics import adjusted_rand_score, homogeneity_score

from onlinenmf.datasets import make_poisson_stream
from onlinenmf.river import NMFTransformer


@pytest.fixture(scope="module")
def planted():
    """One planted community per sample: a clustering with a known answer."""
    return make_poisson_stream(n_features=120, n_components=4, n_samples=600, depth=500,
                               active=1, taxa_per_community=20, seed=3)


def _dicts(stream, start=0, stop=None):
    X = stream.X[start:stop]
    for i in range(X.shape[0]):
        row = X.getrow(i)
        yield {stream.features[j]: float(v) for j, v in zip(row.indices, row.data)}


def test_predict_one_is_the_argmax_of_transform_one(planted):
    nmf = NMFTransformer(n_components=4, refresh_every=20, seed=0)
    assert nmf.predict_one({"taxon_000": 1.0}) == nmf.engine.component_ids[0]  # all 0: first
    for x in _dicts(planted, 0, 400):
        nmf.learn_one(x)
    for x in _dicts(planted, 400):
        h = nmf.transform_one(x)
        assert sorted(h) == sorted(nmf.engine.component_ids)
        assert all(type(v) is float and v >= 0 for v in h.values())
        assert h[nmf.predict_one(x)] == max(h.values())


def test_predict_one_recovers_planted_communities(planted):
    """NMF as clustering: with k = 6 > the 4 planted communities a community may be split
    over two components, but no component (cluster) mixes two communities."""
    nmf = NMFTransformer(n_components=6, refresh_every=20, seed=0)
    for x in _dicts(planted, 0, 400):
        nmf.learn_one(x)
    truth = planted.H_true[400:].argmax(axis=1)
    predicted = [nmf.predict_one(x) for x in _dicts(planted, 400)]
    assert homogeneity_score(truth, predicted) > 0.95
    assert adjusted_rand_score(truth, predicted) > 0.8


def test_transform_one_is_read_only(planted):
    nmf = NMFTransformer(n_components=4, refresh_every=20, seed=0)
    samples = list(_dicts(planted, 0, 60))
    for x in samples[:40]:
        nmf.learn_one(x)
    before = pickle.dumps(nmf)
    for x in samples[40:]:
        nmf.transform_one({**x, "never_seen": 5.0})
        nmf.predict_one(x)
    assert pickle.dumps(nmf) == before


def _batches(stream):
    """Batches whose column sets change; the first crosses a refresh (refresh_every=20)."""
    columns = list(stream.features)
    dense = stream.X[:90].toarray()
    cuts = [(0, 33, columns[:70]), (33, 40, columns), (40, 75, columns[50:]),
            (75, 90, columns[::-1])]
    for start, stop, cols in cuts:
        index = [stream.features.index(c) for c in cols]
        yield pd.DataFrame(dense[start:stop][:, index], columns=cols)


@pytest.mark.parametrize("beta", [0, 1, 2])
@pytest.mark.parametrize("backend", ["pandas", "polars"])
def test_learn_many_equals_a_learn_one_loop(planted, beta, backend):
    one = NMFTransformer(n_components=3, beta=beta, refresh_every=20, seed=5)
    many = one.clone()
    for frame in _batches(planted):
        for row in frame.to_dict(orient="records"):
            one.learn_one(row)
        many.learn_many(frame if backend == "pandas" else pl.from_pandas(frame))
    assert many.engine.samples_learned == one.engine.samples_learned == 90
    assert many.engine.model_version == one.engine.model_version == 4
    assert many.engine.features == one.engine.features
    np.testing.assert_allclose(many.engine.W, one.engine.W, rtol=1e-7, atol=1e-12)
    for x in _dicts(planted, 90, 110):
        a, b = one.transform_one(x), many.transform_one(x)
        assert a.keys() == b.keys()
        assert all(math.isclose(a[k], b[k], rel_tol=1e-6, abs_tol=1e-9) for k in a)


@pytest.mark.parametrize("backend", ["pandas", "polars"])
def test_transform_many_returns_the_input_kind(planted, backend):
    nmf = NMFTransformer(n_components=3, refresh_every=20, seed=5)
    frames = list(_batches(planted))
    for frame in frames:
        nmf.learn_many(frame)
    frame = frames[-1].set_axis(range(100, 115))
    X = frame if backend == "pandas" else pl.from_pandas(frame)
    out = nmf.transform_many(X)
    assert type(out) is type(X) and out.shape == (15, 3)
    if backend == "pandas":
        assert list(out.columns) == nmf.engine.component_ids
        assert list(out.index) == list(range(100, 115))
    else:
        assert out.columns == [str(c) for c in nmf.engine.component_ids]
    rows = frame.to_dict(orient="records")
    expected = np.array([[nmf.transform_one(r)[c] for c in nmf.engine.component_ids]
                         for r in rows])
    np.testing.assert_allclose(np.asarray(out.to_numpy()), expected, rtol=1e-6, atol=1e-9)


def test_pipeline_selector_nmf_classifier(planted):
    labels = planted.H_true.argmax(axis=1) == 0
    selector = compose.Discard("taxon_000")
    model = (selector | NMFTransformer(n_components=6, refresh_every=20, seed=0)
             | preprocessing.StandardScaler() | linear_model.LogisticRegression())
    correct = 0
    for i, x in enumerate(_dicts(planted, 0, 400)):
        correct += i >= 200 and model.predict_one(x) == labels[i]
        model.learn_one(x, labels[i])
    nmf = model["NMFTransformer"]
    assert nmf.engine.samples_learned == 400  # the pipeline trained the step in place
    assert "taxon_000" not in nmf.engine.features
    assert correct / 200 > 0.9 > 1 - labels[200:400].mean()  # better than "never community 0"
    x = next(_dicts(planted, 400, 401))
    assert model.transform_one(x) == model["StandardScaler"].transform_one(
        nmf.transform_one(selector.transform_one(x)))
    fresh = model.clone()
    assert fresh["NMFTransformer"].engine.samples_learned == 0
    assert repr(fresh) == repr(model)


def test_union_deep_copies_and_prefixer_keeps_keys_apart(planted):
    nmf = NMFTransformer(n_components=3, refresh_every=20, seed=0)
    other = NMFTransformer(n_components=2, beta=2, refresh_every=20, seed=1)
    union = (nmf | compose.Prefixer("kl_")) + (other | compose.Prefixer("fro_"))
    samples = list(_dicts(planted, 0, 50))
    for x in samples:
        union.learn_one(x)
    assert nmf.engine.samples_learned == 0  # TransformerUnion learns on its own copies
    out = union.transform_one(samples[0])
    assert sorted(out) == ["fro_0", "fro_1", "kl_0", "kl_1", "kl_2"]
    # Without prefixes the int component ids of two NMFs would collide: say so in a test.
    bare = NMFTransformer(n_components=3, seed=0) + NMFTransformer(n_components=2, seed=1)
    assert sorted(bare.transform_one(samples[0])) == [0, 1, 2]
    twin = copy.deepcopy(union)
    assert twin.transform_one(samples[1]) == union.transform_one(samples[1])


def test_sparse_pandas_columns_are_accepted(planted):
    frame = next(_batches(planted))
    dense, sparse = NMFTransformer(n_components=3, seed=0), NMFTransformer(n_components=3, seed=0)
    dense.learn_many(frame)
    sparse.learn_many(frame.astype(pd.SparseDtype(float, 0.0)))
    assert dense.engine == sparse.engine


def test_union_learn_many(planted):
    union = NMFTransformer(n_components=3, refresh_every=20, seed=0) + compose.Select("taxon_001")
    frame = next(_batches(planted))
    union.learn_many(frame)
    out = union.transform_many(frame)
    assert set(out.columns) == {0, 1, 2, "taxon_001"}


@pytest.mark.parametrize("bad, message", [
    ({"a": 1.0, "b": -2.0}, "feature 'b': value -2.0 is negative"),
    ({"a": float("nan")}, "feature 'a': value is NaN"),
    ({"a": "12"}, "feature 'a'"),
    ({("a", "b"): 1.0}, "feature names must be str or int"),
])
def test_bad_input_raises_and_leaves_no_trace(planted, bad, message):
    nmf = NMFTransformer(n_components=3, refresh_every=20, seed=0)
    for x in _dicts(planted, 0, 30):
        nmf.learn_one(x)
    before = pickle.dumps(nmf)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        nmf.learn_one(bad)
    with pytest.raises(ValueError):
        nmf.learn_many(pd.DataFrame([bad]))
    assert pickle.dumps(nmf) == before


def test_empty_sample_is_an_all_zero_sample():
    a, b = NMFTransformer(n_components=2, seed=0), NMFTransformer(n_components=2, seed=0)
    for model in (a, b):
        model.learn_one({"x": 3.0, "y": 1.0})
    assert a.transform_one({}) == {0: 0.0, 1: 0.0}
    a.learn_one({})
    b.learn_one({"x": 0.0})
    assert a.engine.samples_learned == b.engine.samples_learned == 2
    assert a.transform_one({"x": 1.0, "y": 1.0}) == b.transform_one({"x": 1.0, "y": 1.0})


def test_key_order_does_not_change_a_single_bit(planted):
    a, b = NMFTransformer(n_components=3, refresh_every=10, seed=0), NMFTransformer(
        n_components=3, refresh_every=10, seed=0)
    rng = np.random.default_rng(0)
    for x in _dicts(planted, 0, 60):
        a.learn_one(x)
        keys = list(x)
        rng.shuffle(keys)
        b.learn_one({k: x[k] for k in keys})
    assert a.engine == b.engine


def test_params_stored_verbatim_and_validated():
    nmf = NMFTransformer(n_components=4, beta=2, l1_h=0.5, seed=None)
    assert nmf._get_params()["seed"] is None and nmf.l1_h == 0.5
    assert nmf.clone(new_params={"n_components": 6}).engine.n_components == 6
    with pytest.raises(ValueError, match="forget_factor"):
        NMFTransformer(forget_factor=1.5)
    assert "positive input" in nmf._tags


def test_every_engine_parameter_is_exposed_with_the_same_default():
    import inspect

    from onlinenmf import OnlineNMF as Engine

    ours = inspect.signature(NMFTransformer).parameters
    theirs = inspect.signature(Engine).parameters
    assert set(ours) == set(theirs)
    assert all(ours[name].default == theirs[name].default for name in ours if name != "seed")
    assert ours["seed"].default is None  # river's convention; the engine's is 0


def test_learn_many_equals_learn_one_across_reseeded_components():
    """Re-seeding retires a component id and births a new one: the batch path must do the same
    at the same sample, and the outputs must carry the new id."""
    from river import datasets

    rows = [x for x, _ in datasets.TrumpApproval().take(1000)]
    # refresh_every=40: the loss alarm judges windows of at least 20 samples (issue 13), which
    # on this stream re-seed at this interval (at 10 they did with the old 10-sample windows);
    # forget_factor: the default before issue 13 (one memory, as when this test was written)
    one = NMFTransformer(n_components=3, refresh_every=40, forget_factor=0.998, seed=7)
    many = one.clone()
    for x in rows:
        one.learn_one(x)
    for start in range(0, len(rows), 37):
        many.learn_many(pd.DataFrame(rows[start:start + 37]))
    births = [e for e in one.engine.events if e["kind"] == "birth"]
    assert births, "this stream is meant to trigger re-seeding"
    assert many.engine.events == one.engine.events
    assert many.engine.component_ids == one.engine.component_ids != [0, 1, 2]
    a, b = one.transform_one(rows[-1]), many.transform_one(rows[-1])
    assert list(a) == one.engine.component_ids and a.keys() == b.keys()
    assert all(math.isclose(a[k], b[k], rel_tol=1e-6, abs_tol=1e-9) for k in a)


def test_scalers_before_the_model(planted):
    """A centring scaler makes negative values, which NMF refuses by name; MinMaxScaler keeps
    the values in [0, 1] and works."""
    samples = list(_dicts(planted, 0, 40))
    ok = preprocessing.MinMaxScaler() | NMFTransformer(n_components=3, refresh_every=10, seed=0)
    for x in samples:
        ok.learn_one(x)
    assert ok["NMFTransformer"].engine.samples_learned == 40
    bad = preprocessing.StandardScaler() | NMFTransformer(n_components=3, seed=0)
    bad.learn_one(samples[0])  # the first sample is centred to all zeros
    with pytest.raises(ValueError, match="is negative; NMF needs non-negative data"):
        for x in samples[1:]:
            bad.learn_one(x)


def test_ecam_pipelines_example_runs():
    """The script behind the README's ECAM numbers, on its first 120 samples, without LDA."""
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).parents[1] / "examples" / "ecam_river_pipelines.py"
    spec = importlib.util.spec_from_file_location("ecam_river_pipelines", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    tables = example.main(k=4, n_samples=120, with_lda=False)
    results = tables["results"]
    for task in example.TASKS:
        rows = results[results["task"] == task]
        assert list(rows["model"]) == ["no features (prior / mean)", "OnlineNMF(k=4), counts",
                                       "OnlineNMF(k=4), log1p", "OnlineNMF(k=4), presence"]
    days = results[results["task"].str.startswith("day of life")]
    assert days["evaluation: MAE"].notna().all() and len(days) == 8
    grid = tables["grid"]  # every setting of the grid was scored on the tuning half
    assert len(grid) == len(example.TASKS) * (1 + 3 * len(example.GRIDS["OnlineNMF"]))
