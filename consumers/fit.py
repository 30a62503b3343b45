"""Fit a model to a history of table files on a Dask cluster, for a live consumer to start from.

``onlinenmf fit --table FILE [FILE ...] --components K --beta B --passes P
[--scheduler local:N | tcp://HOST:PORT] [--seed S] [--start nndsvda | stream | MODEL.npz]
[--config fit.toml] --out model.npz``

Dask is imported only when the command runs (it is the optional extra ``distributed``).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HELP = """\
Fit a model to a history of table files on a Dask cluster: each pass solves every sample
against the current dictionary on the workers, sums their statistics and refreshes the
dictionary. The result is a model snapshot that learns on per sample, and that a live
consumer starts from: onlinenmf consume microbiome --init-from model.npz ...

Tables: TSV/CSV (samples as rows, or features as rows under a '#OTU ID' header), BIOM
(JSON; HDF5 with h5py), Parquet (samples as rows, one column per feature, the sample ids
as the index or one text column; a partition per row group). Each file is a partition,
read on a worker; files may hold different taxa (their union gets rows up front). The
workers need the same paths.

--scheduler: 'local' (a worker process per core on this machine), 'local:N' (N worker
processes), or the address of a running Dask scheduler (tcp://HOST:PORT).

--start: the first dictionary. 'nndsvda' (default): scikit-learn's NNDSVDa start from the
top singular vectors of the whole history, computed on the cluster (on ECAM, 30 passes end
at 1.013x the loss of scikit-learn's batch NMF); 'stream': the dictionary a live stream
builds from its first rows (cheaper: no extra passes); or the path of a saved model
(model.npz, e.g. an earlier fit or a consumer's snapshot): the passes continue from its W,
features and parameters (--components, --beta, --seed and [model] are then refused).

--config FILE (TOML) sets the same and more: [model] takes any OnlineNMF parameter by its
name (n_components, beta, forget_factor, refresh_every, adapt_rank, ...), [fit] takes
table, passes, scheduler, out. Flags given on the command line win.

Needs Dask: pip install 'onlinenmf[distributed]'.

examples:
  onlinenmf fit --table year1.biom year2.biom --components 10 --beta 1 --passes 30 \\
      --scheduler local:2 --out model.npz
  onlinenmf fit --config fit.toml --scheduler tcp://scheduler:8786
  onlinenmf fit --table year2.biom --start model.npz --passes 10 --out model2.npz
  onlinenmf consume microbiome --init-from model.npz --bootstrap-servers 127.0.0.1:9092

Exit status: 0 done; 2 a bad option, config, table or scheduler (one line on stderr).
"""

#: Keys of the config file's [fit] section, and the flags that set the same.
FIT_KEYS = ("table", "passes", "scheduler", "start", "out")
#: Model parameters that have a flag of their own.
MODEL_FLAGS = {"components": "n_components", "beta": "beta", "seed": "seed"}
DEFAULT_PASSES = 10
EXIT_USAGE = 2


class UsageError(ValueError):
    """A bad option, config file or scheduler address: one line for the user."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``onlinenmf fit``."""
    parser.add_argument("--table", nargs="+", type=Path, metavar="FILE",
                        help="table files of the history (TSV, CSV, BIOM, Parquet)")
    parser.add_argument("--components", type=int, help="rank k (default: 10)")
    parser.add_argument("--beta", type=float, help="beta-divergence (default: 1, KL: counts)")
    parser.add_argument("--passes", type=int, help=f"passes over the data (default: "
                        f"{DEFAULT_PASSES})")
    parser.add_argument("--scheduler", help="local, local:N or tcp://HOST:PORT "
                        "(default: local, a worker per core)")
    parser.add_argument("--seed", type=int, help="seed of the model (default: 0)")
    parser.add_argument("--start", metavar="nndsvda|stream|MODEL.npz",
                        help="the first dictionary: nndsvda (default), stream, or a saved "
                             "model to continue")
    parser.add_argument("--config", type=Path, help="TOML file: [model] and [fit] sections")
    parser.add_argument("--out", type=Path, help="where the model snapshot goes (.npz)")


def settings(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """(model parameters, fit settings) from the config file and the flags (flags win)."""
    from onlinenmf.distributed import STARTS

    model: dict[str, Any] = {}
    run: dict[str, Any] = {"passes": DEFAULT_PASSES, "scheduler": "local",
                           "start": STARTS[0]}
    if args.config is not None:
        file_model, file_run = read_config(args.config)
        model.update(file_model)
        run.update(file_run)
    for flag, name in MODEL_FLAGS.items():
        if getattr(args, flag) is not None:
            model[name] = getattr(args, flag)
    for key in FIT_KEYS:
        if getattr(args, key) is not None:
            run[key] = getattr(args, key)
    if not run.get("table"):
        raise UsageError("no table: give --table FILE [FILE ...] (or table = [...] in [fit])")
    if not run.get("out"):
        raise UsageError("no output: give --out model.npz (or out = ... in [fit])")
    run["table"] = [Path(p) for p in (run["table"] if isinstance(run["table"], list)
                                      else [run["table"]])]
    if str(run["start"]) not in STARTS and model:
        raise UsageError(f"--start {run['start']}: a saved model brings its own parameters; "
                         f"leave out {', '.join(_given(args, model))}")
    return model, run


def _given(args: argparse.Namespace, model: dict[str, Any]) -> list[str]:
    """How the user set model parameters: the flags, and [model] for the rest."""
    flags = [f"--{flag}" for flag in MODEL_FLAGS if getattr(args, flag) is not None]
    return flags + (["[model]"] if set(model) - set(MODEL_FLAGS.values()) or not flags
                    else [])


def starting_point(start: str, params: dict[str, Any]) -> tuple[Any, str]:
    """(what :func:`onlinenmf.distributed.fit` starts from, its ``start``): the model
    parameters and ``start`` itself for nndsvda or stream, else the saved model at the path
    ``start`` (a UsageError if it is neither)."""
    from onlinenmf.distributed import STARTS
    from onlinenmf.engine import OnlineNMF

    if start in STARTS:
        OnlineNMF(**params)  # bad parameters: before a cluster starts
        return params, start
    path = Path(start)
    if not path.is_file():
        raise UsageError(f"--start {start}: expected {' or '.join(STARTS)}, or the path of a "
                         "saved model (.npz), and there is no such file")
    try:
        return OnlineNMF.load(path), STARTS[0]
    except ValueError as err:  # SnapshotError: truncated, corrupted, another kind of model
        raise UsageError(f"--start {start}: not a usable model snapshot ({err})") from None


def read_config(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The [model] and [fit] sections of a TOML file (read by :func:`consumers.config.read_config`,
    the loader ``onlinenmf consume --config`` uses too); anything else is a UsageError."""
    import inspect

    from consumers.config import ConfigError
    from consumers.config import read_config as read
    from onlinenmf.engine import OnlineNMF

    try:
        doc = read(path, {"model": tuple(inspect.signature(OnlineNMF).parameters),
                          "fit": FIT_KEYS})
    except ConfigError as err:
        raise UsageError(str(err)) from None
    return dict(doc.get("model", {})), dict(doc.get("fit", {}))


@contextmanager
def connect(scheduler: str) -> Iterator[Any]:
    """A Dask client for ``local``, ``local:N`` or a scheduler address; closed afterwards."""
    from distributed import Client, LocalCluster

    if scheduler == "local" or scheduler.startswith("local:"):
        count = scheduler.partition(":")[2]
        if count and (not count.isdigit() or int(count) < 1):
            raise UsageError(f"--scheduler {scheduler}: write local:N with N a positive "
                             "number of worker processes")
        workers = int(count) if count else (os.cpu_count() or 1)
        # the workers' logs stay quiet: a failed task comes back to the client, which says
        # what was wrong in one line
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                          dashboard_address=":0", silence_logs=logging.CRITICAL) as cluster, \
                Client(cluster) as client:
            yield client
        return
    if "://" not in scheduler:
        raise UsageError(f"--scheduler {scheduler}: expected local, local:N or "
                         "tcp://HOST:PORT")
    try:
        client = Client(scheduler, timeout="20s")
    except (OSError, ValueError) as err:
        raise UsageError(f"--scheduler {scheduler}: no Dask scheduler answered ({err})") \
            from None
    with client:
        yield client


def run(args: argparse.Namespace) -> int:
    """Fit, write the snapshot, report one line per pass on stderr."""
    try:
        model_params, run_settings = settings(args)
        import distributed  # noqa: F401  (the optional extra)
    except UsageError as err:
        return _fail(str(err))
    except ImportError:
        return _fail("needs Dask: pip install 'onlinenmf[distributed]'")
    from onlinenmf.distributed import fit
    from onlinenmf.distributed.sources import partitions

    logging.getLogger("distributed").setLevel(logging.ERROR)
    params = {"n_components": 10, "beta": 1.0, **model_params}
    tables = [str(p) for p in run_settings["table"]]
    out = Path(run_settings["out"])
    try:  # bad parameters, start or files: before a cluster starts
        begin, start = starting_point(str(run_settings["start"]), params)
        partitions(tables)
        with connect(str(run_settings["scheduler"])) as client:
            model = fit(tables, begin, passes=run_settings["passes"], client=client,
                        start=start,
                        progress=lambda report: print(report, file=sys.stderr, flush=True))
        model.save(out)
    except (ValueError, OSError) as err:  # UsageError, TableError, bad values, unwritable
        return _fail(str(err))
    print(f"wrote {out}: {len(model.component_ids)} components over {model.n_features} "
          f"features, {run_settings['passes']} passes")
    return 0


def _fail(message: str) -> int:
    lines = message.strip().splitlines()
    print(f"onlinenmf fit: {lines[0] if lines else 'failed'}", file=sys.stderr)
    return EXIT_USAGE
