"""Moving MNIST as in the SAVGAN paper: one real digit sliding horizontally.

Each sequence: one 28x28 MNIST digit on a black 64x64 canvas, at a random but fixed
height, starting at a random column and moving horizontally at a constant speed of
1 to 4 px/frame (whole pixels at 64x64, so the digit stays crisp), in a random
direction, reflecting its velocity when its 28x28 box touches the left or right edge
(the box, hence the ink, never leaves the frame). Smaller frames are rendered at 64x64
and area-averaged, so the digit looks the same at half resolution and moves by
fractions of a pixel. Every sequence is a pure function of (seed, index).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from .mnist import DIGIT_SIZE, MnistDigits, Split, load_digits

CANVAS_SIZE = 64
MIN_SPEED_PX = 1
MAX_SPEED_PX = 4
TRAVEL_PX = CANVAS_SIZE - DIGIT_SIZE  # the box's left column ranges over 0..TRAVEL_PX
PAPER_NUM_SEQUENCES = 2225  # training sequences in the SAVGAN paper
_RENDER_BATCH = 256


@dataclass(frozen=True)
class SequenceSpec:
    """Everything that defines one sequence; positions are in 64x64 canvas pixels."""

    index: int
    digit_index: int  # row in load_digits(split)
    label: int
    top: int  # row of the digit box's top edge, constant over time
    left: np.ndarray  # int64 (T,): column of the digit box's left edge per frame
    velocity: int  # signed px/frame at frame 0 (negative = moving left)
    frame_size: int

    @property
    def scale(self) -> float:
        """Output pixels per canvas pixel."""
        return self.frame_size / CANVAS_SIZE

    def box_centre_x(self) -> np.ndarray:
        """Horizontal centre of the digit box per frame, in output pixel coordinates."""
        return (self.left + DIGIT_SIZE / 2) * self.scale - 0.5

    def box_centre_y(self) -> float:
        """Vertical centre of the digit box, in output pixel coordinates."""
        return (self.top + DIGIT_SIZE / 2) * self.scale - 0.5


@dataclass(frozen=True)
class LabelledFrames:
    """Single Moving MNIST frames with the digit they show, for frame classifiers."""

    frames: torch.Tensor  # float32 (N, H, W) in [-1, 1]
    labels: torch.Tensor  # int64 (N,)


def bounce_positions(start: int, velocity: int, length: int, travel: int = TRAVEL_PX) -> np.ndarray:
    """Positions of a point moving at `velocity` in [0, travel], reflected at both ends."""
    unfolded = start + velocity * np.arange(length, dtype=np.int64)
    folded = np.mod(unfolded, 2 * travel)
    return np.where(folded <= travel, folded, 2 * travel - folded)


def render_sequences(
    images: np.ndarray, top: np.ndarray, left: np.ndarray, frame_size: int = CANVAS_SIZE
) -> np.ndarray:
    """Videos (B, T, H, W) float32 in [-1, 1] from digits (B, 28, 28), rows (B,), columns (B, T).

    Each video is min-max scaled on its own, as the GAN's training data is.
    """
    _check_frame_size(frame_size)
    batch, length = left.shape
    canvas = np.zeros((batch, length, CANVAS_SIZE, CANVAS_SIZE), dtype=np.float32)
    offsets = np.arange(DIGIT_SIZE)
    rows = top[:, None, None, None] + offsets[None, None, :, None]
    cols = left[:, :, None, None] + offsets[None, None, None, :]
    canvas[np.arange(batch)[:, None, None, None], np.arange(length)[None, :, None, None], rows, cols] = (
        images[:, None].astype(np.float32)
    )
    if frame_size != CANVAS_SIZE:
        pooled = F.interpolate(torch.from_numpy(canvas), size=(frame_size, frame_size), mode="area")
        canvas = pooled.numpy()
    low = canvas.min(axis=(1, 2, 3), keepdims=True)
    high = canvas.max(axis=(1, 2, 3), keepdims=True)
    return ((canvas - low) / np.maximum(high - low, 1e-12) * 2.0 - 1.0).astype(np.float32)


class MovingMNIST(Dataset[torch.Tensor]):
    """Moving MNIST videos (1, T, H, W) float32 in [-1, 1]; item i depends only on (seed, i).

    split "train" uses the training digits; "heldout" uses the MNIST test digits, for
    metrics and classifiers that must not share digits with the GAN's training data.
    """

    def __init__(
        self,
        split: Split = "train",
        length: int = 32,
        frame_size: int = CANVAS_SIZE,
        num_sequences: int = PAPER_NUM_SEQUENCES,
        seed: int = 0,
    ) -> None:
        if length < 1:
            raise ValueError(f"length must be at least 1 frame, got {length}")
        if num_sequences < 1:
            raise ValueError(f"num_sequences must be at least 1, got {num_sequences}")
        if seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed}")
        _check_frame_size(frame_size)
        self.split: Split = split
        self.length = length
        self.frame_size = frame_size
        self.num_sequences = num_sequences
        self.seed = seed
        self._digits: MnistDigits = load_digits(split)

    def __len__(self) -> int:
        return self.num_sequences

    def spec(self, index: int) -> SequenceSpec:
        """The digit, label and trajectory of sequence `index`."""
        if not 0 <= index < self.num_sequences:
            raise IndexError(f"sequence index {index} out of range 0..{self.num_sequences - 1}")
        rng = np.random.default_rng([self.seed, index])
        digit_index = int(rng.integers(len(self._digits)))
        top = int(rng.integers(0, CANVAS_SIZE - DIGIT_SIZE + 1))
        start = int(rng.integers(0, TRAVEL_PX + 1))
        speed = int(rng.integers(MIN_SPEED_PX, MAX_SPEED_PX + 1))
        velocity = speed if rng.random() < 0.5 else -speed
        return SequenceSpec(
            index=index,
            digit_index=digit_index,
            label=int(self._digits.labels[digit_index]),
            top=top,
            left=bounce_positions(start, velocity, self.length),
            velocity=velocity,
            frame_size=self.frame_size,
        )

    def identity_swap(self, index: int) -> SequenceSpec:
        """Sequence ``index``'s trajectory carrying another digit of another label: an identity-only negative.

        The other digit depends only on (seed, index), like the sequence itself.
        """
        spec = self.spec(index)
        rng = np.random.default_rng([self.seed, index, 1])
        while True:
            other = int(rng.integers(len(self._digits)))
            if int(self._digits.labels[other]) != spec.label:
                break
        return replace(spec, digit_index=other, label=int(self._digits.labels[other]))

    def identity_swaps(self) -> torch.Tensor:
        """(N, 1, T, H, W): every sequence re-rendered with :meth:`identity_swap`'s digit, in index order."""
        swaps = [
            self.render([self.identity_swap(i) for i in range(start, min(start + _RENDER_BATCH, len(self)))])
            for start in range(0, len(self), _RENDER_BATCH)
        ]
        return torch.from_numpy(np.concatenate(swaps)).unsqueeze(1)

    def videos(self, indices: Sequence[int]) -> np.ndarray:
        """Videos (B, T, H, W) float32 for several indices in one vectorised render."""
        return self.render([self.spec(i) for i in indices])

    def render(self, specs: Sequence[SequenceSpec]) -> np.ndarray:
        """Videos (B, T, H, W) float32 of the given sequences."""
        return render_sequences(
            self._digits.images[[s.digit_index for s in specs]],
            np.array([s.top for s in specs], dtype=np.int64),
            np.stack([s.left for s in specs]),
            self.frame_size,
        )

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.from_numpy(self.videos([index])[0]).unsqueeze(0)


