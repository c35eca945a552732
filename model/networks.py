"""SAVGAN's three networks: the 3D generator G_V and the critics D_V (video) and D_I (frame).

Shapes for the paper preset (SPEC section 3):
    G_V: z (128) -> 2x4x4 (256) -> 4x8x8 (128) -> 8x16x16 (64) +attn -> 16x32x32 (32) +attn -> 32x64x64 (1)
    D_V: 32x64x64 -> 31x32x32 (32) -> 15x16x16 (64) -> 7x8x8 (128) +attn -> 3x4x4 (256) +attn -> 1x2x2 (1)
    D_I: 64x64 -> 32x32 (64) -> 16x16 (128) -> 8x8 (256) -> 8x8 (512) -> 8x8 (1)

G accepts a latent *sequence* (B, z_dim, L): its first layer is a temporal transposed
convolution, so L latent steps give (L + 1) * frames/2 frames and neighbouring steps
share frames. That is how videos longer than the trained clip stay continuous.

``content_code`` chooses that first layer: ``per_step`` is the paper's (each of the two
time taps has its own projection of z), ``shared`` projects z once for every tap and adds
a learned per-tap embedding (:class:`SharedContentSeed`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from savgan.model.attention import LandmarkSource, SelfAttention3d
from savgan.model.config import AttentionSpec, ModelConfig


def _attention_for(
    index: int, count: int, specs: tuple[AttentionSpec, ...], channels: int, twice_differentiable: bool = False
) -> SelfAttention3d | None:
    """Attention after block ``index`` of ``count``: ``specs`` cover the last blocks."""
    position = index - (count - len(specs))
    if position < 0 or specs[position].kind == "none":
        return None
    return SelfAttention3d(channels, specs[position], twice_differentiable)


class GeneratorStage(nn.Module):
    """Spectral-normed stride-2 transposed conv, instance norm, ReLU, then optional attention."""

    def __init__(self, in_channels: int, out_channels: int, attention: SelfAttention3d | None) -> None:
        super().__init__()
        self.up = nn.Sequential(
            spectral_norm(nn.ConvTranspose3d(in_channels, out_channels, 4, 2, 1)),
            nn.InstanceNorm3d(out_channels),
            nn.ReLU(),
        )
        self.attention = attention

    def forward(self, x: Tensor, landmark_generator: LandmarkSource) -> Tensor:
        x = self.up(x)
        return x if self.attention is None else self.attention(x, landmark_generator)


class SharedContentSeed(nn.Module):
    """The first layer with one content code per latent step: the same projection P z feeds both time taps.

    The paper's layer gives a one-step clip the two slots A0 z and A1 z, and in the trained
    bundled model A0 and A1 measured nearly orthogonal (cosine 0.057): the start and the end
    of a clip were drawn from two unrelated codes, and the digit changed between them. Here
    slot t of a latent sequence is the sum over the taps k that reach it of P z_(t-k) + E_k,
    so a one-step clip sees one content code in both slots and only the learned embeddings
    E_0, E_1 tell the slots apart (the later layers turn code + phase into motion). It is a
    transposed convolution whose taps share their weight, so latent sequences of any length
    still overlap in the same way and long videos stay seamless.
    """

    def __init__(self, z_dim: int, channels: int) -> None:
        super().__init__()
        self.content = nn.Parameter(torch.empty(z_dim, channels, 1, 4, 4))
        self.phase = nn.Parameter(torch.zeros(1, channels, 2, 4, 4))
        self.bias = nn.Parameter(torch.zeros(channels))
        nn.init.kaiming_uniform_(self.content, a=5**0.5)

    def forward(self, z: Tensor) -> Tensor:
        """z: (B, z_dim, L, 1, 1) -> (B, C, L + 1, 4, 4)."""
        taps = self.content.expand(-1, -1, 2, -1, -1)
        ones = z.new_ones(z.shape[0], 1, *z.shape[2:])
        return nn.functional.conv_transpose3d(z, taps, self.bias) + nn.functional.conv_transpose3d(ones, self.phase)


def first_layer(config: ModelConfig, channels: int) -> nn.Module:
    if config.content_code == "shared":
        return SharedContentSeed(config.z_dim, channels)
    return nn.ConvTranspose3d(config.z_dim, channels, (2, 4, 4))


class VideoGenerator(nn.Module):
    """G_V: a latent (sequence) to a video in [-1, 1]."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        channels = config.g_conv_dim * 2 ** (config.upsamplings - 1)
        self.seed = nn.Sequential(
            first_layer(config, channels),
            nn.InstanceNorm3d(channels),
            nn.ReLU(),
        )
        hidden = config.upsamplings - 1
        stages = []
        for index in range(hidden):
            attention = _attention_for(index, hidden, config.g_attention, channels // 2)
            stages.append(GeneratorStage(channels, channels // 2, attention))
            channels //= 2
        self.stages = nn.ModuleList(stages)
        self.to_video = nn.Sequential(nn.ConvTranspose3d(channels, config.channels, 4, 2, 1), nn.Tanh())

    def forward(self, z: Tensor, landmark_generator: LandmarkSource = None) -> Tensor:
        """z: (B, z_dim) for one trained clip, or (B, z_dim, L) for (L+1) * frames/2 frames.

        ``landmark_generator``: one generator for the whole batch, or one per sample.
        """
        if z.dim() == 2:
            z = z.unsqueeze(-1)
        x = self.seed(z[..., None, None])
        for stage in self.stages:
            x = stage(x, landmark_generator)
        return self.to_video(x)


class VideoCritic(nn.Module):
    """D_V: 3D convolutions with spectral norm and LeakyReLU(0.1), exact attention at the coarse end.

    Returns one score per video: the mean of its score map, so clips of any length are
    scored on the same scale.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        channels = config.d_conv_dim
        self.stem = nn.Sequential(
            spectral_norm(nn.Conv3d(config.channels, channels, 4, (1, 2, 2), 1)),
            nn.LeakyReLU(0.1),
        )
        blocks, attentions = [], []
        for index in range(config.critic_blocks):
            blocks.append(nn.Sequential(spectral_norm(nn.Conv3d(channels, channels * 2, 4, 2, 1)), nn.LeakyReLU(0.1)))
            channels *= 2
            attentions.append(_attention_for(index, config.critic_blocks, config.d_attention, channels, True))
        self.blocks = nn.ModuleList(blocks)
        self.attentions = nn.ModuleList([a if a is not None else nn.Identity() for a in attentions])
        self.score = nn.Conv3d(channels, 1, 3)

    def forward(self, video: Tensor) -> Tensor:
        x = self.stem(video)
        for block, attention in zip(self.blocks, self.attentions):
            x = attention(block(x))
        return self.score(x).flatten(1).mean(dim=1)


def _frame_trunk(config: ModelConfig, in_channels: int) -> tuple[list[nn.Module], int]:
    """D_I's layers before its score: conv k3, instance norm, LeakyReLU(0.2); and their output width."""
    width = config.image_critic_dim
    layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 3, 2, 1), nn.LeakyReLU(0.2)]
    for _ in range(config.critic_blocks - 1):
        layers += [nn.Conv2d(width, width * 2, 3, 2, 1), nn.InstanceNorm2d(width * 2), nn.LeakyReLU(0.2)]
        width *= 2
    layers += [nn.Conv2d(width, width * 2, 3, 1, 1), nn.InstanceNorm2d(width * 2), nn.LeakyReLU(0.2)]
    return layers, width * 2


class ImageCritic(nn.Module):
    """D_I: a 2D critic on single frames, conv k3, instance norm, LeakyReLU(0.2), no attention.

    With ``frames_in`` 2 it is the stacked content critic D_P, on two frames stacked as
    channels (model/pairs.py).
    """

    def __init__(self, config: ModelConfig, frames_in: int = 1) -> None:
        super().__init__()
        layers, width = _frame_trunk(config, config.channels * frames_in)
        layers.append(nn.Conv2d(width, 1, 3, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, frames: Tensor) -> Tensor:
        return self.net(frames).flatten(1).mean(dim=1)


class SiamesePairCritic(nn.Module):
    """The Siamese content critic D_P: one frame encoder for both frames of a pair, a head on their comparison.

    Why not frames stacked as channels: a stacked conv critic compares the two frames
    location by location, but a moving digit or cell is somewhere else in the later frame,
    so whether it is the same content is hard to express. Here each frame is encoded alone
    (D_I's trunk, then a 1x1 conv pooled over the frame by mean and max: a descriptor that
    does not depend on where the content is) and the head sees both descriptors with
    their absolute difference and product, the usual way to let a small head judge "same or
    not". Input as :class:`ImageCritic` with ``frames_in`` 2: (B, 2C, H, W).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.channels = config.channels
        layers, width = _frame_trunk(config, config.channels)
        self.encoder = nn.Sequential(*layers, nn.Conv2d(width, width, 1), nn.LeakyReLU(0.2))
        self.head = nn.Sequential(nn.Linear(8 * width, width), nn.LeakyReLU(0.2), nn.Linear(width, 1))

    def describe(self, frames: Tensor) -> Tensor:
        """(N, C, H, W) -> (N, 2 * width): mean and max of the encoder's features over the frame."""
        features = self.encoder(frames).flatten(2)
        return torch.cat([features.mean(dim=2), features.amax(dim=2)], dim=1)

    def forward(self, pairs: Tensor) -> Tensor:
        first, later = self.describe(torch.cat(pairs.split(self.channels, dim=1), dim=0)).chunk(2, dim=0)
        return self.head(torch.cat([first, later, (first - later).abs(), first * later], dim=1)).squeeze(1)


def sample_latents(config: ModelConfig, count: int, steps: int = 1, generator: torch.Generator | None = None) -> Tensor:
    """Latent sequences (count, z_dim, steps) from the configured distribution.

    TGANv2 uses only the first step (its slow latent), drawn first so that it does not
    depend on ``steps``: a longer video of a seed continues the shorter one.
    """
    if config.arch == "tgan2":
        shape: tuple[int, ...] = (count, steps, config.z_dim)
    else:
        shape = (count, config.z_dim, steps)
    if config.z_distribution == "uniform":
        z = torch.rand(shape, generator=generator) * 2 - 1
    else:
        z = torch.randn(shape, generator=generator)
    return z.transpose(1, 2) if config.arch == "tgan2" else z
