"""Which pixel size, frame interval and intensity scale go into a generated video's files.

Intensity: the model works in [-1, 1], each training clip min-max scaled on its own. Stored
as the full uint16 range, a toc-sim video spanned about 1.5k-61k counts where the simulator's
camera spans about 11.5k-22k. A model whose manifest records the training data's typical
per-clip minimum and maximum (``physical.intensity_low`` / ``intensity_high``, in camera
counts) has its TIFFs written in those counts, so that they read like the data it learned.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .intensity import check_model_video

DEFAULT_PIXEL_SIZE_UM = 1.0
DEFAULT_FRAME_INTERVAL_S = 1.0


def calibration(
    physical: Mapping[str, float], pixel_size_um: float | None = None, frame_interval_s: float | None = None
) -> tuple[float, float]:
    """The request's values, else the model's training data's (its manifest ``physical``), else 1 µm and 1 s.

    The last resort is for data without physical units, such as Moving MNIST.
    """
    return (
        pixel_size_um or physical.get("pixel_size_um") or DEFAULT_PIXEL_SIZE_UM,
        frame_interval_s or physical.get("frame_interval_s") or DEFAULT_FRAME_INTERVAL_S,
    )


COUNT_FORMATS = ("ome-tiff", "imagej-tiff")  # formats that store uint16 counts; the others are 8-bit previews


def intensity_range(physical: Mapping[str, float]) -> tuple[float, float] | None:
    """The training data's (low, high) in camera counts, when the model's manifest records them."""
    low, high = physical.get("intensity_low"), physical.get("intensity_high")
    if low is None or high is None:
        return None
    if not 0 <= low < high <= 65535:
        raise ValueError(f"intensity range must satisfy 0 <= low < high <= 65535, got {low}, {high}")
    return float(low), float(high)


def to_counts(video: np.ndarray, low: float, high: float) -> np.ndarray:
    """[-1, 1] -> uint16 counts in [low, high], linearly (-1 is a clip's darkest pixel, +1 its brightest)."""
    arr = check_model_video(video)
    return np.rint(low + (np.clip(arr, -1.0, 1.0) + 1.0) * ((high - low) / 2.0)).astype(np.uint16)


def video_for_format(video: np.ndarray, fmt: str, physical: Mapping[str, float]) -> np.ndarray:
    """What to hand the writer of ``fmt``: counts in the data's range for TIFFs of a calibrated model, else the model video."""
    span = intensity_range(physical)
    if span is None or fmt not in COUNT_FORMATS:
        return video
    return to_counts(video, *span)
