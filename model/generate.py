"""Turning (model, seed, frame count) into videos, reproducibly and at any length.

A request for F frames becomes a latent sequence of L steps with (L + 1) * frames/2 >= F
frames; the generator's first layer is a temporal transposed convolution, so
neighbouring latent steps share frames and there is no seam to hide. Video ``i`` of a
request depends only on (seed, i): its latents and its Nystrom landmarks come from
generators seeded from that pair, so asking for 1 or 16 videos gives the same first one.

Videos are made in batches (one forward for several videos): each sample keeps its own
landmark generator, so batching changes only float rounding in the batched kernels, not
which landmarks or latents a video gets. Spectral norm's weight division (redone on
every eval-mode forward by its parametrization) is computed once per call under
``parametrize.cached()``; that flag is process-wide, so no training may run in another
thread of the same process during a call.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch.nn.utils import parametrize

from savgan.model.config import ModelConfig
from savgan.model.networks import VideoGenerator, sample_latents

MAX_FRAMES = 1024
SEED_STRIDE = 7919
BATCH_CLIPS = 16
"""Trained-clip lengths per forward: 16 videos of the trained length, fewer long ones."""


def latent_steps_for(config: ModelConfig, frames: int) -> int:
    """Fewest latent steps whose video covers ``frames``; the trained clip is one step."""
    check_frames(frames)
    return max(1, math.ceil(frames / config.frames_per_latent) - 1)


def check_frames(frames: int) -> None:
    if not 1 <= frames <= MAX_FRAMES:
        raise ValueError(f"frames must be between 1 and {MAX_FRAMES}, got {frames}")


def video_seed(seed: int, index: int) -> int:
    return (seed * SEED_STRIDE + index) % (2**63 - 1)


@torch.inference_mode()
def generate_videos(
    generator: VideoGenerator,
    seed: int,
    frames: int,
    count: int = 1,
    on_video: Callable[[int, int], None] | None = None,
    batch_clips: int = BATCH_CLIPS,
) -> np.ndarray:
    """(count, frames, H, W) float32 in [-1, 1]; ``on_video(done, count)`` is called once per video.

    A forward makes ``batch_clips // latent steps`` videos (at least one), so memory per
    forward stays about that of ``batch_clips`` trained-length videos at any length.
    """
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    config = generator.config
    steps = latent_steps_for(config, frames)
    per_forward = max(1, batch_clips // steps)
    device = next(generator.parameters()).device
    generator.eval()
    out = np.empty((count, frames, config.size, config.size), dtype=np.float32)
    with parametrize.cached():
        for start in range(0, count, per_forward):
            indices = range(start, min(start + per_forward, count))
            rngs = [torch.Generator().manual_seed(video_seed(seed, index)) for index in indices]
            z = torch.cat([sample_latents(config, 1, steps, generator=rng) for rng in rngs]).to(device)
            videos = generator(z, landmark_generator=rngs)
            out[start : start + len(indices)] = videos[:, 0, :frames].float().cpu().numpy()
            for index in indices:
                if on_video:
                    on_video(index + 1, count)
    return out
