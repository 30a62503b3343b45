"""Recommender event streams: MovieTweetings 100K and UCI Online Retail (bundled), MovieLens 100K
(read from a copy the user supplies: its terms forbid redistribution).

Every loader returns a pandas DataFrame of events in time order with columns ``user`` (int64),
``item`` (str), ``value`` (float64) and ``time`` (int64 Unix seconds), plus item names when the
source has them.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ._table import data_path

MOVIELENS_ENV = "ONLINENMF_MOVIELENS"


def _events(path: Path | str, **read_kw) -> pd.DataFrame:
    df = pd.read_csv(path, sep="\t", dtype={"item": str}, **read_kw)
    df = df.rename(columns={"timestamp": "time"})
    df = df.astype({"user": np.int64, "value": np.float64, "time": np.int64})
    # The files are already sorted by (time, user, ...); a stable sort only guards that.
    return df.sort_values("time", kind="stable", ignore_index=True)


def _items(name: str) -> pd.DataFrame:
    return pd.read_csv(
        data_path(name, "items.tsv.gz"), sep="\t", dtype=str, keep_default_na=False
    ).set_index("item")


def load_movietweetings() -> pd.DataFrame:
    """MovieTweetings 100K (Dooms et al. 2013): 100,000 explicit 0-10 movie ratings from tweets.

    16,554 users and 10,506 movies, 2013-02-28 to 2013-09-01, in time order (ties by user,
    then item). MIT licence (``data/movietweetings/LICENSE``).

    Returns
    -------
    pandas.DataFrame
        Columns ``user`` (int64), ``item`` (str: the 7-digit IMDb number; prepend ``tt`` for
        an IMDb URL), ``value`` (float64 rating 0-10), ``time`` (int64 Unix seconds, UTC),
        ``title`` (str, with year) and ``genres`` (str, ``|``-separated).

    Examples
    --------
    >>> from onlinenmf.datasets import load_movietweetings
    >>> df = load_movietweetings()
    >>> df.shape, list(df.columns)
    ((100000, 6), ['user', 'item', 'value', 'time', 'title', 'genres'])
    >>> bool(df["time"].is_monotonic_increasing), float(df["value"].max())
    (True, 10.0)
    """
    df = _events(data_path("movietweetings", "ratings.tsv.gz"))
    items = _items("movietweetings")
    df["title"] = df["item"].map(items["title"])
    df["genres"] = df["item"].map(items["genres"])
    return df


def load_online_retail() -> pd.DataFrame:
    """UCI Online Retail (Chen et al. 2012): 386,326 purchase events, implicit feedback.

    4,334 customers and 3,659 products of a UK gift-ware retailer, 2010-12-01 to 2011-12-09,
    one event per (customer, product, invoice), in time order; cancellations dropped, not
    netted (so a few huge orders that were later cancelled remain: use log1p or binarise).
    Credit: "Online Retail" by Daqing Chen, UCI Machine Learning Repository (id 352), CC BY 4.0.

    Returns
    -------
    pandas.DataFrame
        Columns ``user`` (int64 customer id), ``item`` (str stock code, e.g. ``85123A``),
        ``value`` (float64 units bought, >= 1), ``time`` (int64 seconds: UK wall-clock
        invoice time encoded as if UTC; one basket shares a time) and ``description`` (str).

    Examples
    --------
    >>> from onlinenmf.datasets import load_online_retail
    >>> df = load_online_retail()
    >>> df.shape, df["user"].nunique(), df["item"].nunique()
    ((386326, 5), 4334, 3659)
    >>> bool((df["value"] >= 1).all())
    True
    """
    df = _events(data_path("online_retail", "ratings.tsv.gz"))
    df["description"] = df["item"].map(_items("online_retail")["description"])
    return df


def _movielens_file(path: str | os.PathLike | None) -> Path:
    if path is None:
        path = os.environ.get(MOVIELENS_ENV)
    if path is None:
        raise FileNotFoundError(
            "MovieLens 100K is not bundled (its terms forbid redistribution). Download ml-100k "
            "from https://grouplens.org/datasets/movielens/100k/ and call "
            f"load_movielens('path/to/ml-100k/u.data'), or set {MOVIELENS_ENV} to that path."
        )
    p = Path(path)
    if p.is_dir():
        p = p / "u.data"
    if not p.is_file():
        raise FileNotFoundError(
            f"MovieLens 100K ratings not found at {p} (expected the u.data file of ml-100k, "
            "or the folder holding it)"
        )
    return p


def load_movielens(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """MovieLens 100K ratings from a copy the user supplies (never bundled).

    Parameters
    ----------
    path : str or path-like, optional
        The ``u.data`` file of ml-100k, or the folder holding it. Default: the environment
        variable ``ONLINENMF_MOVIELENS``.

    Returns
    -------
    pandas.DataFrame
        Columns ``user`` (int64), ``item`` (str), ``value`` (float64 rating 1-5), ``time``
        (int64 Unix seconds), in time order (ties by user, then item), and ``title`` when
        ``u.item`` lies beside ``u.data``.

    Raises
    ------
    FileNotFoundError
        No path given and ``ONLINENMF_MOVIELENS`` unset, or no ``u.data`` at the path.

    Examples
    --------
    >>> import os, tempfile
    >>> from onlinenmf.datasets import load_movielens
    >>> folder = tempfile.mkdtemp()
    >>> with open(os.path.join(folder, "u.data"), "w") as f:
    ...     _ = f.write("196\\t242\\t3\\t881250949\\n186\\t302\\t3\\t891717742\\n")
    >>> df = load_movielens(folder)
    >>> df[["user", "item", "value", "time"]].values.tolist()[0]
    [196, '242', 3.0, 881250949]
    >>> load_movielens(os.path.join(folder, "missing"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    FileNotFoundError: MovieLens 100K ratings not found at ...
    """
    file = _movielens_file(path)
    df = pd.read_csv(
        file, sep="\t", header=None, names=["user", "item", "value", "time"], dtype={"item": str}
    )
    df = df.astype({"user": np.int64, "value": np.float64, "time": np.int64})
    df["_item_num"] = pd.to_numeric(df["item"], errors="coerce")
    df = df.sort_values(["time", "user", "_item_num"], kind="stable", ignore_index=True)
    df = df.drop(columns="_item_num")
    items = file.with_name("u.item")
    if items.is_file():
        # u.item is Latin-1, '|'-separated: id|title|release date|video date|url|19 genre flags
        names = pd.read_csv(
            items, sep="|", header=None, encoding="latin-1", usecols=[0, 1], dtype=str
        )
        df["title"] = df["item"].map(dict(zip(names[0], names[1], strict=True)))
    return df
