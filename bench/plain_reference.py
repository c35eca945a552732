"""A plain SAVGAN training step shaped like the authors' code, to benchmark ours against.

Benchmarks only: nothing in the package imports it. It copies the *structure* of the
reference trainer (sandman002/IBENS-SAVGAN, ``trainer_full.py`` and
``attention_nystrom2.py``), because that structure is what costs time and memory:

- attention materialises the N x N matrix: exact attention as softmax(Q K^T / sqrt(d)) V,
  Nystrom as the product kernel1 . pinv(kernel2) . kernel3 formed into N x N first and
  only then applied to V (16384 x 16384 floats, 1 GiB per video, at G's last stage);
- every critic step generates its fakes *with* the generator's graph; D_V's fake term is
  not detached, so its backward runs through G too (the reference throws those G
  gradients away with the next ``zero_grad``); D_I sees detached fake frames;
- each loss term has its own forward and backward: D(real) and D(fake) in one backward,
  then the gradient penalty on its own interpolate forward, ``autograd.grad`` and its
  own backward, for D_V and then for D_I;
- in the generator step the critics keep ``requires_grad``, so their weight gradients
  are computed and thrown away.

The reference steps the optimiser after every term (two Adam steps per critic per critic
step); this follows the trainer's ``penalty_step``: "separate" does the same, "joint"
accumulates the terms' gradients and steps each critic once. Where it departs from the
reference, on purpose, so that the two implementations can be compared loss for loss on
one seed: random draws (batch, latents, landmarks, mixing
weights, frame picks) are made in our trainer's order, its Nystrom uses our landmark
draw and 1/sqrt(d) scale, and it starts from our networks' weights (a deep copy).
"""

from __future__ import annotations

import copy
import math

import torch
from torch import Tensor, nn

from savgan.model.attention import SelfAttention3d, choose_landmarks, iterative_pinv
from savgan.model.losses import random_frames
from savgan.model.networks import sample_latents
from savgan.model.train import Trainer, derive_seed


def materialised_attention_matrix(q: Tensor, k: Tensor, kind: str, landmarks: int, pinv_iterations: int) -> Tensor:
    """The (B, N, N) attention matrix, exact or the reference's Nystrom product."""
    scale = 1.0 / math.sqrt(q.shape[-1])
    if kind != "nystrom":
        return torch.softmax(torch.bmm(q, k.transpose(1, 2)) * scale, dim=-1)
    idx = choose_landmarks(q.shape[1], landmarks, None, q.device)
    q_land, k_land = q[:, idx], k[:, idx]
    kernel1 = torch.softmax(torch.bmm(q, k_land.transpose(1, 2)) * scale, dim=-1)
    kernel2 = torch.softmax(torch.bmm(q_land, k_land.transpose(1, 2)) * scale, dim=-1)
    kernel3 = torch.softmax(torch.bmm(q_land, k.transpose(1, 2)) * scale, dim=-1)
    return torch.bmm(torch.bmm(kernel1, iterative_pinv(kernel2, pinv_iterations)), kernel3)


class PlainSelfAttention3d(nn.Module):
    """Our attention block's parameters, evaluated the reference's way (N x N in memory)."""

    def __init__(self, source: SelfAttention3d) -> None:
        super().__init__()
        self.spec = source.spec
        self.query, self.key, self.value, self.gamma = source.query, source.key, source.value, source.gamma

    def forward(self, x: Tensor, landmark_generator: torch.Generator | None = None) -> Tensor:
        b, c, t, h, w = x.shape
        q = self.query(x).flatten(2).transpose(1, 2)
        k = self.key(x).flatten(2).transpose(1, 2)
        v = self.value(x).view(b, c, -1)
        matrix = materialised_attention_matrix(q, k, self.spec.kind, self.spec.landmarks, self.spec.pinv_iterations)
        out = torch.bmm(v, matrix.transpose(1, 2))
        return x + self.gamma * out.view(b, c, t, h, w)


def plain_copy(network: nn.Module) -> nn.Module:
    """A deep copy of ``network`` with every attention block replaced by its plain twin."""
    network = copy.deepcopy(network)
    for name, module in list(network.named_modules()):
        if isinstance(module, SelfAttention3d):
            parent_name, _, child = name.rpartition(".")
            setattr(network.get_submodule(parent_name), child, PlainSelfAttention3d(module))
    return network


