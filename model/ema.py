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
    """``module``'s weights averaged as ``avg <- decay * avg + (1 - decay) * live`` after every step.

    Buffers (the spectral-norm power-iteration vectors) are copied, not averaged: they
    estimate the live weights' largest singular vectors, which the average shares closely.
    """

    def __init__(self, source: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"an average's decay must lie in (0, 1), got {decay}")
        self.decay = decay
        self.module = copy.deepcopy(source).requires_grad_(False).eval()

    def reset(self, source: nn.Module) -> None:
        """Restart the average at ``source``'s weights (a new run, or weights loaded from elsewhere)."""
        self.module.load_state_dict(source.state_dict())

    @torch.no_grad()
    def update(self, source: nn.Module) -> None:
        torch._foreach_lerp_(list(self.module.parameters()), list(source.parameters()), 1.0 - self.decay)
        for mine, live in zip(self.module.buffers(), source.buffers(), strict=True):
            mine.copy_(live)
