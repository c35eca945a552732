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
ARCHS: tuple[str, ...] = ("savgan", "3dgan", "tgan2")
LatentDistribution = Literal["normal", "uniform"]
ContentCode = Literal["per_step", "shared"]
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
class TGAN2Spec:
    """The TGANv2 family's own shapes (see ``model/tgan2.py`` and docs/TGAN2.md).

    ``frame_strides[k]`` and ``batch_strides[k]`` sub-sample frames and videos between
    rendering level k+1 and k+2 during training, so there are ``len(frame_strides) + 1``
    levels; the last renders the full ``size``, each one before it half the size of the next.
    The convolutional LSTM runs at ``clstm_size`` x ``clstm_size`` with ``clstm_channels``.
    """

    clstm_channels: int = 512
    clstm_layers: int = 2
    clstm_size: int = 4
    frame_strides: tuple[int, ...] = (2, 2, 2)
    batch_strides: tuple[int, ...] = (2, 2, 2)

    def __post_init__(self) -> None:
        if len(self.frame_strides) != len(self.batch_strides):
            raise ValueError("frame_strides and batch_strides need one entry per level after the first")
        if any(s < 1 for s in self.frame_strides + self.batch_strides):
            raise ValueError("sub-sampling strides must be >= 1")
        if self.clstm_channels < 1 or self.clstm_layers < 1 or self.clstm_size < 1:
            raise ValueError("clstm_channels, clstm_layers and clstm_size must be positive")

    @property
    def levels(self) -> int:
        return len(self.frame_strides) + 1

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TGAN2Spec:
        data = dict(data)
        for key in ("frame_strides", "batch_strides"):
            if key in data:
                data[key] = tuple(data[key])
        return cls(**data)


@dataclass(frozen=True)
class ModelConfig:
    """Shapes of the generator G_V and the critics D_V and D_I (SPEC section 3).

    ``frames`` x ``size`` x ``size`` is the trained clip. The generator doubles time and
    space at every stage from a 2x4x4 seed, so ``frames`` must be ``size / 2`` and
    ``size`` a power of two. ``g_attention`` lists the attention of the generator's last
    hidden stages (the paper: the 8x16x16 and 16x32x32 stages); ``d_attention`` the
    attention after the video critic's last blocks (the paper: 7x8x8 and 3x4x4).

    ``arch`` picks the family (model/family.py): ``savgan``, ``3dgan`` (the same networks
    without attention) or ``tgan2`` (TGANv2, model/tgan2.py), which reads ``z_dim`` as its slow
    latent, ``g_conv_dim`` / ``d_conv_dim`` as its image-generator and critic widths, needs
    ``tgan2`` and no attention, and only asks ``frames`` to be even and divisible by its strides.

    ``content_code`` (SAVGAN/3DGAN): ``per_step``, the paper's first layer, or ``shared``,
    one projection of z for both time taps (model/networks.py SharedContentSeed).
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
    # Only for arch "tgan2" (and required there); left out of the manifest otherwise.
    tgan2: TGAN2Spec | None = None
    content_code: ContentCode = "per_step"

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ValueError(f"arch {self.arch!r} is not one of {ARCHS}")
        if self.size < 16 or self.size & (self.size - 1):
            raise ValueError(f"size must be a power of two >= 16, got {self.size}")
        if self.z_distribution not in ("normal", "uniform"):
            raise ValueError("z_distribution must be 'normal' or 'uniform'")
        if self.content_code not in ("per_step", "shared"):
            raise ValueError(f"content_code must be 'per_step' or 'shared', got {self.content_code!r}")
        if self.arch == "tgan2" and self.content_code != "per_step":
            raise ValueError("content_code applies to SAVGAN/3DGAN's first layer; tgan2 has its own latent path")
        if (self.arch == "tgan2") != (self.tgan2 is not None):
            raise ValueError("arch 'tgan2' needs a tgan2 spec, and only it may have one")
        if self.tgan2 is not None:
            self._check_tgan2(self.tgan2)
            return
        if self.frames != self.size // 2:
            raise ValueError(
                f"frames must be size/2 (the generator grows 2x4x4 -> T x H x W by doubling); "
                f"got frames={self.frames}, size={self.size}"
            )
        if len(self.g_attention) > self.upsamplings - 1:
            raise ValueError(
                f"g_attention has {len(self.g_attention)} layers but the generator has only "
                f"{self.upsamplings - 1} hidden stages"
            )
        if len(self.d_attention) > self.critic_blocks:
            raise ValueError(f"d_attention has more layers than the {self.critic_blocks} critic blocks")

    def _check_tgan2(self, spec: TGAN2Spec) -> None:
        if self.g_attention or self.d_attention:
            raise ValueError("tgan2 has no attention layers: g_attention and d_attention must be empty")
        first = self.size >> (spec.levels - 1)
        trunk_ups = math.log2(first / spec.clstm_size) if first >= spec.clstm_size else -1
        if trunk_ups not in (0, 1, 2, 3):
            raise ValueError(
                f"tgan2: the first of {spec.levels} levels renders {first}x{first}, which must be "
                f"clstm_size ({spec.clstm_size}) times 1, 2, 4 or 8"
            )
        every = math.prod(spec.frame_strides)
        if self.frames % every or self.frames % 2:
            raise ValueError(
                f"tgan2: frames ({self.frames}) must be even and a multiple of {every}, the frame strides' product"
            )

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
        data = asdict(self)
        if data["tgan2"] is None:
            del data["tgan2"]  # SAVGAN/3DGAN manifests stay exactly as they were
        if data["content_code"] == "per_step":
            del data["content_code"]  # so do the paper recipe's
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        data = dict(data)
        for key in ("g_attention", "d_attention"):
            data[key] = tuple(AttentionSpec(**spec) for spec in data.get(key, ()))
        if data.get("tgan2") is not None:
            data["tgan2"] = TGAN2Spec.from_dict(data["tgan2"])
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
    # TGANv2 (Saito et al. 2020) adapted to the paper's clips, see docs/TGAN2.md: 4 levels
    # rendering 32x8x8, 16x16x16, 8x32x32 and 4x64x64 (frames and batch halved per level, as in
    # the reference code), slow latent 256 ~ U(-1, 1), CLSTM 2 layers x 512 channels at 4x4,
    # image-generator width 32, one 3D ResNet critic per level of width 64.
    "paper-tgan2": ModelConfig(
        arch="tgan2",
        z_dim=256,
        z_distribution="uniform",
        g_conv_dim=32,
        d_conv_dim=64,
        g_attention=(),
        d_attention=(),
        tgan2=TGAN2Spec(),
    ),
    # CPU size (16x32x32), 3 levels rendering 16x8x8, 8x16x16 and 4x32x32; narrow networks so
    # that an iteration at batch 8 takes seconds on one CPU thread.
    "cpu-tgan2": ModelConfig(
        arch="tgan2",
        size=32,
        frames=16,
        z_dim=256,
        z_distribution="uniform",
        g_conv_dim=8,
        d_conv_dim=8,
        image_critic_dim=32,
        g_attention=(),
        d_attention=(),
        tgan2=TGAN2Spec(clstm_channels=64, clstm_layers=2, frame_strides=(2, 2), batch_strides=(2, 2)),
    ),
}


def preset(name: str) -> ModelConfig:
    """The named preset, or an error listing the known names."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; known presets: {', '.join(sorted(PRESETS))}") from None