def render_frames(
    split: Split, n: int, frame_size: int = CANVAS_SIZE, seed: int = 0, length: int = 10
) -> LabelledFrames:
    """Frame t_i of sequence i of MovingMNIST(split, length, frame_size, n, seed), for i < n.

    Frames are taken from real sequences (not re-rendered alone) so that their scaling
    is exactly the per-video scaling a generator learns; t_i is uniform in 0..length-1.
    """
    dataset = MovingMNIST(split, length=length, frame_size=frame_size, num_sequences=n, seed=seed)
    times = np.random.default_rng([seed, n, length]).integers(0, length, size=n)
    frames = np.empty((n, frame_size, frame_size), dtype=np.float32)
    labels = np.empty(n, dtype=np.int64)
    for start in range(0, n, _RENDER_BATCH):
        indices = list(range(start, min(start + _RENDER_BATCH, n)))
        specs = [dataset.spec(i) for i in indices]
        videos = dataset.render(specs)
        frames[indices] = videos[np.arange(len(indices)), times[indices]]
        labels[indices] = [s.label for s in specs]
    return LabelledFrames(frames=torch.from_numpy(frames), labels=torch.from_numpy(labels))


def _check_frame_size(frame_size: int) -> None:
    if not 1 <= frame_size <= CANVAS_SIZE:
        raise ValueError(
            f"frame_size must be between 1 and {CANVAS_SIZE} (frames are rendered at "
            f"{CANVAS_SIZE}x{CANVAS_SIZE} and area-averaged down), got {frame_size}"
        )
