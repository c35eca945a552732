"""TGANv2 (Saito et al., "Train Sparsely, Generate Densely", IJCV 2020) as a baseline family.

Written from the facts of the public Chainer code (pfnet-research/tgan2, MIT), not a port.

Generator (``MultiTGANCLSTMGenerator`` there, :class:`TGAN2Generator` here)
    A slow latent z (``z_dim`` = 256, U(-1, 1)) goes through a linear layer to a
    ``clstm_channels`` x s x s map (s = ``clstm_size`` = 4), the input of a convolutional LSTM
    (``clstm_layers`` layers, 3x3 kernels, no peepholes) at its first step; every later step
    gets zeros, so the LSTM's state alone carries the motion. Its output at each of the T
    steps is one frame's feature map. Frames then go, independently, through a 2D ResNet image
    generator (BatchNorm, ReLU, nearest 2x up-sampling, 3x3 convolutions): a trunk of three
    blocks (``clstm_channels`` -> 16w -> 8w -> 4w, w = ``g_conv_dim``) and one more up-sampling
    block per further level (widths 4w, 2w, w, w, ...). Each level renders a video (BatchNorm,
    ReLU, 3x3 convolution, tanh) at twice the size of the level before; the last one at the full
    ``size``.

Train sparsely
    In training mode the generator returns one video per level. Between level k and k+1 it
    keeps every ``batch_strides[k]``-th video (from the first) and every
    ``frame_strides[k]``-th frame from a random offset in [0, ``frame_strides[k]``), so the
    full-resolution level only sees a few frames of a few videos (:func:`level_indices` lists
    which). The real clips are cut the same way (their own random offsets) and average-pooled
    to each level's size (:func:`real_levels`).

Generate densely
    In eval mode every frame goes through every block and only the last level is rendered:
    all frames at the full resolution. Frames are decoded in chunks (the image generator
    works frame by frame and BatchNorm uses its running statistics), so memory does not grow
    with the frame count beyond the LSTM's small 4x4 maps.

Any frame count (1..1024, see ``generate.py``)
    The LSTM is simply rolled out for as many steps as asked: it is causal and its input after
    the first step is zero, so a longer video *continues* a shorter one of the same latent
    (the first F frames are the same), and there is no seam anywhere. Beyond the trained
    ``frames`` the LSTM runs in a regime it was not trained on; motion may slow down or fade,
    which is TGANv2's own behaviour (it has no notion of a latent sequence). To fit
    ``generate.py``'s contract, a latent *sequence* (B, z_dim, L) asks for (L + 1) * frames/2
    frames and only its first step is used as the slow latent; ``sample_latents`` draws a
    TGANv2 sequence so that this first step does not depend on L.

Critic (``MultiResNetVideoDiscriminator``, :class:`MultiLevelCritic`)
    One 3D ResNet critic per level: a first block that pools only space, then four blocks that
    halve every axis longer than 1, widths d, 2d, 4d, 8d, 16d (d = ``d_conv_dim``, 64 in the
    paper config), ReLU, a sum over (T, H, W) and a linear score. No normalisation.

Objective (:func:`train_iteration`)
    WGAN-GP on each level (lambda ``gp_lambda`` = 10 per level), the critic's loss the sum of
    the levels' losses and the generator's -sum_k E[D_k(G_k(z))]; ``n_critic`` = 5 critic
    updates per generator update, Adam lr 1e-4 for both, betas (0, 0.9), eps 1e-8
    (``train_config_for("tgan2")``). Reference-code differences: it updates G before the
    critics within an iteration and weights levels by their batch share; here every level's
    mean counts equally and G is updated after the critics, like the rest of this package.

Adaptation to our clips (docs/TGAN2.md)
    paper-tgan2 (1x32x64x64): 4 levels as in the reference, rendering 32x8x8, 16x16x16,
    8x32x32, 4x64x64 for batches B, B/2, B/4, B/8 (the reference: 16 frames at 1/8 size up to
    2 frames at full size); only the trunk's first block up-samples (4 -> 8).
    cpu-tgan2 (1x16x32x32): 3 levels rendering 16x8x8, 8x16x16, 4x32x32 for B, B/2, B/4.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from savgan.model.config import ModelConfig, TGAN2Spec
from savgan.model.losses import critic_loss

if TYPE_CHECKING:
    from savgan.model.train import Trainer

# Frames per chunk of the dense (eval-mode) image decoder: bounds memory for 1024-frame videos.
DENSE_CHUNK_FRAMES = 64


# --- which frames and videos each level sees -------------------------------------------------


def draw_offsets(spec: TGAN2Spec, generator: torch.Generator | None = None) -> tuple[int, ...]:
    """One random frame offset per level transition, in [0, frame_strides[k])."""
    return tuple(int(torch.randint(stride, (1,), generator=generator)) for stride in spec.frame_strides)


def level_indices(
    batch: int, frames: int, spec: TGAN2Spec, offsets: Sequence[int]
) -> list[tuple[list[int], list[int]]]:
    """(videos, frames) of the full batch and clip that each level sees, first level first."""
    if len(offsets) != len(spec.frame_strides):
        raise ValueError(f"need {len(spec.frame_strides)} offsets, got {len(offsets)}")
    videos, times = list(range(batch)), list(range(frames))
    out = [(videos, times)]
    for frame_stride, batch_stride, offset in zip(spec.frame_strides, spec.batch_strides, offsets):
        if not 0 <= offset < frame_stride:
            raise ValueError(f"offset {offset} outside [0, {frame_stride})")
        videos, times = videos[::batch_stride], times[offset::frame_stride]
        out.append((videos, times))
    return out


def real_levels(real: Tensor, spec: TGAN2Spec, offsets: Sequence[int]) -> list[Tensor]:
    """Real clips (B, C, T, H, W) cut like the generator's levels and average-pooled to their sizes."""
    out = []
    for level, (videos, times) in enumerate(level_indices(real.shape[0], real.shape[2], spec, offsets)):
        index_b = torch.tensor(videos, device=real.device)
        index_t = torch.tensor(times, device=real.device)
        clip = real.index_select(0, index_b).index_select(2, index_t)
        factor = 2 ** (spec.levels - 1 - level)
        out.append(F.avg_pool3d(clip, (1, factor, factor)) if factor > 1 else clip)
    return out