def preset_for(arch: str | None, name: str) -> ModelConfig:
    """The preset for ``arch`` at ``name``'s size: ``cpu`` + ``tgan2`` is ``cpu-tgan2``.

    ``name`` may also be the full preset name; without ``arch`` it is just :func:`preset`.
    """
    if arch is None:
        return preset(name)
    if arch not in ARCHS:
        raise ValueError(f"arch {arch!r} is not one of {', '.join(ARCHS)}")
    for candidate in (name, f"{name}-{arch}"):
        if candidate in PRESETS and PRESETS[candidate].arch == arch:
            return PRESETS[candidate]
    fitting = ", ".join(sorted(n for n, c in PRESETS.items() if c.arch == arch))
    raise ValueError(
        f"no {arch} preset for {name!r}: {arch} presets are {fitting}; all presets: {', '.join(sorted(PRESETS))}"
    )


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (SPEC section 3: WGAN-GP, Adam(0, 0.9), 5 critic steps).

    ``long_clip_prob`` is the fraction of iterations trained on clips one latent step
    longer than ``frames`` (for 32 frames: 48), which teaches G to join neighbouring
    latent steps smoothly so that videos longer than the trained length stay continuous.

    ``penalty_step`` (SAVGAN/3DGAN; TGANv2's objective steps once): "joint" minimises the
    paper's critic loss -W + lambda * GP in one Adam step; "separate" is what the reference
    code does (trainer_full.py): an Adam step on -W, then a second step of the same optimiser
    on lambda * GP at the updated weights, which measured closer to 1-Lipschitz (docs/TRAINING.md).

    ``ema_decay`` > 0 keeps a moving average of G's weights (model/ema.py) and exports it as
    the run's generator; 0, the paper's recipe, exports the last iterate.

    ``identity_weight`` > 0 (SAVGAN/3DGAN, and only with data that has identity swaps) adds
    identity-only negatives to D_V's objective: real clips whose content is replaced from a
    random frame on by other content on the same motion, scored as fake with this weight,
    with the gradient penalty also on real-negative interpolates (model/identity.py).
    ``pair_lambda`` > 0 (SAVGAN/3DGAN) adds the content critic D_P on (first frame, later
    frame) pairs, trained against identity-swapped pairs when the data has swaps, with this
    weight in G's loss (model/pairs.py); ``pair_critic`` is its network: "stacked" (the two
    frames as channels of one 2D critic) or "siamese" (one encoder per frame, a head on their
    comparison).
    ``balance_every``: every that many steps G's gradient is split into its D_V and D_I
    (and D_P) terms, and their norms and cosine are logged (0: never).

    The defaults are SAVGAN's; :func:`train_config_for` gives each family its own.
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
    adam_eps: float = 1e-8
    ema_decay: float = 0.0
    penalty_step: Literal["joint", "separate"] = "joint"
    identity_weight: float = 0.0
    balance_every: int = 10
    pair_lambda: float = 0.0
    pair_critic: Literal["stacked", "siamese"] = "stacked"

    def __post_init__(self) -> None:
        if self.steps < 0 or self.batch_size < 1 or self.n_critic < 1:
            raise ValueError("steps must be >= 0, batch_size and n_critic >= 1")
        if not 0.0 <= self.long_clip_prob <= 1.0:
            raise ValueError("long_clip_prob must lie in [0, 1]")
        if self.lr_g <= 0 or self.lr_d <= 0:
            raise ValueError("learning rates must be positive")
        if self.adam_eps <= 0:
            raise ValueError("adam_eps must be positive")
        if self.image_lambda < 0 or self.gp_lambda < 0 or self.pair_lambda < 0:
            raise ValueError("image_lambda, gp_lambda and pair_lambda must be >= 0")
        if self.penalty_step not in ("joint", "separate"):
            raise ValueError(f"penalty_step must be 'joint' or 'separate', got {self.penalty_step!r}")
        if self.pair_critic not in ("stacked", "siamese"):
            raise ValueError(f"pair_critic must be 'stacked' or 'siamese', got {self.pair_critic!r}")
        if not 0.0 <= self.identity_weight <= 1.0:
            raise ValueError("identity_weight must lie in [0, 1] (0: no identity-only negatives, the paper)")
        if self.balance_every < 0:
            raise ValueError("balance_every must be >= 0 (0: never measure the critics' balance)")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError("ema_decay must lie in [0, 1) (0: no weight average)")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        data = dict(data)
        data["betas"] = tuple(data.get("betas", (0.0, 0.9)))
        return cls(**data)


