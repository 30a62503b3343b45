"""Fit a history on a Dask cluster: batch NMF passes over partitions, then stream on.

The statistics the engine keeps are sums over samples. So one pass over a data set is a
map-reduce: each partition solves h for its rows against the broadcast dictionary W and
returns its statistics (:meth:`onlinenmf.OnlineNMF.batch_statistics`); the client sums them
in a tree (in partition order, so the result does not depend on the number of workers or on
which worker ran what) and refreshes W with the divergence's own refresh step
(:meth:`onlinenmf.OnlineNMF.refresh_from`). The result is an ordinary
:class:`~onlinenmf.OnlineNMF`: its features, component ids and statistics are those of the
fit, and it keeps learning per sample (``learn_one``), or starts a live consumer
(``onlinenmf consume microbiome --init-from model.npz``).

Before the first pass, :func:`onlinenmf.distributed.sources.survey` reads each partition once
on the workers: the union of the features (taxa seen only in some files get rows once, up
front) and the rows that seed the first dictionary (``buffer_size`` rows picked by a hash of
(seed, row id), the same whatever the partitioning). A fresh model learns those rows as a
stream (its recent samples), then starts from scikit-learn's NNDSVDa dictionary, computed
from sums over the partitions (:mod:`onlinenmf.distributed.start`; ``start="stream"`` keeps
the stream's first dictionary built from the seeding rows instead); a model passed in keeps
its W.

Each pass equals the single-process batch step on the same data (same W to rounding: the
sums only change order). Per pass, the re-estimation a model was built with
(``adapt_rank``: ARD relevance from the summed usage, pruning; ``adapt_sparsity``) runs as
after any refresh, so a cluster fit can start at a generous k and settle. Births too: each
partition also returns its ``WORST_SAMPLES`` rows of largest relative loss, the client keeps
the worst over all partitions, and once the passes have settled (the loss fell by less
than ``SETTLED`` in a pass) their positive residuals seed a new component if they have
structure, by the streaming engine's own rule (:meth:`onlinenmf.hyper.Reestimator.birth`),
at most every ``BIRTH_COOLDOWN`` passes. (The streaming trigger, a window loss rising above
its floor, never fires on a history: a batch pass's loss only falls.) So a fit started
below the true rank grows to it (the seeding rows are learned at the start rank: the rank
moves in the passes only). Re-seeding uses the model's recent samples (the seeding
rows).

The same code runs on a :class:`distributed.LocalCluster` (tests, one machine) and on any
Dask cluster (``Client("tcp://scheduler:8786")``, dask-jobqueue, Kubernetes): the workers
need onlinenmf installed and, for files, the same paths.

Examples
--------
>>> import dask.array as da
>>> import numpy as np
>>> from onlinenmf import distributed
>>> rng = np.random.default_rng(0)
>>> X = da.from_array(rng.poisson(3.0, size=(400, 30)).astype(float), chunks=(100, 30))
>>> model = distributed.fit(X, {"n_components": 3, "beta": 1, "seed": 0}, passes=5)
>>> model.W.shape, len(model.features)
((30, 3), 30)
>>> h = model.learn_one({0: 4.0, 7: 1.0})   # and it keeps learning, per sample
"""

from __future__ import annotations

import contextlib
import functools
import logging
import operator
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from onlinenmf.distributed import start as _start
from onlinenmf.distributed.sources import Block, first_rows, partitions, survey
from onlinenmf.engine import PARAMETERS, OnlineNMF
from onlinenmf.hyper import BIRTH_COOLDOWN
from onlinenmf.learner import WORST_SAMPLES
from onlinenmf.statistics import BatchSums

__all__ = ["PassReport", "PassSums", "fit", "pass_statistics"]

log = logging.getLogger("onlinenmf.distributed")

#: Partial sums combined per task of the tree.
SPLIT_EVERY = 8
#: Rows of a partition solved at a time: a task's temporary arrays (the rows mapped onto the
#: model's features, int64 indices, h) grow with them, not with the partition. Measured on
#: 25,000-row partitions of 94 non-zeros a row: solved whole, a task's peak was about 50 MiB
#: above the partition it reads.
SOLVE_ROWS = 4096
#: The first dictionaries a fresh fit can start from (see :func:`fit`).
STARTS = ("nndsvda", "stream")
#: Births (under ``adapt_rank``) wait until a pass lowered the loss by less than this share:
#: before, the passes are still fitting the rank there is, and the worst rows' residuals
#: show what is not fitted yet rather than what is missing.
SETTLED = 0.01
#: ... and a new component must lower the summed loss of the pass's worst rows by at least
#: this share. The streaming trigger (a loss rising above its floor) does not exist on a
#: history, and the worst rows' residuals look alike (the structure test) even where the
#: model fits the data: measured on planted Poisson data, a column from such residuals cuts
#: their loss by 5-13 % where every community is fitted, by 52-86 % where one is missing.
BIRTH_GAIN = 0.3


