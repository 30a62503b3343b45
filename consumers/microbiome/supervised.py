"""Supervised mode of the microbiome consumer: a class for each sample, learned as it comes.

``onlinenmf consume microbiome --label meta.delivery`` (or ``[supervised] label =
"meta.delivery"`` in the ``--config`` file) reads each sample's class from that field of its
``meta`` and learns, besides the communities of :class:`~consumers.microbiome.MicrobiomeApp`,
an :class:`onlinenmf.river.NMFClassifier` (class-specific communities, Cai, Gu & Kenney 2017)
on the sample's ``log1p`` counts, as ``benchmarks/bench_supervised.py`` measures it.

Per sample, in this order:

1. the label is read; a missing field or ``null`` is *unlabelled*; a string, an integer or
   ``true``/``false`` is a class; anything else (a float, an object, a list, a type other
   than that of the classes seen so far, a string longer than
   :data:`~consumers.messages.MAX_ID_CHARS`) is a dead letter ``schema``, and a new class
   beyond :data:`MAX_CLASSES` one ``rejected``; nothing learned either way;
2. the unsupervised model (and tracker) learn the sample as without ``--label``;
3. the classifier predicts the sample's class probabilities, *before* learning it
   (prequential): they go into the output record;
4. a labelled sample teaches the classifier; an unlabelled one does not (its communities
   were learned in step 2, the classes are not updated: semi-supervised).

The classifier is part of the checkpoint (blob ``classifier``, :meth:`NMFClassifier.to_bytes`),
so a restart goes on exactly where the checkpoint left off, and ``onlinenmf report`` shows
each class's communities from it.

Output record: the fields of :class:`~consumers.microbiome.CommunityRecord` plus::

    "label": "vaginal",                           # the sample's class (absent: unlabelled)
    "proba": {"cesarean": 0.31, "vaginal": 0.69}, # before learning it; {} before any class
    "predicted": "vaginal"                        # the most probable class (absent: none yet)

``proba`` is keyed by the classes as text (JSON object keys): ``"1"`` for the integer class 1,
``"true"`` for ``true``.

>>> from consumers.application import Source
>>> from consumers.microbiome.schema import encode_sample
>>> app = SupervisedMicrobiomeApp(Supervision("meta.delivery", {"n_components": 2}),
...                               model_params={"n_components": 2, "seed": 0})
>>> app.restore(None)
>>> src = Source("microbiome.samples", 0, 0, None, b"C001", "main")
>>> sample = app.decode(encode_sample("C001", 0, "s0", {"a": 5}, {"delivery": "vaginal"}))
>>> record = msgspec.json.decode(app.process(sample, src).outputs[0][2])
>>> record["label"], record["proba"]  # no class known before this sample
('vaginal', {})
>>> app.supervision.classifier.classes
['vaginal']
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

import msgspec

from consumers.application import Result, Source
from consumers.messages import MAX_ID_CHARS, BadMessage
from consumers.microbiome.application import CommunityRecord, MicrobiomeApp
from consumers.microbiome.schema import Sample

__all__ = ["MAX_CLASSES", "Supervision", "SupervisedMicrobiomeApp", "SupervisedRecord",
           "label_path"]

#: Most classes one consumer learns (class-wise: a model of its own each); a sample bringing
#: another is dead-lettered (``rejected``), so that a wrongly named field (an id) cannot fill
#: the memory with one class per sample.
MAX_CLASSES = 64
#: The checkpoint blob holding the classifier.
BLOB = "classifier"
#: JSON types a class may have (bool before int: True is an int to Python).
_CLASS_TYPES = {bool: "true/false", int: "an integer", str: "a string"}
log = logging.getLogger("onlinenmf.consumer")


class SupervisedRecord(CommunityRecord, omit_defaults=True):
    """A community record with the sample's class and its prequential class probabilities."""

    label: str | int | bool | None = None
    proba: dict[str, float] | None = None
    predicted: str | int | bool | None = None


def label_path(text: str) -> tuple[str, ...]:
    """The field a label is read from, ``meta.<key>[.<key>...]``, as its keys.

    >>> label_path("meta.delivery"), label_path("meta.clinical.abx")
    (('delivery',), ('clinical', 'abx'))
    """
    first, _, rest = text.strip().partition(".")
    keys = tuple(rest.split(".")) if rest else ()
    if first != "meta" or not keys or not all(keys):
        raise ValueError(f"label field {text!r}: write meta.<key> (e.g. meta.delivery): a "
                         "sample's own fields are in its meta object")
    return keys


def class_text(label: Any) -> str:
    """A class as a JSON object key (``proba``'s keys).

    >>> class_text("vaginal"), class_text(1), class_text(True)
    ('vaginal', '1', 'true')
    """
    return ("true" if label else "false") if isinstance(label, bool) else str(label)


