"""Previews for people: a PNG contact sheet and an animated GIF, both byte-deterministic.

Intensities map [-1, 1] linearly onto 0..255 (`intensity.to_uint8`); enlargement is integer
nearest-neighbour only, so a pixel stays a pixel. Contact sheets enlarge tiles to at least
`MIN_TILE` px by default, so a person can read them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np
from PIL import Image

from savgan.model.atomic import atomic_path
from .intensity import check_model_video, to_uint8

GAP_VALUE = 255  # white separators between tiles


MIN_TILE = 128
"""Pixels on a tile's shorter side after enlargement: 32-pixel frames at 1:1 are too small to read."""


def _check_scale(scale: int) -> None:
    if not (isinstance(scale, int) and scale >= 1):
        raise ValueError(f"scale must be a positive integer, got {scale!r}")


def _enlarge(image: np.ndarray, scale: int) -> np.ndarray:
    return image.repeat(scale, axis=-2).repeat(scale, axis=-1) if scale > 1 else image


def legible_scale(height: int, width: int) -> int:
    """The smallest integer enlargement that gives a height x width frame MIN_TILE px on its shorter side."""
    return max(1, math.ceil(MIN_TILE / min(height, width)))


def frame_indices(n_frames: int, columns: int) -> np.ndarray:
    """`columns` evenly spaced indices from the first to the last frame (fewer if T < columns)."""
    count = min(columns, n_frames)
    return np.rint(np.linspace(0, n_frames - 1, count)).astype(int)


def montage(
    videos: np.ndarray | Sequence[np.ndarray],
    columns: int = 8,
    scale: int | None = None,
    gap: int = 2,
    wrap: int | None = None,
) -> np.ndarray:
    """Build the uint8 contact sheet: `columns` evenly spaced frames of each video, in reading order.

    Each video starts a new row; its frames fill rows of `wrap` tiles (default: all on one row,
    so rows are videos and columns are times). Every video uses the same frame indices
    (computed from the shortest video) so columns line up in time. Tiles are enlarged by
    `scale` (default: `legible_scale`) and separated by `gap` white pixels, with no outer border.
    """
    if columns < 1 or gap < 0 or (wrap is not None and wrap < 1):
        raise ValueError(f"columns and wrap must be >= 1 and gap >= 0, got columns={columns}, wrap={wrap}, gap={gap}")
    rows = [check_model_video(v) for v in videos]
    if not rows:
        raise ValueError("montage needs at least one video")
    if len({v.shape[1:] for v in rows}) != 1:
        raise ValueError(f"all videos must share H x W; got {[v.shape for v in rows]}")
    scale = legible_scale(*rows[0].shape[1:]) if scale is None else scale
    _check_scale(scale)
    picks = frame_indices(min(v.shape[0] for v in rows), columns)
    per_row = min(wrap or len(picks), len(picks))
    rows_per_video = math.ceil(len(picks) / per_row)
    h, w = rows[0].shape[1] * scale, rows[0].shape[2] * scale
    sheet = np.full(
        (len(rows) * rows_per_video * (h + gap) - gap, per_row * (w + gap) - gap), GAP_VALUE, dtype=np.uint8
    )
    for r, video in enumerate(rows):
        for i, tile in enumerate(_enlarge(to_uint8(video[picks]), scale)):
            top, left = (r * rows_per_video + i // per_row) * (h + gap), (i % per_row) * (w + gap)
            sheet[top : top + h, left : left + w] = tile
    return sheet


def montage_png(
    path: str | os.PathLike[str],
    videos: np.ndarray | Sequence[np.ndarray],
    columns: int = 8,
    scale: int | None = None,
    gap: int = 2,
    wrap: int | None = None,
) -> tuple[int, int]:
    """Write the `montage` of (K, T, H, W) videos (or a list of (T, H, W)) as a grayscale PNG.

    Returns the image (height, width). The PNG carries no text or time chunks.
    """
    sheet = montage(videos, columns=columns, scale=scale, gap=gap, wrap=wrap)
    with atomic_path(path) as tmp:
        Image.fromarray(sheet).save(tmp, format="PNG", compress_level=6)
    return sheet.shape[0], sheet.shape[1]


def write_gif(
    path: str | os.PathLike[str], video: np.ndarray, fps: float = 10.0, scale: int = 1
) -> None:
    """Write a looping grayscale GIF of a (T, H, W) video.

    GIF stores frame delays in 1/100 s, so the delay is rounded to 10 ms (browsers also slow
    down anything faster than about 50 fps). Pillow merges identical consecutive frames into
    one longer frame, which keeps the playback timing.
    """
    _check_scale(scale)
    if not (np.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    frames = _enlarge(to_uint8(check_model_video(video)), scale)
    images = [Image.fromarray(f) for f in frames]
    delay_ms = 10 * max(1, round(100.0 / fps))
    with atomic_path(path) as tmp:
        images[0].save(
            tmp,
            format="GIF",
            save_all=True,
            append_images=images[1:],
            duration=delay_ms,
            loop=0,
            optimize=False,
        )
