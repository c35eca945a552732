"""Cell motion and life cycle of the tumour-on-chip simulator (µm, minutes, frames).

Tumour cells drift slowly in clusters; T cells do a persistent random walk, steer
towards living tumour cells they sense, stop in contact for a while, and sometimes kill
the target, which then rounds up, shrinks and blebs before staying as a corpse. The
whole population is stepped with vectorised numpy; the per-frame record is what the
renderer draws and what the ground-truth tracks report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .simulator_params import SimulatorParams

TUMOUR, TCELL = 0, 1
ALIVE, DYING, DEAD = 0, 1, 2
HARMONICS = np.array([2, 3, 4])  # outline harmonics; no 1st, which would shift the centroid
CONTACT_DEPTH = 0.6  # a T cell in contact sits this fraction of its radius outside the target
_TCELL_WOBBLE = 0.04  # 3rd-harmonic irregularity of T cells
_CONTACT_ELONGATION = 0.08  # T cells flatten a little on their target


@dataclass(frozen=True)
class CellFrames:
    """Recorded state per frame and cell: arrays shaped (T, N[, ...]), positions (y, x) in µm.

    µm coordinates have their origin at the centre of the image's top-left pixel.
    """

    kind: np.ndarray  # int8 (N,): TUMOUR or TCELL
    centre_um: np.ndarray  # (T, N, 2)
    radius_um: np.ndarray  # (T, N) mean radius of the outline
    harmonic_amp: np.ndarray  # (T, N, 3) relative amplitudes of HARMONICS
    harmonic_phase: np.ndarray  # (T, N, 3)
    orientation: np.ndarray  # (T, N) rotation of the cell's internal texture (rad)
    thickness_um: np.ndarray  # (T, N)
    refractility: np.ndarray  # (T, N) extra brightness of the body (fraction of background)
    state: np.ndarray  # int8 (T, N): ALIVE, DYING or DEAD
    contact: np.ndarray  # bool (T, N): T cell in contact / tumour cell contacted
    blebs: np.ndarray  # (B, 7): frame, cell, y_um, x_um, radius_um, thickness_um, refractility


@dataclass
class _Tumours:
    pos: np.ndarray
    radius: np.ndarray
    thickness: np.ndarray
    speed: np.ndarray
    velocity: np.ndarray
    amp: np.ndarray
    phase: np.ndarray
    orientation: np.ndarray
    kill_step: np.ndarray
    bleb_angle: np.ndarray
    bleb_birth: np.ndarray
    bleb_life: np.ndarray


@dataclass
class _TCells:
    pos: np.ndarray
    radius: np.ndarray
    thickness: np.ndarray
    speed: np.ndarray
    heading: np.ndarray
    wobble_phase: np.ndarray
    target: np.ndarray
    contact_left: np.ndarray
    contact_dir: np.ndarray
    refractory_left: np.ndarray


class _Population:
    """All cells of the simulated field (the view plus a margin), advanced one frame per step."""

    def __init__(self, height: int, width: int, params: SimulatorParams, rng: np.random.Generator) -> None:
        self.p = params
        self.rng = rng
        self.dt = params.frame_interval_min
        ps = params.pixel_size_um
        self.view_hi = np.array([(height - 1) * ps, (width - 1) * ps])
        self.lo = np.full(2, -params.margin_um)
        self.hi = self.view_hi + params.margin_um
        area_mm2 = float(np.prod(self.hi - self.lo)) * 1e-6
        n_tumour = int(rng.poisson(params.tumour_density_per_mm2 * area_mm2))
        n_tcell = int(rng.poisson(params.tumour_density_per_mm2 * params.tcell_per_tumour * area_mm2))
        if params.tcell_in_view:
            n_tcell = max(n_tcell, 1)
        self.u = self._init_tumours(n_tumour)
        self.t = self._init_tcells(n_tcell)
        self.step_index = 0
        self.dying_steps = max(1, round(params.dying_duration_min / self.dt))
        self._push_out_of_tumours(np.ones(n_tcell, dtype=bool))

    def _init_tumours(self, n: int) -> _Tumours:
        p, rng = self.p, self.rng
        n_clusters = max(1, round(n / p.tumour_cluster_size_mean))
        centres = rng.uniform(self.lo, self.hi, size=(n_clusters, 2))
        member = rng.integers(0, n_clusters, size=n)
        pos = centres[member] + rng.normal(0.0, p.tumour_cluster_radius_um / math.sqrt(2), size=(n, 2))
        radius = rng.uniform(*p.tumour_diameter_um, size=n) / 2
        k_falloff = 1.0 / (HARMONICS - 1)
        amp = p.tumour_irregularity * rng.uniform(0.3, 1.0, size=(n, 3)) * k_falloff
        m = p.blebs_per_cell
        life = rng.uniform(*p.bleb_lifetime_min, size=(n, m))
        tumours = _Tumours(
            pos=pos,
            radius=radius,
            thickness=rng.uniform(*p.tumour_thickness_um, size=n),
            speed=rng.uniform(*p.tumour_speed_um_per_min, size=n),
            velocity=np.zeros((n, 2)),
            amp=amp,
            phase=rng.uniform(0, 2 * np.pi, size=(n, 3)),
            orientation=rng.uniform(0, 2 * np.pi, size=n),
            kill_step=np.full(n, -1, dtype=np.int64),
            bleb_angle=rng.uniform(0, 2 * np.pi, size=(n, m)),
            bleb_birth=rng.uniform(0, 1, size=(n, m)) * np.maximum(p.dying_duration_min - life, 0),
            bleb_life=life,
        )
        for _ in range(30):
            self._separate_tumours(tumours)
        tumours.pos = np.clip(tumours.pos, self.lo, self.hi)
        return tumours

    def _init_tcells(self, n: int) -> _TCells:
        p, rng = self.p, self.rng
        low, high = (math.log(v) for v in p.tcell_speed_um_per_min)
        return _TCells(
            pos=rng.uniform(self.lo, self.hi, size=(n, 2)),
            radius=rng.uniform(*p.tcell_diameter_um, size=n) / 2,
            thickness=rng.uniform(*p.tcell_thickness_um, size=n),
            speed=np.exp(rng.uniform(low, high, size=n)),
            heading=rng.uniform(-np.pi, np.pi, size=n),
            wobble_phase=rng.uniform(0, 2 * np.pi, size=n),
            target=np.full(n, -1, dtype=np.int64),
            contact_left=np.zeros(n, dtype=np.int64),
            contact_dir=np.zeros((n, 2)),
            refractory_left=np.zeros(n, dtype=np.int64),
        )

    # --- state derived from the kill time -----------------------------------------------
    def steps_since_kill(self) -> np.ndarray:
        """Frames since each tumour cell was killed (0 on the frame of the kill); -1 if alive."""
        return np.where(self.u.kill_step >= 0, self.step_index - self.u.kill_step, -1)

    def minutes_since_kill(self) -> np.ndarray:
        return self.steps_since_kill() * self.dt

    def tumour_state(self) -> np.ndarray:
        since = self.steps_since_kill()
        state = np.full(since.shape, ALIVE, dtype=np.int8)
        state[since >= 0] = DYING
        state[since >= self.dying_steps] = DEAD
        return state

    def dying_progress(self) -> np.ndarray:
        return np.clip(self.steps_since_kill() / self.dying_steps, 0.0, 1.0)

    def tumour_radius(self) -> np.ndarray:
        return self.u.radius * (1.0 - (1.0 - self.p.dying_shrink) * self.dying_progress())

    # --- one time step ------------------------------------------------------------------
    def step(self) -> None:
        """Advance to the next frame; `step_index` is the frame being produced."""
        self.step_index += 1
        self._move_tumours()
        self._move_tcells()

    def _move_tumours(self) -> None:
        u, p, dt = self.u, self.p, self.dt
        tau = p.tumour_persistence_min
        noise = self.rng.normal(size=u.velocity.shape)
        sigma = (u.speed * math.sqrt(2 / math.pi))[:, None]  # mean |v| of the OU = speed
        u.velocity += -u.velocity * dt / tau + sigma * math.sqrt(2 * dt / tau) * noise
        u.velocity[self.tumour_state() != ALIVE] = 0.0
        u.pos += u.velocity * dt
        self._separate_tumours(u)
        shape_kick = math.sqrt(2 * dt / p.tumour_shape_change_min)
        u.phase += shape_kick * self.rng.normal(size=u.phase.shape)
        u.orientation += 0.3 * shape_kick * self.rng.normal(size=u.orientation.shape)
        self._reflect(u.pos, u.velocity)

    def _separate_tumours(self, u: _Tumours) -> None:
        if len(u.radius) < 2:
            return
        diff = u.pos[:, None, :] - u.pos[None, :, :]
        dist = np.linalg.norm(diff, axis=-1)
        np.fill_diagonal(dist, np.inf)
        overlap = np.maximum(0.85 * (u.radius[:, None] + u.radius[None, :]) - dist, 0.0)
        push = (0.5 * overlap / np.maximum(dist, 1e-6))[..., None] * diff
        u.pos += push.sum(axis=1)

    def _move_tcells(self) -> None:
        t, p, dt, rng = self.t, self.p, self.dt, self.rng
        n = len(t.radius)
        turn_noise = rng.normal(size=n) * math.sqrt(2 * dt / p.tcell_persistence_min)
        kill_draw = rng.random(n)
        contact_draw = rng.exponential(p.contact_duration_min, size=n)
        t.wobble_phase += rng.normal(size=n) * math.sqrt(2 * dt / p.tcell_persistence_min)
        if n == 0:
            return
        u_radius = self.tumour_radius()
        alive = self.tumour_state() == ALIVE

        in_contact = t.target >= 0
        p_kill = 1.0 - math.exp(-p.kill_rate_per_min * dt)
        killers = in_contact & (kill_draw < p_kill)
        if killers.any():
            victims = t.target[killers]
            fresh = victims[alive[victims]]
            self.u.kill_step[fresh] = self.step_index
        t.contact_left[in_contact] -= 1
        released = in_contact & (t.contact_left <= 0)
        t.heading[released] = np.arctan2(t.contact_dir[released, 0], t.contact_dir[released, 1])
        t.target[released] = -1
        t.refractory_left[released] = max(1, round(p.post_contact_refractory_min / dt))

        free = t.target < 0
        t.heading[free] += turn_noise[free]
        if len(u_radius):
            self._steer(free & (t.refractory_left == 0), u_radius, alive)
        step = t.speed * dt
        t.pos[free] += step[free, None] * np.stack([np.sin(t.heading[free]), np.cos(t.heading[free])], axis=-1)
        self._reflect(t.pos, None, headings=t.heading, which=free)
        if len(u_radius):
            self._engage(free & (t.refractory_left == 0), u_radius, alive, contact_draw)
            self._push_out_of_tumours(t.target < 0)
            attached = t.target >= 0
            gap = u_radius[t.target[attached]] + CONTACT_DEPTH * t.radius[attached]
            t.pos[attached] = self.u.pos[t.target[attached]] + gap[:, None] * t.contact_dir[attached]
        t.refractory_left = np.maximum(t.refractory_left - 1, 0)
        t.heading = _wrap(t.heading)

    def _steer(self, steering: np.ndarray, u_radius: np.ndarray, alive: np.ndarray) -> None:
        t, p = self.t, self.p
        diff = self.u.pos[None, :, :] - t.pos[:, None, :]
        edge = np.linalg.norm(diff, axis=-1) - u_radius[None, :] - t.radius[:, None]
        edge[:, ~alive] = np.inf
        nearest = np.argmin(edge, axis=1)
        rows = np.arange(len(t.radius))
        sensed = steering & (edge[rows, nearest] < p.sensing_radius_um)
        towards = np.arctan2(diff[rows, nearest, 0], diff[rows, nearest, 1])
        gain = min(1.0, p.attraction_turn_per_min * self.dt)
        t.heading[sensed] += gain * _wrap(towards[sensed] - t.heading[sensed])

    def _engage(self, candidates: np.ndarray, u_radius: np.ndarray, alive: np.ndarray, duration: np.ndarray) -> None:
        t = self.t
        diff = t.pos[:, None, :] - self.u.pos[None, :, :]
        dist = np.linalg.norm(diff, axis=-1)
        reach = u_radius[None, :] + CONTACT_DEPTH * t.radius[:, None]
        touching = (dist <= reach) & alive[None, :]
        closeness = np.where(touching, dist - reach, np.inf)
        nearest = np.argmin(closeness, axis=1)
        rows = np.arange(len(t.radius))
        engaging = candidates & np.isfinite(closeness[rows, nearest])
        if not engaging.any():
            return
        target = nearest[engaging]
        direction = diff[rows[engaging], target]
        t.target[engaging] = target
        t.contact_dir[engaging] = direction / np.maximum(np.linalg.norm(direction, axis=-1, keepdims=True), 1e-6)
        t.contact_left[engaging] = np.maximum(1, np.round(duration[engaging] / self.dt)).astype(np.int64)

    def _push_out_of_tumours(self, which: np.ndarray) -> None:
        """Move T cells out of tumour cells they overlap and turn them along the obstacle.

        Turning (instead of only pushing back) lets a blocked T cell slide around the
        tumour cell at its own speed, as crawling cells do, rather than stall against it.
        """
        t = self.t
        u_radius = self.tumour_radius()
        if not len(u_radius) or not which.any():
            return
        diff = t.pos[:, None, :] - self.u.pos[None, :, :]
        dist = np.linalg.norm(diff, axis=-1)
        reach = u_radius[None, :] + CONTACT_DEPTH * t.radius[:, None]
        depth = np.where(which[:, None], np.maximum(reach - dist, 0.0), 0.0)
        t.pos += ((depth / np.maximum(dist, 1e-6))[..., None] * diff).sum(axis=1)
        blocked = depth.max(axis=1) > 0
        if not blocked.any():
            return
        obstacle = np.argmax(depth, axis=1)[blocked]
        outward = np.arctan2(diff[blocked, obstacle, 0], diff[blocked, obstacle, 1])
        tangent = outward + np.pi / 2
        heading = t.heading[blocked]
        t.heading[blocked] = np.where(np.cos(heading - tangent) >= 0, tangent, tangent + np.pi)

    def _reflect(
        self,
        pos: np.ndarray,
        velocity: np.ndarray | None,
        headings: np.ndarray | None = None,
        which: np.ndarray | None = None,
    ) -> None:
        for axis in (0, 1):
            below, above = pos[:, axis] < self.lo[axis], pos[:, axis] > self.hi[axis]
            pos[below, axis] = 2 * self.lo[axis] - pos[below, axis]
            pos[above, axis] = 2 * self.hi[axis] - pos[above, axis]
            crossed = below | above
            if which is not None:
                crossed &= which
            if velocity is not None:
                velocity[crossed, axis] *= -1
            if headings is not None:
                headings[crossed] = -headings[crossed] if axis == 0 else np.pi - headings[crossed]
        np.clip(pos, self.lo, self.hi, out=pos)

    def put_tcell_in_view(self) -> None:
        """Move the free T cell nearest the view centre into the central half of the view."""
        t = self.t
        quarter = self.view_hi / 4
        inside = np.all((t.pos >= quarter) & (t.pos <= 3 * quarter), axis=1)
        if inside.any():
            return
        free = np.flatnonzero(t.target < 0)
        candidates = free if len(free) else np.arange(len(t.radius))
        centre = self.view_hi / 2
        chosen = candidates[np.argmin(np.linalg.norm(t.pos[candidates] - centre, axis=1))]
        t.target[chosen] = -1
        t.contact_left[chosen] = 0
        t.pos[chosen] = self.rng.uniform(quarter, 3 * quarter)
        self._push_out_of_tumours(np.arange(len(t.radius)) == chosen)


def _wrap(angle: np.ndarray) -> np.ndarray:
    return (angle + np.pi) % (2 * np.pi) - np.pi


class _Recorder:
    """Snapshots of the population per recorded frame, in the shape the renderer draws."""

    def __init__(self) -> None:
        self.rows: dict[str, list[np.ndarray]] = {}
        self.blebs: list[np.ndarray] = []

    def add(self, frame: int, pop: _Population) -> None:
        u, t, p = pop.u, pop.t, pop.p
        progress = pop.dying_progress()
        state = pop.tumour_state()
        u_radius = pop.tumour_radius()
        moving = t.target < 0
        t_amp = np.stack(
            [np.where(moving, p.tcell_elongation, _CONTACT_ELONGATION), np.full(len(moving), _TCELL_WOBBLE),
             np.zeros(len(moving))], axis=-1)
        contact_angle = np.arctan2(t.contact_dir[:, 0], t.contact_dir[:, 1]) + np.pi / 2
        t_phase = np.stack(
            [2 * np.where(moving, t.heading, contact_angle), t.wobble_phase, np.zeros(len(moving))], axis=-1)
        contacted = np.zeros(len(u_radius), dtype=bool)
        contacted[t.target[t.target >= 0]] = True
        columns = {
            "centre_um": np.concatenate([u.pos, t.pos]),
            "radius_um": np.concatenate([u_radius, t.radius]),
            "harmonic_amp": np.concatenate([u.amp * (1 - progress)[:, None], t_amp]),
            "harmonic_phase": np.concatenate([u.phase, t_phase]),
            "orientation": np.concatenate([u.orientation, t.heading]),
            "thickness_um": np.concatenate([u.thickness * (1 + 0.5 * progress), t.thickness]),
            "refractility": np.concatenate(
                [p.dying_refractility * progress, np.full(len(moving), p.tcell_refractility)]
            ),
            "state": np.concatenate([state, np.full(len(moving), ALIVE, dtype=np.int8)]),
            "contact": np.concatenate([contacted, ~moving]),
        }
        for key, value in columns.items():
            self.rows.setdefault(key, []).append(value.copy())
        self.blebs.append(self._blebs(frame, pop, progress, state, u_radius))

    @staticmethod
    def _blebs(
        frame: int, pop: _Population, progress: np.ndarray, state: np.ndarray, radius: np.ndarray
    ) -> np.ndarray:
        """Blebs of dying cells: each grows and retracts once (half a sine) on the border."""
        u, p = pop.u, pop.p
        age = pop.minutes_since_kill()[:, None] - u.bleb_birth
        phase = age / u.bleb_life
        active = (state == DYING)[:, None] & (phase > 0) & (phase < 1)
        cell, which = np.nonzero(active)
        size = p.bleb_radius_fraction * radius[cell] * np.sin(np.pi * phase[cell, which])
        angle = u.bleb_angle[cell, which]
        centre = u.pos[cell] + (0.95 * radius[cell])[:, None] * np.stack([np.sin(angle), np.cos(angle)], axis=-1)
        return np.column_stack([
            np.full(len(cell), frame), cell, centre, size, 1.6 * size,
            p.dying_refractility * np.maximum(progress[cell], 0.5),
        ])

    def result(self, kind: np.ndarray) -> CellFrames:
        stacked = {key: np.stack(values) for key, values in self.rows.items()}
        blebs = np.concatenate(self.blebs) if self.blebs else np.zeros((0, 7))
        return CellFrames(kind=kind, blebs=blebs, **stacked)


def simulate_cells(
    frames: int, height: int, width: int, params: SimulatorParams, rng: np.random.Generator
) -> CellFrames:
    """Run burn-in then `frames` recorded steps; one step is one frame interval."""
    pop = _Population(height, width, params, rng)
    for _ in range(round(params.burn_in_min / params.frame_interval_min)):
        pop.step()
    if params.tcell_in_view:
        pop.put_tcell_in_view()
    recorder = _Recorder()
    for frame in range(frames):
        if frame:
            pop.step()
        recorder.add(frame, pop)
    kind = np.concatenate([np.full(len(pop.u.radius), TUMOUR), np.full(len(pop.t.radius), TCELL)]).astype(np.int8)
    return recorder.result(kind)
