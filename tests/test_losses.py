"""The WGAN-GP objective against cases with known answers."""

import torch
from torch import nn

from savgan.model.losses import critic_loss, generator_loss, gradient_penalty, random_frames


class LinearCritic(nn.Module):
    """D(x) = <w, x>: its gradient is w everywhere, so GP = (||w|| - 1)^2 exactly."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.flatten(1) * self.weight.flatten()).sum(dim=1)


class QuadraticCritic(nn.Module):
    """D(x) = ||x||^2 / 2: gradient x_hat, so the penalty depends on where x_hat falls."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x.flatten(1).square().sum(dim=1)


def test_gradient_penalty_of_a_linear_critic_is_its_weight_norm_minus_one():
    weight = torch.full((1, 2, 4, 4), 0.5)  # ||w|| = 0.5 * sqrt(32)
    critic = LinearCritic(weight)
    real, fake = torch.randn(5, 1, 2, 4, 4), torch.randn(5, 1, 2, 4, 4)
    expected = (0.5 * 32**0.5 - 1) ** 2
    assert torch.isclose(gradient_penalty(critic, real, fake), torch.tensor(expected), rtol=1e-5)


def test_gradient_penalty_is_zero_for_a_unit_norm_linear_critic_and_has_a_gradient_otherwise():
    unit = torch.zeros(1, 1, 3, 3)
    unit[0, 0, 1, 1] = 1.0
    real, fake = torch.randn(4, 1, 3, 3), torch.randn(4, 1, 3, 3)
    assert gradient_penalty(LinearCritic(unit), real, fake).item() < 1e-12
    critic = LinearCritic(2 * unit)
    gradient_penalty(critic, real, fake).backward()
    # d/dw (||w|| - 1)^2 at w = 2e: 2 (2 - 1) e
    assert torch.allclose(critic.weight.grad, 2 * unit)


def test_gradient_penalty_interpolates_between_real_and_fake():
    torch.manual_seed(0)
    real = torch.full((64, 4), 3.0)  # ||real|| = 6
    fake = torch.zeros(64, 4)
    gp = gradient_penalty(QuadraticCritic(), real, fake)
    # ||grad|| = ||alpha * real|| = 6 alpha with alpha ~ U(0,1): E[(6a - 1)^2] = 12 - 6 + 1 = 7
    assert abs(gp.item() - 7.0) < 1.5
    torch.manual_seed(0)
    alpha = torch.rand(64, 1)
    assert torch.isclose(gp, ((6 * alpha.squeeze() - 1) ** 2).mean())


def test_critic_loss_is_minus_wasserstein_plus_penalty():
    critic = LinearCritic(torch.ones(1, 4) / 2)  # ||w|| = 1: no penalty
    real, fake = torch.ones(3, 4), torch.zeros(3, 4)
    out = critic_loss(critic, real, fake, gp_lambda=10.0)
    assert abs(out.wasserstein - 2.0) < 1e-6
    assert out.penalty < 1e-10
    assert torch.isclose(out.loss, torch.tensor(-2.0))


def test_generator_loss_weights_the_image_critic_by_lambda_i():
    videos = torch.ones(2, 1, 5, 4, 4)
    video_critic = LinearCritic(torch.full((1, 5, 4, 4), 0.1))  # score 8 per video
    image_critic = LinearCritic(torch.full((1, 4, 4), 0.25))  # score 4 per frame
    assert torch.isclose(generator_loss(video_critic, image_critic, videos, 50.0), torch.tensor(-8.0 - 200.0))


def test_random_frames_picks_one_existing_frame_per_video():
    videos = torch.arange(3 * 6, dtype=torch.float32).reshape(3, 1, 6, 1, 1).expand(3, 1, 6, 2, 2)
    frames = random_frames(videos, torch.Generator().manual_seed(0))
    assert frames.shape == (3, 1, 2, 2)
    for b in range(3):
        value = frames[b, 0, 0, 0].item()
        assert 6 * b <= value < 6 * (b + 1) and (frames[b] == value).all()