class PassSums(NamedTuple):
    """What the partitions of a pass return, summed: the statistics, and the pass's worst
    rows, ``(rows, values, relative loss)`` worst first (at most ``WORST_SAMPLES``; on a
    tie, the earlier partition first, so the same on any number of workers)."""

    sums: BatchSums
    worst: list

    def __add__(self, other: PassSums) -> PassSums:
        worst = sorted(self.worst + other.worst, key=lambda row: -row[2])[:WORST_SAMPLES]
        return PassSums(self.sums + other.sums, worst)


class PassReport(NamedTuple):
    """One pass, as ``progress`` receives it: the loss is that of the W the pass started
    from (h solved exactly), summed over ``samples`` and per sample."""

    number: int
    passes: int
    samples: int
    loss: float
    seconds: float
    n_components: int

    @property
    def mean_loss(self) -> float:
        return self.loss / max(self.samples, 1)

    def __str__(self) -> str:
        return (f"pass {self.number}/{self.passes}: {self.samples} samples, loss per sample "
                f"{self.mean_loss:.6g}, k={self.n_components}, {self.seconds:.1f} s")


def fit(data: Any, model_or_params: OnlineNMF | Mapping[str, Any], passes: int = 10,
        client: Any = None, *, features: Sequence | None = None, start: str = "nndsvda",
        progress: Callable[[PassReport], None] | None = None) -> OnlineNMF:
    """Fit a model to ``data`` by ``passes`` batch passes on Dask; return the model.

    Parameters
    ----------
    data
        A Dask array (samples x features), a Dask DataFrame (columns = features), or a list
        of table files (TSV/CSV, BIOM, Parquet; see :mod:`onlinenmf.distributed.sources`).
    model_or_params
        The keyword arguments of a new :class:`~onlinenmf.OnlineNMF`, or a model to continue
        (a copy is fitted; the one passed in is left as it is).
    passes
        Batch passes over the data.
    client
        A :class:`distributed.Client`; ``None``: the current one if there is, else Dask's
        local threads.
    features
        Names of a Dask array's columns (default: the column numbers).
    start
        The first dictionary of a fresh model (a model that has learned already keeps its
        W): ``"nndsvda"`` (default), scikit-learn's NNDSVDa start from the top singular
        vectors of the whole data, computed on the cluster by cheap map-reduce passes
        (:mod:`onlinenmf.distributed.start`); ``"stream"``, the model's own first dictionary
        (its ``init``) from the seeding rows, as a live stream builds it. Either way the
        model learns the seeding rows first (they are its recent samples, which re-seeding
        and births draw on), at the start rank: under ``adapt_rank`` the rank moves in the
        passes only, by their pruning and births. On ECAM, 30 passes end at 1.013 x the loss
        of scikit-learn's 500 MU iterations from NNDSVDa, 1.053 x from the stream's start;
        on data of nearly pure, well separated communities (the tests' planted data) the
        stream's start, made of such samples, can be the better one.
    progress
        Called after each pass with its :class:`PassReport` (default: logged at INFO).

    Raises
    ------
    ValueError
        Bad parameters, data of the wrong kind, a partition with unusable values (the message
        names it), no samples. A file that cannot be read is a
        :class:`onlinenmf.datasets.TableError` (a ValueError).
    """
    if not isinstance(passes, int) or passes < 1:
        raise ValueError(f"passes must be a positive integer, got {passes!r}")
    if start not in STARTS:
        raise ValueError(f"start must be one of {', '.join(STARTS)}, got {start!r}")
    model = _starting_model(model_or_params)
    source = partitions(data, features)
    client = client if client is not None else _current_client()
    fresh = model.samples_learned == 0
    if fresh or source.features is None:
        found = _survey(source, model, fresh, client)
        names = source.features if source.features is not None else found[0]
        count, seeds = found[1], found[2]
    else:
        names, count, seeds = source.features, None, None
    if count == 0:
        raise ValueError("the data hold no samples")
    model.add_features(names)
    if fresh:  # the first W from the seeding rows, as a stream would build it
        with _rank_held(model):
            model.learn_many(seeds, features=list(names))
            model.refresh()
        if start == "nndsvda":
            _install(model, _start.nndsvda(functools.partial(partition_total, source, model,
                                                             client=client),
                                           len(model.component_ids), model.n_features,
                                           model.seed))
    born, previous = -BIRTH_COOLDOWN, None  # the pass of the last birth, the last loss
    for number in range(1, passes + 1):
        began = time.perf_counter()
        found = _pass(source, model, client)
        sums = found.sums
        report = PassReport(number, passes, sums.count, sums.loss, 0.0, len(model.component_ids))
        model.refresh_from(sums)
        if (number - born >= BIRTH_COOLDOWN and _settled(previous, sums.loss)
                and _birth(model, found.worst, number)):
            born = number
        previous = sums.loss
        report = report._replace(seconds=time.perf_counter() - began)
        (progress or _log)(report)
    return model


