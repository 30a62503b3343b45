"""Versioned, checksummed model snapshots: one ``.npz`` file, never pickle on disk.

Layout (a standard NumPy ``.npz`` zip archive, readable with ``numpy.load`` and no onlinenmf):

* one array per state array of the model (``W``, statistics, ...), stored uncompressed;
* ``__meta__``: UTF-8 JSON as a uint8 array, with ``format`` (= "onlinenmf.snapshot"),
  ``version`` (an integer, see :data:`FORMAT_VERSION`), the model's class, parameters and scalar
  state, and ``sha256``: the SHA-256 of every array's name, dtype, shape and bytes in name order.

Writes are atomic: a temporary file in the target's folder, flushed and fsync'ed, renamed over
the target, then the folder fsync'ed, so a crash leaves either the old or the new file. Reading
a truncated, corrupted or newer-version file raises :class:`SnapshotError` naming the file.

Older versions are read through :func:`upgrade`, one migration per version and class:

* version 1 -> 2 (``OnlineNMF``, the core redesign of issue 11): the statistics are kept as the
  divergence's layout says (``D`` only for the multiplicative updates with a per-feature
  denominator, ``A`` and ``G`` only for beta = 2; version 1 kept placeholders); the scalar
  state is grouped by the part of the model that owns it (``statistics``, ``components``,
  ``monitor``, ``stream``); events lose their wall-clock ``time`` (stream time, unknown to
  the model, is None) and every event has every field.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "onlinenmf.snapshot"
#: Bumped whenever the layout changes; older versions stay readable (:func:`upgrade`), newer
#: ones are refused.
FORMAT_VERSION = 2
META_KEY = "__meta__"


class SnapshotError(ValueError):
    """A snapshot file is unreadable: truncated, corrupted, or from a newer onlinenmf."""


def arrays_digest(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 over the arrays' names, dtypes, shapes and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


#: The first bytes of a zip archive (an .npz file is one); b"PK\x05\x06" is an empty one.
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


def dumps(arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> bytes:
    """Serialise arrays and JSON metadata to the bytes of an ``.npz`` snapshot."""
    meta = {"format": FORMAT, "version": FORMAT_VERSION, **meta, "sha256": arrays_digest(arrays)}
    encoded = np.frombuffer(json.dumps(meta, allow_nan=False).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays, **{META_KEY: encoded})
    return buffer.getvalue()


def loads(data: bytes, source: str = "<bytes>") -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Parse and verify snapshot bytes; ``source`` names the file in error messages."""
    if not data.startswith(ZIP_MAGIC):  # numpy would call a text file "pickled data"
        raise SnapshotError(
            f"{source}: not an onlinenmf snapshot (an .npz file written by a model's save() "
            f"or a consumer's checkpoint); it begins {data[:12]!r}")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError) as err:
        raise SnapshotError(
            f"{source}: not a readable snapshot (truncated or corrupted): {err}"
        ) from None
    if META_KEY not in arrays:
        raise SnapshotError(f"{source}: no {META_KEY} entry; not an onlinenmf snapshot")
    try:
        meta = json.loads(arrays.pop(META_KEY).tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SnapshotError(f"{source}: metadata is corrupted: {err}") from None
    if meta.get("format") != FORMAT:
        raise SnapshotError(f"{source}: format {meta.get('format')!r} is not {FORMAT!r}")
    version = meta.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise SnapshotError(
            f"{source}: snapshot version {version!r} is newer than this onlinenmf reads "
            f"(up to {FORMAT_VERSION}); upgrade onlinenmf"
        )
    if arrays_digest(arrays) != meta.get("sha256"):
        raise SnapshotError(f"{source}: checksum mismatch; the file is corrupted")
    return arrays, meta


#: The fields of a model event (see :class:`onlinenmf.events.Event`).
EVENT_FIELDS = ("kind", "sample", "time", "component", "old", "new", "reason")


def _online_nmf_v1(arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """``OnlineNMF`` version 1 -> 2 (see the module notes)."""
    beta = meta["params"]["beta"]
    if beta != 0:
        del arrays["D"]  # a (1, k) placeholder
    if beta != 2:
        del arrays["A"], arrays["G"]  # zeros
    scalars = meta.pop("scalars")
    meta["statistics"] = {"m": scalars["_m"], "scale": scalars["_scale"],
                          "n_eff": scalars["_n_eff"]}
    meta["components"] = {"ids": meta.pop("component_ids"), "next_id": meta.pop("next_id"),
                          "alarm_count": scalars["_alarm_count"],
                          "cooldown": scalars["_cooldown"]}
    meta["monitor"] = {"window_loss": scalars["_window_loss"],
                       "window_abs": scalars["_window_abs"],
                       "window_count": scalars["_window_count"], "baseline": scalars["_baseline"]}
    meta["stream"] = {"samples_learned": scalars["samples_learned"],
                      "model_version": scalars["model_version"],
                      "since_refresh": scalars["_since_refresh"],
                      "initialised": scalars["_initialised"], "forget_factor": scalars["_rho"]}
    meta["events"] = [{**{name: event.get(name) for name in EVENT_FIELDS}, "time": None}
                      for event in meta["events"]]


#: (class, version) -> the migration that brings that version to the next one, in place.
MIGRATIONS = {("OnlineNMF", 1): _online_nmf_v1}


def upgrade(arrays: dict[str, np.ndarray], meta: dict[str, Any]
            ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Bring a verified snapshot of an older version to :data:`FORMAT_VERSION`.

    >>> arrays, meta = upgrade({}, {"class": "Tracker", "version": 1})
    >>> meta["version"]
    2
    """
    arrays, meta = dict(arrays), dict(meta)
    while meta["version"] < FORMAT_VERSION:
        migration = MIGRATIONS.get((meta.get("class"), meta["version"]))
        if migration is not None:
            migration(arrays, meta)
        meta["version"] += 1
    return arrays, meta


def same_state(a: Any, b: Any) -> bool:
    """Whether two models hold the same state, bit for bit: their ``_state()`` (arrays, JSON
    metadata) are equal. The ``__eq__`` of every snapshotable model."""
    (arrays_a, meta_a), (arrays_b, meta_b) = a._state(), b._state()
    return meta_a == meta_b and arrays_a.keys() == arrays_b.keys() and all(
        np.array_equal(arrays_a[key], arrays_b[key]) for key in arrays_a
    )


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: temp file, fsync, rename, fsync the folder."""
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=folder)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def read(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read and verify a snapshot file."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise SnapshotError(f"{path}: cannot read snapshot: {err}") from None
    return loads(data, source=str(path))
