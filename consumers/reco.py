"""The recommender application: rating events -> predictions and top-N recommendations.

Plugged into :class:`consumers.loop.ConsumerLoop` (checkpoints + offsets, dead letters,
metrics, SIGKILL safety come from the loop). Per valid input record it first predicts the
rating with the current model (the prequential prediction, for monitoring), then learns the
event, and emits one prediction record (key = user). Every ``recommend_every`` learned events
and/or every ``recommend_interval`` seconds of *event* time, it also emits the top-N items of
each user active since the last emission (at most ``max_active`` users, the most recent ones)
to the recommendations topic (key = user). The schedule counts events or event time, never
the wall clock, so that a replay after a crash emits the same records.

Input (topic ``reco.ratings``, key = user), JSON; unknown fields are refused::

    {"user": "u17" | 17, "item": "tt0133093" | 42, "value": 8, "time": 1362062307 | "2013-..."}

``time`` is carried through (numbers as given, ISO-8601 strings as Unix seconds).

Prediction record (``reco.predictions``)::

    {"user": "u17", "item": "tt0133093", "value": 8.0, "time": 1362062307.0,
     "prediction": 7.4, "error": -0.6, "source": {"topic": ..., "partition": 0, "offset": 9},
     "worker": "main", "events_learned": 10}

Recommendation record (``reco.recommendations``)::

    {"user": "u17", "items": [["tt0111161", 8.9], ...], "events_learned": 5000,
     "worker": "main", "exclude_seen": true}

>>> app = RecoApp(model_params={"n_components": 2, "rating_range": (0, 10)},
...               recommend_every=2, top_n=3)
>>> app.restore(None)
>>> out = []
>>> for offset, (user, item, value) in enumerate([("a", "x", 8), ("b", "y", 3)]):
...     src = Source("reco.ratings", 0, offset, None, user.encode(), "main")
...     out += app.process(app.decode(encode_rating(user, item, value, offset)), src).outputs
>>> [(topic, key) for topic, key, _ in out]     # doctest: +NORMALIZE_WHITESPACE
[('reco.predictions', b'a'), ('reco.predictions', b'b'),
 ('reco.recommendations', b'a'), ('reco.recommendations', b'b')]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Mapping
from typing import Annotated, Any

import msgspec

from consumers.loop import Result, Source
from consumers.messages import (
    DEFAULT_MAX_BYTES,
    MAX_ID_CHARS,
    BadMessage,
    decode_json,
    parse_time,
)
from consumers.options import add_option

__all__ = ["RecoApp", "Rating", "RatingMessage", "decode_rating", "encode_rating",
           "add_reco_arguments", "reco_app", "reco_messages"]

DEFAULT_INPUT = "reco.ratings"
DEFAULT_OUTPUT = "reco.predictions"
DEFAULT_RECOMMENDATIONS = "reco.recommendations"

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


class SourceRef(msgspec.Struct):
    topic: str
    partition: int
    offset: int


class PredictionRecord(msgspec.Struct):
    """One output record per learned event: the prediction made before learning it."""

    user: str | int
    item: str | int
    value: float
    time: float
    prediction: float
    error: float
    source: SourceRef
    worker: str
    events_learned: int


class RecommendationRecord(msgspec.Struct):
    """Top-N items of one recently active user."""

    user: str | int
    items: list[tuple[str | int, float]]
    events_learned: int
    worker: str
    exclude_seen: bool


_DECODER = msgspec.json.Decoder(RatingMessage)
_ENC = msgspec.json.Encoder()
_STATE_ENC = msgspec.msgpack.Encoder()
_STATE_DEC = msgspec.msgpack.Decoder(dict[str, Any])


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


class RecoApp:
    """Application object for :class:`consumers.loop.ConsumerLoop`.

    Parameters
    ----------
    model_params : dict
        Keyword arguments of :class:`onlinenmf.reco.RecoNMF` for a fresh model (a restored
        checkpoint keeps its own).
    output_topic, recommendations_topic : str
        Where prediction and recommendation records go (``None``: not produced).
    recommend_every : int
        Learned events between two emissions of recommendations (0: never).
    recommend_interval : float, optional
        Also emit when the event time (the input's ``time``, in seconds) has advanced by this
        much since the last emission (or since the first event).
    top_n : int
        Items per recommendation record.
    max_active : int
        At most this many recently active users get recommendations per emission.
    exclude_seen : bool
        Leave the user's remembered items out of the recommendations.
    max_bytes : int
        Larger input messages are dead-lettered.
    """

    def __init__(
        self,
        model_params: Mapping[str, Any] | None = None,
        output_topic: str | None = DEFAULT_OUTPUT,
        recommendations_topic: str | None = DEFAULT_RECOMMENDATIONS,
        recommend_every: int = 1000,
        recommend_interval: float | None = None,
        top_n: int = 10,
        max_active: int = 1000,
        exclude_seen: bool = True,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self.model_params = dict(model_params or {})
        self.output_topic = output_topic
        self.recommendations_topic = recommendations_topic
        self.recommend_every = recommend_every
        self.recommend_interval = recommend_interval
        self.top_n = top_n
        self.max_active = max_active
        self.exclude_seen = exclude_seen
        self.max_bytes = max_bytes
        self.model: Any = None
        self.active: dict[str | int, None] = {}  # insertion-ordered set, most recent last
        self.last_emission: float | None = None  # event time of the last emission

    # ------------------------------------------------------------------ state
    def restore(self, blobs: Mapping[str, bytes] | None) -> None:
        from onlinenmf.reco import RecoNMF  # the engine is imported only here

        self.active, self.last_emission = {}, None
        if blobs is None:
            self.model = RecoNMF(**self.model_params)
            return
        self.model = RecoNMF.from_bytes(blobs["reco"], source="checkpoint:reco")
        state = _STATE_DEC.decode(blobs["app"])
        self.active = dict.fromkeys(state["active"])
        self.last_emission = state.get("last_emission")

    def snapshot(self) -> dict[str, bytes]:
        return {"reco": self.model.to_bytes(),  # not "model": that name holds an OnlineNMF
                "app": _STATE_ENC.encode({"active": list(self.active),
                                          "last_emission": self.last_emission})}

    def summary(self) -> dict[str, Any]:
        model = self.model
        return {
            "samples_learned": int(model.events_learned),
            "model_version": int(model.model_version),
            "n_users": int(model.n_users),
            "n_items": int(model.n_items),
            "n_components": int(model.n_components),
            "feedback": model.feedback,
            "active_users": len(self.active),
        }

    def gauges(self) -> dict[str, float]:
        return {"model_version": float(self.model.model_version),
                "n_components": float(self.model.n_components)}

    # ------------------------------------------------------------------ records
    def decode(self, value: bytes | None) -> Rating:
        return decode_rating(value, max_bytes=self.max_bytes)

    def process(self, rating: Rating, source: Source) -> Result:
        model = self.model
        prediction = model.predict_one(rating.user, rating.item)
        try:  # RecoNMF checks everything before it changes anything
            model.learn_one(rating.user, rating.item, rating.value)
        except ValueError as err:
            kind = "bad_value" if "value" in str(err) else "rejected"
            raise BadMessage(kind, f"the model refused the event: {err}") from err
        outputs: list[tuple[str, bytes | None, bytes]] = []
        key = str(rating.user).encode()
        error = prediction - rating.value
        if self.output_topic is not None:
            record = PredictionRecord(
                rating.user, rating.item, rating.value, rating.time, prediction, error,
                SourceRef(source.topic, source.partition, source.offset), source.worker,
                int(model.events_learned))
            outputs.append((self.output_topic, key, _ENC.encode(record)))
        self.active.pop(rating.user, None)
        self.active[rating.user] = None
        while len(self.active) > self.max_active:
            del self.active[next(iter(self.active))]
        due = bool(self.recommend_every) and model.events_learned % self.recommend_every == 0
        if self.recommend_interval:
            if self.last_emission is None:
                self.last_emission = rating.time
            due = due or rating.time - self.last_emission >= self.recommend_interval
        if due:
            self.last_emission = rating.time
            outputs.extend(self.recommendations(source.worker))
        return Result(outputs, error * error if model.explicit else None)

    def recommendations(self, worker: str) -> list[tuple[str, bytes | None, bytes]]:
        """Top-N records of the recently active users; clears the active set."""
        records = []
        if self.recommendations_topic is not None:
            for user in self.active:
                items = self.model.recommend(user, n=self.top_n, exclude_seen=self.exclude_seen)
                record = RecommendationRecord(user, items, int(self.model.events_learned),
                                              worker, self.exclude_seen)
                records.append((self.recommendations_topic, str(user).encode(),
                                _ENC.encode(record)))
        self.active = {}
        return records


# ---------------------------------------------------------------------- command line
def add_reco_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``onlinenmf consume reco`` (with --components and --seed, shared)."""
    group = parser.add_argument_group("reco (onlinenmf consume reco)")
    add_option(group, "--feedback", default="explicit",
               help="explicit ratings or implicit counts (reco)")
    add_option(group, "--rating-range", default=None,
               help="LOW,HIGH: ratings outside are dead-lettered, predictions clipped (reco)")
    add_option(group, "--history", type=int, default=50,
               help="ratings remembered per user (reco)")
    add_option(group, "--item-forget-factor", type=float, default=1.0,
               help="per-event forgetting of the item statistics (reco)")
    add_option(group, "--item-refresh-every", type=int, default=None,
               help="events between item refreshes (reco; default 1 explicit, 100 implicit)")
    add_option(group, "--recommend-every", type=int, default=1000,
               help="events between two emissions of recommendations; 0: never (reco)")
    add_option(group, "--recommend-interval", type=float, default=None,
               help="also emit recommendations every this many seconds of event time (reco)")
    add_option(group, "--top-n", type=int, default=10, help="items per recommendation (reco)")
    add_option(group, "--max-active", type=int, default=1000,
               help="users recommended for per emission, the most recent (reco)")


def _rating_range(text: str | None) -> tuple[float, float] | None:
    if not text:
        return None
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise SystemExit(f"--rating-range {text!r}: expected LOW,HIGH such as 0,10") from None
    return (low, high)


def reco_app(args: argparse.Namespace) -> RecoApp:
    """The application ``onlinenmf consume reco`` runs (the model topic slot carries the
    recommendations)."""
    params = {
        "n_components": args.components,
        "feedback": args.feedback,
        "rating_range": _rating_range(args.rating_range),
        "history": args.history,
        "forget_factor": args.item_forget_factor,
        "refresh_every": args.item_refresh_every,
        "seed": args.seed,
    }
    return RecoApp(
        model_params=params,
        output_topic=args.output_topic or None,
        recommendations_topic=args.model_topic or None,
        recommend_every=args.recommend_every,
        recommend_interval=args.recommend_interval,
        top_n=args.top_n,
        max_active=args.max_active,
        max_bytes=args.max_message_bytes,
    )


def reco_messages(args: argparse.Namespace):
    """``(key, value)`` messages of a ratings table in time order: ``--table`` (TSV with
    columns user, item, value and time or timestamp; .gz read too) or a bundled stream
    (``--dataset movietweetings`` or ``online_retail``)."""
    import pandas as pd

    if args.table:
        frame = pd.read_csv(args.table, sep="\t", dtype={"user": str, "item": str})
        if "time" not in frame.columns and "timestamp" in frame.columns:
            frame = frame.rename(columns={"timestamp": "time"})
        missing = {"user", "item", "value", "time"} - set(frame.columns)
        if missing:
            raise SystemExit(f"{args.table}: no column(s) {sorted(missing)}; it has "
                             f"{list(frame.columns)}")
        frame = frame.sort_values("time", kind="stable")
    else:
        from onlinenmf import datasets

        name = "movietweetings" if args.dataset in (None, "ecam") else args.dataset
        loaders = {"movietweetings": datasets.load_movietweetings,
                   "online_retail": datasets.load_online_retail}
        if name not in loaders:
            raise SystemExit(f"unknown ratings dataset {name!r}: one of {sorted(loaders)}")
        frame = loaders[name]()
    columns = [frame[c].tolist() for c in ("user", "item", "value", "time")]
    for i, (user, item, value, time) in enumerate(zip(*columns)):
        if args.limit is not None and i >= args.limit:
            return
        yield str(user).encode(), encode_rating(user, item, float(value), time)
