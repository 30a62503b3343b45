"""The per-sample path's shortcuts (issue 11: per-sample speed back to the pre-redesign level)
give what the plain code they replace gave: the cached solver settings follow every change of
their inputs, and the sample check accepts, rejects and returns exactly what the reference check
(the code before the shortcuts) does, without a warning."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onlinenmf import OnlineNMF
from onlinenmf.datasets import make_poisson_stream
from onlinenmf.divergences import Solver
from onlinenmf.validation import MAX_SAMPLE_SUM, parse_sample

STREAM = make_poisson_stream(n_features=40, n_components=3, n_samples=400, seed=3,
                             taxa_per_community=8)


def sample(i: int) -> dict:
    row = STREAM.X[i]
    return {STREAM.features[c]: float(v) for c, v in zip(row.indices, row.data)}


def fitted(**params) -> OnlineNMF:
    model = OnlineNMF(n_components=3, beta=1, seed=0, refresh_every=50, **params)
    for i in range(300):
        model.learn_one(sample(i))
    return model


def built_now(model: OnlineNMF) -> Solver:
    """The solver settings as built from scratch from the model's current parameters."""
    return Solver(model._components.l1, float(model.l2_h), int(model.max_iter),
                  float(model.tol))


def test_solver_built_once_while_its_inputs_stay():
    learner = fitted()._learner
    assert learner.solver() is learner.solver()


@pytest.mark.parametrize("name, value, field", [("tol", 0.05, "tol"), ("max_iter", 1, "max_iter"),
                                                ("l2_h", 50.0, "l2")])
def test_a_setting_changed_between_samples_reaches_the_solve(name, value, field):
    model = fitted()
    x = sample(350)
    before = model.transform_one(x)  # the cached solver is in use
    setattr(model, name, value)
    solver = model._learner.solver()
    assert getattr(solver, field) == value
    assert solver == built_now(model)
    after = model.transform_one(x)
    assert after != before
    reference = fitted()
    reference._learner._solver = None  # no cache: built from the new value
    setattr(reference, name, value)
    assert reference.transform_one(x) == after
    model.learn_one(x)
    reference.learn_one(x)
    np.testing.assert_array_equal(model.W, reference.W)


def test_solver_follows_the_l1_weights_hyper_re_estimation_replaces():
    model = OnlineNMF(n_components=3, beta=1, seed=0, refresh_every=50, adapt_sparsity=True,
                      l1_h=0.3)
    seen = set()
    for i in range(400):
        model.learn_one(sample(i))
        solver = model._learner.solver()
        assert solver.l1 is model._components.l1
        assert solver == built_now(model)
        seen.add(tuple(solver.l1))
    assert len(seen) > 1  # the weights did change while learning
    assert any(event["kind"] == "l1_h" for event in model.events)


# ----------------------------------------------------------------- the sample check
def reference_parse(x: dict):
    """parse_sample's checks before the shortcuts (at commit 026aa19): the outcome, the values
    or the error message."""
    values = np.array(list(x.values()))
    if values.dtype.kind not in "biuf" or values.ndim != 1:
        return "object"
    values = values.astype(np.float64, copy=False)
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        return "bad value"
    with np.errstate(over="ignore"):
        total = float(values.sum())
    if total > MAX_SAMPLE_SUM:
        return "sum"
    return values


NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=1e140, max_value=1.7e308),
    st.sampled_from([0.0, -0.0, 1.0, 1e150, 1e300, 1.7976931348623157e308, -1e-300]),
    st.integers(min_value=-(2**62), max_value=2**62),
    st.booleans(),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(NUMBERS, min_size=1, max_size=40))
