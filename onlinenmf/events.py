"""What happened to a model while it learned: one :class:`Event` type, kept in an
:class:`EventLog` (``OnlineNMF.events``).

Kinds: ``retire`` and ``birth`` (a component replaced by a new one: re-seeding, or a merge of a
shared dictionary), ``prune`` and ``grow`` (the rank adapted), ``l1_h`` and ``forget_factor``
(a hyperparameter re-estimated), ``refit`` (W refined on the recent samples after a drift),
``split`` and ``shift`` (a text model's topic split from another, or its top words shifted:
:class:`onlinenmf.text.TopicWatch`).
An event records the number of samples learned when it happened, never the wall clock: a
model replayed from the same stream has the same events. ``time`` is the stream's time where
the caller knows it (the model does not: None).

An event reads like the dicts of snapshot format 1 (``event["kind"]``,
``event.get("component")``), so code written against those keeps working; :meth:`Event.to_dict`
gives the plain dict.

>>> log = EventLog()
>>> event = log.emit("prune", 250, component=3, old=6, new=5, reason="relevance share 0.004")
>>> event["kind"], event.get("component"), event.time
('prune', 3, None)
>>> event.to_dict()  # doctest: +NORMALIZE_WHITESPACE
{'kind': 'prune', 'sample': 250, 'time': None, 'component': 3, 'old': 6, 'new': 5,
 'reason': 'relevance share 0.004'}
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class Event(Mapping):
    """One change of the model: what, when (samples learned; stream time if known), which
    component, the value before and after, and why. Equal to an Event with the same fields
    (the dataclass's equality, not a Mapping's)."""

    kind: str
    sample: int
    time: float | None = None
    component: int | None = None
    old: Any = None
    new: Any = None
    reason: str = ""

    def __getitem__(self, key: str) -> Any:
        if key not in FIELDS:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(FIELDS)

    def __len__(self) -> int:
        return len(FIELDS)

    def to_dict(self) -> dict[str, Any]:
        """The event as a plain dict with every field."""
        return {name: getattr(self, name) for name in FIELDS}


FIELDS = tuple(field.name for field in fields(Event))


class EventLog(list):
    """The events of one model, oldest first (a list of :class:`Event`)."""

    def emit(self, kind: str, sample: int, **details: Any) -> Event:
        """Record an event that happened after ``sample`` samples."""
        event = Event(kind, int(sample), **details)
        self.append(event)
        return event

    def state(self) -> list[dict[str, Any]]:
        """JSON-ready: one dict per event."""
        return [event.to_dict() for event in self]

    @classmethod
    def restore(cls, records: Iterable[Mapping[str, Any]]) -> EventLog:
        return cls(Event(**{name: record.get(name) for name in FIELDS if name in record})
                   for record in records)
