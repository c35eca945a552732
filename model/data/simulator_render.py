"""Image formation of the tumour-on-chip simulator: cells -> phase -> phase contrast -> camera.

Cells are drawn as thickness maps on small patches (vectorised over every cell and frame,
scatter-added into the field), turned into optical phase, and imaged with the classic
linearised phase-contrast model: the phase ring removes the low frequencies of the
phase, so the image is the phase minus its blurred copy (a difference-of-Gaussians
with the PSF). That one operation gives the dark body, the bright halo outside the
edge and the shade-off inside large cells. Thick round cells also act as lenses and
look brighter ("phase-bright"), added as a refractility term. Illumination falloff,
focus drift, shot and read noise follow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft
from scipy import ndimage
from skimage.draw import disk

from .simulator_params import SimulatorParams

TEXTURE_SIZE = 32
TEXTURE_EXTENT = 1.3  # textures cover [-1.3, 1.3] cell radii
_CHUNK_PIXELS = 1 << 21  # patch pixels rendered per vectorised chunk (bounds memory)


@dataclass(frozen=True)
class Blobs:
    """Everything to draw, one row per (frame, cell or bleb); lengths in canvas pixels."""

    frame: np.ndarray  # int (n,)
    centre: np.ndarray  # (n, 2) y, x on the canvas
    radius: np.ndarray  # (n,)
    harmonic_amp: np.ndarray  # (n, 3) for harmonics 2, 3, 4
    harmonic_phase: np.ndarray  # (n, 3)
    orientation: np.ndarray  # (n,)
    thickness_um: np.ndarray  # (n,)
    refractility: np.ndarray  # (n,)
    texture: np.ndarray  # int (n,): row of the texture stack, -1 for none
    label: np.ndarray  # int (n,): mask label, > 0
    priority: np.ndarray  # (n,): which cell owns a pixel covered by several (higher wins)


@dataclass(frozen=True)
class ViewBox:
    """Where the camera's image sits on the larger canvas (cells beyond it cast halos into it)."""

    top: int
    left: int
    height: int
    width: int

    def slices(self) -> tuple[slice, slice, slice]:
        return slice(None), slice(self.top, self.top + self.height), slice(self.left, self.left + self.width)

    def contains(self, coordinate: np.ndarray, axis: int = 0) -> np.ndarray:
        start, length = (self.top, self.height) if axis == 0 else (self.left, self.width)
        return (coordinate >= start) & (coordinate < start + length)


@dataclass(frozen=True)
class Raster:
    thickness_um: np.ndarray  # float32 (T, Hc, Wc)
    refractility: np.ndarray  # float32 (T, Hc, Wc)
    labels: np.ndarray  # int32 (T, H, W): inside the view only


def cell_textures(n: int, rng: np.random.Generator) -> np.ndarray:
    """Relative thickness modulation inside tumour cells: nucleus, nucleoli, granules."""
    axis = np.linspace(-TEXTURE_EXTENT, TEXTURE_EXTENT, TEXTURE_SIZE)
    yy, xx = np.meshgrid(axis, axis, indexing="ij")
    textures = np.zeros((n, TEXTURE_SIZE, TEXTURE_SIZE), dtype=np.float32)
    for i in range(n):
        ny, nx = rng.uniform(-0.25, 0.25, size=2)
        ay, ax = rng.uniform(0.35, 0.5, size=2)
        nucleus = np.exp(-(((yy - ny) / ay) ** 2 + ((xx - nx) / ax) ** 2) ** 2)
        tex = 0.25 * nucleus
        spots = np.concatenate([
            np.column_stack([rng.normal([ny, nx], 0.12, size=(3, 2)), rng.uniform(0.15, 0.35, 3), np.full(3, 0.06)]),
            np.column_stack([rng.uniform(-0.8, 0.8, size=(30, 2)), rng.uniform(-0.25, 0.35, 30),
                             rng.uniform(0.04, 0.08, 30)]),
        ])
        for y, x, height, width in spots:
            tex += height * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * width**2))
        textures[i] = tex
    return textures


