"""Show what a checkpoint directory holds (offsets, samples learned, model checksum).

``onlinenmf inspect --checkpoint-dir D --json`` prints, for a directory with one worker's
checkpoint, one JSON object::

    {"offsets": {"topic:partition": next_offset, ...}, "samples_learned": n,
     "model_version": v, "w_sha256": "<sha256 of W's bytes>", "n_components": k,
     "worker": ..., "sequence": ..., "learned": {...}, "dead_letters": {...},
     "settings": {"model": {...}, "model_in_force": {...}, "tracker": {...}}, ...}

so two runs can be compared without loading any Python object; ``settings`` holds the
model's and the tracker's parameters as given and the values in force (microbiome), or the
RecoNMF's parameters (reco). With several workers'
checkpoints it prints ``{"checkpoints": [object, ...], "frontier": {...}}`` (``frontier``:
per partition the largest next offset, where a new owner resumes), unless ``--worker``
picks one. Every checkpoint is verified (its state blobs re-read against their
checksums, W's digest recomputed from the model itself): a damaged file is a one-line error
and exit status 1, never a healthy-looking report. ``--no-verify`` reads the headers only
(fast, trusts the file); ``--verify`` is accepted for compatibility (it is the default).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from consumers.checkpoint import CheckpointError, CheckpointStore, read_checkpoint, read_header
from consumers.options import add_option

__all__ = ["add_arguments", "run", "describe", "settings"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``onlinenmf inspect``."""
    add_option(parser, "--checkpoint-dir", type=Path, default=Path("checkpoints"),
               help="checkpoint directory")
    parser.add_argument("--worker", default=None, help="only this worker's checkpoint")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--verify", dest="verify", action="store_true", default=True,
                        help="verify blob checksums and recompute W's digest from the model "
                             "(the default; kept for compatibility)")
    parser.add_argument("--no-verify", dest="verify", action="store_false",
                        help="read the headers only: faster, but a damaged file goes unseen")


def describe(path: Path, verify: bool = True) -> dict[str, Any]:
    """The inspect record of one checkpoint file."""
    header = read_header(path)
    summary = header["summary"]
    out: dict[str, Any] = {
        "offsets": header["offsets"],
        "samples_learned": summary.get("samples_learned"),
        "model_version": summary.get("model_version"),
        "w_sha256": summary.get("w_sha256"),
        "n_components": summary.get("n_components"),
        "worker": header["worker"],
        "sequence": header["sequence"],
        "written_at": header["written_at"],
        "owned": header["owned"],
        "learned": header["learned"],
        "dead_letters": header["dead_letters"],
        "summary": summary,
        "path": str(path),
    }
    if verify:
        ckpt = read_checkpoint(path)  # raises on a checksum mismatch
        if "model" in ckpt.blobs or "tracker" in ckpt.blobs:
            from consumers.microbiome import w_sha256

            model, tracker = _model_and_tracker(ckpt.blobs, str(path))
            digest = w_sha256(model.W)
            if digest != out["w_sha256"]:
                raise CheckpointError(f"{path}: W digest {digest} differs from its header")
            out["settings"] = settings(model, tracker)
        elif "reco" in ckpt.blobs:
            out["settings"] = _reco_settings(ckpt.blobs["reco"], str(path))
        out["verified"] = True
    return out


def _model_and_tracker(blobs: dict[str, bytes], source: str) -> tuple[Any, Any]:
    """The OnlineNMF of a microbiome checkpoint and its Tracker (None without one)."""
    from onlinenmf import OnlineNMF
    from onlinenmf.tracking import Tracker

    try:
        if "tracker" in blobs:
            tracker = Tracker.from_bytes(blobs["tracker"], source=f"{source}:tracker")
            return tracker.model, tracker
        return OnlineNMF.from_bytes(blobs["model"], source=f"{source}:model"), None
    except ValueError as err:  # a snapshot the engine refuses (SnapshotError)
        raise CheckpointError(str(err)) from err


def settings(model: Any, tracker: Any | None) -> dict[str, Any]:
    """The settings of a checkpoint's model and tracker (issue 14): the parameters as given
    (``model``, ``tracker``) and the values in force that the model derives or re-estimates
    (``model_in_force``: rank, forgetting, L1 weight, rank bounds)."""
    from onlinenmf.parameters import ENGINE, TRACKER

    in_force = dict(model.hyperparameters)
    in_force["rank_bounds"] = list(model.rank_bounds)
    out = {"model": _plain(ENGINE.read(model)), "model_in_force": _plain(in_force)}
    if tracker is not None:
        out["tracker"] = _plain(TRACKER.read(tracker))
    return out


def _reco_settings(blob: bytes, source: str) -> dict[str, Any]:
    """The parameters of a rating stream's RecoNMF, as given."""
    from onlinenmf.parameters import RECO
    from onlinenmf.reco import RecoNMF

    try:
        model = RecoNMF.from_bytes(blob, source=f"{source}:reco")
    except ValueError as err:
        raise CheckpointError(str(err)) from err
    return {"model": _plain(RECO.read(model))}


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    """JSON-ready: numpy scalars as Python numbers, keys as text."""
    import numpy as np

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value.item() if isinstance(value, np.generic) else value

    return plain(values)


def run(args: argparse.Namespace) -> int:
    """Print the checkpoint(s) of ``--checkpoint-dir``."""
    store = CheckpointStore(args.checkpoint_dir, args.worker or "inspect")
    paths = [store.path] if args.worker else store.paths()
    paths = [p for p in paths if p.exists()]
    if not paths:
        print(f"onlinenmf inspect: no checkpoint in {args.checkpoint_dir}", file=sys.stderr)
        return 1
    try:
        records = [describe(p, args.verify) for p in paths]
    except CheckpointError as err:
        print(f"onlinenmf inspect: {err}", file=sys.stderr)
        return 1
    result: dict[str, Any]
    if len(records) == 1:
        result = records[0]
    else:
        result = {"checkpoints": records, "frontier": store.frontier()}
    if args.json:
        print(json.dumps(result, indent=1, sort_keys=True))
        return 0
    for record in records:
        print(f"{record['path']}: worker {record['worker']}, checkpoint #{record['sequence']}")
        print(f"  samples learned {record['samples_learned']}, model version "
              f"{record['model_version']}, {record['n_components']} components")
        print(f"  W sha256 {record['w_sha256']}")
        for key, offset in record["offsets"].items():
            owned = " (owned)" if key in record["owned"] else ""
            print(f"  {key}: next offset {offset}, learned {record['learned'].get(key, 0)}, "
                  f"dead letters {record['dead_letters'].get(key, 0)}{owned}")
    return 0