# Where a family's optimisation differs from TrainConfig's (SAVGAN's) defaults. TGANv2 (its
# conf/base.yml): Adam lr 1e-4 for both G and D; it has no image critic and trains on the
# trained clip length only.
FAMILY_TRAIN_DEFAULTS: dict[str, dict[str, Any]] = {
    "savgan": {},
    "3dgan": {},
    "tgan2": {"lr_g": 1e-4, "lr_d": 1e-4, "long_clip_prob": 0.0, "image_lambda": 0.0, "pair_lambda": 0.0},
}


@dataclass(frozen=True)
class Recipe:
    """A named way to train: the first layer of G and the TrainConfig fields that differ from the paper's.

    ``paper`` is SAVGAN as published. ``coherent`` (docs/RECIPES.md) is the default of
    ``savgan train`` and POST /train: one content code per clip in G, identity-only negatives
    for D_V, and lambda_i 5 instead of 50 so that D_I cancels less of D_V's pull on G. The
    bundled models were trained with the paper recipe (their model cards say how).
    """

    content_code: ContentCode
    train: dict[str, Any]


RECIPES: dict[str, Recipe] = {
    "paper": Recipe("per_step", {}),
    "coherent": Recipe("shared", {"identity_weight": 0.5, "image_lambda": 5.0}),
}
DEFAULT_RECIPE = "coherent"


def recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise ValueError(f"unknown recipe {name!r}; known recipes: {', '.join(RECIPES)}") from None


def with_recipe(config: ModelConfig, name: str) -> ModelConfig:
    """``config`` with the recipe's first layer; tgan2 has no such layer and is returned unchanged."""
    if config.arch == "tgan2":
        return config
    return replace(config, content_code=recipe(name).content_code)


def train_defaults(arch: str, recipe_name: str = "paper") -> dict[str, Any]:
    """TrainConfig's defaults for ``arch``'s family under a recipe (tgan2 keeps its own objective), as a dict."""
    if arch not in FAMILY_TRAIN_DEFAULTS:
        raise ValueError(f"arch {arch!r} is not one of {ARCHS}")
    changes = recipe(recipe_name).train if arch != "tgan2" else {}
    return {**TrainConfig().to_dict(), **FAMILY_TRAIN_DEFAULTS[arch], **changes}


def train_config_for(arch: str, recipe_name: str = "paper", **overrides: Any) -> TrainConfig:
    """A TrainConfig with ``arch``'s family and recipe defaults; ``overrides`` whose value is None are ignored."""
    given = {k: v for k, v in overrides.items() if v is not None}
    return TrainConfig.from_dict({**train_defaults(arch, recipe_name), **given})
