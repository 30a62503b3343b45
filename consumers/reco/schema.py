"""The rating stream's wire contract: its topics and its input schema.

Input (topic ``reco.ratings``, key = user), JSON; unknown fields are refused::

    {"user": "u17" | 17, "item": "tt0133093" | 42, "value": 8, "time": 1362062307 | "2013-..."}

``time`` is carried through (numbers as given, ISO-8601 strings as Unix seconds). A message
that cannot be read is a :class:`~consumers.messages.BadMessage` naming what was wrong.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Annotated

import msgspec

from consumers.messages import (
    DEFAULT_MAX_BYTES,
    MAX_ID_CHARS,
    BadMessage,
    decode_json,
    parse_time,
)
from consumers.topics import Topics

__all__ = ["TOPICS", "Rating", "RatingMessage", "decode_rating", "encode_rating"]

#: The rating stream's default topics: events in; predictions and top-N recommendations out.
TOPICS = Topics(input="reco.ratings", output="reco.predictions", model="reco.recommendations")

NonEmptyStr = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_CHARS)]
Id = NonEmptyStr | int
Finite = Annotated[float, msgspec.Meta(ge=-sys.float_info.max, le=sys.float_info.max)]


class RatingMessage(msgspec.Struct, forbid_unknown_fields=True):
    """Wire schema of one rating event (the input topic's value)."""

    user: Id
    item: Id
    value: Finite
    time: float | str


class Rating(msgspec.Struct, frozen=True):
    """A validated event."""

    user: str | int
    item: str | int
    value: float
    time: float


_DECODER = msgspec.json.Decoder(RatingMessage)
_ENC = msgspec.json.Encoder()


def decode_rating(payload: bytes | None, max_bytes: int = DEFAULT_MAX_BYTES) -> Rating:
    """Validate one input message; raise :class:`~consumers.messages.BadMessage` naming
    what is wrong.

    >>> decode_rating(b'{"user": 7, "item": "tt1", "value": 9, "time": "1970-01-02"}')
    Rating(user=7, item='tt1', value=9.0, time=86400.0)
    >>> try:
    ...     decode_rating(b'{"user": 7, "item": "tt1", "value": NaN, "time": 0}')
    ... except BadMessage as err:
    ...     print(err.kind, "|", err)
    bad_value | value is NaN
    """
    message = decode_json(payload, _DECODER, max_bytes, _diagnose)
    # ratings carry Unix seconds (ISO-8601 strings are converted to seconds)
    return Rating(message.user, message.item, float(message.value),
                  parse_time(message.time, unit_seconds=1.0))


def _diagnose(payload: bytes, err: msgspec.DecodeError) -> BadMessage:
    text = str(err)
    if not isinstance(err, msgspec.ValidationError) and "truncated" in text:
        return BadMessage("truncated", f"the JSON record is truncated ({text})")
    try:  # the standard library accepts the NaN/Infinity tokens that msgspec refuses
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return BadMessage("not_json", f"not JSON: {text}")
    if isinstance(doc, dict):
        value = doc.get("value")
        if isinstance(value, float) and math.isnan(value):
            return BadMessage("bad_value", "value is NaN")
        if isinstance(value, int | float) and not isinstance(value, bool) and (
                abs(value) > sys.float_info.max):
            return BadMessage("bad_value", f"value {value!r} is infinite or too large")
        time = doc.get("time")
        if isinstance(time, float) and not math.isfinite(time):
            return BadMessage("bad_time", f"time {time!r} is not finite")
    if not isinstance(err, msgspec.ValidationError):
        return BadMessage("not_json", f"not JSON: {text}")
    return BadMessage("schema", f"wrong schema: {text}")


def encode_rating(user: str | int, item: str | int, value: float, time: float | str) -> bytes:
    """The input message of one event.

    >>> encode_rating("u1", 42, 4.5, 17)
    b'{"user":"u1","item":42,"value":4.5,"time":17}'
    """
    return _ENC.encode({"user": user, "item": item, "value": value, "time": time})