def pass_statistics(source: Any, model: OnlineNMF, client: Any = None) -> BatchSums:
    """The statistics of every partition of ``source`` (a
    :class:`~onlinenmf.distributed.sources.Source`, or data as :func:`fit` takes it) under
    the model's W, summed in a tree: one pass without the refresh."""
    if not hasattr(source, "partitions"):
        source = partitions(source)
    return _pass(source, model, client).sums


def _pass(source: Any, model: OnlineNMF, client: Any) -> PassSums:
    from dask import delayed

    reference, release = _broadcast(model, client)
    try:
        parts = [delayed(_partition_sums)(reference, block) for block in source.partitions]
        return _compute(_tree_sum(parts), client)
    finally:
        release()


def partition_total(source: Any, model: OnlineNMF, function: Callable, argument: Any,
                    client: Any = None) -> Any:
    """The sum over the partitions of ``function(X_p, argument)``, X_p a partition's matrix
    over the model's features (CSR, columns in the order of ``model.features``), summed in a
    tree in partition order on the cluster."""
    from dask import delayed

    reference, release = _broadcast(model, client)
    try:
        parts = [delayed(_partition_apply)(reference, block, function, argument)
                 for block in source.partitions]
        return _compute(_tree_sum(parts), client)
    finally:
        release()


# ---------------------------------------------------------------------- on the workers
def _partition_apply(model: OnlineNMF, block: Block, function: Callable, argument: Any) -> Any:
    return function(model._matrix_rows(block.matrix, block.features, register=False), argument)


def _partition_sums(model: OnlineNMF, block: Block) -> PassSums:
    """A partition's statistics (as :meth:`OnlineNMF.batch_statistics`) and worst rows,
    ``SOLVE_ROWS`` rows at a time."""
    count = block.matrix.shape[0]
    return _sum([_rows_sums(model, block, start, min(start + SOLVE_ROWS, count))
                 for start in range(0, max(count, 1), SOLVE_ROWS)])


def _rows_sums(model: OnlineNMF, block: Block, start: int, stop: int) -> PassSums:
    try:
        matrix = model._matrix_rows(block.matrix[start:stop], block.features, register=False)
    except ValueError as err:  # a user's bad value: say where it is
        where = block.origin if start == 0 else f"{block.origin} (from its row {start} on)"
        raise ValueError(f"{where}: {err}") from None
    indptr, indices = matrix.indptr.astype(np.int64), matrix.indices.astype(np.int64)
    sums, relative = model._learner.batch_sums(indptr, indices, matrix.data, per_row=True)
    worst = np.argsort(-relative, kind="stable")[:WORST_SAMPLES]
    return PassSums(sums, [(indices[indptr[i] : indptr[i + 1]].copy(),
                            matrix.data[indptr[i] : indptr[i + 1]].copy(), float(relative[i]))
                           for i in worst])


def _sum(parts: list) -> Any:
    return functools.reduce(operator.add, parts)


def _tree_sum(parts: list) -> Any:
    """Sum delayed partial sums in a tree of ``SPLIT_EVERY``-way tasks, in partition order
    (the same order, hence the same rounding, on any number of workers)."""
    from dask import delayed

    while len(parts) > 1:
        parts = [delayed(_sum)(parts[i : i + SPLIT_EVERY])
                 for i in range(0, len(parts), SPLIT_EVERY)]
    return parts[0]


