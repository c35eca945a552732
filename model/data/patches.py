"""Training patches (T x H x W, 32 x 64 x 64 by default) cut from users' recordings.

Like SAVGAN's TOC data, patches are centred on moving cells: moving regions are found by
thresholding the magnitude of TV-L1 optical flow (`method="flow"`). When a recording shows no
motion, or when asked (`method="grid"`), patches come from a regular sliding-window grid.

Motion detection, step by step:
1. Intensities are scaled to [0, 1] between the recording's 1st and 99th percentiles, so
   TV-L1's parameters see the same contrast range whatever the camera's bit depth.
2. Frames are block-averaged by an integer factor so the longer side is at most
   ``flow_max_side`` pixels (TV-L1 costs about 0.5 s per 256 x 256 pair on one core), then
   smoothed with a Gaussian (sigma 1 pixel) to damp the flow TV-L1 invents in noise.
3. Flow is computed between frames ``flow_lag`` apart (pairs t, t+lag, t+2*lag, ...): real
   displacements grow with the lag while TV-L1's response to noise does not, and it is
   ``flow_lag`` times cheaper than every consecutive pair.
4. Threshold = max(Otsu's threshold over all flow magnitudes, ``min_flow_px``). Otsu splits
   moving from static pixels; the floor stops a static, noisy recording from yielding
   "motion" (TV-L1 reports up to about 1.5 px on static noisy frames in our tests).
5. For each temporal window, the motion map is the per-pixel maximum over the flow pairs inside
   the window (so a cell's whole track in the window counts). Candidate centres are the
   motion-weighted centroids of its connected moving regions and the local maxima of the motion
   map inside them (large regions holding several cells yield several candidates).
6. Candidates are ranked by the thresholded motion inside their patch box and accepted greedily
   unless they overlap an accepted box by more than ``max_overlap`` of a patch area.

Every patch is min-max scaled to [-1, 1] on its own, as SAVGAN scales each video; a constant
patch becomes zeros.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from scipy import ndimage
from skimage.feature import peak_local_max
from skimage.filters import threshold_otsu
from skimage.measure import label, regionprops
from skimage.registration import optical_flow_tvl1
from torch.utils.data import Dataset

from .recordings import Recording, RecordingLimits, check_patch_fit, read_recording

Method = Literal["flow", "grid"]


@dataclass(frozen=True)
class PatchConfig:
    """How patches are cut. Strides default to half a patch (50 % overlap between neighbours).

    ``frame_step`` keeps every k-th frame and ``bin_factor`` block-averages k x k pixels before
    anything else: use them to bring a fast or high-resolution recording closer to the scale the
    model was trained on.
    """

    patch_shape: tuple[int, int, int] = (32, 64, 64)
    method: Method = "flow"
    temporal_stride: int | None = None
    spatial_stride: int | None = None
    frame_step: int = 1
    bin_factor: int = 1
    flow_max_side: int = 256
    flow_lag: int = 4
    min_flow_px: float = 2.0
    max_overlap: float = 0.25
    max_patches_per_window: int = 32

    def __post_init__(self) -> None:
        if len(self.patch_shape) != 3 or min(self.patch_shape) < 1:
            raise ValueError(f"patch_shape must be 3 positive (T, H, W), got {self.patch_shape}")
        if self.method not in ("flow", "grid"):
            raise ValueError(f"method must be 'flow' or 'grid', got {self.method!r}")
        for name in ("frame_step", "bin_factor", "flow_max_side", "flow_lag",
                     "max_patches_per_window"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("temporal_stride", "spatial_stride"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 or None, got {value}")
        if not 0.0 <= self.max_overlap < 1.0:
            raise ValueError(f"max_overlap must be in [0, 1), got {self.max_overlap}")

    @property
    def strides(self) -> tuple[int, int]:
        pt, ph, pw = self.patch_shape
        t_stride = self.temporal_stride or max(1, pt // 2)
        return t_stride, self.spatial_stride or max(1, min(ph, pw) // 2)


@dataclass(frozen=True)
class PatchSpec:
    """Origin (first frame, top row, left column) of one patch, in preprocessed coordinates."""

    t0: int
    y0: int
    x0: int
    score: float = 0.0


@dataclass(frozen=True)
class PatchPlan:
    specs: list[PatchSpec]
    method_used: str


def block_mean(frames: np.ndarray, factor: int) -> np.ndarray:
    """Average factor x factor pixel blocks in float32; edge rows/columns short of a block are
    dropped (no padding, which would darken the border)."""
    if factor == 1:
        return np.ascontiguousarray(frames, dtype=np.float32)
    t, h, w = frames.shape
    h, w = h // factor, w // factor
    blocks = frames[:, : h * factor, : w * factor].reshape(t, h, factor, w, factor)
    return blocks.mean(axis=(2, 4), dtype=np.float32)


def preprocess(recording: Recording, config: PatchConfig) -> Recording:
    """Apply `frame_step` (keep every k-th frame) and `bin_factor` (`block_mean`)."""
    frames = block_mean(recording.frames[:: config.frame_step], config.bin_factor)
    return replace(recording, frames=frames)


def window_starts(n_frames: int, length: int, stride: int) -> list[int]:
    """Window starts every `stride` frames, plus a last window ending on the last frame."""
    starts = list(range(0, n_frames - length + 1, stride))
    if starts and starts[-1] != n_frames - length:
        starts.append(n_frames - length)
    return starts


def grid_specs(shape: tuple[int, int, int], config: PatchConfig) -> list[PatchSpec]:
    """Sliding-window grid covering the whole recording, edges included."""
    t, h, w = shape
    pt, ph, pw = config.patch_shape
    t_stride, s_stride = config.strides
    return [
        PatchSpec(t0, y0, x0)
        for t0 in window_starts(t, pt, t_stride)
        for y0 in window_starts(h, ph, s_stride)
        for x0 in window_starts(w, pw, s_stride)
    ]


def flow_magnitudes(frames: np.ndarray, config: PatchConfig) -> tuple[np.ndarray, int]:
    """TV-L1 flow magnitude for pairs (t, t + lag) on the reduced grid, and the reduction factor.

    Returns (pairs, h', w') magnitudes in pixels of the reduced grid; pair k spans frames
    k*lag .. k*lag + lag.
    """
    t, h, w = frames.shape
    factor = max(1, math.ceil(max(h, w) / config.flow_max_side))
    lo, hi = np.percentile(block_mean(frames[:: max(1, t // 64)], factor), [1.0, 99.0])
    span = max(float(hi - lo), 1e-12)

    def prepared(i: int) -> np.ndarray:  # one frame at a time: long recordings stay small
        small = block_mean(frames[i : i + 1], factor)[0]
        return ndimage.gaussian_filter(np.clip((small - lo) / span, 0.0, 1.0), 1.0)

    lag = min(config.flow_lag, t - 1)
    magnitudes = []
    first = prepared(0)
    for start in range(0, t - lag, lag):
        second = prepared(start + lag)
        v, u = optical_flow_tvl1(first, second)
        magnitudes.append(ndimage.gaussian_filter(np.hypot(u, v), 1.0).astype(np.float32))
        first = second
    return np.stack(magnitudes), factor


def _box_sums(image: np.ndarray, bh: int, bw: int) -> np.ndarray:
    """Sum of `image` over every bh x bw box, indexed by the box's top-left corner."""
    integral = np.pad(image, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    return integral[bh:, bw:] - integral[:-bh, bw:] - integral[bh:, :-bw] + integral[:-bh, :-bw]


def _overlap(a: PatchSpec, b: PatchSpec, ph: int, pw: int) -> int:
    return max(0, ph - abs(a.y0 - b.y0)) * max(0, pw - abs(a.x0 - b.x0))


def _window_specs(
    motion: np.ndarray, threshold: float, t0: int, factor: int,
    shape: tuple[int, int], config: PatchConfig,
) -> list[PatchSpec]:
    h, w = shape
    _, ph, pw = config.patch_shape
    mask = motion > threshold
    labels = label(mask)
    if labels.max() == 0:
        return []
    centres = [p.centroid_weighted for p in regionprops(labels, intensity_image=motion)]
    spacing = max(1, min(ph, pw) // (2 * factor))
    centres += [tuple(c) for c in peak_local_max(motion, min_distance=spacing, labels=labels)]
    weight = np.where(mask, motion, 0.0).repeat(factor, 0).repeat(factor, 1)
    weight = np.pad(weight, ((0, max(0, h - weight.shape[0])), (0, max(0, w - weight.shape[1]))))
    box = _box_sums(weight[:h, :w], ph, pw)
    candidates = set()
    for cy, cx in centres:
        y0 = int(np.clip(round((cy + 0.5) * factor - ph / 2), 0, h - ph))
        x0 = int(np.clip(round((cx + 0.5) * factor - pw / 2), 0, w - pw))
        candidates.add(PatchSpec(t0, y0, x0, float(box[y0, x0])))
    chosen: list[PatchSpec] = []
    limit = config.max_overlap * ph * pw
    for spec in sorted(candidates, key=lambda s: (-s.score, s.y0, s.x0)):
        if spec.score > 0 and all(_overlap(spec, c, ph, pw) <= limit for c in chosen):
            chosen.append(spec)
        if len(chosen) == config.max_patches_per_window:
            break
    return chosen


def flow_specs(frames: np.ndarray, config: PatchConfig) -> list[PatchSpec]:
    """Patches centred on moving regions (see the module docstring); empty if nothing moves."""
    t, h, w = frames.shape
    if t < 2:
        return []
    pt = config.patch_shape[0]
    magnitudes, factor = flow_magnitudes(frames, config)
    lag = min(config.flow_lag, t - 1)
    sample = magnitudes[:, ::2, ::2].ravel()
    otsu = threshold_otsu(sample) if np.ptp(sample) > 0 else float(sample.max())
    threshold = max(float(otsu), config.min_flow_px)
    specs: list[PatchSpec] = []
    for t0 in window_starts(t, pt, config.strides[0]):
        inside = [k for k in range(len(magnitudes)) if t0 <= k * lag and k * lag + lag < t0 + pt]
        if not inside:
            inside = [min(t0 // lag, len(magnitudes) - 1)]
        motion = magnitudes[inside].max(axis=0)
        specs += _window_specs(motion, threshold, t0, factor, (h, w), config)
    return specs


def plan_patches(recording: Recording, config: PatchConfig) -> PatchPlan:
    """Where to cut patches in an already preprocessed recording (see `preprocess`)."""
    steps = [f"every {config.frame_step} frames"] * (config.frame_step > 1)
    steps += [f"{config.bin_factor}x{config.bin_factor} binning"] * (config.bin_factor > 1)
    check_patch_fit(recording, config.patch_shape, after=" and ".join(steps))
    if config.method == "flow":
        specs = flow_specs(recording.frames, config)
        if specs:
            return PatchPlan(specs, "flow")
        return PatchPlan(grid_specs(recording.shape, config), "grid (no motion found)")
    return PatchPlan(grid_specs(recording.shape, config), "grid")


def scale_patch(patch: np.ndarray) -> np.ndarray:
    """Min-max scale to [-1, 1]; a constant patch becomes zeros."""
    lo, hi = float(patch.min()), float(patch.max())
    if hi <= lo:
        return np.zeros(patch.shape, dtype=np.float32)
    unit = (patch.astype(np.float64) - lo) / (hi - lo)  # float64: the extremes map exactly
    return (unit * 2.0 - 1.0).astype(np.float32)


def cut_patch(
    frames: np.ndarray, spec: PatchSpec, patch_shape: tuple[int, int, int]
) -> np.ndarray:
    pt, ph, pw = patch_shape
    t0, y0, x0 = spec.t0, spec.y0, spec.x0
    return scale_patch(frames[t0 : t0 + pt, y0 : y0 + ph, x0 : x0 + pw])


@dataclass(frozen=True)
class _Source:
    recording: Recording
    plan: PatchPlan


class RecordingPatches(Dataset[torch.Tensor]):
    """Patches from several recordings as (1, T, H, W) float32 tensors in [-1, 1].

    All recordings are decoded and planned up front, so a bad file fails before training starts
    and `describe()` can state what the model was fine-tuned on.
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike[str]],
        config: PatchConfig = PatchConfig(),
        *,
        channel: int | None = None,
        z: int | None = None,
        limits: RecordingLimits = RecordingLimits(),
    ) -> None:
        if not paths:
            raise ValueError("RecordingPatches needs at least one recording file")
        self.config = config
        self.sources: list[_Source] = []
        self.index: list[tuple[int, PatchSpec]] = []
        for path in paths:
            raw = read_recording(path, channel=channel, z=z, limits=limits)
            recording = preprocess(raw, config)
            plan = plan_patches(recording, config)
            self.index += [(len(self.sources), spec) for spec in plan.specs]
            self.sources.append(_Source(recording, plan))

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> torch.Tensor:
        source, spec = self.index[i]
        patch = cut_patch(self.sources[source].recording.frames, spec, self.config.patch_shape)
        return torch.from_numpy(patch)[None]

    def calibration(self) -> tuple[float | None, float | None]:
        """Pixel size (µm) and frame interval (s) of the patches, from the first recording that states them."""
        c = self.config
        pixel = next((r.pixel_size_um * c.bin_factor for r in self._recordings() if r.pixel_size_um), None)
        interval = next((r.frame_interval_s * c.frame_step for r in self._recordings() if r.frame_interval_s), None)
        return pixel, interval

    def _recordings(self) -> list[Recording]:
        return [source.recording for source in self.sources]

    def describe(self) -> str:
        """Plain-text summary of the training data, for the model manifest."""
        c = self.config
        pt, ph, pw = c.patch_shape
        t_stride, s_stride = c.strides
        lines = [
            f"{len(self)} patches of {pt}x{ph}x{pw} (T x H x W) from {len(self.sources)} "
            f"recording(s); method {c.method}"
            + (f" (TV-L1 flow, lag {c.flow_lag}, flow grid <= {c.flow_max_side} px, "
               f"threshold max(Otsu, {c.min_flow_px:g} px))" if c.method == "flow" else "")
            + f"; temporal stride {t_stride}, grid stride {s_stride}, frame step {c.frame_step}, "
            f"bin {c.bin_factor}; each patch min-max scaled to [-1, 1]",
        ]
        for s in self.sources:
            r = s.recording
            t, h, w = r.shape
            calib = ", ".join(
                part for part in (
                    f"pixel {r.pixel_size_um * c.bin_factor:.4g} um" if r.pixel_size_um else "",
                    f"interval {r.frame_interval_s * c.frame_step:.4g} s"
                    if r.frame_interval_s else "",
                ) if part
            )
            lines.append(
                f"- {Path(r.path).name}: {r.source_format} {r.source_dtype}, {t}x{h}x{w} after "
                f"preprocessing{', ' + calib if calib else ''}: {len(s.plan.specs)} patches "
                f"({s.plan.method_used})"
            )
        return "\n".join(lines)
