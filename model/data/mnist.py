"""Real MNIST digits from the shared data folder.

Two disjoint splits: "train" (the 5000-digit subset of the MNIST training set shipped
as CSV, 500 per class) feeds the Moving MNIST videos a GAN is trained on; "heldout"
(the 10000 official test digits) is kept for metrics and classifiers, so a generator
is never judged on digits it has seen.
"""

from __future__ import annotations

import gzip
import io
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np

from .paths import require

Split = Literal["train", "heldout"]
SPLITS: tuple[Split, ...] = ("train", "heldout")

TRAIN_CSV = "mnist/mnist_5k.csv.gz"
HELDOUT_IMAGES = "mnist/t10k-images-idx3-ubyte.gz"
HELDOUT_LABELS = "mnist/t10k-labels-idx1-ubyte.gz"

DIGIT_SIZE = 28
_IDX_UBYTE = 0x08
_IDX_IMAGES_MAGIC = 2051
_IDX_LABELS_MAGIC = 2049


class CorruptDataError(ValueError):
    """A data file exists but does not hold what its name promises."""


@dataclass(frozen=True)
class MnistDigits:
    """Digits of one split; arrays are read-only because they are shared by the cache."""

    split: Split
    images: np.ndarray  # uint8 (N, 28, 28), 0 = background, 255 = ink
    labels: np.ndarray  # int64 (N,), 0..9

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def load_digits(split: Split) -> MnistDigits:
    """The digits of `split`, parsed once per process and data folder."""
    if split == "train":
        return _load_train(require(TRAIN_CSV))
    if split == "heldout":
        return _load_heldout(require(HELDOUT_IMAGES), require(HELDOUT_LABELS))
    raise ValueError(f"unknown MNIST split {split!r}: use one of {SPLITS}")


@lru_cache(maxsize=4)
def _load_train(csv_path: Path) -> MnistDigits:
    try:
        with gzip.open(csv_path, "rb") as handle:
            table = np.loadtxt(io.BytesIO(handle.read()), delimiter=",", dtype=np.float64, ndmin=2)
    except (OSError, ValueError, EOFError) as error:
        raise CorruptDataError(
            f"{csv_path} is not a readable gzip CSV of MNIST digits ({error}); "
            f"replace it with the original mnist_5k.csv.gz (see shared/data/README.md)"
        ) from error
    pixels = DIGIT_SIZE * DIGIT_SIZE
    if table.shape[1] != pixels + 1:
        raise CorruptDataError(
            f"{csv_path}: expected {pixels + 1} columns per row (784 pixels then the label), "
            f"found {table.shape[1]}"
        )
    values, labels = table[:, :pixels], table[:, pixels]
    _check_integers(csv_path, values, 255, "pixel")
    _check_integers(csv_path, labels, 9, "label")
    images = values.astype(np.uint8).reshape(-1, DIGIT_SIZE, DIGIT_SIZE)
    return _frozen("train", images, labels.astype(np.int64))


@lru_cache(maxsize=4)
def _load_heldout(images_path: Path, labels_path: Path) -> MnistDigits:
    images = _read_idx(images_path, _IDX_IMAGES_MAGIC)
    labels = _read_idx(labels_path, _IDX_LABELS_MAGIC)
    if images.shape[1:] != (DIGIT_SIZE, DIGIT_SIZE):
        raise CorruptDataError(f"{images_path}: images are {images.shape[1:]}, expected 28x28")
    if images.shape[0] != labels.shape[0]:
        raise CorruptDataError(
            f"{images_path} holds {images.shape[0]} images but {labels_path} holds "
            f"{labels.shape[0]} labels; the two files must come from the same release"
        )
    _check_integers(labels_path, labels, 9, "label")
    return _frozen("heldout", images, labels.astype(np.int64))


def _read_idx(path: Path, magic: int) -> np.ndarray:
    """Parse an IDX file: big-endian uint32 magic (0, 0, dtype, ndim), then dims, then data."""
    try:
        with gzip.open(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as error:
        raise CorruptDataError(f"{path} is not a readable gzip file ({error})") from error
    ndim = magic & 0xFF
    header_size = 4 * (1 + ndim)
    if len(raw) < header_size:
        raise CorruptDataError(f"{path}: {len(raw)} bytes is too short for an IDX header")
    found_magic = int(np.frombuffer(raw, dtype=">u4", count=1)[0])
    if found_magic != magic or (found_magic >> 8) & 0xFF != _IDX_UBYTE:
        raise CorruptDataError(
            f"{path}: IDX magic number is {found_magic}, expected {magic}; "
            f"the file is not the MNIST file its name says"
        )
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = header_size + int(np.prod(shape))
    if len(raw) != expected:
        raise CorruptDataError(
            f"{path}: header announces shape {shape} ({expected} bytes) but the file "
            f"decompresses to {len(raw)} bytes (truncated or corrupt)"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(shape)


def _check_integers(path: Path, values: np.ndarray, maximum: int, what: str) -> None:
    if values.size and (values.min() < 0 or values.max() > maximum or np.any(values % 1)):
        raise CorruptDataError(f"{path}: {what} values must be integers in 0..{maximum}")


def _frozen(split: Split, images: np.ndarray, labels: np.ndarray) -> MnistDigits:
    images = np.ascontiguousarray(images)
    labels = np.ascontiguousarray(labels)
    images.flags.writeable = False
    labels.flags.writeable = False
    return MnistDigits(split=split, images=images, labels=labels)