def test_sample_check_decides_as_the_reference_and_never_warns(numbers):
    x = {f"f{i}": value for i, value in enumerate(numbers)}
    expected = reference_parse(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            names, values = parse_sample(x)
        except ValueError as err:
            message = str(err)
            if expected == "sum":
                assert message.startswith("the sum of the sample's values")
            else:
                assert expected == "bad value" and message.startswith("feature ")
            return
    assert not isinstance(expected, str), f"accepted a sample the reference rejects: {expected}"
    assert names == list(x)
    assert values.dtype == np.float64
    np.testing.assert_array_equal(values, expected)
    assert np.signbit(values).tolist() == np.signbit(expected).tolist()


@pytest.mark.parametrize("size, each, accepted", [
    (2, 1e308, False),             # the sum overflows float64
    (20, 1e299, False),            # no overflow, but above the limit (the errstate branch)
    (19, MAX_SAMPLE_SUM / 20, True),
    (21, MAX_SAMPLE_SUM / 20, False),
])
def test_sample_sums_near_the_limits(size, each, accepted):
    x = {i: each for i in range(size)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        if accepted:
            assert parse_sample(x)[1].sum() <= MAX_SAMPLE_SUM
        else:
            with pytest.raises(ValueError, match="the sum of the sample's values"):
                parse_sample(x)


def test_sample_rows_drop_zeros_and_unknown_features_in_row_order():
    model = fitted()
    rows_of = model._feature_index.index
    names = list(rows_of)[:6]
    x = {names[4]: 2.0, names[1]: 0.0, names[0]: 1.5, names[3]: -0.0, names[5]: 7.0}
    rows, values = model._feature_index.sample_rows(x, on_new=None)
    kept = sorted((rows_of[n], v) for n, v in x.items() if v > 0)
    assert rows.tolist() == [r for r, _ in kept] and values.tolist() == [v for _, v in kept]
    rows, values = model._feature_index.sample_rows({**x, "unseen": 3.0}, on_new=None)
    assert rows.tolist() == [r for r, _ in kept] and values.tolist() == [v for _, v in kept]


# ----------------------------------------------------------------- new features' rows
def reference_initial_rows(seed: int, names: list, colsum: np.ndarray, m: int) -> np.ndarray:
    """initial_rows before the compiled draws (at commit 79a4d8e): a Generator per name."""
    import hashlib

    k = colsum.size
    level = colsum / m if m else np.ones(k)
    level = np.where(level > 0, level, 1.0 / max(m, 1))
    rows = np.empty((len(names), k))
    for i, name in enumerate(names):
        key = f"{seed}|{type(name).__name__}|{name}".encode()
        entropy = int.from_bytes(hashlib.blake2b(key, digest_size=16).digest(), "little")
        rows[i] = np.random.default_rng(entropy).uniform(0.5, 1.5, k)
    return rows * level


def test_compiled_draws_are_numpys_bit_for_bit():
    """SeedSequence + PCG64 + uniform, compiled, against NumPy's Generator: random entropies
    and ones whose high 32-bit words are zero (SeedSequence then sees fewer words)."""
    from onlinenmf.features import _uniform_rows, reference_draws

    rng = np.random.default_rng(5)
    words = np.frombuffer(rng.bytes(16 * 2000), "<u4").reshape(-1, 4).copy()
    words[:300, 3] = 0
    words[:100, 2:] = 0
    words[:30, 1:] = 0
    words[:3] = [[0, 0, 0, 0], [1, 0, 0, 0], [2**32 - 1] * 4]
    for k in (1, 2, 10, 33):
        np.testing.assert_array_equal(_uniform_rows(words.ravel(), k),
                                      reference_draws(words.ravel(), k))


@pytest.mark.parametrize("m", [0, 1, 3347])
def test_initial_rows_as_before(m):
    from onlinenmf.features import initial_rows

    names = ["a", "b", 7, -(10**15), "t" * 100]
    for colsum in (np.array([2.0, 0.0, np.nan, 1e-300, 5e3]), np.zeros(5), np.arange(1.0, 11.0)):
        np.testing.assert_array_equal(initial_rows(3, names, colsum, m),
                                      reference_initial_rows(3, names, colsum, m))


# ----------------------------------------------------------------- a sample as dictionary rows
def reference_rows(index, x: dict):
    """sample_rows for known features before the compiled pass (at commit 79a4d8e)."""
    names, values = parse_sample(x)
    rows = np.array([index.index[name] for name in names], dtype=np.int64)
    keep = values > 0
    rows, values = rows[keep], values[keep]
    order = rows.argsort()
    return rows[order], values[order]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 499), st.one_of(
    st.floats(min_value=0, max_value=1e6), st.integers(0, 10**6), st.just(0.0), st.just(-0.0))),
    min_size=1, max_size=150, unique_by=lambda pair: pair[0]))
