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

Progress: ``on_video`` reports finished videos. A long video is one forward whose time is
nearly all one exact attention over the whole clip, so ``on_attention`` reports inside it,
per block of queries of every long attention (model/attention.py reporting_query_progress).
Splitting the forward over time instead would change the video: the generator's stride-2
transposed convolutions and its attention see the whole clip. Blocks of queries give the
same bits as one call, so asking for progress never changes a video.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import nullcontext

import numpy as np
import torch
from torch.nn.utils import parametrize

from savgan.model.attention import QueryProgress, reporting_query_progress
from savgan.model.config import ModelConfig
from savgan.model.limits import MAX_FRAMES, check_frames
from savgan.model.networks import VideoGenerator, sample_latents

__all__ = ["MAX_FRAMES", "check_frames", "generate_videos", "latent_steps_for", "video_seed"]
SEED_STRIDE = 7919
BATCH_CLIPS = 16
"""Trained-clip lengths per forward: 16 videos of the trained length, fewer long ones."""


def latent_steps_for(config: ModelConfig, frames: int) -> int:
    """Fewest latent steps whose video covers ``frames``; the trained clip is one step."""
    check_frames(frames)
    return max(1, math.ceil(frames / config.frames_per_latent) - 1)


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
    on_attention: QueryProgress | None = None,
) -> np.ndarray:
    """(count, frames, H, W) float32 in [-1, 1]; ``on_video(done, count)`` is called once per video.

    ``on_attention(queries done, queries)`` is called per block of queries of each long CPU
    attention while a forward runs (see the module docstring); short clips never call it.

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
    reporting = reporting_query_progress(on_attention) if on_attention else nullcontext()
    with parametrize.cached(), reporting:
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
