"""The text stream kind: documents -> topic mixes, dominant topics and topic events.

Same shape as every kind: ``schema`` (topics, input schema), ``application`` (the
:class:`~consumers.loop.ConsumerLoop` application), ``producer`` (``onlinenmf produce``),
``flags`` (its ``onlinenmf consume`` options); registered in :mod:`consumers.kinds`.
"""

from consumers.text.application import DocumentRecord, TextApp, TopicsRecord
from consumers.text.schema import (
           TOPICS,
           Document,
           DocumentMessage,
           decode_document,
           encode_document,
)

__all__ = ["TOPICS", "TextApp", "DocumentRecord", "TopicsRecord", "Document", "DocumentMessage",
           "decode_document", "encode_document"]
