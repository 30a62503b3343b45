"""The text application: documents -> topic mixes, dominant topics and topic events.

Plugged into :class:`consumers.loop.ConsumerLoop` (checkpoints + offsets, dead letters,
metrics, SIGKILL safety come from the loop). Per valid document it learns the document with
:class:`onlinenmf.text.TopicModel` and emits one record (key = document id) with the topic mix
solved before learning it (shares summing to 1; empty when the document has no word in the
vocabulary yet), its dominant topic, and the model's events since the previous document
(topic births and retirements, splits and top-word shifts with the document's time,
drifts: :mod:`onlinenmf.events`). After each dictionary refresh it also publishes the
topics' top words to the topics topic.

Input: :mod:`consumers.text.schema`.

Document record (``text.mixes``)::

    {"doc_id": "1862-Lincoln-1-p004", "time": -39475.0, "topics": {"3": 0.71, "8": 0.29},
     "dominant": 3, "n_words": 41, "events": null, "source": {...}, "worker": "main",
     "docs_learned": 1200, "model_version": 31, "meta": null}

Topics record (``text.topics``)::

    {"worker": "main", "model_version": 31, "docs_learned": 1200, "n_words": 2210,
     "topics": {"3": [["gold", 0.05], ["silver", 0.04], ...]}}

>>> from consumers.text.schema import encode_document
>>> app = TextApp(model_params={"n_components": 2, "min_df": 1})
>>> app.restore(None)
>>> src = Source("text.documents", 0, 0, None, b"d1", "main")
>>> result = app.process(app.decode(encode_document("d1", 0, "Gold and silver")), src)
>>> [(topic, key) for topic, key, _ in result.outputs]
[('text.mixes', b'd1')]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from consumers.application import Result, Source
from consumers.messages import DEFAULT_MAX_BYTES, BadMessage, SourceRef
from consumers.text.schema import TOPICS, Document, decode_document

__all__ = ["TextApp", "DocumentRecord", "TopicsRecord", "TOP_WORDS", "PREVALENCE_BIN",
           "MAX_TOPIC_EVENTS"]

#: Words per topic in a topics record.
TOP_WORDS = 10

#: Time bin (days, the input's unit: a year) of the topic prevalence kept in the checkpoint
#: for ``onlinenmf report`` (which merges bins into coarser ones); one entry per year of stream.
PREVALENCE_BIN = 365.25

#: Topic births, retirements, splits and shifts kept (with the stream time they happened
#: at) for the report.
MAX_TOPIC_EVENTS = 1_000


class DocumentRecord(msgspec.Struct):
    """One output record per document: its topic mix before learning it."""

    doc_id: str
    time: float
    topics: dict[int, float]
    dominant: int | None
    n_words: int
    events: list[dict[str, Any]] | None
    source: SourceRef
    worker: str
    docs_learned: int
    model_version: int
    meta: dict[str, Any] | None = None


class TopicsRecord(msgspec.Struct):
    """The topics' top words, published after each dictionary refresh."""

    worker: str
    model_version: int
    docs_learned: int
    n_words: int
    topics: dict[int, list[tuple[str, float]]]


_ENC = msgspec.json.Encoder()
_STATE_ENC = msgspec.msgpack.Encoder()
_STATE_DEC = msgspec.msgpack.Decoder(dict[str, Any])


