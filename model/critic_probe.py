"""What a trained video critic D_V has learned, read from its scores on crafted clips.

A WGAN critic's scores drift freely, so only differences mean something. The probe scores
held-out real clips and clips made from them that break one property of real video (the
content switching to another clip every k frames, a frozen first frame, shuffled frame
order), plus the run's own generated clips. Each kind gets a *fakeness*: how far below real
it scores, in units of the drop for switching content every frame. A generator whose
fakeness is well above 1 is further from the data, in D_V's eyes, than a clip whose digit
changes every frame, so D_V's gradient is still mostly about something other than identity.
That unit only exists while D_V scores content switching below real: a critic that has stopped
objecting to it (seen on the simulator, where switching fields of view adds motion) gets no
fakeness (NaN), and every kind's drop in units of the real clips' score spread still reads.
With identity swaps (:func:`identity_swapped_clips`: the same motion, other content from the
middle frame on) the probe also reports ``IDENTITY_KIND``, the measure the coherent recipe is
judged by: its drop below real in real-score std (the paper recipe's bundled critic: 0.0).
A run with the content critic D_P (model/pairs.py) also gets D_P's drops on (first, last
frame) pairs of real, other-real, identity-swapped and generated clips.
The generated clips are also scored with their middle frame frozen and with their frames
shuffled: if freezing or shuffling makes them *less* fake, D_V objects to G's temporal
dynamics more than to its frames.

It also measures the balance of the generator's loss -D_V(x) - lambda_i D_I(frame): the mean
gradient norm each term puts on a generated clip. ``balanced_image_lambda`` is the lambda_i
at which both terms pull equally hard; the run's lambda_i over it says how much more the
image critic steers G than the video critic.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from savgan.model import checkpoint as ckpt
from savgan.model.config import ModelConfig, TrainConfig
from savgan.model.family import build_generator, family_of
from savgan.model.networks import sample_latents
from savgan.model.pairs import PAIR_PREFIX, build_pair_critic, frame_pairs

SWITCH_PERIODS = (8, 2, 1)
REFERENCE_KIND = "content switch every 1"
IDENTITY_KIND = "identity swap (same motion)"


@dataclass(frozen=True)
class KindScore:
    """D_V's scores on one kind of clip."""

    kind: str
    mean: float
    std: float
    fakeness: float  # (real - this) / (real - REFERENCE_KIND); 0 = real, 1 = content switching every frame; NaN without a unit
    drop: float  # (real - this) / std of the real clips' scores


@dataclass(frozen=True)
class ProbeReport:
    step: int
    image_lambda: float
    scores: list[KindScore]
    pair_scores: list[KindScore]  # the content critic D_P's, on (first, last frame) pairs; empty without D_P
    video_grad_norm: float  # mean ||d D_V / d clip|| on generated clips
    image_grad_norm: float  # mean ||d D_I / d frame|| on generated frames
    balanced_image_lambda: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def switched(clips: Tensor, others: Tensor, period: int) -> Tensor:
    """``clips`` with every other block of ``period`` frames taken from ``others`` (same shape, B C T H W)."""
    blocks = torch.arange(clips.shape[2], device=clips.device) // period
    return torch.where((blocks % 2 == 1).view(1, 1, -1, 1, 1), others, clips)


def frozen(clips: Tensor, frame: int = 0) -> Tensor:
    """Every frame replaced by frame ``frame``: the clip's own frames, no motion."""
    return clips[:, :, frame : frame + 1].expand_as(clips).contiguous()


def shuffled(clips: Tensor, seed: int) -> Tensor:
    """Frames in one random order (the same for every clip): real frames, incoherent motion."""
    order = torch.randperm(clips.shape[2], generator=torch.Generator().manual_seed(seed))
    return clips[:, :, order]


def crafted_kinds(real: Tensor, others: Tensor, seed: int = 0) -> dict[str, Tensor]:
    """The real-derived clip kinds the probe scores, by name."""
    kinds = {"real": real, "other real": others}
    kinds.update({f"content switch every {p}": switched(real, others, p) for p in SWITCH_PERIODS})
    kinds["frozen first frame"] = frozen(real)
    kinds["shuffled frames"] = shuffled(real, seed)
    return kinds


def mean_grad_norm(critic: nn.Module, inputs: Tensor) -> float:
    """Mean per-sample L2 norm of d critic / d input."""
    x = inputs.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x).sum(), x)
    return float(grad.flatten(1).norm(dim=1).mean())


def score_kinds(video_critic: nn.Module, kinds: dict[str, Tensor]) -> list[KindScore]:
    """D_V's mean and spread per kind, and each kind's fakeness against ``REFERENCE_KIND``."""
    with torch.no_grad():
        raw = {name: video_critic(clips) for name, clips in kinds.items()}
    real = float(raw["real"].mean())
    spread = float(raw["real"].std())
    unit = real - float(raw[REFERENCE_KIND].mean())
    return [
        KindScore(
            name, float(s.mean()), float(s.std()),
            (real - float(s.mean())) / unit if unit > 0 else float("nan"),
            (real - float(s.mean())) / spread if spread > 0 else float("nan"),
        )
        for name, s in raw.items()
    ]


PAIR_KINDS = ("real", "other real", IDENTITY_KIND, "generated")
"""Clip kinds D_P is scored on; "other real" pairs a clip's first frame with another clip's last."""


