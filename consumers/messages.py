"""Wire pieces every stream kind shares: dead-letter reasons, limits, JSON checks, times.

Each kind declares its own input schema (:mod:`consumers.microbiome.schema`,
:mod:`consumers.reco.schema`) and decodes through :func:`decode_json`, which does the checks
every input topic shares; a message it refuses becomes a :class:`BadMessage` with a short
``kind`` that goes into the dead-letter headers:

=====================  ============================================================
kind                   meaning
=====================  ============================================================
``oversize``           the payload is larger than the configured limit, or its
                       ``meta`` larger than the half of it an output record can carry;
                       (by the consumer loop) its output record could not be sent
``not_json``           the payload is not JSON (or not UTF-8)
``truncated``          the JSON ends early (a cut record)
``schema``             a field is missing, unknown, or of the wrong type; an id
                       too long; JSON nested deeper than :data:`MAX_DEPTH` levels
``bad_count``          a count is negative, NaN, infinite or out of range
``empty_counts``       ``counts`` is empty or sums to zero
``too_many_features``  more taxa than the configured limit
``bad_time``           ``time`` is not a finite number nor an ISO-8601 date
``rejected``           the engine refused the sample (its ValueError message), e.g.
                       counts summing above 1e150, beyond what its float64 arithmetic
                       can square (rescale them)
``bad_value``          a rating event's value is NaN, infinite or out of range (reco)
=====================  ============================================================

A dead letter carries the original key and value, unless the record would exceed what the
producer may send (``--max-message-bytes``, its ``max_request_size``): then they are cut to
fit, and the headers ``onlinenmf-dlt-truncated`` / ``onlinenmf-dlt-key-truncated`` give the
original lengths (:func:`consumers.loop.dead_letter_record`).

>>> try:
...     parse_time("next tuesday")
... except BadMessage as err:
...     print(err.kind, "|", err)
bad_time | time 'next tuesday' is not an ISO-8601 date
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
import numpy as np

__all__ = [
    "KINDS",
    "BadMessage",
    "SourceRef",
    "DEFAULT_MAX_BYTES",
    "MAX_DEPTH",
    "MAX_ID_CHARS",
    "decode_json",
    "json_depth",
    "parse_time",
]

#: The largest record the consumer reads or writes (input values; output and dead-letter
#: records through the producer's ``max_request_size``): ``--max-message-bytes``.
DEFAULT_MAX_BYTES = 1_048_576
#: Deepest JSON nesting (arrays and objects) accepted in an input message. msgspec (when
#: it decodes a message, and when it encodes the output record that carries ``meta`` one
#: level deeper) and the standard library's json (naming a culprit) recurse once per
#: level and raise RecursionError near Python's recursion limit (1000 by default, minus
#: the frames of the consumer that calls them). 64 keeps an order of magnitude clear of
#: that, and the output records stay readable by parsers with stricter defaults (Ruby's
#: JSON: 100, serde_json: 128); no sample needs more than a few levels (the document,
#: ``counts``, a structured ``meta``).
MAX_DEPTH = 64
#: Longest ``subject`` / ``sample_id`` (also the reco consumer's ``user`` / ``item``).
MAX_ID_CHARS = 256

KINDS = (
    "oversize", "not_json", "truncated", "schema", "bad_count", "empty_counts",
    "too_many_features", "bad_time", "rejected", "bad_value",
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class BadMessage(ValueError):
    """A message that cannot become a sample; ``kind`` is one of :data:`KINDS`."""

    def __init__(self, kind: str, message: str) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown dead-letter kind {kind!r}")
        super().__init__(message)
        self.kind = kind


class SourceRef(msgspec.Struct):
    """Input coordinates of the record an output record was made from (every kind's
    output records carry one as ``source``)."""

    topic: str
    partition: int
    offset: int


def parse_time(value: float | str, unit_seconds: float = 86400.0) -> float:
    """A time as a float: numbers pass through (already in the stream's unit), ISO-8601
    strings become units (days by default) since 1970-01-01 UTC.

    >>> parse_time(12), parse_time("1970-01-03"), parse_time("1970-01-01T12:00:00+00:00")
    (12.0, 2.0, 0.5)
    >>> parse_time("1970-01-02", unit_seconds=1.0)
    86400.0
    """
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            raise BadMessage("bad_time", f"time {value!r} is not an ISO-8601 date") from None
        if when.tzinfo is None:  # naive times are read as UTC, so replays are reproducible
            when = when.replace(tzinfo=UTC)
        return (when - _EPOCH).total_seconds() / unit_seconds
    number = float(value)
    if not math.isfinite(number):
        raise BadMessage("bad_time", f"time {value!r} is not finite")
    return number


# A JSON string: from a quote to the next unescaped quote, or to the end of the payload
# when it never closes (a parser stops there anyway). Every quote outside a string starts
# a match that cannot fail, so a scan is linear whatever the bytes (a pattern that could
# fail would rescan from each later quote: quadratic on '"\\"\\"...').
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")


def json_depth(payload: bytes) -> int:
    """How deep arrays and objects nest in a JSON text, without parsing it (no recursion):
    strings are cut out, the brackets left are counted. Past a syntax error the count may
    be too high, never too low where a parser would still be reading.

    >>> json_depth(b'{"a": [1, {"b": "]]]"}]}'), json_depth(b"[" * 5000), json_depth(b"7")
    (3, 5000, 0)
    """
    codes = np.frombuffer(_JSON_STRING.sub(b"", payload).translate(None, _NOT_BRACKET),
                          dtype=np.uint8)
    if codes.size == 0:
        return 0
    steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1)
    return int(max(np.cumsum(steps).max(), 0))


def _too_deep(payload: bytes) -> int:
    """:func:`json_depth` if it exceeds :data:`MAX_DEPTH`, else 0. Cheap for the usual
    message: with few brackets anywhere (strings included), it cannot nest deeper."""
    if payload.count(b"[") + payload.count(b"{") <= MAX_DEPTH:
        return 0
    depth = json_depth(payload)
    return depth if depth > MAX_DEPTH else 0


def decode_json(payload: bytes | None, decoder: msgspec.json.Decoder, max_bytes: int,
                diagnose: Callable[[bytes, msgspec.DecodeError], BadMessage]) -> Any:
    """The checks every input topic shares: a value (not a tombstone), at most ``max_bytes``,
    nested at most :data:`MAX_DEPTH` deep, decodable by the schema's ``decoder``; a refusal
    becomes ``diagnose``'s BadMessage."""
    if payload is None:
        raise BadMessage("schema", "the message has no value (tombstone)")
    if len(payload) > max_bytes:
        raise BadMessage("oversize", f"message of {len(payload)} bytes exceeds {max_bytes}")
    depth = _too_deep(payload)
    if depth:
        raise BadMessage("schema", f"JSON nested {depth} levels deep; at most {MAX_DEPTH} "
                                   "are accepted")
    try:
        return decoder.decode(payload)
    except msgspec.DecodeError as err:
        raise diagnose(payload, err) from None
