"""Explicit, documented conversions between model intensities and stored integers.

Model videos are float32 in [-1, 1]. Storage maps that interval linearly onto the full integer
range: -1 -> 0 and +1 -> max (255 or 65535), rounding to nearest. Values outside [-1, 1] are
clipped (a tanh generator never produces them, but arithmetic on videos may), and NaN or inf
is refused because it would silently become 0 or max.
"""

from __future__ import annotations

import numpy as np

_INT_MAX = {np.dtype(np.uint8): 255, np.dtype(np.uint16): 65535}


def _integer_max(dtype: np.typing.DTypeLike) -> int:
    dt = np.dtype(dtype)
    if dt not in _INT_MAX:
        raise ValueError(f"unsupported storage dtype {dt}; use uint8 or uint16")
    return _INT_MAX[dt]


def check_model_video(video: np.ndarray, ndim: int = 3) -> np.ndarray:
    """Return `video` as float32 after checking it is a finite (T, H, W) model video."""
    arr = np.asarray(video)
    if arr.ndim != ndim:
        layout = "(T, H, W)" if ndim == 3 else "(K, T, H, W)"
        raise ValueError(f"expected a {layout} video array, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"video array is empty (shape {arr.shape})")
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"model videos are floats in [-1, 1]; got dtype {arr.dtype}")
    if not np.isfinite(arr).all():
        raise ValueError("video contains NaN or inf values; refusing to store them")
    return arr.astype(np.float32, copy=False)


def to_integer(video: np.ndarray, dtype: np.typing.DTypeLike = np.uint16) -> np.ndarray:
    """Map [-1, 1] linearly onto [0, max] of `dtype` (uint8 or uint16), clipping outside."""
    top = _integer_max(dtype)
    arr = np.asarray(video, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise ValueError("video contains NaN or inf values; refusing to convert them")
    scaled = (np.clip(arr, -1.0, 1.0) + 1.0) * (top / 2.0)
    return np.rint(scaled).astype(dtype)


def to_uint8(video: np.ndarray) -> np.ndarray:
    return to_integer(video, np.uint8)


def to_uint16(video: np.ndarray) -> np.ndarray:
    return to_integer(video, np.uint16)


def from_integer(stored: np.ndarray) -> np.ndarray:
    """Inverse of `to_integer`: uint8/uint16 back to float32 in [-1, 1]."""
    arr = np.asarray(stored)
    top = _integer_max(arr.dtype)
    return (arr.astype(np.float32) * np.float32(2.0 / top) - np.float32(1.0)).astype(np.float32)


def preview_range(video: np.ndarray) -> np.ndarray:
    """Model videos unchanged; raw camera counts (uint8/uint16, e.g. the simulator's) min-max scaled to [-1, 1].

    Previews (MP4, GIF, PNG) need the model range; TIFFs keep raw counts as they are.
    """
    arr = np.asarray(video)
    if arr.dtype not in _INT_MAX:
        return arr
    low, high = float(arr.min()), float(arr.max())
    if high == low:
        return np.zeros(arr.shape, dtype=np.float32)
    return ((arr.astype(np.float64) - low) / (high - low) * 2.0 - 1.0).astype(np.float32)

