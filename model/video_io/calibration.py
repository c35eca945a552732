"""Which pixel size and frame interval go into a generated video's metadata."""

from __future__ import annotations

from collections.abc import Mapping

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