def test_sample_rows_as_the_reference(pairs):
    """Short samples (insertion sort) and long ones (argsort), zeros, ints, any key order."""
    from onlinenmf.features import FeatureIndex

    index = FeatureIndex()
    index.add(index.new_names([f"f{i}" for i in range(500)]))
    x = {f"f{i}": value for i, value in pairs}
    rows, values = index.sample_rows(x, on_new=None)
    expected_rows, expected_values = reference_rows(index, x)
    assert rows.tolist() == expected_rows.tolist()
    assert values.dtype == np.float64 and values.tolist() == expected_values.tolist()


@pytest.mark.parametrize("bad, message", [
    (-1.0, "feature 'b': value -1.0 is negative"), (np.nan, "feature 'b': value is NaN"),
    (np.inf, "feature 'b': value inf is infinite"), ("3", "feature 'b': value '3' is a string"),
    (1e300, "the sum of the sample's values is 1e+300"),
])
def test_a_bad_value_among_known_features_is_named_and_learns_nothing(bad, message):
    model = fitted()
    known = model.features[:3]
    x = {known[0]: 1.0, "b": bad, known[2]: 2.0}
    model.add_features(["b"])
    before = model.to_bytes()
    with pytest.raises(ValueError) as error:
        model.learn_one(x)
    assert str(error.value).startswith(message)
    assert model.to_bytes() == before


@pytest.mark.parametrize("size", [1, 64, 65, 400])
def test_sample_rows_as_the_reference_on_either_side_of_the_insertion_sort(size):
    from onlinenmf.features import INSERTION_SORTED, FeatureIndex

    assert INSERTION_SORTED == 64
    rng = np.random.default_rng(size)
    index = FeatureIndex()
    index.add(index.new_names([f"f{i}" for i in range(500)]))
    values = rng.exponential(size=size + 5)
    values[:5] = 0.0  # dropped: size non-zero entries remain
    x = {f"f{i}": float(v) for i, v in zip(rng.permutation(500), rng.permutation(values))}
    rows, kept = index.sample_rows(x, on_new=None)
    expected_rows, expected_values = reference_rows(index, x)
    assert rows.size == size
    assert rows.tolist() == expected_rows.tolist() and kept.tolist() == expected_values.tolist()


def test_unseen_names_in_a_dict_are_registered_as_by_the_general_path():
    """A dict takes the compiled path (registering its unseen names between the check and
    the ordering); any other mapping the general one: same rows, values and features."""
    from types import MappingProxyType

    from onlinenmf.features import FeatureIndex

    rng = np.random.default_rng(2)
    dicts = [{f"f{i}": float(rng.integers(0, 3)) for i in rng.choice(60, 12, replace=False)}
             for _ in range(40)]
    for d in dicts[::3]:
        d[int(rng.integers(1000))] = 1.0  # an int name too
    fast, general = FeatureIndex(), FeatureIndex()

    def register(index):
        return lambda names: index.add(index.new_names(names))

    for d in dicts:
        a = fast.sample_rows(d, register(fast))
        b = general.sample_rows(MappingProxyType(d), register(general))
        assert a[0].tolist() == b[0].tolist() and a[1].tolist() == b[1].tolist()
        assert fast.names == general.names
    seen = FeatureIndex()
    seen.add(seen.new_names(["a"]))
    rows, values = seen.sample_rows({"zz": 2.0, "a": 1.0}, on_new=None)  # not registered
    assert rows.tolist() == [0] and values.tolist() == [1.0] and seen.names == ["a"]


