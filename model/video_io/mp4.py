"""H.264 MP4 quick-look videos that play in browsers and are checked after writing.

Choices and why:
- libx264, yuv420p, ``+faststart``: the combination every browser and player accepts, with the
  index at the front so a download starts playing at once.
- yuv420p needs even width and height. Odd sizes are padded with black on the right/bottom edge
  (never resized: a microscopy pixel must stay a pixel). ``scale`` is an optional integer
  nearest-neighbour enlargement for tiny videos (64 x 64 is small on a screen). imageio-ffmpeg's
  default would silently resize to multiples of 16; we pass ``macro_block_size=1``.
- Intensities map [-1, 1] linearly onto 0..255 (`intensity.to_uint8`), gray in, gray out.
- Determinism: one encoder thread, ``bitexact`` muxer/codec flags and no metadata (no encoder
  version string, no creation time) make repeated writes byte-identical with the bundled ffmpeg.
  Across ffmpeg/x264 versions the bytes may differ; the decoded frames are what matters.
- After writing, the file is probed (frame count and size decoded back by ffmpeg); a mismatch or
  an empty file raises, and nothing is left at the destination.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import imageio_ffmpeg
import numpy as np

from savgan.model.atomic import atomic_path
from .intensity import check_model_video, to_uint8


@dataclass(frozen=True)
class VideoProbe:
    """What ffmpeg decodes back from a written file."""

    frames: int
    width: int
    height: int
    fps: float


def encoded_size(height: int, width: int, scale: int = 1) -> tuple[int, int]:
    """(height, width) of the encoded picture: scaled, then padded up to even numbers."""
    h, w = height * scale, width * scale
    return h + h % 2, w + w % 2


def _frames_for_encoding(video: np.ndarray, scale: int) -> np.ndarray:
    frames = to_uint8(check_model_video(video))
    if scale > 1:
        frames = frames.repeat(scale, axis=1).repeat(scale, axis=2)
    _, h, w = frames.shape
    return np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2)), constant_values=0)


def probe_video(path: str | os.PathLike[str]) -> VideoProbe:
    """Decode a video file with ffmpeg and report its frame count, size and frame rate."""
    reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="gray", bits_per_pixel=8)
    try:
        meta = next(reader)
        count = sum(1 for _ in reader)
    finally:
        reader.close()
    width, height = meta["size"]
    return VideoProbe(frames=count, width=int(width), height=int(height), fps=float(meta["fps"]))


def write_mp4(
    path: str | os.PathLike[str],
    video: np.ndarray,
    fps: float = 10.0,
    scale: int = 1,
    crf: int = 18,
) -> VideoProbe:
    """Encode a (T, H, W) model video as H.264 MP4 and return the verified probe of the file.

    ``crf`` is x264's constant-quality factor (0 lossless, 18 visually lossless, 51 worst).
    """
    if not (isinstance(scale, int) and scale >= 1):
        raise ValueError(f"scale must be a positive integer (no fractional resize), not {scale!r}")
    if not (np.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    if not (isinstance(crf, int) and 0 <= crf <= 51):
        raise ValueError(f"crf must be an integer in 0..51, got {crf!r}")
    frames = _frames_for_encoding(video, scale)
    n, height, width = frames.shape
    final = Path(path)
    with atomic_path(final) as tmp:
        writer = imageio_ffmpeg.write_frames(
            str(tmp),
            (width, height),
            pix_fmt_in="gray",
            pix_fmt_out="yuv420p",
            fps=fps,
            codec="libx264",
            quality=None,
            macro_block_size=1,
            ffmpeg_log_level="error",
            output_params=[
                "-crf", str(crf),
                "-preset", "medium",
                "-threads", "1",
                "-movflags", "+faststart",
                "-map_metadata", "-1",
                "-fflags", "+bitexact",
                "-flags:v", "+bitexact",
                "-f", "mp4",
            ],
        )
        writer.send(None)
        for frame in frames:
            writer.send(np.ascontiguousarray(frame))
        writer.close()
        if tmp.stat().st_size == 0:
            raise RuntimeError(f"ffmpeg wrote an empty file for {final}; the encoder failed")
        probe = probe_video(tmp)
        if (probe.frames, probe.height, probe.width) != (n, height, width):
            raise RuntimeError(
                f"MP4 check failed for {final}: expected {n} frames of {width}x{height}, "
                f"ffmpeg decodes {probe.frames} frames of {probe.width}x{probe.height}"
            )
    return probe
