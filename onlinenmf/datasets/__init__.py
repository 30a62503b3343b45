"""Bundled real data sets and synthetic generators for onlinenmf.

Real data (compressed inside the package, each folder with its ``SOURCE.md``, ``CHANGES.md``
and licence; see ``README.md`` here):

- :func:`load_ecam`, :func:`load_artificial_gut`, :func:`load_moving_pictures`:
  longitudinal 16S tables as a :class:`MicrobiomeTable`, rows in time order;
- :func:`load_movietweetings`, :func:`load_online_retail`: recommender event streams
  (DataFrame ``user, item, value, time, ...`` in time order); :func:`load_movielens` reads a
  MovieLens 100K copy the user supplies;
- :func:`load_table` reads a user's own counts table and sample metadata (TSV, BIOM) into
  the same :class:`MicrobiomeTable`; :func:`read_taxonomy` a taxonomy file;
- :func:`load_state_of_the_union`: 17,098 paragraph chunks of the State of the Union
  addresses, 1790-2026 (DataFrame ``date, doc_id, text`` in time order), for text streams;
- :func:`load_swimmer` and :func:`swimmer_parts` (bundled), :func:`load_cbcl` (never bundled).

Synthetic (numpy only, deterministic by seed): :func:`make_poisson_stream`,
:func:`make_longitudinal_stream`.

Examples
--------
>>> from onlinenmf.datasets import load_ecam
>>> t = load_ecam()
>>> x = t.sample(0)                     # {ASV id: reads}, the form learn_one takes
>>> t.taxon_name(max(x, key=x.get), unique=False)  # most abundant taxon, first sample
'f__Enterobacteriaceae'
"""

from ._table import MicrobiomeTable, short_taxon, unique_names
from .files import TableError, load_table, read_taxonomy
from .images import ImageSet, load_cbcl, load_swimmer, swimmer_parts
from .microbiome import load_artificial_gut, load_ecam, load_moving_pictures
from .reco import load_movielens, load_movietweetings, load_online_retail
from .synthetic import (
    LongitudinalStream,
    PoissonStream,
    make_longitudinal_stream,
    make_poisson_stream,
)
from .text import load_state_of_the_union

__all__ = [
    "load_state_of_the_union",
    "ImageSet",
    "LongitudinalStream",
    "MicrobiomeTable",
    "PoissonStream",
    "TableError",
    "load_artificial_gut",
    "load_cbcl",
    "load_ecam",
    "load_movielens",
    "load_movietweetings",
    "load_moving_pictures",
    "load_online_retail",
    "load_swimmer",
    "load_table",
    "make_longitudinal_stream",
    "make_poisson_stream",
    "read_taxonomy",
    "short_taxon",
    "swimmer_parts",
    "unique_names",
]