class Supervision:
    """The supervised piece: where the label is, and the classifier learned from it.

    Parameters
    ----------
    label : str
        The field holding each sample's class, ``meta.<key>[.<key>...]``.
    classifier_params : dict, optional
        Keyword arguments of :class:`onlinenmf.river.NMFClassifier` for a new classifier (a
        restored checkpoint keeps its own).
    """

    def __init__(self, label: str, classifier_params: Mapping[str, Any] | None = None) -> None:
        self.label = label
        self.keys = label_path(label)
        self.classifier_params = dict(classifier_params or {})
        self.classifier: Any = None

    # ------------------------------------------------------------------ state
    def restore(self, blob: bytes | None, resumed: bool) -> None:
        """The classifier of a checkpoint (``blob``), or a new one. ``resumed``: the
        checkpoint is an unsupervised run's (no ``classifier`` blob): classes start now."""
        from onlinenmf.river import NMFClassifier

        if blob is not None:
            self.classifier = NMFClassifier.from_bytes(blob, source=f"checkpoint:{BLOB}")
            return
        if resumed:
            log.warning("the checkpoint holds no classifier (an unsupervised run): classes "
                        "are learned from its next sample on")
        self.classifier = NMFClassifier(**self.classifier_params)

    def summary(self) -> dict[str, Any]:
        """For the checkpoint header: the label field and the classes seen."""
        return {"label": self.label, "classes": list(self.classifier.classes),
                "formulation": self.classifier.formulation}

    # ------------------------------------------------------------------ per sample
    def read_label(self, sample: Sample) -> Any:
        """The sample's class, or None when it has none; a BadMessage (nothing learned) for a
        label that cannot be a class."""
        node: Any = sample.meta
        for depth, key in enumerate(self.keys):
            if node is None:
                return None
            if not isinstance(node, dict):
                where = ".".join(("meta", *self.keys[:depth]))
                raise BadMessage("schema", f"label {self.label}: {where} is "
                                 f"{_json_type(node)}, not an object holding {key!r}")
            node = node.get(key)
        if node is None:
            return None
        self._check_type(node)
        if node not in self.classifier.classes and len(self.classifier.classes) >= MAX_CLASSES:
            raise BadMessage("rejected", f"label {self.label} = {node!r} would be class "
                             f"{MAX_CLASSES + 1}, beyond the {MAX_CLASSES} one consumer learns "
                             "(is it the right field?)")
        return node

    def _check_type(self, label: Any) -> None:
        kind = type(label)
        if kind not in _CLASS_TYPES:
            raise BadMessage("schema", f"label {self.label} is {_json_type(label)} "
                             f"({label!r}): a class is a string, an integer or true/false")
        classes = self.classifier.classes
        if classes and type(classes[0]) is not kind:
            raise BadMessage("schema", f"label {self.label} is {_CLASS_TYPES[kind]} "
                             f"({label!r}) but the classes so far are "
                             f"{_CLASS_TYPES[type(classes[0])]}s ({classes[0]!r}, ...): one "
                             "type per label")
        if kind is str and not 0 < len(label) <= MAX_ID_CHARS:
            raise BadMessage("schema", f"label {self.label} has {len(label)} characters: a "
                             f"class has 1 to {MAX_ID_CHARS}")

    def check(self, sample: Sample, label: Any) -> dict[str, float]:
        """The classifier's input (``log1p`` counts), once it would accept it; a
        ``rejected`` BadMessage, nothing learned, otherwise."""
        x = {taxon: math.log1p(count) for taxon, count in sample.counts.items()}
        try:
            self.classifier.check_one(x, label)
        except ValueError as err:
            raise BadMessage("rejected", f"the classifier refused the sample: {err}") from err
        return x

    def fields(self, x: Mapping[str, float], label: Any) -> dict[str, Any]:
        """The record's supervised fields: the classes' probabilities before learning ``x``."""
        proba = self.classifier.predict_proba_one(x)
        fields: dict[str, Any] = {"proba": {class_text(c): p for c, p in proba.items()}}
        if proba:
            fields["predicted"] = max(proba, key=proba.__getitem__)
        if label is not None:
            fields["label"] = label
        return fields


def _json_type(value: Any) -> str:
    names = {bool: "true/false", int: "an integer", float: "a number", str: "a string",
             dict: "an object", list: "a list"}
    return names.get(type(value), type(value).__name__)


class SupervisedMicrobiomeApp(MicrobiomeApp):
    """:class:`~consumers.microbiome.MicrobiomeApp` that also learns each sample's class.

    Parameters
    ----------
    supervision : Supervision
        The label field and the classifier's parameters.
    **kwargs
        Those of :class:`~consumers.microbiome.MicrobiomeApp`.
    """

    def __init__(self, supervision: Supervision, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.supervision = supervision
        self._current: tuple[dict[str, float], Any] | None = None

    def restore(self, blobs: Mapping[str, bytes] | None) -> None:
        super().restore(blobs)
        self.supervision.restore(None if blobs is None else blobs.get(BLOB),
                                 resumed=blobs is not None)

    def snapshot(self) -> dict[str, bytes]:
        return {**super().snapshot(), BLOB: self.supervision.classifier.to_bytes()}

    def summary(self) -> dict[str, Any]:
        return {**super().summary(), "supervised": self.supervision.summary()}

    def process(self, sample: Sample, source: Source) -> Result:
        # Everything that can refuse the sample comes before anything learns it.
        label = self.supervision.read_label(sample)
        x = self.supervision.check(sample, label)
        self._current = (x, label)
        try:
            result = super().process(sample, source)  # the record: community_record below
        finally:
            self._current = None
        if label is not None:  # unlabelled: communities learned above, no class update
            self.supervision.classifier.learn_one(x, label)
        return result

    def community_record(self, sample: Sample, source: Source, h: Mapping[int, float],
                         loss: float | None, tracked: Mapping[str, Any] | None = None
                         ) -> CommunityRecord:
        record = super().community_record(sample, source, h, loss, tracked)
        if self._current is None:  # (called from elsewhere: no prediction to add)
            return record
        x, label = self._current
        return SupervisedRecord(**msgspec.structs.asdict(record),
                                **self.supervision.fields(x, label))
