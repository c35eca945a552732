"""How continuous a long video is where one trained-length stretch meets the next.

A generator that pasted independent clips end to end would show a jump at every seam.
The measure compares the mean absolute difference between consecutive frames at the
seams with the same inside the stretches; a continuous video has a ratio near 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SeamReport:
    seam_mad: float
    inside_mad: float
    seams: int

    @property
    def ratio(self) -> float:
        return self.seam_mad / self.inside_mad if self.inside_mad > 0 else float("inf")


def seam_continuity(videos: np.ndarray, stretch: int) -> SeamReport:
    """``videos``: (T, H, W) or (K, T, H, W); seams lie between frames k*stretch - 1 and k*stretch."""
    videos = np.asarray(videos, dtype=np.float64)
    if videos.ndim == 3:
        videos = videos[None]
    frames = videos.shape[1]
    if stretch < 2 or frames <= stretch:
        raise ValueError(f"need more than one stretch of {stretch} frames, got {frames} frames")
    steps = np.abs(np.diff(videos, axis=1)).mean(axis=(0, 2, 3))  # step j: frame j -> j+1
    seam = np.zeros(len(steps), dtype=bool)
    seam[np.arange(stretch - 1, len(steps), stretch)] = True
    return SeamReport(float(steps[seam].mean()), float(steps[~seam].mean()), int(seam.sum()))