# ---------------------------------------------------------------------- the client side
def _starting_model(model_or_params: OnlineNMF | Mapping[str, Any]) -> OnlineNMF:
    if isinstance(model_or_params, OnlineNMF):
        return OnlineNMF.from_bytes(model_or_params.to_bytes())  # a copy (peers left out)
    if isinstance(model_or_params, Mapping):
        unknown = sorted(set(model_or_params) - set(PARAMETERS))
        if unknown:
            raise ValueError(f"unknown model parameter {unknown[0]!r}; OnlineNMF takes "
                             f"{', '.join(PARAMETERS)}")
        return OnlineNMF(**model_or_params)
    raise ValueError(f"model_or_params must be an OnlineNMF or a mapping of its parameters, "
                     f"got {type(model_or_params).__name__}")


def _survey(source, model: OnlineNMF, fresh: bool, client) -> tuple[list, int, Any]:
    """(union of the features, number of samples, the seeding rows over that union)."""
    from dask import delayed

    names = source.features is None
    wanted = model.buffer_size if fresh else 0
    found = _compute([delayed(survey)(block, model.seed, wanted, names)
                      for block in source.partitions], client)
    features = source.features
    if features is None:  # files: in order of first appearance
        features = list(dict.fromkeys(name for s in found for name in s.features))
    return features, sum(s.count for s in found), first_rows(found, features, wanted)


def _settled(previous: float | None, loss: float) -> bool:
    """Whether the last pass lowered the loss by less than ``SETTLED`` (of the previous)."""
    return previous is not None and previous - loss < SETTLED * abs(previous)


def _birth(model: OnlineNMF, worst: list, number: int) -> bool:
    """Under ``adapt_rank``, a new component from the residuals of the pass's worst rows
    against the refreshed W, by the streaming rule (structure, k_max), if it lowers their
    loss by ``BIRTH_GAIN`` (tried on a copy first); whether one was born."""
    if not model.adapt_rank or model._hyper is None:
        return False
    seed = model._learner.residual_seed(worst)
    trial = OnlineNMF.from_bytes(model.to_bytes())
    if not trial._hyper.birth(seed, "trial", "rows"):
        return False  # no seed, or residuals without structure
    gain = 1.0 - _rows_loss(trial, worst) / max(_rows_loss(model, worst), 1e-300)
    if gain < BIRTH_GAIN:
        return False
    model._hyper.birth(seed, f"pass {number}: the loss settled, the worst rows' loss "
                             f"{gain:.0%} lower with it,", "rows of the pass")
    model.model_version += 1
    return True


def _rows_loss(model: OnlineNMF, rows: list) -> float:
    """The summed loss of ``(rows, values, _)`` triples, each solved against the model's W."""
    indptr = np.concatenate([[0], np.cumsum([r.size for r, _, _ in rows])]).astype(np.int64)
    indices = np.concatenate([r for r, _, _ in rows]).astype(np.int64)
    values = np.concatenate([v for _, v, _ in rows])
    model._statistics.recompute_caches()
    H = np.zeros((len(rows), len(model.component_ids)))
    return float(model._learner.solve(indptr, indices, values, H).sum())


@contextlib.contextmanager
def _rank_held(model: OnlineNMF):
    """Learn the seeding rows at the start rank, as a model without ``adapt_rank`` would:
    a young model's streaming rank rules (its births without a loss step overshoot at first,
    :mod:`onlinenmf.hyper`) would set the rank before the passes, whose per-pass pruning and
    births judge the whole data set. The ARD penalties then follow the relevance seen so far."""
    adapt_rank = model.adapt_rank
    model.adapt_rank = False
    try:
        yield
    finally:
        model.adapt_rank = adapt_rank
        if adapt_rank and model._hyper is not None:
            model._hyper.update_penalties()


def _install(model: OnlineNMF, W) -> None:
    """Make ``W`` (features x components, columns summing to 1) the dictionary of a model
    whose statistics are about to be replaced (the first pass's ``refresh_from``)."""
    statistics = model._statistics
    statistics.W[: statistics.m] = W
    statistics.recompute_caches()


def _current_client() -> Any:
    try:
        from distributed import default_client
    except ImportError:
        return None
    try:
        return default_client()
    except ValueError:  # no client: Dask's local scheduler
        return None


def _broadcast(model: OnlineNMF, client) -> tuple[Any, Callable[[], None]]:
    """A reference to the model that tasks can take: scattered to every worker once, or (no
    client) one key of the graph."""
    if client is None:
        from dask import delayed

        return delayed(model, name=f"onlinenmf-model-{uuid.uuid4().hex}", traverse=False), \
            lambda: None
    future = client.scatter(model, broadcast=True, hash=False)
    return future, future.release


def _compute(graph: Any, client) -> Any:
    if client is None:
        import dask

        return dask.compute(graph)[0]
    return client.compute(graph, sync=True)


def _log(report: PassReport) -> None:
    log.info("%s", report)