class TextApp:
    """Application object for :class:`consumers.loop.ConsumerLoop`.

    Parameters
    ----------
    model_params : dict
        Keyword arguments of :class:`onlinenmf.text.TopicModel` for a fresh model (a
        restored checkpoint keeps its own).
    output_topic, model_topic : str
        Where document and topics records go (``None``: not produced).
    top_words : int
        Words per topic in a topics record.
    max_bytes : int
        Larger input messages are dead-lettered.
    """

    def __init__(self, model_params: Mapping[str, Any] | None = None,
                 output_topic: str | None = TOPICS.output,
                 model_topic: str | None = TOPICS.model, top_words: int = TOP_WORDS,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.model_params = dict(model_params or {})
        self.output_topic = output_topic
        self.model_topic = model_topic
        self.top_words = top_words
        self.max_bytes = max_bytes
        self.model: Any = None
        self.published_version = 0
        #: bin start -> [documents mixed, {topic: sum of its shares}] (see :meth:`prevalence`)
        self.prevalence_sums: dict[float, list[Any]] = {}
        #: the topics' births, retirements, splits and shifts (onlinenmf.text.TOPIC_EVENTS),
        #: with the stream time of the document learned
        self.topic_events: list[dict[str, Any]] = []
        self._events_seen = 0

    # ------------------------------------------------------------------ state
    def restore(self, blobs: Mapping[str, bytes] | None) -> None:
        from onlinenmf.text import TopicModel  # the engine is imported only here

        if blobs is None:
            self.model = TopicModel(**self.model_params)
            self.published_version = 0
            self.prevalence_sums, self.topic_events = {}, []
            self._events_seen = 0
            return
        self.model = TopicModel.from_bytes(blobs["text"], source="checkpoint:text")
        state = _STATE_DEC.decode(blobs["app"])
        self.published_version = int(state["published_version"])
        self.prevalence_sums = {float(start): [int(n), {int(t): float(v) for t, v in sums}]
                                for start, n, sums in state.get("prevalence", [])}
        self.topic_events = list(state.get("topic_events", []))
        self._events_seen = len(self.model.nmf.events)

    def snapshot(self) -> dict[str, bytes]:
        prevalence = [[start, n, sorted(sums.items())]
                      for start, (n, sums) in sorted(self.prevalence_sums.items())]
        return {"text": self.model.to_bytes(),  # not "model": that name holds an OnlineNMF
                "app": _STATE_ENC.encode({"published_version": self.published_version,
                                          "prevalence": prevalence,
                                          "topic_events": self.topic_events})}

    def prevalence(self):
        """A DataFrame as :meth:`onlinenmf.text.TopicStream.prevalence` gives: ``bin``
        (start, days), ``topic``, ``share`` (the topic's mean share of the bin's documents,
        0 where absent) and ``n_docs``; documents mixed before the first dictionary (against
        random rows) are not counted."""
        import pandas as pd

        topics = sorted({t for _, sums in self.prevalence_sums.values() for t in sums})
        rows = [(start, topic, sums.get(topic, 0.0) / n, n)
                for start, (n, sums) in sorted(self.prevalence_sums.items()) for topic in topics]
        return pd.DataFrame(rows, columns=["bin", "topic", "share", "n_docs"])

    def summary(self) -> dict[str, Any]:
        nmf = self.model.nmf
        return {"samples_learned": int(self.model.docs_learned),
                "model_version": int(nmf.model_version),
                "n_components": int(nmf.n_components),
                "n_words": len(self.model.vectorizer.vocabulary.admitted)}

    def topics_written(self) -> list[str]:
        """The output and model topics (those not switched off)."""
        return [t for t in (self.output_topic, self.model_topic) if t is not None]

    def gauges(self) -> dict[str, float]:
        return {"model_version": float(self.model.nmf.model_version),
                "n_components": float(self.model.nmf.n_components)}

    # ------------------------------------------------------------------ records
    def decode(self, value: bytes | None) -> Document:
        return decode_document(value, max_bytes=self.max_bytes)

    def process(self, doc: Document, source: Source) -> Result:
        model, nmf = self.model, self.model.nmf
        # the events since the previous document (a re-seed between two documents included)
        seen, version = min(self._events_seen, len(nmf.events)), nmf.model_version
        try:  # the vectoriser and the engine check everything before they change anything
            mix = model.learn_one(doc.text, time=doc.time)
        except ValueError as err:
            raise BadMessage("rejected", f"the model refused the document: {err}") from err
        self._follow(doc.time, mix if version else {}, nmf.events[seen:])
        self._events_seen = len(nmf.events)
        outputs: list[tuple[str, bytes | None, bytes]] = []
        key = doc.doc_id.encode()
        if self.output_topic is not None:
            events = [event.to_dict() for event in nmf.events[seen:]] or None
            record = DocumentRecord(
                doc.doc_id, doc.time, _shares(mix), _dominant(mix), model.last_n_words,
                events, SourceRef(source.topic, source.partition, source.offset),
                source.worker, int(model.docs_learned), int(nmf.model_version), doc.meta)
            outputs.append((self.output_topic, key, _ENC.encode(record)))
        if self.model_topic is not None and nmf.model_version != self.published_version:
            self.published_version = int(nmf.model_version)
            outputs.append((self.model_topic, None, _ENC.encode(self.topics_record(
                source.worker))))
        return Result(outputs, nmf.last_loss if mix else None)

    def _follow(self, time: float, mix: Mapping[int, float], events) -> None:
        """Add a document's shares to its time bin; keep the topic events with its time."""
        shares = _shares(mix)
        if shares:
            start = (time // PREVALENCE_BIN) * PREVALENCE_BIN
            entry = self.prevalence_sums.setdefault(start, [0, {}])
            entry[0] += 1
            for topic, share in shares.items():
                entry[1][topic] = entry[1].get(topic, 0.0) + share
        from onlinenmf.text import TOPIC_EVENTS  # loaded with the model already

        for event in events:
            if event.kind in TOPIC_EVENTS:
                self.topic_events.append({"time": time, "kind": event.kind,
                                          "topic": event.component, "reason": event.reason})
        del self.topic_events[:-MAX_TOPIC_EVENTS]

    def topics_record(self, worker: str) -> TopicsRecord:
        nmf = self.model.nmf
        return TopicsRecord(worker, int(nmf.model_version), int(self.model.docs_learned),
                            int(nmf.n_features), nmf.components(top=self.top_words))


def _shares(mix: Mapping[int, float]) -> dict[int, float]:
    total = sum(mix.values())
    return {topic: value / total for topic, value in mix.items() if value > 0} if total else {}


def _dominant(mix: Mapping[int, float]) -> int | None:
    return max(mix, key=mix.__getitem__) if mix and max(mix.values()) > 0 else None
