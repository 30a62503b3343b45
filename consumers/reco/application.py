"""The recommender application: rating events -> predictions and top-N recommendations.

Plugged into :class:`consumers.loop.ConsumerLoop` (checkpoints + offsets, dead letters,
metrics, SIGKILL safety come from the loop). Per valid input record it first predicts the
rating with the current model (the prequential prediction, for monitoring), then learns the
event, and emits one prediction record (key = user). Every ``recommend_every`` learned events
and/or every ``recommend_interval`` seconds of *event* time, it also emits the top-N items of
each user active since the last emission (at most ``max_active`` users, the most recent ones)
to the recommendations topic (key = user). The schedule counts events or event time, never
the wall clock, so that a replay after a crash emits the same records.

Input: :mod:`consumers.reco.schema`.

Prediction record (``reco.predictions``)::

    {"user": "u17", "item": "tt0133093", "value": 8.0, "time": 1362062307.0,
     "prediction": 7.4, "error": -0.6, "source": {"topic": ..., "partition": 0, "offset": 9},
     "worker": "main", "events_learned": 10}

Recommendation record (``reco.recommendations``)::

    {"user": "u17", "items": [["tt0111161", 8.9], ...], "events_learned": 5000,
     "worker": "main", "exclude_seen": true}

>>> from consumers.reco.schema import encode_rating
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

from collections.abc import Mapping
from typing import Any

import msgspec

from consumers.application import Result, Source
from consumers.messages import DEFAULT_MAX_BYTES, BadMessage, SourceRef
from consumers.reco.schema import TOPICS, Rating, decode_rating

__all__ = ["RecoApp", "PredictionRecord", "RecommendationRecord"]


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


_ENC = msgspec.json.Encoder()
_STATE_ENC = msgspec.msgpack.Encoder()
_STATE_DEC = msgspec.msgpack.Decoder(dict[str, Any])


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
        output_topic: str | None = TOPICS.output,
        recommendations_topic: str | None = TOPICS.model,
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

    def topics_written(self) -> list[str]:
        """The prediction and recommendation topics (those not switched off)."""
        return [t for t in (self.output_topic, self.recommendations_topic) if t is not None]

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
