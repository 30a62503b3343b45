"""The longitudinal microbiome application: samples of taxa counts -> community weights.

Plugged into :class:`consumers.loop.ConsumerLoop`. Per valid input record it learns the
sample (warm-started from the subject's previous activations) and emits one record to
the output topic (key = subject id); after every dictionary refresh it also emits the
new model version to the model topic (key = worker id). ``loss`` is the prequential
loss: the beta-divergence of the sample from ``W h`` under the dictionary it met, before
learning it.

Output record (``microbiome.communities``), JSON; fields may be added over time, so
readers should ignore unknown ones::

    {"subject": "C001", "time": 36.0, "sample_id": "10249.C001.02SS",
     "source": {"topic": "microbiome.samples", "partition": 0, "offset": 17},
     "worker": "main", "model_version": 3, "weights": {"0": 812.5, "4": 20.1, ...},
     "composition": {"0": 0.97, "4": 0.024, ...}, "dominant": 0, "loss": 153.2,
     "total_count": 9240.0}

Model record (``microbiome.model``)::

    {"worker": "main", "model_version": 3, "samples_learned": 300, "n_components": 10,
     "n_features": 812, "w_sha256": "...", "components": {"0": [["<taxon>", 0.41], ...]}}

>>> app = MicrobiomeApp(model_params={"n_components": 2, "refresh_every": 2, "seed": 0})
>>> app.restore(None)
>>> src = Source("microbiome.samples", 0, 0, None, b"C001", "main")
>>> sample = app.decode(encode_sample("C001", 0, "s0", {"a": 5, "b": 1}))
>>> result = app.process(sample, src)
>>> [(topic, key) for topic, key, _ in result.outputs]
[('microbiome.communities', b'C001')]
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from typing import Any

import msgspec
import numpy as np

from consumers.loop import Result, Source
from consumers.messages import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_FEATURES,
    BadMessage,
    Sample,
    decode_sample,
    encode_sample,
)

__all__ = ["MicrobiomeApp", "CommunityRecord", "ModelRecord", "SourceRef", "w_sha256",
           "encode_sample"]

DEFAULT_INPUT = "microbiome.samples"
DEFAULT_OUTPUT = "microbiome.communities"
DEFAULT_MODEL_TOPIC = "microbiome.model"


class SourceRef(msgspec.Struct):
    """Input coordinates of the record an output was made from."""

    topic: str
    partition: int
    offset: int


class CommunityRecord(msgspec.Struct, omit_defaults=True):
    """One output record per learned sample. Optional fields are left out when unset."""

    subject: str
    time: float
    sample_id: str
    source: SourceRef
    worker: str
    model_version: int
    weights: dict[int, float]
    composition: dict[int, float]
    dominant: int | None
    loss: float | None
    total_count: float
    # Filled by the subject tracker (onlinenmf.tracking) when one is attached.
    growth: dict[int, float] | None = None
    events: list[dict[str, Any]] | None = None
    meta: dict[str, Any] | None = None


class ModelRecord(msgspec.Struct):
    """A model version, published after each dictionary refresh."""

    worker: str
    model_version: int
    samples_learned: int
    n_components: int
    n_features: int
    w_sha256: str
    components: dict[int, list[tuple[str, float]]]


_ENC = msgspec.json.Encoder()
_STATE_ENC = msgspec.msgpack.Encoder()
_SUBJECTS_DEC = msgspec.msgpack.Decoder(dict[str, dict[int, float]])
_APP_DEC = msgspec.msgpack.Decoder(dict[str, int])


def w_sha256(W: np.ndarray) -> str:
    """Hex sha256 of W's bytes (C order, float64): equal digests mean bit-equal W.

    >>> w_sha256(np.zeros((2, 2)))[:12]
    '66687aadf862'
    """
    return hashlib.sha256(np.ascontiguousarray(W, dtype=np.float64).tobytes()).hexdigest()


class MicrobiomeApp:
    """Application object for :class:`consumers.loop.ConsumerLoop`.

    Parameters
    ----------
    model_params : dict
        Keyword arguments of :class:`onlinenmf.OnlineNMF` for a fresh model (a restored
        checkpoint keeps its own).
    output_topic, model_topic : str
        Where community records and model versions go (``None``: not produced).
    max_bytes, max_features : int
        Limits of an input message (larger ones are dead-lettered).
    top_features : int
        Features listed per component in model records.
    """

    def __init__(
        self,
        model_params: Mapping[str, Any] | None = None,
        output_topic: str | None = DEFAULT_OUTPUT,
        model_topic: str | None = DEFAULT_MODEL_TOPIC,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_features: int = DEFAULT_MAX_FEATURES,
        top_features: int = 10,
    ) -> None:
        self.model_params = dict(model_params or {})
        self.output_topic = output_topic
        self.model_topic = model_topic
        self.max_bytes = max_bytes
        self.max_features = max_features
        self.top_features = top_features
        self.model: Any = None
        self.last_h: dict[str, dict[int, float]] = {}
        self.published_version = 0

    # ------------------------------------------------------------------ state
    def restore(self, blobs: Mapping[str, bytes] | None) -> None:
        from onlinenmf import OnlineNMF  # the engine is imported only by the application

        if blobs is None:
            self.model = OnlineNMF(**self.model_params)
            self.last_h = {}
            self.published_version = 0
            return
        self.model = OnlineNMF.from_bytes(blobs["model"], source="checkpoint")
        self.last_h = _SUBJECTS_DEC.decode(blobs["subjects"])
        self.published_version = _APP_DEC.decode(blobs["app"])["published_version"]

    def snapshot(self) -> dict[str, bytes]:
        return {
            "model": self.model.to_bytes(),
            # Warm starts change h in its last bits, hence W: they are part of the state.
            "subjects": _STATE_ENC.encode(self.last_h),
            "app": _STATE_ENC.encode({"published_version": self.published_version}),
        }

    def summary(self) -> dict[str, Any]:
        model = self.model
        return {
            "samples_learned": int(model.samples_learned),
            "model_version": int(model.model_version),
            "w_sha256": w_sha256(model.W),
            "w_shape": list(model.W.shape),
            "n_components": len(model.component_ids),
            "n_features": int(model.n_features),
            "n_subjects": len(self.last_h),
        }

    def gauges(self) -> dict[str, float]:
        return {
            "model_version": float(self.model.model_version),
            "n_components": float(len(self.model.component_ids)),
        }

    # ------------------------------------------------------------------ records
    def decode(self, value: bytes | None) -> Sample:
        return decode_sample(value, max_bytes=self.max_bytes, max_features=self.max_features)

    def process(self, sample: Sample, source: Source) -> Result:
        model = self.model
        try:
            h = model.learn_one(sample.counts, warm_start=self.last_h.get(sample.subject))
        except ValueError as err:  # the engine guarantees it changed nothing
            raise BadMessage("rejected", f"the model refused the sample: {err}") from err
        self.last_h[sample.subject] = h
        outputs: list[tuple[str, bytes | None, bytes]] = []
        # prequential: the sample scored against the dictionary before it was learned
        loss = float(model.last_loss)
        if self.output_topic is not None:
            record = self.community_record(sample, source, h, loss)
            outputs.append((self.output_topic, sample.subject.encode(), _ENC.encode(record)))
        if model.model_version != self.published_version:
            self.published_version = int(model.model_version)
            if self.model_topic is not None:
                outputs.append((self.model_topic, source.worker.encode(),
                                _ENC.encode(self.model_record(source.worker))))
        return Result(outputs, loss)

    def community_record(
        self, sample: Sample, source: Source, h: Mapping[int, float], loss: float | None
    ) -> CommunityRecord:
        """The output record of one learned sample."""
        total = sum(h.values())
        composition = {c: (v / total if total > 0 else 0.0) for c, v in h.items()}
        dominant = max(h, key=h.__getitem__) if total > 0 else None
        return CommunityRecord(
            subject=sample.subject,
            time=sample.time,
            sample_id=sample.sample_id,
            source=SourceRef(source.topic, source.partition, source.offset),
            worker=source.worker,
            model_version=int(self.model.model_version),
            weights=dict(h),
            composition=composition,
            dominant=dominant,
            loss=loss if loss is None or math.isfinite(loss) else None,
            total_count=float(math.fsum(sample.counts.values())),
            meta=sample.meta,
        )

    def model_record(self, worker: str) -> ModelRecord:
        """The current model version, with each component's top features."""
        model = self.model
        top = model.components(top=self.top_features)
        return ModelRecord(
            worker=worker,
            model_version=int(model.model_version),
            samples_learned=int(model.samples_learned),
            n_components=len(model.component_ids),
            n_features=int(model.n_features),
            w_sha256=w_sha256(model.W),
            components={c: [(str(f), float(w)) for f, w in feats] for c, feats in top.items()},
        )
