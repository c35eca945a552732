"""Identity-only negatives: the critic signal that a clip must keep its content.

Measured on the paper recipe (../shared/notes/coherence-pilot.md): D_V scored a real clip
and the same clip with another digit on the same trajectory alike (a gap of 0.0 real-score
std), so G had no reason to keep a digit a digit. Splicing two unrelated real clips taught
D_V the jump in *position* instead (8 std), a shortcut G's own clips never offer. These
negatives change only the content: frames [0, s) of a real clip, then frames [s, T) of the
same motion rendered with other content (another digit on the same path; other cell
textures on the same tracks), for a switch frame s drawn uniformly from the middle half.

D_V scores them as fake with a weight below 1, and its gradient penalty is also taken on
interpolates between real clips and their negatives: without that guard the pilot's
penalty tripled (2.6 -> 8.3) and D_V lost real-vs-fake separation.

Only a quarter of each batch gets a negative twin: scoring and penalising a negative for
every clip cost 40 % more time per step on the CPU preset, a quarter keeps the cost within
the quarter the recipe may add (bench/train_step.py).
"""

from __future__ import annotations

import torch
from torch import Tensor


NEGATIVE_SHARE = 4  # one identity negative per this many real clips


def negatives_per_batch(batch: int) -> int:
    return max(1, batch // NEGATIVE_SHARE)


def switch_frames(count: int, frames: int, device: torch.device | None = None) -> Tensor:
    """Per-clip first frame of the other content, uniform in [T/4, 3T/4] (global RNG: the trainer seeds it)."""
    low, high = max(1, frames // 4), max(2, (3 * frames) // 4 + 1)
    return torch.randint(low, min(high, frames), (count,), device=device)


def identity_negatives(clips: Tensor, swaps: Tensor, switch: Tensor) -> Tensor:
    """``clips`` (B, C, T, H, W) with frames from ``switch[b]`` on taken from ``swaps`` (the same motion, other content)."""
    if clips.shape != swaps.shape:
        raise ValueError(f"clips {tuple(clips.shape)} and their identity swaps {tuple(swaps.shape)} differ in shape")
    later = torch.arange(clips.shape[2], device=clips.device)[None, :] >= switch[:, None]
    return torch.where(later[:, None, :, None, None], swaps, clips)