# ----------------------------------------------------------------- both memories in one call
@pytest.mark.parametrize("beta", [0, 1, 2, 1.5])
def test_both_memories_in_one_call_as_two(beta):
    """solve.learn_sample_twice gives what the served learn_sample, the shadow's warm_h and
    its learn_sample gave one after the other (the code before), bit for bit."""
    model = OnlineNMF(n_components=3, beta=beta, seed=0)  # forget_factor None: two memories
    for i in range(80):
        model.learn_one(sample(i))
    rows, values = model._feature_index.sample_rows(sample(90), on_new=None)
    results = []
    for fused in (False, True):
        copy = OnlineNMF.from_bytes(model.to_bytes())
        learner = copy._learner
        stats, memories, divergence = learner.statistics, learner.memories, learner.divergence
        solver = learner.solver()
        scale = stats.scale * learner.rho
        h = np.zeros(3)
        if fused:
            mine = np.empty(3)
            losses = learner._learn_twice(rows, values, h, mine, solver, scale, False)
        else:
            loss, norm = divergence.learn_sample(stats, rows, values, h, solver, 1.0 / scale,
                                                 learner.rho, False)
            shadow, rho = memories.shadow, memories.shadow_rho
            mine = divergence.warm_h(h, values, shadow.colsum)
            losses = (loss, norm, *divergence.learn_sample(
                shadow, rows, values, mine, solver, 1.0 / (shadow.scale * rho), rho, True))
        arrays = [h, mine, *(getattr(held, name) for held in (stats, memories.shadow)
                             for name in ("B", "D", "A", "usage", "window_usage"))]
        results.append((losses, arrays))
    assert results[0][0] == results[1][0]
    for before, after in zip(results[0][1], results[1][1]):
        np.testing.assert_array_equal(before, after)


