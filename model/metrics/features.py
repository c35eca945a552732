"""Per-frame classifier outputs for whole video sets, computed once and shared.

Flips/seq needs the predicted digit of every frame, cosTS and FD-own its 512-d features;
one pass gives both. Frames whose size differs from the classifier's are resized
(area averaging when shrinking, as Moving MNIST renders small frames; bilinear when
enlarging) so a 64x64 model can be judged by the 32x32 classifier.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from savgan.model.metrics.classifier import FrameClassifier, predict


@dataclass(frozen=True)
class FrameOutputs:
    labels: np.ndarray  # int64 (K, F) predicted digit per frame
    features: np.ndarray  # float32 (K, F, 512)


def resize_frames(frames: torch.Tensor, size: int) -> torch.Tensor:
    """(N, H, W) -> (N, size, size)."""
    if frames.shape[-1] == size and frames.shape[-2] == size:
        return frames
    mode = "area" if frames.shape[-1] > size else "bilinear"
    kwargs = {} if mode == "area" else {"align_corners": False}
    return F.interpolate(frames.unsqueeze(1), size=(size, size), mode=mode, **kwargs).squeeze(1)


def frame_outputs(classifier: FrameClassifier, videos: np.ndarray) -> FrameOutputs:
    """Labels and features of every frame of videos (K, F, H, W) in [-1, 1]."""
    if videos.ndim != 4:
        raise ValueError(f"videos must be shaped (K, F, H, W), got {videos.shape}")
    count, frames = videos.shape[:2]
    flat = resize_frames(torch.from_numpy(np.ascontiguousarray(videos, dtype=np.float32)).flatten(0, 1),
                         classifier.config.frame_size)
    labels, features = predict(classifier, flat)
    return FrameOutputs(
        labels=labels.reshape(count, frames).numpy(),
        features=features.reshape(count, frames, -1).numpy().astype(np.float32),
    )
