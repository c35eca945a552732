"""A moving average of the generator's weights, the network a run exports (beyond the paper).

GAN weights keep oscillating around the equilibrium: the last iterate draws digits that
shift shape from frame to frame, while an exponential moving average of recent iterates
(Polyak averaging, as in ProGAN, BigGAN and StyleGAN) sits near the centre of the
oscillation and draws cleaner, steadier objects for no training cost. The paper has none,
so it is off unless ``TrainConfig.ema_decay`` is set.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class WeightAverage:
    """``module``'s weights averaged as ``avg <- d * avg + (1 - d) * live`` after every step.

    ``d`` ramps up to ``decay`` as (1 + n) / (10 + n) after n updates: an average that starts
    from early or freshly loaded weights would otherwise drag them along for ~1/(1 - decay)
    steps (at 0.999, a third of their weight is still there 1000 steps later). Buffers (the
    spectral-norm power-iteration vectors) are copied, not averaged: they estimate the live
    weights' largest singular vectors, which the average shares closely.
    """

    def __init__(self, source: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"an average's decay must lie in (0, 1), got {decay}")
        self.decay = decay
        self.updates = 0
        self.module = copy.deepcopy(source).requires_grad_(False).eval()

    def decay_at(self, updates: int) -> float:
        return min(self.decay, (1 + updates) / (10 + updates))

    def reset(self, source: nn.Module) -> None:
        """Restart the average at ``source``'s weights (a new run, or weights loaded from elsewhere)."""
        self.module.load_state_dict(source.state_dict())
        self.updates = 0

    @torch.no_grad()
    def update(self, source: nn.Module) -> None:
        weight = 1.0 - self.decay_at(self.updates)
        torch._foreach_lerp_(list(self.module.parameters()), list(source.parameters()), weight)
        self.updates += 1
        for mine, live in zip(self.module.buffers(), source.buffers(), strict=True):
            mine.copy_(live)