# ----------------------------------------------------------------- new features in one call
@pytest.mark.parametrize("forget_factor", [None, 0.9])  # two memories (a twin), one
def test_new_features_rows_in_one_call_as_initial_rows_then_add_rows(forget_factor):
    """Statistics.add_initial_rows (one compiled call) writes what initial_rows then
    add_rows wrote, bit for bit, in both memories: one and several new names a sample, and
    past the arrays' growth (where the engine takes add_rows)."""
    rng = np.random.default_rng(4)
    stream = [{f"t{i}": float(rng.integers(0, 4)) for i in rng.choice(300, 15, replace=False)}
              for _ in range(60)]
    models = [OnlineNMF(n_components=3, beta=1, seed=2, forget_factor=forget_factor)
              for _ in range(2)]
    models[1]._rows_start_at_zero = False  # the code before: initial_rows, add_rows
    for x in stream:
        for model in models:
            model.learn_one(x)
    fast, before = models
    assert fast.features == before.features and len(fast.features) > 100
    for a, b in zip((fast._statistics, fast._statistics.twin),
                    (before._statistics, before._statistics.twin)):
        if a is None:
            assert b is None
            continue
        assert a.m == b.m
        for name in ("W", "B", "colsum", "usage"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


# ----------------------------------------------------------------- open samples in the same call
def open_state(model: OnlineNMF) -> list:
    """Everything both memories keep of the samples learned: statistics, open samples, lazy
    scales, scores."""
    learner = model._learner
    out = [learner.memories.scores.copy(), learner.memories.weight]
    for stats in (learner.statistics, learner.memories.shadow):
        recent = stats.recent
        n = recent.count
        out += [stats.W[: stats.m].copy(), stats.B[: stats.m].copy(), stats.usage.copy(),
                stats.window_usage.copy(), stats.scale, stats.n_eff, stats.lost, n,
                recent.indptr[: n + 1].copy(), recent.rows[: recent.indptr[n]].copy(),
                recent.values[: recent.indptr[n]].copy(), recent.H[:n].copy(),
                recent.logs[:n].copy()]
    return out


@pytest.mark.parametrize("refresh_every", [None, 40])  # 40: more samples than the buffer holds
def test_open_samples_in_the_compiled_call_as_appended(refresh_every):
    """Learner._learn_and_open (both memories' appends inside the compiled call,
    solve.learn_kl_twice_open) keeps what learn_twice then Statistics.remember and
    Memories.learned_one kept (the code before), bit for bit, after every sample: opened,
    arrays grown (no room), and not kept (as many open as the buffer holds)."""
    models = [OnlineNMF(n_components=3, beta=1, seed=0, buffer_size=16,
                        refresh_every=refresh_every) for _ in range(2)]
    models[0]._learner._opens = False  # the path before: appends by Statistics.remember
    assert models[1]._learner._opens
    full = 0
    for i in range(120):
        h = [model.learn_one(sample(i)) for model in models]
        assert h[0] == h[1]
        for before, after in zip(*(open_state(model) for model in models), strict=True):
            np.testing.assert_array_equal(before, after)
        full += models[1]._learner.statistics.lost
    assert full > 0 or refresh_every is None


def test_learn_kl_twice_open_writes_as_append_or_says_why_not():
    """The compiled call opens the sample as OpenSamples.append does, or writes nothing and
    says whether the open samples were full or their arrays had no room."""
    from onlinenmf import solve
    from onlinenmf.statistics import OpenSamples

    model = OnlineNMF(n_components=3, beta=1, seed=0)
    for i in range(60):
        model.learn_one(sample(i))
    rows, values = model._feature_index.sample_rows(sample(70), on_new=None)
    stats, shadow = model._learner.statistics, model._learner.memories.shadow
    assert rows.size > 1
    for open_count, filler, expected in [(1, 1, solve.OPENED), (3, 1, solve.OPEN_FULL),
                                         (1, 63, solve.OPEN_NO_ROOM)]:  # room: 64 entries
        stores = [OpenSamples(3, 3), OpenSamples(3, 3), OpenSamples(3, 3)]
        for store in stores:
            for _ in range(open_count):
                store.append(np.arange(filler), np.ones(filler), np.ones(3), -1.0)
        h, mine = np.zeros(3), np.empty(3)
        results = solve.learn_kl_twice_open(
            stats.W.copy(), rows, values, stats.colsum, h, *model._learner.solver(), 0.5,
            stats.B.copy(), stats.usage.copy(), stats.window_usage.copy(), 0.9, False,
            shadow.W.copy(), shadow.colsum, mine, 0.25, shadow.B.copy(), shadow.usage.copy(),
            shadow.window_usage.copy(), 0.99, *(getattr(stores[0], name) for name in (
                "rows", "values", "H", "logs", "indptr", "count")), -2.0,
            *(getattr(stores[1], name) for name in ("rows", "values", "H", "logs", "indptr",
                                                    "count")), -3.0)
        assert results[4:] == (expected, expected)
        if expected == solve.OPENED:
            stores[0].count += 1
            stores[1].count += 1
            appended = stores[2].append(rows, values, h, -2.0)
            assert appended
            np.testing.assert_array_equal(stores[1].H[1], mine)
            assert stores[1].logs[1] == -3.0
        for name in ("rows", "values", "indptr"):
            np.testing.assert_array_equal(getattr(stores[0], name), getattr(stores[2], name))
        np.testing.assert_array_equal(stores[0].H[: open_count + 1], stores[2].H[: open_count + 1])
        np.testing.assert_array_equal(stores[0].logs, stores[2].logs)
