"""One config object is the single source of a network's shape.

Everything needed to rebuild the three networks lives in :class:`ModelConfig`, so a
checkpoint's JSON manifest is enough to reconstruct them. Presets are named so that
users, manifests and the service can refer to them by a stable word.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

AttentionKind = Literal["nystrom", "full", "none"]
LatentDistribution = Literal["normal", "uniform"]
ATTENTION_KINDS: tuple[str, ...] = ("nystrom", "full", "none")


@dataclass(frozen=True)
class AttentionSpec:
    """How one self-attention layer computes its attention matrix.

    ``landmarks`` and ``pinv_iterations`` only matter for ``nystrom``; the defaults are
    the reference code's (512 landmarks, 6 Newton-Schulz iterations).
    """

    kind: AttentionKind = "nystrom"
    landmarks: int = 512
    pinv_iterations: int = 6

    def __post_init__(self) -> None:
        if self.kind not in ATTENTION_KINDS:
            raise ValueError(f"attention kind {self.kind!r} is not one of {ATTENTION_KINDS}")
        if self.landmarks < 1 or self.pinv_iterations < 1:
            raise ValueError("landmarks and pinv_iterations must be positive")


@dataclass(frozen=True)
class ModelConfig:
    """Shapes of the generator G_V and the critics D_V and D_I (SPEC section 3).

    ``frames`` x ``size`` x ``size`` is the trained clip. The generator doubles time and
    space at every stage from a 2x4x4 seed, so ``frames`` must be ``size / 2`` and
    ``size`` a power of two. ``g_attention`` lists the attention of the generator's last
    hidden stages (the paper: the 8x16x16 and 16x32x32 stages); ``d_attention`` the
    attention after the video critic's last blocks (the paper: 7x8x8 and 3x4x4).
    """

    arch: str = "savgan"
    size: int = 64
    frames: int = 32
    channels: int = 1
    z_dim: int = 128
    z_distribution: LatentDistribution = "normal"
    g_conv_dim: int = 32
    d_conv_dim: int = 32
    image_critic_dim: int = 64
    g_attention: tuple[AttentionSpec, ...] = (AttentionSpec("nystrom"), AttentionSpec("nystrom"))
    d_attention: tuple[AttentionSpec, ...] = (AttentionSpec("full"), AttentionSpec("full"))

    def __post_init__(self) -> None:
        if self.size < 16 or self.size & (self.size - 1):
            raise ValueError(f"size must be a power of two >= 16, got {self.size}")
        if self.frames != self.size // 2:
            raise ValueError(
                f"frames must be size/2 (the generator grows 2x4x4 -> T x H x W by doubling); "
                f"got frames={self.frames}, size={self.size}"
            )
        if self.z_distribution not in ("normal", "uniform"):
            raise ValueError("z_distribution must be 'normal' or 'uniform'")
        if len(self.g_attention) > self.upsamplings - 1:
            raise ValueError(
                f"g_attention has {len(self.g_attention)} layers but the generator has only "
                f"{self.upsamplings - 1} hidden stages"
            )
        if len(self.d_attention) > self.critic_blocks:
            raise ValueError(f"d_attention has more layers than the {self.critic_blocks} critic blocks")

    @property
    def upsamplings(self) -> int:
        """Stride-2 stages of G after the 2x4x4 seed (4 for 64x64)."""
        return int(math.log2(self.size // 4))

    @property
    def critic_blocks(self) -> int:
        """Stride-2 blocks of D_V after its first (1,2,2)-strided layer, down to 4x4."""
        return int(math.log2(self.size // 8))

    @property
    def frames_per_latent(self) -> int:
        """Frames added by each extra latent step: a latent sequence of L steps gives (L+1) of these."""
        return self.frames // 2

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        data = dict(data)
        for key in ("g_attention", "d_attention"):
            data[key] = tuple(AttentionSpec(**spec) for spec in data.get(key, ()))
        return cls(**data)

    def with_generator_attention(self, kind: AttentionKind) -> ModelConfig:
        """The same networks with every generator attention layer switched to ``kind``."""
        return replace(self, g_attention=tuple(replace(spec, kind=kind) for spec in self.g_attention))


PRESETS: dict[str, ModelConfig] = {
    # The paper: 1x32x64x64 videos, z 128, conv dims 32, Nystrom (512 landmarks) in both G layers.
    "paper": ModelConfig(),
    # The paper's networks with exact (flash) attention in G: beyond the paper, affordable
    # because the SDPA path keeps memory O(N).
    "paper-full": ModelConfig(g_attention=(AttentionSpec("full"), AttentionSpec("full"))),
    # The paper's 3DGAN ablation: the same networks without attention layers.
    "paper-3dgan": ModelConfig(arch="3dgan", g_attention=(), d_attention=()),
    # CPU preset for bundled models: 16x32x32 clips, 8x fewer voxels than the paper and half
    # the critic width, so a training iteration takes about a second on two cores. Its
    # generator attention sits at 4x8x8 (N = 256) and 8x16x16 (N = 2048); at these sizes
    # exact flash attention is the faster choice (measured in bench/attention.py).
    "cpu": ModelConfig(
        size=32,
        frames=16,
        g_conv_dim=32,
        d_conv_dim=32,
        image_critic_dim=32,
        g_attention=(AttentionSpec("full"), AttentionSpec("full")),
        d_attention=(AttentionSpec("full"), AttentionSpec("full")),
    ),
    "cpu-3dgan": ModelConfig(
        arch="3dgan",
        size=32,
        frames=16,
        g_conv_dim=32,
        d_conv_dim=32,
        image_critic_dim=32,
        g_attention=(),
        d_attention=(),
    ),
}


def preset(name: str) -> ModelConfig:
    """The named preset, or an error listing the known names."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; known presets: {', '.join(sorted(PRESETS))}") from None


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (SPEC section 3: WGAN-GP, Adam(0, 0.9), 5 critic steps).

    ``long_clip_prob`` is the fraction of iterations trained on clips one latent step
    longer than ``frames`` (for 32 frames: 48), which teaches G to join neighbouring
    latent steps smoothly so that videos longer than the trained length stay continuous.
    """

    steps: int = 1000
    batch_size: int = 8
    lr_g: float = 1e-4
    lr_d: float = 4e-4
    betas: tuple[float, float] = (0.0, 0.9)
    n_critic: int = 5
    gp_lambda: float = 10.0
    image_lambda: float = 50.0
    long_clip_prob: float = 0.25
    seed: int = 0
    sample_every: int = 100
    checkpoint_every: int = 100
    bf16: bool = False

    def __post_init__(self) -> None:
        if self.steps < 0 or self.batch_size < 1 or self.n_critic < 1:
            raise ValueError("steps must be >= 0, batch_size and n_critic >= 1")
        if not 0.0 <= self.long_clip_prob <= 1.0:
            raise ValueError("long_clip_prob must lie in [0, 1]")
        if self.lr_g <= 0 or self.lr_d <= 0:
            raise ValueError("learning rates must be positive")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        data = dict(data)
        data["betas"] = tuple(data.get("betas", (0.0, 0.9)))
        return cls(**data)
