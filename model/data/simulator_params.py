"""Physical parameters of the tumour-on-chip phase-contrast simulator.

Defaults describe the SAVGAN paper's set-up (A549 lung cancer cells and cytotoxic T
cells, 1:1, in collagen gel; Leica DMi8, 5x phase-contrast objective, one frame every
10 s). Every quantity is in physical units (µm, minutes, seconds, electrons); the
simulator converts to pixels and frames, so changing the pixel size or frame interval
changes the sampling, not the biology. Where a value is a modelling choice rather than a
literature figure, its comment says so.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

Range = tuple[float, float]


@dataclass(frozen=True)
class SimulatorParams:
    # --- acquisition --------------------------------------------------------------
    # 6.5 µm sCMOS pixel (Leica DFC9000 / Hamamatsu ORCA-Flash4.0) behind a 5x objective.
    pixel_size_um: float = 1.3
    # The paper's TOC recordings: one frame every 10 s for 1 h.
    frame_interval_s: float = 10.0
    # Green-filtered transmitted light, the usual phase-contrast illumination.
    wavelength_um: float = 0.55
    # Leica N PLAN 5x/0.12 PH0; sets the diffraction blur, sigma = 0.21 lambda / NA.
    numerical_aperture: float = 0.12
    # Width of the phase-ring low-pass that makes halo and shade-off. Modelling choice,
    # matched by eye to the thin halos of the real phase-contrast reference sequence.
    halo_sigma_um: float = 2.5
    # Image contrast per radian of high-passed phase (linearised Zernike contrast);
    # chosen so cell rims are ~25 % darker and halos ~30-40 % brighter than the
    # background, as in real images.
    phase_gain_per_rad: float = 0.35
    # Slow focus drift: extra Gaussian blur oscillating between 0 and this, with a period
    # drawn per video; a slight, visible softening as on a long live recording.
    focus_drift_blur_um: float = 1.2
    focus_drift_period_min: Range = (8.0, 30.0)
    # Linear illumination falloff across the field (fraction per mm), direction random.
    illumination_gradient_per_mm: float = 0.3
    # Mean photo-electrons per background pixel: about a quarter of an sCMOS full well,
    # so shot noise is ~1 % of the background.
    background_electrons: float = 8000.0
    # sCMOS read noise (rms electrons), gain and offset of a 16-bit camera.
    read_noise_electrons: float = 1.6
    camera_gain_adu_per_electron: float = 2.0
    camera_offset_adu: float = 100.0

    # --- medium (collagen gel) -------------------------------------------------------
    # Refractive index of cytoplasm (~1.37) minus that of the gel / medium (~1.335).
    refractive_index_difference: float = 0.035
    # Static mottled texture of the gel (rms phase, correlation length) and debris dots;
    # modelling choices giving the ~2 % background texture seen in real phase contrast.
    gel_texture_rad: float = 0.06
    gel_texture_scale_um: float = 3.0
    debris_density_per_mm2: float = 600.0
    debris_phase_rad: Range = (0.5, 1.5)

    # --- tumour cells (A549) --------------------------------------------------------
    # Number per mm² of field; clustered (A549 grow as small groups in gel).
    tumour_density_per_mm2: float = 450.0
    tumour_cluster_size_mean: float = 4.0
    tumour_cluster_radius_um: float = 18.0
    # A549 cells are 15-25 µm across; in gel they stay rounded, about as thick as half
    # their diameter.
    tumour_diameter_um: Range = (15.0, 25.0)
    tumour_thickness_um: Range = (7.0, 12.0)
    # Tumour cells barely move over an hour: mean speed per cell drawn in this range.
    tumour_speed_um_per_min: Range = (0.1, 0.5)
    tumour_persistence_min: float = 20.0
    # Shape: relative amplitude of the 2nd-4th radial harmonics of the outline, and the
    # time over which the outline changes (membrane ruffling); modelling choices.
    tumour_irregularity: float = 0.2
    tumour_shape_change_min: float = 8.0

    # --- T cells (cytotoxic lymphocytes) ---------------------------------------------
    # Effector:target ratio of the paper's chips.
    tcell_per_tumour: float = 1.0
    # Lymphocytes are 7-10 µm across and nearly spherical.
    tcell_diameter_um: Range = (7.0, 10.0)
    tcell_thickness_um: Range = (6.0, 9.0)
    # Migration speed in 3D collagen, 2-15 µm/min (amoeboid T-cell crawling); each
    # cell keeps its own speed, drawn log-uniformly in this range.
    tcell_speed_um_per_min: Range = (2.0, 15.0)
    # Persistence time of the heading (random turning), a few minutes in collagen.
    tcell_persistence_min: float = 2.0
    # Elongation of a migrating T cell along its heading (2nd radial harmonic).
    tcell_elongation: float = 0.18
    # T cells are phase-bright (thick, round): extra brightness of the body, as a
    # fraction of the background.
    tcell_refractility: float = 0.4

    # --- interactions ---------------------------------------------------------------------
    # A T cell closer than this (edge to edge) to a living tumour cell steers towards it,
    # turning at most this fast; modelling choices (chemokine sensing over tens of µm).
    sensing_radius_um: float = 30.0
    attraction_turn_per_min: float = 3.0
    # Contact (conjugate) duration: exponential with this mean, at least one frame;
    # then the T cell leaves and ignores targets for the refractory time.
    contact_duration_min: float = 4.0
    post_contact_refractory_min: float = 2.0
    # Killing hazard while in contact. Real CTL kills take tens of minutes of contact;
    # this higher rate is a modelling choice so that some 5-min clips show a death.
    kill_rate_per_min: float = 0.02
    # Death: the cell rounds up, shrinks to this fraction of its radius, grows brighter
    # and blebs over this time, then stays as a round bright corpse.
    dying_duration_min: float = 3.0
    dying_shrink: float = 0.7
    dying_refractility: float = 0.8
    blebs_per_cell: int = 8
    bleb_radius_fraction: float = 0.28
    bleb_lifetime_min: Range = (0.5, 1.5)

    # --- simulation -----------------------------------------------------------------------
    # Dynamics run this long before the first frame, so contacts and deaths are under way.
    burn_in_min: float = 10.0
    # Cells live in a field this much larger on each side than the image, so they enter
    # and leave the view instead of bouncing at the image border.
    margin_um: float = 25.0
    # Put one T cell in the central half of the view at the first frame, as the paper's
    # training crops are centred on moving lymphocytes.
    tcell_in_view: bool = True

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool):
                continue
            if isinstance(value, tuple):
                _check_range(field.name, value)
            elif not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"SimulatorParams.{field.name} must be a finite number >= 0, got {value!r}")
        for name in ("pixel_size_um", "frame_interval_s", "wavelength_um", "numerical_aperture",
                     "halo_sigma_um", "background_electrons", "camera_gain_adu_per_electron",
                     "tumour_persistence_min", "tumour_shape_change_min", "tcell_persistence_min",
                     "contact_duration_min", "dying_duration_min"):
            if getattr(self, name) <= 0:
                raise ValueError(f"SimulatorParams.{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("tumour_diameter_um", "tcell_diameter_um", "tcell_speed_um_per_min", "bleb_lifetime_min"):
            if getattr(self, name)[0] <= 0:
                raise ValueError(f"SimulatorParams.{name} must have a lower bound > 0, got {getattr(self, name)!r}")
        if not 0 < self.dying_shrink <= 1:
            raise ValueError(f"SimulatorParams.dying_shrink must be in (0, 1], got {self.dying_shrink!r}")
        if self.tumour_irregularity >= 0.3 or self.tcell_elongation >= 0.3:
            raise ValueError("SimulatorParams.tumour_irregularity and tcell_elongation must be below 0.3 "
                             "(larger harmonics fold the cell outline onto itself)")

    @property
    def frame_interval_min(self) -> float:
        return self.frame_interval_s / 60.0

    @property
    def psf_sigma_um(self) -> float:
        """Gaussian approximation of the in-focus Airy disc."""
        return 0.21 * self.wavelength_um / self.numerical_aperture

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (ranges as two-element lists)."""
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SimulatorParams:
        """Inverse of `to_dict`; unknown keys are an error so that typos are not ignored."""
        known = {field.name: field for field in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"unknown simulator parameter(s) {unknown}; known: {sorted(known)}")
        converted = {
            key: tuple(float(v) for v in value) if isinstance(value, (list, tuple)) else value
            for key, value in values.items()
        }
        return cls(**converted)


def _check_range(name: str, value: tuple[Any, ...]) -> None:
    if (
        len(value) != 2
        or not all(isinstance(v, (int, float)) and math.isfinite(v) and v >= 0 for v in value)
        or value[0] > value[1]
    ):
        raise ValueError(f"SimulatorParams.{name} must be a (low, high) pair with 0 <= low <= high, got {value!r}")
