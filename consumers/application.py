"""What the consumer loop and an application exchange: the application's protocol
(:class:`Application`), where a record came from (:class:`Source`) and what the application
made of it (:class:`Result`).

An application is one stream kind's decoding, model update and output records
(:mod:`consumers.microbiome`, :mod:`consumers.reco`, :mod:`consumers.text`); the loop
(:mod:`consumers.loop`) runs any of them. Both import this module, and an application never
imports the loop, so that the loop's configuration can list the kinds and their flags
(:mod:`consumers.config` -> :mod:`consumers.kinds`) without an import circle.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol


class Source(NamedTuple):
    """Where an input record came from (carried into output records). A named tuple: one
    is made per record, and a frozen dataclass costs three times as much to build."""

    topic: str
    partition: int
    offset: int
    timestamp: int | None
    key: bytes | None
    worker: str



@dataclass
class Result:
    """What the application made of one record: records to produce, and its loss."""

    outputs: list[tuple[str, bytes | None, bytes]] = field(default_factory=list)
    loss: float | None = None


class Application(Protocol):
    """What the loop needs from an application (see :mod:`consumers.microbiome`)."""

    def decode(self, value: bytes | None) -> Any:
        """Validate one record's value; raise BadMessage when it is unusable."""

    def process(self, item: Any, source: Source) -> Result:
        """Update the model with one decoded item; raise BadMessage('rejected', ...) leaving
        no trace in the state when the model refuses it."""

    def snapshot(self) -> dict[str, bytes]:
        """The whole state, as named blobs (restored by :meth:`restore`)."""

    def restore(self, blobs: Mapping[str, bytes] | None) -> None:
        """Return to a snapshot (``None``: the fresh initial state)."""

    def summary(self) -> dict[str, Any]:
        """JSON-able facts for the checkpoint header (samples_learned, model_version, ...)."""

    def gauges(self) -> dict[str, float]:
        """Cheap numbers for metrics: at least ``model_version`` and ``n_components``."""

    def topics_written(self) -> list[str]:
        """The topics its output records go to (the loop creates them at start when
        missing, with the dead-letter topics)."""
