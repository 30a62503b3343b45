"""Text streams: the State of the Union addresses, 1790-2026, in paragraph chunks (bundled).

The loader returns a pandas DataFrame of documents in time order with columns ``date``
(``datetime64``), ``doc_id`` (str) and ``text`` (str), the form ``onlinenmf produce text
--table`` reads and :class:`onlinenmf.text.TopicStream` learns from.
"""

from __future__ import annotations

import pandas as pd

from ._table import data_path

#: The bundled file (xz-compressed TSV: date, doc_id, text), for tools that read a path
#: (``onlinenmf produce text --table``).
STATE_OF_THE_UNION = data_path("state_of_the_union", "sotu_chunks.tsv.xz")


def load_state_of_the_union() -> pd.DataFrame:
    """The 237 State of the Union addresses, 1790-2026, as 17,098 paragraph chunks.

    Chunks of at least 50 words within one address, in time order (every chunk of an address
    shares its date), transcribed by the UCSB American Presidency Project; public domain
    (``data/state_of_the_union/SOURCE.md``).

    Examples
    --------
    >>> from onlinenmf.datasets import load_state_of_the_union
    >>> docs = load_state_of_the_union()
    >>> len(docs), str(docs["date"].iloc[0].date()), str(docs["date"].iloc[-1].date())
    (17098, '1790-01-08', '2026-02-24')
    """
    frame = pd.read_csv(STATE_OF_THE_UNION, sep="\t",
                        dtype={"doc_id": str, "text": str}, keep_default_na=False,
                        quoting=3)
    frame["date"] = pd.to_datetime(frame["date"])
    return frame
