"""The microbiome stream's wire contract: its topics and its input schema.

Input (topic ``microbiome.samples``, key = subject id), JSON::

    {"subject": "C001", "time": 36 | "2012-04-20T00:00:00Z", "sample_id": "10249.C001.02SS",
     "counts": {"<taxon>": 519, ...}, "meta": {...}}

``time`` is a number of days, or an ISO-8601 date/time (converted to days since
1970-01-01 UTC). ``meta`` is optional and carried through untouched into the output
record, so it may use at most half of ``max_bytes`` (the largest record the consumer
reads or writes): the other half is kept for the record's own fields. ``subject`` and
``sample_id`` have at most :data:`~consumers.messages.MAX_ID_CHARS` characters (they are
repeated in output records, keys and events, and kept per subject). JSON nested deeper
than :data:`~consumers.messages.MAX_DEPTH` levels is refused before any parser recurses
into it. Unknown fields are refused so that a misspelt field name is an error, not silently ignored.

The schema is declared once, as a msgspec ``Struct``; msgspec does the checking. When it
refuses a message, :func:`decode_sample` re-reads the payload only to name the culprit
(which taxon, which value) in a :class:`~consumers.messages.BadMessage` whose ``kind``
(:data:`consumers.messages.KINDS`) goes into the dead-letter headers.

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
import sys
from dataclasses import dataclass, field
from typing import Annotated, Any

import msgspec

from consumers.messages import (
    DEFAULT_MAX_BYTES,
    MAX_ID_CHARS,
    BadMessage,
    decode_json,
    parse_time,
)
from consumers.topics import Topics

__all__ = ["TOPICS", "SampleMessage", "Sample", "decode_sample", "encode_sample",
           "DEFAULT_MAX_FEATURES"]

#: The microbiome stream's default topics: samples in; community records and model
#: versions out.
TOPICS = Topics(input="microbiome.samples", output="microbiome.communities",
                model="microbiome.model")
#: Most taxa in one sample (``--max-features``); more are dead-lettered.
DEFAULT_MAX_FEATURES = 50_000

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


@dataclass(frozen=True)
class Sample:
    """A validated sample: what the engine adapter consumes."""

    subject: str
    time: float
    sample_id: str
    counts: dict[str, float]
    meta: dict[str, Any] | None = field(default=None)


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