# --- generator ---------------------------------------------------------------------------------


class ConvLSTMCell(nn.Module):
    """Convolutional LSTM cell (3x3), no peepholes."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.input = nn.Conv2d(channels, 4 * channels, 3, 1, 1)
        self.hidden = nn.Conv2d(channels, 4 * channels, 3, 1, 1, bias=False)

    def forward(self, x: Tensor | None, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        """``x`` None means a zero input, whose convolution is the bias alone."""
        gates = self.hidden(h) + (self.input.bias.view(1, -1, 1, 1) if x is None else self.input(x))
        i, f, o, g = gates.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


class GenBlock(nn.Module):
    """2D residual block: BN, ReLU, (2x nearest up), conv3, BN, ReLU, conv3; 1x1 shortcut when needed."""

    def __init__(self, in_channels: int, out_channels: int, upsample: bool) -> None:
        super().__init__()
        self.upsample = upsample
        self.b1, self.b2 = nn.BatchNorm2d(in_channels), nn.BatchNorm2d(out_channels)
        self.c1 = nn.Conv2d(in_channels, out_channels, 3, 1, 1)
        self.c2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1)
        nn.init.xavier_uniform_(self.c1.weight, math.sqrt(2))
        nn.init.xavier_uniform_(self.c2.weight, math.sqrt(2))
        self.shortcut = None
        if upsample or in_channels != out_channels:
            self.shortcut = nn.Conv2d(in_channels, out_channels, 1)
            nn.init.xavier_uniform_(self.shortcut.weight)

    def _up(self, x: Tensor) -> Tensor:
        return F.interpolate(x, scale_factor=2, mode="nearest") if self.upsample else x

    def forward(self, x: Tensor) -> Tensor:
        h = self.c1(self._up(F.relu(self.b1(x))))
        h = self.c2(F.relu(self.b2(h)))
        return h + (x if self.shortcut is None else self.shortcut(self._up(x)))


class Render(nn.Module):
    """BN, ReLU, 3x3 conv to the video's channels, tanh."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(in_channels)
        self.conv = nn.Conv2d(in_channels, out_channels, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return torch.tanh(self.conv(F.relu(self.norm(x))))


def level_widths(config: ModelConfig) -> list[int]:
    """Feature channels rendered at each level: 4w, 2w, w, w, ..."""
    w = config.g_conv_dim
    return [w * max(1, 4 >> level) for level in range(config.tgan2.levels)]


class TGAN2Generator(nn.Module):
    """Slow latent -> CLSTM -> per-frame 2D ResNet; levels in training, dense full size in eval."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        spec = config.tgan2
        if spec is None:
            raise ValueError("TGAN2Generator needs a config with arch 'tgan2'")
        self.config = config
        self.spec = spec
        ch, s = spec.clstm_channels, spec.clstm_size
        self.fc = nn.Linear(config.z_dim, ch * s * s)
        self.lstm = nn.ModuleList([ConvLSTMCell(ch) for _ in range(spec.clstm_layers)])
        w = config.g_conv_dim
        first = config.size >> (spec.levels - 1)
        trunk_ups = int(math.log2(first // s))
        widths = [ch, 16 * w, 8 * w, 4 * w]
        self.trunk = nn.Sequential(*[GenBlock(widths[i], widths[i + 1], i < trunk_ups) for i in range(3)])
        lw = level_widths(config)
        self.blocks = nn.ModuleList([GenBlock(lw[k - 1], lw[k], True) for k in range(1, spec.levels)])
        self.renders = nn.ModuleList([Render(width, config.channels) for width in lw])

    def frames_for(self, z: Tensor) -> int:
        return self.config.frames if z.dim() == 2 else (z.shape[-1] + 1) * self.config.frames_per_latent

    def temporal(self, z_slow: Tensor, frames: int) -> Tensor:
        """(B, z_dim) -> per-frame feature maps (B * frames, clstm_channels, s, s), frame-major per video."""
        batch, ch, s = z_slow.shape[0], self.spec.clstm_channels, self.spec.clstm_size
        x: Tensor | None = self.fc(z_slow).view(batch, ch, s, s)
        states = [(z_slow.new_zeros(batch, ch, s, s), z_slow.new_zeros(batch, ch, s, s)) for _ in self.lstm]
        outputs = []
        for _ in range(frames):
            h = x
            for index, cell in enumerate(self.lstm):
                h, c = cell(h, *states[index])
                states[index] = (h, c)
            outputs.append(h)
            x = None
        return torch.stack(outputs, dim=1).flatten(0, 1)

    @staticmethod
    def _video(frames: Tensor, batch: int) -> Tensor:
        """(B * T, C, H, W) -> (B, C, T, H, W)."""
        return frames.unflatten(0, (batch, -1)).transpose(1, 2)

    def levels_forward(self, z: Tensor, offsets: Sequence[int] | None = None) -> list[Tensor]:
        """Training mode's sparse levels; ``offsets`` default to fresh draws from the global RNG."""
        offsets = draw_offsets(self.spec) if offsets is None else tuple(offsets)
        z_slow = z[..., 0] if z.dim() == 3 else z
        batch, frames = z_slow.shape[0], self.frames_for(z)
        h = self.trunk(self.temporal(z_slow, frames))
        videos = [self._video(self.renders[0](h), batch)]
        for k, block in enumerate(self.blocks):
            h = h.unflatten(0, (batch, -1))[:: self.spec.batch_strides[k], offsets[k] :: self.spec.frame_strides[k]]
            batch = h.shape[0]
            h = block(h.flatten(0, 1))
            videos.append(self._video(self.renders[k + 1](h), batch))
        return videos

    def dense(self, z: Tensor, frames: int | None = None) -> Tensor:
        """Every frame at full size: (B, C, T, H, W)."""
        z_slow = z[..., 0] if z.dim() == 3 else z
        batch, frames = z_slow.shape[0], frames or self.frames_for(z)
        features = self.temporal(z_slow, frames)
        outs = []
        for start in range(0, features.shape[0], DENSE_CHUNK_FRAMES):
            h = self.trunk(features[start : start + DENSE_CHUNK_FRAMES])
            for block in self.blocks:
                h = block(h)
            outs.append(self.renders[-1](h))
        return self._video(torch.cat(outs), batch)

    def forward(
        self, z: Tensor, landmark_generator: torch.Generator | None = None, frames: int | None = None
    ) -> Tensor | list[Tensor]:
        """z: (B, z_dim) or a sequence (B, z_dim, L) of which only the first step is used.

        Training mode: the list of level videos (sub-sampled). Eval mode: the dense video,
        (L + 1) * frames/2 frames for a sequence (``frames`` overrides). ``landmark_generator``
        is accepted for the common generator interface and unused.
        """
        if self.training:
            return self.levels_forward(z)
        return self.dense(z, frames)


# --- critic ------------------------------------------------------------------------------------


def _downsample(x: Tensor) -> Tensor:
    """Halve every axis of (T, H, W) that is longer than 1 (average, ceiling for odd lengths)."""
    kernel = tuple(2 if n > 1 else 1 for n in x.shape[2:])
    return F.avg_pool3d(x, kernel, kernel, ceil_mode=True)


class DisBlock(nn.Module):
    """3D residual critic block; ``first``: conv, ReLU, conv, pool space only (no leading ReLU)."""

    def __init__(self, in_channels: int, out_channels: int, first: bool) -> None:
        super().__init__()
        self.first = first
        hidden = out_channels if first else in_channels
        self.c1 = nn.Conv3d(in_channels, hidden, 3, 1, 1)
        self.c2 = nn.Conv3d(hidden, out_channels, 3, 1, 1)
        self.shortcut = nn.Conv3d(in_channels, out_channels, 1)
        nn.init.xavier_uniform_(self.c1.weight, math.sqrt(2))
        nn.init.xavier_uniform_(self.c2.weight, math.sqrt(2))
        nn.init.xavier_uniform_(self.shortcut.weight)

    def forward(self, x: Tensor) -> Tensor:
        if self.first:
            h = self.c2(F.relu(self.c1(x)))
            return F.avg_pool3d(h, (1, 2, 2)) + self.shortcut(F.avg_pool3d(x, (1, 2, 2)))
        h = self.c2(F.relu(self.c1(F.relu(x))))
        return _downsample(h) + _downsample(self.shortcut(x))


class ResNetVideoCritic(nn.Module):
    """One level's critic: five blocks (d .. 16d), ReLU, sum over (T, H, W), linear score per video."""

    def __init__(self, channels: int, width: int) -> None:
        super().__init__()
        widths = [width * 2**i for i in range(5)]
        blocks = [DisBlock(channels, widths[0], first=True)]
        blocks += [DisBlock(widths[i], widths[i + 1], first=False) for i in range(4)]
        self.blocks = nn.Sequential(*blocks)
        self.score = nn.Linear(widths[-1], 1)
        nn.init.xavier_uniform_(self.score.weight)

    def forward(self, video: Tensor) -> Tensor:
        return self.score(F.relu(self.blocks(video)).sum(dim=(2, 3, 4))).flatten()


class MultiLevelCritic(nn.Module):
    """One :class:`ResNetVideoCritic` per generator level."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.levels = nn.ModuleList(
            [ResNetVideoCritic(config.channels, config.d_conv_dim) for _ in range(config.tgan2.levels)]
        )

    def forward(self, videos: Sequence[Tensor]) -> list[Tensor]:
        if len(videos) != len(self.levels):
            raise ValueError(f"expected {len(self.levels)} level videos, got {len(videos)}")
        return [critic(video) for critic, video in zip(self.levels, videos)]


# --- objective ---------------------------------------------------------------------------------


def train_iteration(trainer: Trainer) -> dict[str, float]:
    """One TGANv2 generator iteration on ``trainer``'s networks (the global RNG is already seeded).

    RNG order per critic step: real batch, latents, generator offsets, real offsets, then the
    per-level gradient-penalty weights; then the generator step's latents and offsets.
    """
    from savgan.model.networks import sample_latents

    cfg, config = trainer.train_config, trainer.model_config
    spec, device = config.tgan2, trainer.device
    generator, critic = trainer.generator, trainer.critics["DV"]
    opt_d = trainer.critic_optimizers["opt_dv"]
    generator.train()
    critic.requires_grad_(True)
    for _ in range(cfg.n_critic):
        real, _, _ = trainer._real_batch(config.frames)
        z = sample_latents(config, cfg.batch_size).to(device)
        with torch.no_grad(), trainer._autocast():
            fakes = [f.float() for f in generator.levels_forward(z)]
        reals = real_levels(real, spec, draw_offsets(spec))
        with trainer._autocast():
            levels = [critic_loss(d, r, f, cfg.gp_lambda) for d, r, f in zip(critic.levels, reals, fakes)]
        loss_d = sum(level.loss for level in levels)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
    critic.requires_grad_(False)
    z = sample_latents(config, cfg.batch_size).to(device)
    with trainer._autocast():
        fakes = generator.levels_forward(z)
        loss_g = -sum(d(f.float()).mean() for d, f in zip(critic.levels, fakes))
    trainer.opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    trainer.opt_g.step()
    losses = {
        "wasserstein_video": sum(level.wasserstein for level in levels),
        "gp_video": sum(level.penalty for level in levels),
        "loss_critic_video": float(loss_d.item()),
        "loss_generator": float(loss_g.item()),
        "clip_frames": float(config.frames),
    }
    for index, level in enumerate(levels, start=1):
        losses[f"wasserstein_level{index}"] = level.wasserstein
        losses[f"gp_level{index}"] = level.penalty
    return losses
