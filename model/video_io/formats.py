"""The output formats the CLI and the API accept, by name, with their file suffixes.

Playback speed of MP4 and GIF is a fixed `PLAYBACK_FPS`, not derived from the physical frame
interval: at one frame per 10 s or 10 min the real rate would make unwatchable previews. The
physical interval is stored only where formats have a place for it (the TIFFs).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .intensity import preview_range
from .mp4 import write_mp4
from .preview import montage_png, write_gif
from .tiff import write_imagej_tiff, write_ome_tiff

PLAYBACK_FPS = 10.0
PNG_FRAMES, PNG_WRAP = 8, 4  # the png format's contact sheet: 8 evenly spaced frames, 2 rows of 4

Writer = Callable[[Path, np.ndarray, float, float], None]


@dataclass(frozen=True)
class VideoFormat:
    name: str
    suffix: str
    description: str
    write: Writer


def _mp4(path: Path, video: np.ndarray, pixel_size_um: float, frame_interval_s: float) -> None:
    write_mp4(path, preview_range(video), fps=PLAYBACK_FPS)


def _gif(path: Path, video: np.ndarray, pixel_size_um: float, frame_interval_s: float) -> None:
    write_gif(path, preview_range(video), fps=PLAYBACK_FPS)


def _png(path: Path, video: np.ndarray, pixel_size_um: float, frame_interval_s: float) -> None:
    montage_png(path, [preview_range(video)], columns=PNG_FRAMES, wrap=PNG_WRAP)


FORMATS: dict[str, VideoFormat] = {
    f.name: f
    for f in (
        VideoFormat("ome-tiff", ".ome.tif", "OME-TIFF, uint16, TYX, calibrated", write_ome_tiff),
        VideoFormat("imagej-tiff", ".tif", "ImageJ hyperstack, uint16, calibrated",
                    write_imagej_tiff),
        VideoFormat("mp4", ".mp4", f"H.264 quick look at {PLAYBACK_FPS:g} fps", _mp4),
        VideoFormat("gif", ".gif", f"animated preview at {PLAYBACK_FPS:g} fps", _gif),
        VideoFormat("png", ".png", f"contact sheet of {PNG_FRAMES} evenly spaced frames, rows of {PNG_WRAP}", _png),
    )
}


def get_format(fmt: str) -> VideoFormat:
    try:
        return FORMATS[fmt]
    except KeyError:
        known = ", ".join(FORMATS)
        raise ValueError(f"unknown video format {fmt!r}; known formats: {known}") from None


def write_video(
    path_stem: Path, video: np.ndarray, fmt: str, pixel_size_um: float, frame_interval_s: float
) -> Path:
    """Write `video` in format `fmt` to `path_stem` + the format's suffix and return that path.

    The suffix is appended to the full name (``run/video.s42`` -> ``run/video.s42.mp4``), so
    dots in stems are safe.
    """
    spec = get_format(fmt)
    path = Path(path_stem)
    target = path.with_name(path.name + spec.suffix)
    spec.write(target, video, pixel_size_um, frame_interval_s)
    return target
