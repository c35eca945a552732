"""Training data by name: Moving MNIST, the simulator, or a user's recordings, as one tensor bank.

The trainer draws a fresh batch five times per generator step; rendering Moving MNIST
or simulating cells on the fly would cost more than the networks on a CPU. So the
training set is rendered once into a bank of clips (N, 1, T, H, W), as the paper's
fixed datasets (2225 MMNIST, 1224 TOC clips) were. Clips are one latent step longer
than the model's trained length, for the variable-length training that keeps long
videos continuous.

With ``identity_swaps`` the built-in sources also render, for every clip, the same motion
with other content (model/identity.py): Moving MNIST another digit of another label on
the same trajectory, the simulator other tumour-cell textures on the same tracks. A user's
recordings have no such twin (nothing knows which content to swap without segmenting
them), so fine-tuning on recordings trains without identity negatives and relies on the
shared content code of a base model trained with them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from savgan.model.config import ModelConfig

BUILTIN_SOURCES = ("mmnist", "toc-sim")


@dataclass(frozen=True)
class TrainingData:
    bank: torch.Tensor
    description: str
    pixel_size_um: float
    frame_interval_s: float
    swaps: torch.Tensor | None = None  # (N, 1, T, H, W): each clip's motion with other content
    intensity: tuple[float, float] | None = None  # typical per-clip (min, max) in camera counts

    @property
    def physical(self) -> dict[str, float]:
        """For the model manifest: what generated videos will say in their metadata, and their intensity scale."""
        physical = {"pixel_size_um": self.pixel_size_um, "frame_interval_s": self.frame_interval_s}
        if self.intensity is not None:
            physical["intensity_low"], physical["intensity_high"] = self.intensity
        return physical


def bank_from_dataset(dataset: Dataset, show_progress: bool = True) -> torch.Tensor:
    clips = [dataset[i] for i in tqdm(range(len(dataset)), desc="render clips", unit="clip", disable=not show_progress)]
    return torch.stack(clips).contiguous()


def clip_frames(config: ModelConfig) -> int:
    return config.frames + config.frames_per_latent


def load_training_data(
    sources: Sequence[str],
    config: ModelConfig,
    count: int,
    seed: int = 0,
    show_progress: bool = True,
    patch_method: Literal["flow", "grid"] = "flow",
    identity_swaps: bool = False,
) -> TrainingData:
    """``sources``: one built-in name (``mmnist``, ``toc-sim``) or recording file paths.

    ``patch_method`` chooses how recordings are cut: around moving cells, or on a grid.
    ``identity_swaps``: also render each built-in clip's identity swap (ignored for recordings).
    """
    if not sources:
        raise ValueError(f"no training data given: name one of {', '.join(BUILTIN_SOURCES)} or recording files")
    frames = clip_frames(config)
    if len(sources) == 1 and sources[0] == "mmnist":
        from savgan.model.data.mmnist import MovingMNIST

        dataset = MovingMNIST("train", length=frames, frame_size=config.size, num_sequences=count, seed=seed)
        description = f"Moving MNIST (train digits), {count} clips of {frames}x{config.size}x{config.size}, seed {seed}"
        swaps = dataset.identity_swaps() if identity_swaps else None
        return TrainingData(bank_from_dataset(dataset, show_progress), description, 1.0, 1.0, swaps)
    if len(sources) == 1 and sources[0] == "toc-sim":
        from savgan.model.data.simulator import SimulatorDataset, SimulatorParams

        params = SimulatorParams()
        dataset = SimulatorDataset(num_videos=count, frames=frames, height=config.size, width=config.size, seed=seed)
        description = (
            f"tumour-on-chip simulator, {count} clips of {frames}x{config.size}x{config.size}, seed {seed}"
        )
        swaps = None
        if identity_swaps:
            swaps = torch.stack([
                dataset.identity_swap(i)
                for i in tqdm(range(count), desc="render identity swaps", unit="clip", disable=not show_progress)
            ])
        return TrainingData(
            bank_from_dataset(dataset, show_progress), description, params.pixel_size_um, params.frame_interval_s,
            swaps, dataset.intensity_range(),
        )
    unknown = [s for s in sources if s in BUILTIN_SOURCES or not Path(s).exists()]
    if unknown:
        raise ValueError(
            f"training data {unknown} not found: give existing recording files, or exactly one of "
            f"{', '.join(BUILTIN_SOURCES)}"
        )
    return _recording_data([Path(s) for s in sources], config, show_progress, patch_method)


def _recording_data(
    paths: list[Path], config: ModelConfig, show_progress: bool, method: Literal["flow", "grid"] = "flow"
) -> TrainingData:
    """Patches one latent step longer than the trained clip when the recordings allow, else trained-length ones."""
    from savgan.model.data.patches import PatchConfig, RecordingPatches
    from savgan.model.data.recordings import RecordingError

    try:
        patches = RecordingPatches(
            paths, PatchConfig(patch_shape=(clip_frames(config), config.size, config.size), method=method)
        )
    except RecordingError as err:
        if "fewer than the patch length" not in str(err):
            raise
        patches = RecordingPatches(paths, PatchConfig(patch_shape=(config.frames, config.size, config.size), method=method))
    pixel, interval = patches.calibration()
    return TrainingData(
        bank_from_dataset(patches, show_progress), patches.describe(), pixel or 1.0, interval or 1.0
    )
