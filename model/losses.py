"""The WGAN-GP objective of SAVGAN (paper eqs. 3-5): only the losses, no loop."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


def gradient_penalty(critic: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
    """E[(||grad_x D(x_hat)||_2 - 1)^2] on random interpolates x_hat of real and fake samples.

    Uses the global RNG for the mixing weights; the trainer seeds it per step.
    """
    alpha = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), dtype=real.dtype, device=real.device)
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


@dataclass(frozen=True)
class CriticLoss:
    """A critic's loss and what it tells: the Wasserstein estimate E[D(real)] - E[D(fake)]."""

    loss: Tensor
    wasserstein: float
    penalty: float


def wasserstein_gap(critic: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
    """E[D(real)] - E[D(fake)]: the critic's Wasserstein estimate, which it maximises."""
    return critic(real).mean() - critic(fake).mean()


def gaps_with_negatives(critic: nn.Module, real: Tensor, fake: Tensor, negatives: Tensor | None) -> tuple[Tensor, Tensor]:
    """The Wasserstein estimate, and the identity gap E[D(real)] - E[D(negative)] on the first
    len(negatives) real samples (0 without negatives): the negatives are those samples' identity swaps.

    With negatives, one forward scores real, fake and negative samples together.
    """
    if negatives is None:
        return wasserstein_gap(critic, real, fake), torch.zeros((), device=real.device)
    scores = critic(torch.cat([real, fake, negatives]))
    real_scores, fake_scores, negative_scores = scores.split([len(real), len(fake), len(negatives)])
    return real_scores.mean() - fake_scores.mean(), real_scores[: len(negatives)].mean() - negative_scores.mean()


def penalty_with_negatives(critic: nn.Module, real: Tensor, fake: Tensor, negatives: Tensor | None) -> Tensor:
    """The gradient penalty on real-fake interpolates, and with negatives on real-negative ones too.

    The guard identity negatives need: without it the D_V pilot's penalty tripled (model/identity.py).
    """
    if negatives is None:
        return gradient_penalty(critic, real, fake)
    return gradient_penalty(critic, torch.cat([real, real[: len(negatives)]]), torch.cat([fake, negatives]))


def critic_loss(critic: nn.Module, real: Tensor, fake: Tensor, gp_lambda: float) -> CriticLoss:
    """L = E[D(fake)] - E[D(real)] + lambda * GP (eqs. 3 and 4)."""
    wasserstein = wasserstein_gap(critic, real, fake)
    penalty = gradient_penalty(critic, real, fake)
    return CriticLoss(-wasserstein + gp_lambda * penalty, wasserstein.item(), penalty.item())


def random_frames(videos: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """One frame drawn at random per video: (B, C, T, H, W) -> (B, C, H, W), for D_I."""
    index = torch.randint(videos.shape[2], (videos.shape[0],), generator=generator, device=videos.device)
    return videos[torch.arange(videos.shape[0], device=videos.device), :, index]


def generator_loss(video_critic: nn.Module, image_critic: nn.Module, fake: Tensor, image_lambda: float) -> Tensor:
    """L_G = -E[D_V(fake)] - lambda_i E[D_I(fake frame)] (eq. 5 with the WGAN sign convention)."""
    return -video_critic(fake).mean() - image_lambda * image_critic(random_frames(fake)).mean()
