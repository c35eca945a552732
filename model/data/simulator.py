"""Tumour-on-chip phase-contrast videos with ground truth (SPEC section 5).

The paper's TOC recordings are not public, so this simulator stands in for them: it
feeds the bundled TOC model and the tests, and gives users videos whose tracks and
masks are known exactly. Physics and defaults: `simulator_params`; motion:
`simulator_dynamics`; image formation: `simulator_render`.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import tifffile
import torch
from scipy.fft import next_fast_len
from torch.utils.data import Dataset

from .simulator_dynamics import TCELL, CellFrames, simulate_cells
from .simulator_params import SimulatorParams
from .simulator_render import (
    Blobs,
    ViewBox,
    camera,
    cell_textures,
    gel_phase,
    illumination,
    phase_contrast,
    rasterise,
)

CellKind = Literal["tcell", "tumour"]
STATE_NAMES = np.array(["alive", "dying", "dead"])
PAPER_NUM_VIDEOS = 1224  # TOC training videos in the SAVGAN paper
_TCELL_PRIORITY = 2.0  # T cells are drawn over tumour cells in the masks
MIN_SIZE = 8  # px; smaller views hold no whole tumour cell


@dataclass(frozen=True)
class Track:
    """Ground truth of one cell over the whole video; the id is its label in the masks."""

    track_id: int
    kind: CellKind
    positions: np.ndarray  # float64 (T, 3): t, y_px, x_px of the cell centre (may lie outside the view)
    state: np.ndarray  # str (T,): "alive", "dying" or "dead"
    contact: np.ndarray  # bool (T,): T cell conjugated to a tumour cell / tumour cell contacted
    visible: np.ndarray  # bool (T,): the cell has pixels in the frame
    radius_px: np.ndarray  # float64 (T,): mean radius of the cell body


@dataclass(frozen=True)
class SimulatedVideo:
    """A video with the ground truth that generated it, and what is needed to regenerate it."""

    video: np.ndarray  # uint16 (T, H, W) camera counts
    masks: np.ndarray  # int32 (T, H, W) instance labels, 0 = background, label = Track.track_id
    tracks: tuple[Track, ...]
    params: SimulatorParams
    seed: int


@dataclass(frozen=True)
class SimulationFiles:
    """Where `save_simulation` wrote each part of the ground truth."""

    masks: Path
    tracks: Path
    params: Path


def simulate(
    frames: int,
    height: int,
    width: int,
    seed: int,
    params: SimulatorParams = SimulatorParams(),
    texture_seed: int | None = None,
) -> SimulatedVideo:
    """One simulated video; the same arguments always give the same arrays.

    ``texture_seed`` redraws only the tumour cells' textures: the same tracks, shapes, gel,
    illumination and camera noise with other cells' content (an identity-only negative).
    """
    _check_request(frames, height, width, seed)
    rng = np.random.default_rng(seed)
    cells = simulate_cells(frames, height, width, params, rng)
    n_tumour = int(np.sum(cells.kind != TCELL))
    textures = cell_textures(n_tumour, rng)
    if texture_seed is not None:
        textures = cell_textures(n_tumour, np.random.default_rng([seed, texture_seed]))
    px = params.pixel_size_um
    pad = _canvas_pad(cells, params)
    view = ViewBox(top=pad, left=pad, height=height, width=width)
    canvas = (frames, next_fast_len(height + 2 * pad, real=True), next_fast_len(width + 2 * pad, real=True))
    raster = rasterise(_blobs(cells, pad, px), canvas, textures, view)
    phase = raster.thickness_um * np.float32(2 * np.pi * params.refractive_index_difference / params.wavelength_um)
    phase += gel_phase(canvas[1], canvas[2], params, rng)
    relative = phase_contrast(phase, raster.refractility, _blur_px(frames, params, rng),
                              params.halo_sigma_um / px, params.phase_gain_per_rad)
    video = camera(relative[view.slices()] * illumination(height, width, params, rng), params, rng)
    masks, tracks = _ground_truth(cells, raster.labels, px)
    return SimulatedVideo(video=video, masks=masks, tracks=tracks, params=params, seed=seed)


def _check_request(frames: int, height: int, width: int, seed: int) -> None:
    if frames < 1:
        raise ValueError(f"frames must be at least 1, got {frames}")
    if height < MIN_SIZE or width < MIN_SIZE:
        raise ValueError(f"height and width must be at least {MIN_SIZE} px, got {height}x{width}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")


def _canvas_pad(cells: CellFrames, params: SimulatorParams) -> int:
    """Border around the view wide enough for any cell whose body or halo reaches the view.

    It also keeps the FFT's wrap-around (the far border's halo) away from the view.
    """
    largest = float(cells.radius_um.max(initial=0.0)) * (1 + float(np.abs(cells.harmonic_amp).sum(-1).max(initial=0.0)))
    largest += float(cells.blebs[:, 4].max(initial=0.0)) * 2
    blur = 3 * (params.halo_sigma_um + params.psf_sigma_um + params.focus_drift_blur_um)
    return math.ceil((largest + blur) / params.pixel_size_um) + 2


def _blobs(cells: CellFrames, pad: int, px: float) -> Blobs:
    """One row per (frame, cell), then one per bleb, which carries its cell's label."""
    frames, n = cells.radius_um.shape
    frame = np.repeat(np.arange(frames), n)
    cell = np.tile(np.arange(n), frames)
    kind = cells.kind[cell]
    bleb_cell = cells.blebs[:, 1].astype(np.int64)
    n_blebs = len(bleb_cell)
    return Blobs(
        frame=np.concatenate([frame, cells.blebs[:, 0].astype(np.int64)]),
        centre=np.concatenate([cells.centre_um.reshape(-1, 2), cells.blebs[:, 2:4]]) / px + pad,
        radius=np.concatenate([cells.radius_um.ravel(), cells.blebs[:, 4]]) / px,
        harmonic_amp=np.concatenate([cells.harmonic_amp.reshape(-1, 3), np.zeros((n_blebs, 3))]),
        harmonic_phase=np.concatenate([cells.harmonic_phase.reshape(-1, 3), np.zeros((n_blebs, 3))]),
        orientation=np.concatenate([cells.orientation.ravel(), np.zeros(n_blebs)]),
        thickness_um=np.concatenate([cells.thickness_um.ravel(), cells.blebs[:, 5]]),
        refractility=np.concatenate([cells.refractility.ravel(), cells.blebs[:, 6]]),
        texture=np.concatenate([np.where(kind == TCELL, -1, cell), np.full(n_blebs, -1)]),
        label=np.concatenate([cell, bleb_cell]) + 1,
        priority=np.concatenate([np.where(kind == TCELL, _TCELL_PRIORITY, 0.0), np.zeros(n_blebs)]),
    )