def _gradient_penalty(critic: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
    """The reference's penalty: its own interpolate forward, grad_outputs of ones, sqrt of sum of squares."""
    alpha = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), device=real.device).expand_as(real)
    interpolated = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    out = critic(interpolated)
    (grad,) = torch.autograd.grad(out, interpolated, torch.ones_like(out), retain_graph=True, create_graph=True)
    grad_l2norm = torch.sqrt(torch.sum(grad.view(grad.shape[0], -1) ** 2, dim=1))
    return torch.mean((grad_l2norm - 1) ** 2)


class PlainReferenceTrainer:
    """Trains copies of a :class:`Trainer`'s networks with the reference's step structure."""

    def __init__(self, ours: Trainer) -> None:
        if ours.image_critic is None:
            raise ValueError("the plain step is SAVGAN's objective: it needs a video and an image critic")
        if ours.long_clips_possible:
            raise ValueError("the reference trains fixed-length clips: give a bank exactly `frames` long")
        self.ours = ours
        cfg = ours.train_config
        self.generator = plain_copy(ours.generator)
        self.video_critic = plain_copy(ours.video_critic)
        self.image_critic = plain_copy(ours.image_critic)
        adam = {"betas": cfg.betas, "eps": cfg.adam_eps}
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=cfg.lr_g, **adam)
        self.opt_dv = torch.optim.Adam(self.video_critic.parameters(), lr=cfg.lr_d, **adam)
        self.opt_di = torch.optim.Adam(self.image_critic.parameters(), lr=cfg.lr_d, **adam)
        self.step = ours.step

    def reset_grad(self) -> None:
        for optimizer in (self.opt_g, self.opt_dv, self.opt_di):
            optimizer.zero_grad()

    def _critic_terms(
        self, critic: nn.Module, real: Tensor, fake: Tensor, step_each: torch.optim.Optimizer | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Backward -W, then lambda * GP; with ``step_each``, an optimiser step after each (the penalty
        then sees the updated weights)."""
        if step_each is not None:
            self.reset_grad()
        out_real, out_fake = critic(real).mean(), critic(fake).mean()
        (out_fake - out_real).backward()
        if step_each is not None:
            step_each.step()
            self.reset_grad()
        penalty = _gradient_penalty(critic, real, fake)
        (self.ours.train_config.gp_lambda * penalty).backward()
        if step_each is not None:
            step_each.step()
        return out_real, out_fake, penalty

    def iteration(self) -> dict[str, float]:
        cfg, model = self.ours.train_config, self.ours.model_config
        torch.manual_seed(derive_seed(cfg.seed, self.step))
        for net in (self.generator, self.video_critic, self.image_critic):
            net.train()
        for _ in range(cfg.n_critic):
            real, _, _ = self.ours._real_batch(model.frames)
            fake = self.generator(sample_latents(model, cfg.batch_size).to(real.device))
            if cfg.penalty_step == "joint":
                self.reset_grad()
                d_out_real, d_out_fake, gp_video = self._critic_terms(self.video_critic, real, fake, None)
                real_frames, fake_frames = random_frames(real), random_frames(fake.detach())
                di_out_real, di_out_fake, gp_image = self._critic_terms(self.image_critic, real_frames, fake_frames, None)
                self.opt_dv.step()
                self.opt_di.step()
            else:  # trainer_full.py: per critic, an Adam step on -W, then one on the penalty
                real_frames, fake_frames = random_frames(real), random_frames(fake.detach())
                d_out_real, d_out_fake, gp_video = self._critic_terms(self.video_critic, real, fake, self.opt_dv)
                di_out_real, di_out_fake, gp_image = self._critic_terms(
                    self.image_critic, real_frames, fake_frames, self.opt_di
                )
        fake = self.generator(sample_latents(model, cfg.batch_size).to(real.device))
        g_out_fake = self.video_critic(fake).mean()
        gim_out_fake = self.image_critic(random_frames(fake)).mean()
        loss_g = -g_out_fake - cfg.image_lambda * gim_out_fake
        self.reset_grad()
        loss_g.backward()
        self.opt_g.step()
        self.step += 1
        wasserstein_video = (d_out_real - d_out_fake).item()
        wasserstein_image = (di_out_real - di_out_fake).item()
        return {
            "wasserstein_video": wasserstein_video,
            "wasserstein_image": wasserstein_image,
            "gp_video": gp_video.item(),
            "gp_image": gp_image.item(),
            "loss_critic_video": -wasserstein_video + cfg.gp_lambda * gp_video.item(),
            "loss_critic_image": -wasserstein_image + cfg.gp_lambda * gp_image.item(),
            "loss_generator": loss_g.item(),
        }