def rasterise(blobs: Blobs, shape: tuple[int, int, int], textures: np.ndarray, view: ViewBox) -> Raster:
    """Draw every blob on its own patch and scatter the patches into (T, Hc, Wc) maps.

    Blobs entirely off the canvas are skipped; labels are only resolved inside `view`.
    """
    frames, height, width = shape
    half = np.ceil(blobs.radius * (1 + np.abs(blobs.harmonic_amp).sum(axis=1))).astype(np.int64) + 1
    on_canvas = (
        (blobs.centre[:, 0] + half >= 0) & (blobs.centre[:, 0] - half < height)
        & (blobs.centre[:, 1] + half >= 0) & (blobs.centre[:, 1] - half < width)
    )
    index_parts: list[np.ndarray] = []
    thickness_parts: list[np.ndarray] = []
    refractility_parts: list[np.ndarray] = []
    owners: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for h in np.unique(half[on_canvas]):
        rows = np.flatnonzero(on_canvas & (half == h))
        patch = min(2 * int(h) + 1, height, width)
        step = max(1, _CHUNK_PIXELS // (patch * patch))
        for start in range(0, len(rows), step):
            chunk = rows[start:start + step]
            index, rho, value, in_view = _draw(blobs, chunk, patch, shape, textures, view)
            dome = np.sqrt(np.clip(1.0 - rho * rho, 0.0, None))
            covered = rho < 1.0
            index_parts.append(index[covered])
            thickness_parts.append((value * dome)[covered])
            refractility_parts.append((blobs.refractility[chunk, None, None] * dome**2)[covered])
            owned = covered & in_view
            owner = _owner_rows(chunk, owned)
            # Where cells overlap, the pixel goes to the cell whose centre it is relatively
            # nearer, so touching cells split their overlap instead of one covering the other.
            owners.append((index[owned], owner, blobs.priority[owner] + (1.0 - rho[owned])))
    size = frames * height * width
    index = np.concatenate(index_parts) if index_parts else np.zeros(0, dtype=np.int64)

    def scatter(parts: list[np.ndarray]) -> np.ndarray:
        weights = np.concatenate(parts) if parts else np.zeros(0)
        return np.bincount(index, weights=weights, minlength=size).reshape(shape).astype(np.float32)

    labels = _resolve_owners(owners, blobs, size).reshape(shape)[view.slices()]
    return Raster(thickness_um=scatter(thickness_parts), refractility=scatter(refractility_parts), labels=labels)


def _draw(
    blobs: Blobs, rows: np.ndarray, patch: int, shape: tuple[int, int, int], textures: np.ndarray, view: ViewBox
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per patch pixel: flat canvas index, rho, thickness (µm), whether it lies in the view.

    rho is the distance from the centre over the outline's radius in that direction, so
    the cell is rho < 1 whatever its shape.
    """
    _, height, width = shape
    centre = blobs.centre[rows]
    origin_y = np.clip(np.round(centre[:, 0]).astype(np.int64) - patch // 2, 0, height - patch)
    origin_x = np.clip(np.round(centre[:, 1]).astype(np.int64) - patch // 2, 0, width - patch)
    offsets = np.arange(patch)
    grid_y = origin_y[:, None] + offsets
    grid_x = origin_x[:, None] + offsets
    dy = (grid_y - centre[:, 0:1])[:, :, None].astype(np.float32)
    dx = (grid_x - centre[:, 1:2])[:, None, :].astype(np.float32)
    distance = np.sqrt(dy * dy + dx * dx)
    angle = np.arctan2(dy, dx)
    outline = np.ones_like(distance)
    for k, amp, phase in zip((2, 3, 4), blobs.harmonic_amp[rows].T, blobs.harmonic_phase[rows].T):
        outline += amp[:, None, None].astype(np.float32) * np.cos(k * angle - phase[:, None, None].astype(np.float32))
    radius = blobs.radius[rows, None, None].astype(np.float32)
    rho = distance / (radius * outline)
    value = blobs.thickness_um[rows, None, None] * (1.0 + _sample_texture(blobs, rows, dy, dx, textures))
    frame = blobs.frame[rows, None, None]
    index = (frame * height + grid_y[:, :, None]) * width + grid_x[:, None, :]
    in_view = view.contains(grid_y)[:, :, None] & view.contains(grid_x, axis=1)[:, None, :]
    return index, rho, value, in_view


def _sample_texture(blobs: Blobs, rows: np.ndarray, dy: np.ndarray, dx: np.ndarray, textures: np.ndarray) -> np.ndarray:
    which = blobs.texture[rows]
    if not len(textures) or np.all(which < 0):
        return np.zeros((len(rows), dy.shape[1], dx.shape[2]), dtype=np.float32)
    cos_o = np.cos(blobs.orientation[rows])[:, None, None].astype(np.float32)
    sin_o = np.sin(blobs.orientation[rows])[:, None, None].astype(np.float32)
    radius = blobs.radius[rows, None, None].astype(np.float32)
    scale = (TEXTURE_SIZE - 1) / (2 * TEXTURE_EXTENT)
    u = ((cos_o * dy - sin_o * dx) / radius + TEXTURE_EXTENT) * scale
    v = ((sin_o * dy + cos_o * dx) / radius + TEXTURE_EXTENT) * scale
    u0 = np.clip(np.floor(u).astype(np.int64), 0, TEXTURE_SIZE - 2)
    v0 = np.clip(np.floor(v).astype(np.int64), 0, TEXTURE_SIZE - 2)
    fu = np.clip(u - u0, 0.0, 1.0)
    fv = np.clip(v - v0, 0.0, 1.0)
    cell = np.arange(len(rows))[:, None, None]
    stack = textures[np.maximum(which, 0)]
    sample = (
        stack[cell, u0, v0] * (1 - fu) * (1 - fv)
        + stack[cell, u0 + 1, v0] * fu * (1 - fv)
        + stack[cell, u0, v0 + 1] * (1 - fu) * fv
        + stack[cell, u0 + 1, v0 + 1] * fu * fv
    )
    return np.where((which >= 0)[:, None, None], sample, 0.0).astype(np.float32)


def _owner_rows(rows: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """The blob row of every inside pixel, in the order `index[inside]` lists them."""
    return np.broadcast_to(rows[:, None, None], inside.shape)[inside]


def _resolve_owners(owners: list[tuple[np.ndarray, np.ndarray, np.ndarray]], blobs: Blobs, size: int) -> np.ndarray:
    """Label each covered pixel with its highest-priority blob (a stable sort: ties are deterministic)."""
    labels = np.zeros(size, dtype=np.int32)
    if not owners:
        return labels
    index = np.concatenate([o[0] for o in owners])
    row = np.concatenate([o[1] for o in owners])
    priority = np.concatenate([o[2] for o in owners])
    order = np.lexsort((priority, index))
    index, row = index[order], row[order]
    last = np.ones(len(index), dtype=bool)
    last[:-1] = index[1:] != index[:-1]
    labels[index[last]] = blobs.label[row[last]]
    return labels


def phase_contrast(
    phase_rad: np.ndarray, refractility: np.ndarray, blur_px: np.ndarray, halo_px: float, gain: float
) -> np.ndarray:
    """Relative intensity (1 = background) from phase (T, H, W); blur_px is the PSF per frame."""
    _, height, width = phase_rad.shape
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    f2 = (fy * fy + fx * fx).astype(np.float32)
    psf = np.exp(-2 * np.pi**2 * (blur_px.astype(np.float32)[:, None, None] ** 2) * f2)
    ring = 1.0 - np.exp(-2 * np.pi**2 * halo_px**2 * f2)
    high_passed = scipy.fft.irfft2(scipy.fft.rfft2(phase_rad) * (psf * ring), s=(height, width))
    bright = scipy.fft.irfft2(scipy.fft.rfft2(refractility) * psf, s=(height, width))
    return np.exp(-gain * high_passed) + bright


def gel_phase(height: int, width: int, params: SimulatorParams, rng: np.random.Generator) -> np.ndarray:
    """Static phase of the gel: mottled texture plus debris specks (radians)."""
    px = params.pixel_size_um
    mottle = ndimage.gaussian_filter(rng.normal(size=(height, width)), params.gel_texture_scale_um / px, mode="wrap")
    mottle *= params.gel_texture_rad / max(float(mottle.std()), 1e-12)
    area_mm2 = height * width * (px * 1e-3) ** 2
    n_debris = int(rng.poisson(params.debris_density_per_mm2 * area_mm2))
    centres = rng.uniform(0, (height, width), size=(n_debris, 2))
    radii = rng.uniform(0.6, 2.0, size=n_debris) / px + 0.5
    heights = rng.uniform(*params.debris_phase_rad, size=n_debris)
    specks = np.zeros((height, width))
    for (y, x), r, h in zip(centres, radii, heights):
        rr, cc = disk((y, x), r, shape=(height, width))
        specks[rr, cc] += h
    return (mottle + ndimage.gaussian_filter(specks, 0.5)).astype(np.float32)


def illumination(height: int, width: int, params: SimulatorParams, rng: np.random.Generator) -> np.ndarray:
    """Multiplicative lamp field: a linear falloff in a random direction, mean 1."""
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    along = (yy - (height - 1) / 2) * np.sin(angle) + (xx - (width - 1) / 2) * np.cos(angle)
    return (1.0 + params.illumination_gradient_per_mm * along * params.pixel_size_um * 1e-3).astype(np.float32)


def camera(relative: np.ndarray, params: SimulatorParams, rng: np.random.Generator) -> np.ndarray:
    """uint16 counts: Poisson photo-electrons, Gaussian read noise, gain and offset."""
    electrons = rng.poisson(np.clip(relative, 0.0, None) * params.background_electrons)
    electrons = electrons + rng.normal(0.0, params.read_noise_electrons, size=electrons.shape)
    counts = params.camera_offset_adu + params.camera_gain_adu_per_electron * electrons
    return np.clip(np.round(counts), 0, np.iinfo(np.uint16).max).astype(np.uint16)
