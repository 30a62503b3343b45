"""Message schemas of the microbiome topics, their validation, and dead-letter reasons.

Input (topic ``microbiome.samples``, key = subject id), JSON::

    {"subject": "C001", "time": 36 | "2012-04-20T00:00:00Z", "sample_id": "10249.C001.02SS",
     "counts": {"<taxon>": 519, ...}, "meta": {...}}

``time`` is a number of days, or an ISO-8601 date/time (converted to days since
1970-01-01 UTC). ``meta`` is optional and carried through untouched into the output
record, so it may use at most half of ``max_bytes`` (the largest record the consumer
reads or writes): the other half is kept for the record's own fields. ``subject`` and
``sample_id`` have at most :data:`MAX_ID_CHARS` characters (they are repeated in output
records, keys and events, and kept per subject). JSON nested deeper than
:data:`MAX_DEPTH` levels is refused before any parser recurses into it. Unknown fields
are refused so that a misspelt field name is an error, not silently ignored.

The schema is declared once, as a msgspec ``Struct``; msgspec does the checking. When
it refuses a message, :func:`decode_sample` re-reads the payload only to name the
culprit (which taxon, which value) in a :class:`BadMessage` with a short ``kind`` that
goes into the dead-letter headers:

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

>>> s = decode_sample(b'{"subject": "C001", "time": 36, "sample_id": "s1", "counts": {"a": 3}}')
>>> s.subject, s.time, s.counts
('C001', 36.0, {'a': 3.0})
>>> try:
...     decode_sample(b'{"subject": "C001", "time": 36, "sample_id": "s1", "counts": {"a": -3}}')
... except BadMessage as err:
...     print(err.kind, "|", err)
bad_count | count of taxon 'a' is negative (-3)
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
import numpy as np

__all__ = [
    "KINDS",
    "BadMessage",
    "SampleMessage",
    "Sample",
    "decode_sample",
    "encode_sample",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_FEATURES",
    "MAX_DEPTH",
    "MAX_ID_CHARS",
    "json_depth",
]

#: The largest record the consumer reads or writes (input values; output and dead-letter
#: records through the producer's ``max_request_size``): ``--max-message-bytes``.
DEFAULT_MAX_BYTES = 1_048_576
DEFAULT_MAX_FEATURES = 50_000
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

# A count is a finite float >= 0. msgspec refuses NaN/Infinity tokens (not JSON) and
# numbers beyond the float range on its own; the upper bound keeps +inf out as well.
Count = Annotated[float, msgspec.Meta(ge=0.0, le=sys.float_info.max)]
NonEmptyStr = Annotated[str, msgspec.Meta(min_length=1)]
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_CHARS)]


class SampleMessage(msgspec.Struct, forbid_unknown_fields=True):
    """Wire schema of one microbiome sample (the input topic's value)."""

    subject: Id
    time: float | str
    sample_id: Id
    counts: Annotated[dict[NonEmptyStr, Count], msgspec.Meta(min_length=1)]
    meta: dict[str, Any] | None = None


_DECODER = msgspec.json.Decoder(SampleMessage)
_ENCODER = msgspec.json.Encoder()


class BadMessage(ValueError):
    """A message that cannot become a sample; ``kind`` is one of :data:`KINDS`."""

    def __init__(self, kind: str, message: str) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown dead-letter kind {kind!r}")
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Sample:
    """A validated sample: what the engine adapter consumes."""

    subject: str
    time: float
    sample_id: str
    counts: dict[str, float]
    meta: dict[str, Any] | None = field(default=None)


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


def decode_sample(
    payload: bytes | None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_features: int = DEFAULT_MAX_FEATURES,
) -> Sample:
    """Validate one input message and return it as a :class:`Sample`.

    Raises
    ------
    BadMessage
        With a ``kind`` from :data:`KINDS` and a message naming what was wrong.

    >>> try:
    ...     decode_sample(b'{"subject": "C001", "time": 1, "sample_id": "s1", "counts": {}}')
    ... except BadMessage as err:
    ...     print(err.kind, "|", err)
    empty_counts | counts is empty
    """
    msg = decode_json(payload, _DECODER, max_bytes, _diagnose)
    if msg.meta is not None and len(payload) > max_bytes // 2:  # (meta is part of payload)
        size = len(_ENCODER.encode(msg.meta))
        if size > max_bytes // 2:
            raise BadMessage("oversize", f"meta of {size} bytes exceeds {max_bytes // 2}: "
                             "output records carry meta, and may use at most half of the "
                             f"{max_bytes}-byte record limit for it")
    if len(msg.counts) > max_features:
        raise BadMessage(
            "too_many_features", f"{len(msg.counts)} taxa exceed the limit of {max_features}"
        )
    if not any(msg.counts.values()):
        raise BadMessage("empty_counts", "all counts are zero")
    return Sample(msg.subject, parse_time(msg.time), msg.sample_id, msg.counts, msg.meta)


def encode_sample(
    subject: str,
    time: float | str,
    sample_id: str,
    counts: dict[str, float],
    meta: dict[str, Any] | None = None,
) -> bytes:
    """Serialise a sample to the input wire format (used by the replay producer).

    >>> encode_sample("C001", 0, "s0", {"a": 1})
    b'{"subject":"C001","time":0,"sample_id":"s0","counts":{"a":1},"meta":null}'
    """
    return _ENCODER.encode(SampleMessage(subject, time, sample_id, counts, meta))


def _diagnose(payload: bytes, err: msgspec.DecodeError) -> BadMessage:
    """Turn msgspec's refusal into a BadMessage naming the culprit.

    msgspec reports the JSON path (``$.counts[...]``) but not which taxon; the payload is
    re-read with the standard library, which also accepts NaN/Infinity tokens, to find it.
    Its recursive parser is safe here: :func:`decode_json` has bounded the nesting first.
    """
    text = str(err)
    if not isinstance(err, msgspec.ValidationError):
        if "truncated" in text:
            return BadMessage("truncated", f"the JSON record is truncated ({text})")
        try:
            doc = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            return BadMessage("not_json", f"not JSON: {text}")
        # The standard library accepts the NaN/Infinity tokens that msgspec refuses.
        culprit = _bad_count(doc) or _bad_time(doc)
        return culprit or BadMessage("not_json", f"not JSON: {text}")
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        doc = None
    if isinstance(doc, dict) and "`$.counts" in text:
        culprit = _bad_count(doc)
        if culprit is not None:
            return culprit
    if "`$.time`" in text:
        culprit = _bad_time(doc)
        if culprit is not None:
            return culprit
    return BadMessage("schema", f"wrong schema: {text}")


def _bad_time(doc: Any) -> BadMessage | None:
    value = doc.get("time") if isinstance(doc, dict) else None
    if isinstance(value, float) and not math.isfinite(value):
        return BadMessage("bad_time", f"time {value!r} is not finite")
    return None


def _bad_count(doc: Any) -> BadMessage | None:
    counts = doc.get("counts") if isinstance(doc, dict) else None
    if not isinstance(counts, dict):
        return None
    if not counts:
        return BadMessage("empty_counts", "counts is empty")
    for taxon, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            return BadMessage(
                "schema", f"count of taxon {taxon!r} is {type(value).__name__}, not a number"
            )
        if isinstance(value, float) and math.isnan(value):
            return BadMessage("bad_count", f"count of taxon {taxon!r} is NaN")
        if value < 0:
            return BadMessage("bad_count", f"count of taxon {taxon!r} is negative ({value!r})")
        if value > sys.float_info.max:  # inf, or an integer beyond the float range
            return BadMessage("bad_count", f"count of taxon {taxon!r} is infinite or too large")
    if "" in counts:
        return BadMessage("schema", "a taxon name is empty")
    return None