def score_pairs(pair_critic: nn.Module, kinds: dict[str, Tensor]) -> list[KindScore]:
    """D_P's scores on (first frame, last frame) pairs of PAIR_KINDS; drops in real-score std, no fakeness unit.

    "other real" is built from the real clips' first frames and the other clips' last frames,
    so it changes content and position; the identity swap changes content only.
    """
    real = kinds["real"]
    last = torch.full((real.shape[0],), real.shape[2] - 1)
    pairs = {
        name: frame_pairs(kinds[name], last, first_from=real if name == "other real" else None)
        for name in PAIR_KINDS
        if name in kinds
    }
    with torch.no_grad():
        raw = {name: pair_critic(p) for name, p in pairs.items()}
    mean, spread = float(raw["real"].mean()), float(raw["real"].std())
    return [
        KindScore(name, float(s.mean()), float(s.std()), float("nan"), (mean - float(s.mean())) / spread if spread > 0 else float("nan"))
        for name, s in raw.items()
    ]


def identity_swapped_clips(source: str, count: int, frames: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Held-out real clips (K, T, H, W) and the same clips with other content on the same motion from frame T/2 on.

    Moving MNIST: another digit of another label on the same trajectory; the simulator: other
    tumour-cell textures on the same tracks (model/identity.py).
    """
    from savgan.model.identity import identity_negatives

    if source == "mmnist":
        from savgan.model.data.mmnist import MovingMNIST

        dataset = MovingMNIST("heldout", length=frames, frame_size=size, num_sequences=count, seed=seed)
        real = torch.from_numpy(dataset.videos(range(count)))[:, None]
        swaps = torch.from_numpy(dataset.render([dataset.identity_swap(i) for i in range(count)]))[:, None]
    elif source == "toc-sim":
        from savgan.model.data.simulator import SimulatorDataset

        sims = SimulatorDataset(num_videos=count, frames=frames, height=size, width=size, seed=seed + 1_000_003)
        real = torch.stack([sims[i] for i in range(count)])
        swaps = torch.stack([sims.identity_swap(i) for i in range(count)])
    else:
        raise ValueError(f"no identity swaps for {source!r}: mmnist or toc-sim")
    switched_clips = identity_negatives(real, swaps, torch.full((count,), frames // 2))
    return real[:, 0].numpy(), switched_clips[:, 0].numpy()


def probe(
    source: Path, real: np.ndarray, others: np.ndarray, seed: int = 0, swapped: np.ndarray | None = None
) -> ProbeReport:
    """Probe the critics of the run folder or packed checkpoint ``source`` with real clips (K, T, H, W) in [-1, 1].

    ``real`` and ``others`` must be distinct clips of the run's clip length and size; the
    generated clips are the run's exported generator (its weight average when it keeps one).
    ``swapped``: ``real`` with its content swapped on the same motion (:func:`identity_swapped_clips`).
    """
    manifest, tensors = ckpt.read_training_state(source)
    config = ModelConfig.from_dict(manifest["model_config"])
    if config.arch == "tgan2":
        raise ValueError("the probe reads SAVGAN/3DGAN critics (D_V and D_I); tgan2 runs have a multi-level critic")
    expected = (config.frames, config.size, config.size)
    if real.shape[1:] != expected or others.shape != real.shape:
        raise ValueError(f"real clips must be (K, {expected[0]}, {expected[1]}, {expected[2]}), got {real.shape} and {others.shape}")
    critics = family_of(config).build_critics(config)
    if ckpt.has_prefix(tensors, PAIR_PREFIX):
        critics[PAIR_PREFIX] = build_pair_critic(config, manifest.get("train_config", {}).get("pair_critic", "stacked"))
    for prefix, critic in critics.items():
        ckpt.load_module(prefix, critic, tensors)
        critic.eval()
    generator = build_generator(config)
    ckpt.load_module(ckpt.AVERAGE_PREFIX if ckpt.has_average(tensors) else "G", generator, tensors)
    generator.eval()
    real_t, others_t = (torch.from_numpy(np.ascontiguousarray(c, dtype=np.float32))[:, None] for c in (real, others))
    with torch.no_grad():
        z = sample_latents(config, real.shape[0], generator=torch.Generator().manual_seed(seed))
        generated = generator(z, landmark_generator=torch.Generator().manual_seed(seed)).float()
    swapped_kind = {}
    if swapped is not None:
        if swapped.shape != real.shape:
            raise ValueError(f"identity-swapped clips {swapped.shape} must match the real clips {real.shape}")
        swapped_kind[IDENTITY_KIND] = torch.from_numpy(np.ascontiguousarray(swapped, dtype=np.float32))[:, None]
    kinds = {
        **crafted_kinds(real_t, others_t, seed),
        **swapped_kind,
        "generated": generated,
        "generated, middle frame frozen": frozen(generated, config.frames // 2),
        "generated, frames shuffled": shuffled(generated, seed),
    }
    video_norm = mean_grad_norm(critics["DV"], generated)
    frame = generated[:, :, config.frames // 2]
    image_norm = mean_grad_norm(critics["DI"], frame)
    return ProbeReport(
        step=int(manifest["step"]),
        image_lambda=TrainConfig.from_dict(manifest["train_config"]).image_lambda,
        scores=score_kinds(critics["DV"], kinds),
        pair_scores=score_pairs(critics[PAIR_PREFIX], kinds) if PAIR_PREFIX in critics else [],
        video_grad_norm=video_norm,
        image_grad_norm=image_norm,
        balanced_image_lambda=video_norm / image_norm,
    )