def _blur_px(frames: int, params: SimulatorParams, rng: np.random.Generator) -> np.ndarray:
    """PSF sigma per frame: the in-focus blur plus a slow defocus oscillation."""
    period = rng.uniform(*params.focus_drift_period_min)
    start = rng.uniform(0, 2 * np.pi)
    minutes = np.arange(frames) * params.frame_interval_min
    defocus = params.focus_drift_blur_um * 0.5 * (1 - np.cos(2 * np.pi * minutes / period + start))
    return np.sqrt(params.psf_sigma_um**2 + defocus**2) / params.pixel_size_um


def _ground_truth(cells: CellFrames, labels: np.ndarray, px: float) -> tuple[np.ndarray, tuple[Track, ...]]:
    """Tracks of the cells seen at least once, relabelled 1..n in cell order, and their masks."""
    frames, n = cells.radius_um.shape
    counts = np.stack([np.bincount(frame.ravel(), minlength=n + 1) for frame in labels])
    visible = counts[:, 1:] > 0
    seen = np.flatnonzero(visible.any(axis=0))
    relabel = np.zeros(n + 1, dtype=np.int32)
    relabel[seen + 1] = np.arange(1, len(seen) + 1, dtype=np.int32)
    times = np.arange(frames, dtype=np.float64)[:, None]
    tracks = tuple(
        Track(
            track_id=int(relabel[cell + 1]),
            kind="tcell" if cells.kind[cell] == TCELL else "tumour",
            positions=np.hstack([times, cells.centre_um[:, cell] / px]),
            state=STATE_NAMES[cells.state[:, cell]],
            contact=cells.contact[:, cell].copy(),
            visible=visible[:, cell].copy(),
            radius_px=cells.radius_um[:, cell] / px,
        )
        for cell in seen
    )
    return relabel[labels], tracks


