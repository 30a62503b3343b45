"""Checkpoints: the application's state and the input offsets it covers, in ONE atomic file.

A checkpoint file (``<worker>.ckpt`` in the checkpoint directory) is a zip archive
(stored, not compressed: the model bytes are already dense) holding

- ``header.json``: format version, worker id, sequence number, wall time, the next
  offset of every partition the model has learned from (``"topic:partition" -> int``),
  the partitions owned when it was written, per-partition counts of learned and
  dead-lettered records, a summary of the model (samples learned, version, W checksum)
  and the sha256 of every state blob;
- ``state/<name>``: opaque state blobs of the application (the engine snapshot, the
  per-subject warm starts, ...).

It is written to a temporary file in the same directory, fsynced, renamed over the old
one and the directory is fsynced: a crash at any instant leaves either the old or the
new checkpoint, never a mix. Offsets are committed to Kafka only after this returns.

Several workers may share a directory (one file each). Partition ownership moves
between them, so the offset a new owner must resume from is the largest one any
checkpoint records for that partition (:meth:`CheckpointStore.frontier`): offsets of a
partition only grow along the chain of owners, and a crashed owner's work past its last
checkpoint is simply redone by the next one.

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as d:
...     store = CheckpointStore(d, "w1")
...     _ = store.write(Checkpoint(offsets={"t:0": 5}, learned={"t:0": 5}, blobs={"m": b"x"}))
...     ckpt = store.read()
...     store.frontier(), ckpt.blobs["m"], ckpt.sequence
({'t:0': 5}, b'x', 1)
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Checkpoint", "CheckpointError", "CheckpointStore", "tp_key", "parse_tp_key"]

FORMAT = "onlinenmf-checkpoint/1"
SUFFIX = ".ckpt"
_WORKER_RE = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


class CheckpointError(RuntimeError):
    """A checkpoint file is unreadable, corrupt, or locked by another process."""


def tp_key(topic: str, partition: int) -> str:
    """The ``"topic:partition"`` key used in checkpoints (Kafka topic names hold no ':').

    >>> tp_key("microbiome.samples", 3)
    'microbiome.samples:3'
    """
    return f"{topic}:{partition}"


def parse_tp_key(key: str) -> tuple[str, int]:
    """Inverse of :func:`tp_key`.

    >>> parse_tp_key("microbiome.samples:3")
    ('microbiome.samples', 3)
    """
    topic, _, partition = key.rpartition(":")
    return topic, int(partition)


@dataclass
class Checkpoint:
    """What one worker's checkpoint holds. ``sequence`` and ``worker`` are set on write."""

    offsets: dict[str, int] = field(default_factory=dict)
    owned: list[str] = field(default_factory=list)
    learned: dict[str, int] = field(default_factory=dict)
    dead_letters: dict[str, int] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    worker: str = ""
    sequence: int = 0
    written_at: float = 0.0

    def header(self) -> dict[str, Any]:
        """The JSON header (everything but the blobs, which appear as name -> sha256)."""
        return {
            "format": FORMAT,
            "worker": self.worker,
            "sequence": self.sequence,
            "written_at": self.written_at,
            "offsets": dict(sorted(self.offsets.items())),
            "owned": sorted(self.owned),
            "learned": dict(sorted(self.learned.items())),
            "dead_letters": dict(sorted(self.dead_letters.items())),
            "summary": self.summary,
            "blobs": {k: hashlib.sha256(v).hexdigest() for k, v in sorted(self.blobs.items())},
        }


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class CheckpointStore:
    """The checkpoint directory as seen by one worker.

    Parameters
    ----------
    directory : path
        Created if missing; may be shared by several workers (a shared volume).
    worker : str
        This worker's id: its file is ``<worker>.ckpt``. :meth:`lock` makes sure no
        other live process writes the same file.
    """

    def __init__(self, directory: str | os.PathLike[str], worker: str) -> None:
        if not _WORKER_RE.match(worker):
            raise ValueError(
                f"worker id {worker!r} must be 1-128 characters of letters, digits, '._-'"
            )
        self.directory = Path(directory)
        self.worker = worker
        self.path = self.directory / f"{worker}{SUFFIX}"
        self._lock_fd: int | None = None
        self._sequence: int | None = None

    def lock(self) -> None:
        """Take an exclusive lock on this worker id (released on exit, even on SIGKILL).

        Also makes sure checkpoints can be written here (:meth:`check_writable`): a worker
        must not learn and emit anything it could never checkpoint.
        """
        self.check_writable()
        try:
            fd = os.open(self.directory / f"{self.worker}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise self._unwritable(err) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise CheckpointError(
                f"another process is running as worker {self.worker!r} on {self.directory}; "
                "give each consumer its own --worker-id"
            ) from None
        self._lock_fd = fd

    def check_writable(self) -> None:
        """Create the directory if needed and write, fsync and remove a probe file in it,
        as :meth:`write` would; raise :class:`CheckpointError` if that fails."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=f".{self.worker}.", suffix=".probe",
                                         dir=self.directory)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
                os.unlink(probe)
        except OSError as err:
            raise self._unwritable(err) from None

    def _unwritable(self, err: OSError) -> CheckpointError:
        reason = err.strerror or str(err)
        return CheckpointError(
            f"checkpoint directory {self.directory} is not writable ({reason}): "
            "give a writable --checkpoint-dir"
        )

    def unlock(self) -> None:
        """Release the lock taken by :meth:`lock`."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def read(self, path: str | os.PathLike[str] | None = None) -> Checkpoint | None:
        """Read this worker's checkpoint (or the file at ``path``); None if there is none."""
        path = Path(path) if path is not None else self.path
        if not path.exists():
            return None
        return read_checkpoint(path)

    def write(self, ckpt: Checkpoint) -> Path:
        """Write ``ckpt`` atomically as this worker's checkpoint; return its path."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if self._sequence is None:
            previous = self.read_header()
            self._sequence = int(previous["sequence"]) if previous else 0
        self._sequence += 1
        ckpt.worker, ckpt.sequence, ckpt.written_at = self.worker, self._sequence, time.time()
        header = json.dumps(ckpt.header(), indent=1).encode()
        fd, tmp = tempfile.mkstemp(prefix=f".{self.worker}.", suffix=".tmp", dir=self.directory)
        try:
            with os.fdopen(fd, "wb") as raw:
                with zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_STORED) as zf:
                    zf.writestr("header.json", header)
                    for name, blob in sorted(ckpt.blobs.items()):
                        zf.writestr(f"state/{name}", blob)
                raw.flush()
                os.fsync(raw.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(self.directory)
        return self.path

    def read_header(self, path: str | os.PathLike[str] | None = None) -> dict[str, Any] | None:
        """Only the JSON header of a checkpoint (cheap: the blobs are not read)."""
        path = Path(path) if path is not None else self.path
        if not path.exists():
            return None
        return read_header(path)

    def paths(self) -> list[Path]:
        """Every worker's checkpoint file in the directory."""
        if not self.directory.exists():
            return []
        return sorted(self.directory.glob(f"*{SUFFIX}"))

    def frontier(self) -> dict[str, int]:
        """Per partition, the largest next offset recorded by any checkpoint here."""
        out: dict[str, int] = {}
        for path in self.paths():
            try:
                header = read_header(path)
            except CheckpointError:
                continue  # being replaced right now, or foreign: the other files still count
            for key, offset in header["offsets"].items():
                out[key] = max(out.get(key, -1), int(offset))
        return out


