"""The text stream's wire contract: its topics and its input schema.

Input (topic ``text.documents``, key = document id), JSON; unknown fields are refused::

    {"doc_id": "1862-Lincoln-1-p004", "time": "1862-12-01" | 12345.0, "text": "...",
     "meta": {...}}

``time`` is a number of days, or an ISO-8601 date (converted to days since 1970-01-01 UTC, as
the microbiome stream does). ``text`` is a non-empty string. ``meta`` is optional and carried
through into the output record, so it may use at most half of ``max_bytes``. A message that
cannot be read is a :class:`~consumers.messages.BadMessage` naming what was wrong.

>>> d = decode_document(b'{"doc_id": "d1", "time": "1970-01-03", "text": "Gold and silver"}')
>>> d.doc_id, d.time, d.text
('d1', 2.0, 'Gold and silver')
>>> try:
...     decode_document(b'{"doc_id": "d1", "time": 0, "text": ""}')
... except BadMessage as err:
...     print(err.kind, "|", err)
schema | wrong schema: Expected `str` of length >= 1 - at `$.text`
"""

from __future__ import annotations

import json
import math
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

__all__ = ["TOPICS", "Document", "DocumentMessage", "decode_document", "encode_document"]

#: The text stream's default topics: documents in; topic mixes and topic word lists out.
TOPICS = Topics(input="text.documents", output="text.mixes", model="text.topics")

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_CHARS)]


class DocumentMessage(msgspec.Struct, forbid_unknown_fields=True):
    """Wire schema of one document (the input topic's value)."""

    doc_id: Id
    time: float | str
    text: Annotated[str, msgspec.Meta(min_length=1)]
    meta: dict[str, Any] | None = None


class Document(msgspec.Struct, frozen=True):
    """A validated document (``time`` in days)."""

    doc_id: str
    time: float
    text: str
    meta: dict[str, Any] | None = None


_DECODER = msgspec.json.Decoder(DocumentMessage)
_ENC = msgspec.json.Encoder()


def decode_document(payload: bytes | None, max_bytes: int = DEFAULT_MAX_BYTES) -> Document:
    """Validate one input message; raise :class:`~consumers.messages.BadMessage` naming
    what is wrong."""
    message = decode_json(payload, _DECODER, max_bytes, _diagnose)
    if message.meta is not None and len(payload) > max_bytes // 2:  # meta is in the payload
        size = len(_ENC.encode(message.meta))
        if size > max_bytes // 2:
            raise BadMessage("oversize", f"meta of {size} bytes exceeds {max_bytes // 2}: "
                             "output records carry meta, and may use at most half of the "
                             "message limit (--max-message-bytes)")
    return Document(message.doc_id, parse_time(message.time), message.text, message.meta)


def _diagnose(payload: bytes, err: msgspec.DecodeError) -> BadMessage:
    text = str(err)
    if not isinstance(err, msgspec.ValidationError) and "truncated" in text:
        return BadMessage("truncated", f"the JSON record is truncated ({text})")
    try:  # the standard library accepts the NaN/Infinity tokens that msgspec refuses
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return BadMessage("not_json", f"not JSON: {text}")
    time = doc.get("time") if isinstance(doc, dict) else None
    if isinstance(time, float) and not math.isfinite(time):
        return BadMessage("bad_time", f"time {time!r} is not finite")
    if not isinstance(err, msgspec.ValidationError):
        return BadMessage("not_json", f"not JSON: {text}")
    return BadMessage("schema", f"wrong schema: {text}")


def encode_document(doc_id: str, time: float | str, text: str,
                    meta: dict[str, Any] | None = None) -> bytes:
    """The input message of one document.

    >>> encode_document("d1", "1790-01-08", "Fellow-Citizens")
    b'{"doc_id":"d1","time":"1790-01-08","text":"Fellow-Citizens","meta":null}'
    """
    return _ENC.encode(DocumentMessage(doc_id, time, text, meta))