def scale_to_unit_range(video: np.ndarray) -> np.ndarray:
    """float32 copy min-max scaled to [-1, 1] over the whole video (the GAN's convention)."""
    video = video.astype(np.float32)
    low, high = float(video.min()), float(video.max())
    return (video - low) / max(high - low, 1e-12) * 2.0 - 1.0


@dataclass(frozen=True)
class _DatasetConfig:
    num_videos: int
    frames: int
    height: int
    width: int
    seed: int
    params: SimulatorParams


class SimulatorDataset(Dataset[torch.Tensor]):
    """Simulated TOC videos (1, T, H, W) float32 in [-1, 1]; item i depends only on (seed, i)."""

    def __init__(
        self,
        num_videos: int = PAPER_NUM_VIDEOS,
        frames: int = 32,
        height: int = 64,
        width: int = 64,
        seed: int = 0,
        params: SimulatorParams = SimulatorParams(),
    ) -> None:
        if num_videos < 1:
            raise ValueError(f"num_videos must be at least 1, got {num_videos}")
        _check_request(frames, height, width, seed)
        self.config = _DatasetConfig(num_videos, frames, height, width, seed, params)

    def __len__(self) -> int:
        return self.config.num_videos

    def video_seed(self, index: int) -> int:
        """The `simulate` seed of item `index`, to get its ground truth."""
        if not 0 <= index < self.config.num_videos:
            raise IndexError(f"video index {index} out of range 0..{self.config.num_videos - 1}")
        return int(np.random.SeedSequence([self.config.seed, index]).generate_state(1)[0])

    def simulation(self, index: int) -> SimulatedVideo:
        """Item `index` with its ground truth (tracks, masks) and camera counts."""
        c = self.config
        return simulate(c.frames, c.height, c.width, self.video_seed(index), c.params)

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.from_numpy(scale_to_unit_range(self.simulation(index).video)).unsqueeze(0)

    def intensity_range(self, sample: int = 16) -> tuple[float, float]:
        """Median per-clip (min, max) camera counts over the first ``sample`` items: what -1 and +1 stand for.

        Each item is min-max scaled on its own, so a generated clip's -1 and +1 are a typical
        clip's darkest and brightest counts (model/video_io/calibration.py writes them back).
        """
        videos = [self.simulation(i).video for i in range(min(sample, len(self)))]
        return float(np.median([v.min() for v in videos])), float(np.median([v.max() for v in videos]))

    def identity_swap(self, index: int) -> torch.Tensor:
        """Item ``index`` with other cell textures on the same tracks, scaled as items are."""
        c = self.config
        sim = simulate(c.frames, c.height, c.width, self.video_seed(index), c.params, texture_seed=1)
        return torch.from_numpy(scale_to_unit_range(sim.video)).unsqueeze(0)


def save_simulation(sim: SimulatedVideo, out_dir: Path, stem: str) -> SimulationFiles:
    """Write the ground truth (masks TIFF, tracks CSV, parameters JSON) next to a video."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = SimulationFiles(
        masks=out_dir / f"{stem}_masks.tif",
        tracks=out_dir / f"{stem}_tracks.csv",
        params=out_dir / f"{stem}_params.json",
    )
    if sim.masks.max(initial=0) > np.iinfo(np.uint16).max:
        raise ValueError(f"{sim.masks.max()} labels do not fit a uint16 mask TIFF; simulate a smaller field")
    px = sim.params.pixel_size_um
    tifffile.imwrite(
        files.masks,
        sim.masks.astype(np.uint16),
        imagej=True,
        resolution=(1 / px, 1 / px),
        metadata={"axes": "TYX", "unit": "um", "finterval": sim.params.frame_interval_s},
    )
    with files.tracks.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["track_id", "kind", "t", "y_px", "x_px", "state", "contact"])
        for track in sim.tracks:
            for (t, y, x), state, contact in zip(
                track.positions[track.visible], track.state[track.visible], track.contact[track.visible]
            ):
                writer.writerow([track.track_id, track.kind, int(t), f"{y:.3f}", f"{x:.3f}", state, int(contact)])
    frames, height, width = sim.video.shape
    description = {
        "simulator": "savgan tumour-on-chip phase contrast",
        "seed": sim.seed,
        "frames": frames,
        "height": height,
        "width": width,
        "params": sim.params.to_dict(),
    }
    files.params.write_text(json.dumps(description, indent=2) + "\n")
    return files
