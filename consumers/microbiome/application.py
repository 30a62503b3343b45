"""The longitudinal microbiome application: samples of taxa counts -> community weights.

Plugged into :class:`consumers.loop.ConsumerLoop`. Per valid input record it learns the
sample (warm-started from the subject's previous activations) and emits one record to
the output topic (key = subject id); after every dictionary refresh it also emits the
new model version to the model topic (key = worker id). ``loss`` is the prequential
loss: the beta-divergence of the sample from ``W h`` under the dictionary it met, before
learning it. ``drift_score`` is the drift detector's score of the sample
(:attr:`onlinenmf.OnlineNMF.last_drift_scores`: how unusual its loss and its number of
features are against the stream's recent level); null without a detector
(``drift_threshold=None``) or before its first reference level, as is a non-finite ``loss``.

Output record (``microbiome.communities``), JSON; fields may be added over time, so
readers should ignore unknown ones::

    {"subject": "C001", "time": 36.0, "sample_id": "10249.C001.02SS",
     "source": {"topic": "microbiome.samples", "partition": 0, "offset": 17},
     "worker": "main", "model_version": 3, "weights": {"0": 812.5, "4": 20.1, ...},
     "composition": {"0": 0.97, "4": 0.024, ...}, "dominant": 0, "loss": 153.2,
     "drift_score": 0.8, "total_count": 9240.0, "growth": {"0": 0.012, ...}, "events": [...],
     "meta": {...}}

``growth`` (per day, Theil-Sen slope of log abundance over the subject's history) and
``events`` (a community appears in / vanishes from the subject; births and retirements in
the model; an ``anomaly`` mark) come from :class:`onlinenmf.tracking.Tracker`; they are
absent with ``track=False``. ``anomaly`` (``{"z": ..., "ratio": ...}``) is present only for a
sample whose loss is unusual for its subject (the tracker's ``anomaly_z``), ``late`` (true)
only for an out-of-order sample. In supervised mode (``--label``) records also carry
``label``, ``proba`` and ``predicted`` (:mod:`consumers.microbiome.supervised`).

Model record (``microbiome.model``)::

    {"worker": "main", "model_version": 3, "samples_learned": 300, "n_components": 10,
     "n_features": 812, "w_sha256": "...", "components": {"0": [["<taxon>", 0.41], ...]}}

>>> from consumers.microbiome.schema import encode_sample
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
import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from consumers.application import Result, Source
from consumers.messages import DEFAULT_MAX_BYTES, BadMessage, SourceRef
from consumers.microbiome.schema import (
    DEFAULT_MAX_FEATURES,
    TOPICS,
    Sample,
    decode_sample,
)

__all__ = ["MicrobiomeApp", "CommunityRecord", "ModelRecord", "w_sha256", "model_from_blobs"]


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
    drift_score: float | None
    total_count: float
    # Filled by the subject tracker (onlinenmf.tracking) when one is attached.
    growth: dict[int, float] | None = None
    events: list[dict[str, Any]] | None = None
    anomaly: dict[str, float] | None = None
    late: bool = False
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
_APP_DEC = msgspec.msgpack.Decoder(dict[str, Any])
log = logging.getLogger("onlinenmf.consumer")


def _finite(value: float | None) -> float | None:
    """A number for a JSON record: NaN and infinities (which JSON cannot hold) are null."""
    return value if value is None or math.isfinite(value) else None


def w_sha256(W: np.ndarray) -> str:
    """Hex sha256 of W's bytes (C order, float64): equal digests mean bit-equal W.

    >>> w_sha256(np.zeros((2, 2)))[:12]
    '66687aadf862'
    """
    return hashlib.sha256(np.ascontiguousarray(W, dtype=np.float64).tobytes()).hexdigest()


def model_from_blobs(blobs: Mapping[str, bytes], source: str = "checkpoint") -> Any:
    """The :class:`onlinenmf.OnlineNMF` inside a checkpoint's state blobs.

    With a subject tracker the model lives inside the ``tracker`` blob; without one it is
    the ``model`` blob.
    """
    if "tracker" in blobs:
        from onlinenmf.tracking import Tracker

        return Tracker.from_bytes(blobs["tracker"], source=f"{source}:tracker").model
    from onlinenmf import OnlineNMF

    return OnlineNMF.from_bytes(blobs["model"], source=f"{source}:model")


def _read_init(path: str | os.PathLike | None) -> tuple[bytes | None, dict[str, str] | None]:
    """A starting snapshot's bytes (verified) and its record: path and sha256."""
    if path is None:
        return None, None
    from onlinenmf import OnlineNMF

    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise ValueError(f"--init-from {path}: {err.strerror or err}") from None
    OnlineNMF.from_bytes(data, source=f"--init-from {path}")  # a SnapshotError: a ValueError
    return data, {"path": str(path), "sha256": hashlib.sha256(data).hexdigest()}


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
        Limits of an input message (larger ones are dead-lettered). ``max_bytes`` is also
        the largest output record (``--max-message-bytes`` sets both): an input's ``meta``,
        carried into its output record, may use at most half of it.
    top_features : int
        Features listed per component in model records.
    track : bool
        Follow subjects with an :class:`onlinenmf.tracking.Tracker` (growth rates and
        appear/vanish events in the output records; it also warm-starts each subject's
        solve). Without it, the consumer keeps only each subject's last h as warm start.
    tracker_params : dict
        Keyword arguments of the Tracker. Its bounds (``Tracker.BOUNDS``: ``max_subjects``,
        ``max_history_bytes``, ...) also apply to a tracker restored from a checkpoint.
    shared : consumers.shared.SharedDictionary, optional
        Share one dictionary with the group's other workers through a stats topic
        (``--share-dictionary``); ``None`` (the default): this worker's own dictionary.
    init_from : path, optional
        A model snapshot (``onlinenmf fit --out``, :meth:`onlinenmf.OnlineNMF.save`) to start
        from instead of a fresh model (``--init-from``): a history fitted on Dask, followed
        live from there. Read and verified here (a ValueError if unusable). Where it came from
        is recorded in the checkpoint: a restart continues the checkpoint, never re-applies it.
    """

    def __init__(
        self,
        model_params: Mapping[str, Any] | None = None,
        output_topic: str | None = TOPICS.output,
        model_topic: str | None = TOPICS.model,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_features: int = DEFAULT_MAX_FEATURES,
        top_features: int = 10,
        track: bool = True,
        tracker_params: Mapping[str, Any] | None = None,
        shared: Any = None,
        init_from: str | os.PathLike | None = None,
    ) -> None:
        self.model_params = dict(model_params or {})
        #: The snapshot a new model starts from, and what the checkpoint records of it.
        self.init_snapshot, self.init_record = _read_init(init_from)
        #: Where this worker's model started (None: a fresh model), as its checkpoint says.
        self.origin: dict[str, str] | None = None
        self.output_topic = output_topic
        self.model_topic = model_topic
        self.max_bytes = max_bytes
        self.max_features = max_features
        self.top_features = top_features
        self.track = track
        self.tracker_params = dict(tracker_params or {})
        self.shared = shared
        self.model: Any = None
        self.tracker: Any = None
        self.last_h: dict[str, dict[int, float]] = {}
        self.published_version = 0

    # ------------------------------------------------------------------ state
    def restore(self, blobs: Mapping[str, bytes] | None) -> None:
        # the engine is imported only here: consumers/ modules import without it
        from onlinenmf import OnlineNMF
        from onlinenmf.tracking import Tracker

        self.last_h, self.tracker, self.published_version = {}, None, 0
        if blobs is None:
            self.origin = self.init_record
            self.model = (OnlineNMF(**self.model_params) if self.init_snapshot is None else
                          OnlineNMF.from_bytes(self.init_snapshot, source="--init-from"))
            if self.track:
                self.tracker = Tracker(self.model, **self.tracker_params)
        elif "tracker" in blobs:
            self.tracker = Tracker.from_bytes(blobs["tracker"], source="checkpoint:tracker")
            self.model = self.tracker.model
            # Memory bounds are the operator's to change on a restart (the rest of the
            # tracker's settings come with its checkpoint): enforced at once.
            bounds = {k: v for k, v in self.tracker_params.items() if k in Tracker.BOUNDS}
            if bounds:
                self.tracker.set_bounds(**bounds)
        else:
            self.model = OnlineNMF.from_bytes(blobs["model"], source="checkpoint:model")
            self.last_h = _SUBJECTS_DEC.decode(blobs["subjects"])
        if blobs is not None:
            app = _APP_DEC.decode(blobs["app"])
            self.published_version = int(app["published_version"])
            self.origin = app.get("init_from")
            if self.init_record is not None and self.origin != self.init_record:
                log.warning("--init-from %s not applied: the checkpoint continues a model "
                            "started from %s", self.init_record["path"],
                            self.origin["path"] if self.origin else "scratch")
        if self.shared is not None:
            # peers are not in the checkpoint: the stats topic is read again (see shared.py)
            self.shared.start()
            self.shared.poll()
            self._set_peers()

    def snapshot(self) -> dict[str, bytes]:
        app = _STATE_ENC.encode({"published_version": self.published_version,
                                 **({"init_from": self.origin} if self.origin else {})})
        if self.tracker is not None:  # the tracker's snapshot embeds the model
            return {"tracker": self.tracker.to_bytes(), "app": app}
        return {
            "model": self.model.to_bytes(),
            # Warm starts change h in its last bits, hence W: they are part of the state.
            "subjects": _STATE_ENC.encode(self.last_h),
            "app": app,
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
            "n_subjects": len(self.tracker) if self.tracker is not None else len(self.last_h),
            **({"tracker_history_bytes": self.tracker.history_bytes}
               if self.tracker is not None else {}),
            "tracked": self.tracker is not None,
            **({"init_from": self.origin} if self.origin else {}),
            **({"peers": sorted(self.shared.latest)} if self.shared is not None else {}),
        }

    def topics_written(self) -> list[str]:
        """The output and model topics (those not switched off)."""
        return [t for t in (self.output_topic, self.model_topic) if t is not None]

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
        try:  # both guarantee that a refused sample changed nothing
            if self.tracker is not None:
                tracked = self.tracker.learn_one(sample.counts, sample.subject, sample.time)
                h = tracked["weights"]
            else:
                h = model.learn_one(sample.counts, warm_start=self.last_h.get(sample.subject))
                self.last_h[sample.subject] = h
                tracked = None
        except ValueError as err:
            raise BadMessage("rejected", f"the model refused the sample: {err}") from err
        outputs: list[tuple[str, bytes | None, bytes]] = []
        # prequential: the sample scored against the dictionary before it was learned
        loss = float(model.last_loss)
        if self.output_topic is not None:
            record = self.community_record(sample, source, h, loss, tracked)
            outputs.append((self.output_topic, sample.subject.encode(), _ENC.encode(record)))
        if model.model_version != self.published_version:
            self.published_version = int(model.model_version)
            if self.model_topic is not None:
                outputs.append((self.model_topic, source.worker.encode(),
                                _ENC.encode(self.model_record(source.worker))))
            if self.shared is not None:
                outputs.extend(self._share())
        return Result(outputs, loss)

    def _share(self) -> list[tuple[str, bytes | None, bytes]]:
        """After a refresh: publish our statistics when due; take the peers' latest."""
        publication = self.shared.publication(self.model)
        if self.shared.poll() or self.shared.max_age is not None:  # (max_age: expiries)
            self._set_peers()
        return [publication] if publication is not None else []

    def _set_peers(self) -> None:
        peers = self.shared.peers()
        try:
            self.model.set_peer_statistics(peers)
        except ValueError as err:  # e.g. a worker with another beta: keep the usable ones
            log.warning("peer statistics refused: %s", err)
            usable = []
            for peer in peers:
                try:
                    self.model.set_peer_statistics([peer])
                except ValueError:
                    continue
                usable.append(peer)
            self.model.set_peer_statistics(usable)

    def community_record(
        self, sample: Sample, source: Source, h: Mapping[int, float], loss: float | None,
        tracked: Mapping[str, Any] | None = None,
    ) -> CommunityRecord:
        """The output record of one learned sample (``tracked``: the tracker's record), built
        right after the model learned it (its model version and drift score are the model's
        latest)."""
        total = sum(h.values())
        composition = {c: (v / total if total > 0 else 0.0) for c, v in h.items()}
        dominant = max(h, key=h.__getitem__) if total > 0 else None
        extra: dict[str, Any] = {}
        if tracked is not None:
            from onlinenmf.tracking import record_fields

            extra = record_fields(tracked)
            extra["late"] = bool(tracked.get("late", False))
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
            loss=_finite(loss),
            drift_score=_finite(float(self.model.last_drift_scores[-1])),
            total_count=float(math.fsum(sample.counts.values())),
            meta=sample.meta,
            **extra,
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