def read_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON header of the checkpoint file at ``path``."""
    try:
        with zipfile.ZipFile(path) as zf:
            header = json.loads(zf.read("header.json"))
    except (OSError, zipfile.BadZipFile, KeyError, ValueError) as err:
        raise CheckpointError(f"cannot read checkpoint {path}: {err}") from err
    if header.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a {FORMAT} file (format {header.get('format')!r})")
    return header


def read_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read and verify (zip CRCs and blob sha256) the checkpoint file at ``path``."""
    header = read_header(path)
    blobs: dict[str, bytes] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for name, digest in header["blobs"].items():
                blob = zf.read(f"state/{name}")
                if hashlib.sha256(blob).hexdigest() != digest:
                    raise CheckpointError(f"{path}: state blob {name!r} fails its checksum")
                blobs[name] = blob
    except (OSError, zipfile.BadZipFile, KeyError) as err:
        raise CheckpointError(f"cannot read checkpoint {path}: {err}") from err
    return Checkpoint(
        offsets={k: int(v) for k, v in header["offsets"].items()},
        owned=list(header["owned"]),
        learned={k: int(v) for k, v in header["learned"].items()},
        dead_letters={k: int(v) for k, v in header["dead_letters"].items()},
        summary=dict(header["summary"]),
        blobs=blobs,
        worker=header["worker"],
        sequence=int(header["sequence"]),
        written_at=float(header["written_at"]),
    )
