"""AACD: average absolute change of mean frame intensity between consecutive frames.

The paper: "mean over frames of the L2 distance between the mean intensities of
consecutive frames". A frame's mean intensity is a scalar, so the L2 distance is the
absolute difference. Intensities are taken on the fixed scale [0, 1], i.e. (x + 1) / 2
for our [-1, 1] videos, so that figures do not depend on a video's own range. (The
paper's values, 0.47 to 2.26, suggest it used a wider scale, e.g. 0-255; it does not
say, so ours are not numerically comparable with its Table 1, only with each other.)
Lower is better: a flickering video scores high, a static one 0.
"""

from __future__ import annotations

import numpy as np

INTENSITY_SCALE = "[0, 1] ((x + 1) / 2 of the [-1, 1] videos)"


def aacd_per_video(videos: np.ndarray) -> np.ndarray:
    """(K,) AACD of each video of (K, F, H, W) in [-1, 1]; F >= 2."""
    if videos.ndim != 4 or videos.shape[1] < 2:
        raise ValueError(f"AACD needs videos shaped (K, F>=2, H, W), got {videos.shape}")
    means = ((videos.astype(np.float64) + 1.0) / 2.0).mean(axis=(2, 3))  # (K, F)
    return np.abs(np.diff(means, axis=1)).mean(axis=1)


def aacd(videos: np.ndarray) -> float:
    """AACD averaged over videos (each video weighs the same)."""
    return float(aacd_per_video(videos).mean())
