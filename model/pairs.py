"""The content critic D_P: a 2D critic on pairs of frames of one clip (its first frame, a later one).

Why a separate critic: identity-only negatives given to D_V did not teach it identity (after
150 fine-tuning steps its probe drop on same-motion identity swaps stayed at ~0 real-score
std, docs/RECIPES.md). D_V sees a whole clip, and motion and frame quality dominate what it
learns. D_P sees only two frames (stacked as channels, or encoded one by one and compared:
``TrainConfig.pair_critic``), so the one thing that can separate a
real pair from its negative is whether the later frame shows the same content: its negatives
are the real first frame next to a later frame of the same motion rendered with other
content (another digit on the same trajectory; other cells on the same tracks), so position
tells D_P nothing. G is scored on its own pairs (first frame, a later frame), which keeps
its content from drifting over the clip.

Its gradient penalty covers real-fake and real-negative interpolates, the guard the D_V
pilot needed (model/identity.py).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from savgan.model.config import ModelConfig
from savgan.model.networks import ImageCritic, SiamesePairCritic

PAIR_PREFIX = "DP"
"""The content critic's checkpoint prefix (its optimiser's: opt_dp)."""

PAIR_NEGATIVE_WEIGHT = 1.0
"""Weight of the identity-swapped pairs in D_P's objective: they are what D_P is for."""


def build_pair_critic(config: ModelConfig, kind: str) -> nn.Module:
    """D_P of TrainConfig.pair_critic's ``kind``: "stacked" or "siamese" (model/networks.py says why)."""
    if kind == "siamese":
        return SiamesePairCritic(config)
    if kind == "stacked":
        return ImageCritic(config, frames_in=2)
    raise ValueError(f"unknown pair critic {kind!r}; known: stacked, siamese")


def later_frames(count: int, frames: int, device: torch.device | None = None) -> Tensor:
    """Per clip, the frame paired with frame 0: uniform in the second half (global RNG: the trainer seeds it).

    The second half because that is where content drift shows: the pilot's clips matched
    their first digit in frames 12-15 in 14 % of clips, chance.
    """
    return torch.randint(frames // 2, frames, (count,), device=device)


def frame_pairs(videos: Tensor, later: Tensor, first_from: Tensor | None = None) -> Tensor:
    """(B, C, T, H, W) -> (B, 2C, H, W): frame 0 (of ``first_from`` when given) stacked with frame ``later[b]``.

    ``first_from`` gives the identity negatives: a real clip's first frame next to the later
    frame of its identity swap.
    """
    rows = torch.arange(videos.shape[0], device=videos.device)
    first = (videos if first_from is None else first_from)[:, :, 0]
    return torch.cat([first, videos[rows, :, later]], dim=1)
