"""The one place that decides which networks and which objective a model's ``arch`` uses.

``savgan`` and ``3dgan`` share SAVGAN's networks (3DGAN is SAVGAN without attention layers)
and the Trainer's built-in objective (video + image critics). ``tgan2`` is TGANv2
(``model/tgan2.py``): its own generator, one multi-level video critic and its own objective.
The registry, the Trainer, generation and the service's worker build networks only through
:func:`family_of`, so a run folder of any family works everywhere a model is expected.

Checkpoint prefixes of the critics (``DV``, ``DI``) and of their optimisers (``opt_dv``,
``opt_di``) are those SAVGAN's checkpoints always had; a TGANv2 checkpoint has ``G``, ``DV``
(the multi-level critic), ``opt_g`` and ``opt_dv``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import nn

from savgan.model.config import ModelConfig

if TYPE_CHECKING:
    from savgan.model.train import Trainer


@dataclass(frozen=True)
class Family:
    """What an arch is made of.

    ``build_critics`` returns the critics by checkpoint prefix, built in that order (the order
    fixes the RNG draws of their initialisation). ``iteration`` is the family's own training
    step, or None for the Trainer's built-in SAVGAN objective. ``progress`` names the losses
    shown in progress bars and messages, as (label, key) pairs.
    """

    name: str
    build_generator: Callable[[ModelConfig], nn.Module]
    build_critics: Callable[[ModelConfig], dict[str, nn.Module]]
    iteration: Callable[[Trainer], dict[str, float]] | None
    progress: tuple[tuple[str, str], ...]


def _savgan_generator(config: ModelConfig) -> nn.Module:
    from savgan.model.networks import VideoGenerator

    return VideoGenerator(config)


def _savgan_critics(config: ModelConfig) -> dict[str, nn.Module]:
    from savgan.model.networks import ImageCritic, VideoCritic

    video = VideoCritic(config)
    return {"DV": video, "DI": ImageCritic(config)}


def _tgan2_generator(config: ModelConfig) -> nn.Module:
    from savgan.model.tgan2 import TGAN2Generator

    return TGAN2Generator(config)


def _tgan2_critics(config: ModelConfig) -> dict[str, nn.Module]:
    from savgan.model.tgan2 import MultiLevelCritic

    return {"DV": MultiLevelCritic(config)}


def _tgan2_iteration(trainer: Trainer) -> dict[str, float]:
    from savgan.model.tgan2 import train_iteration

    return train_iteration(trainer)


SAVGAN_PROGRESS = (("W_V", "wasserstein_video"), ("W_I", "wasserstein_image"), ("L_G", "loss_generator"))

FAMILIES: dict[str, Family] = {
    "savgan": Family("savgan", _savgan_generator, _savgan_critics, None, SAVGAN_PROGRESS),
    "3dgan": Family("3dgan", _savgan_generator, _savgan_critics, None, SAVGAN_PROGRESS),
    "tgan2": Family(
        "tgan2",
        _tgan2_generator,
        _tgan2_critics,
        _tgan2_iteration,
        (("W", "wasserstein_video"), ("L_G", "loss_generator")),
    ),
}


def family_of(config: ModelConfig) -> Family:
    try:
        return FAMILIES[config.arch]
    except KeyError:
        raise ValueError(f"arch {config.arch!r} is not one of {', '.join(FAMILIES)}") from None


def build_generator(config: ModelConfig) -> nn.Module:
    """The generator of ``config``'s family, freshly initialised from the global RNG."""
    return family_of(config).build_generator(config)
