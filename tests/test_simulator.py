"""Tumour-on-chip simulator: ground truth consistency, physics in range, phase-contrast look."""

from __future__ import annotations

import csv
import dataclasses
import json

import numpy as np
import pytest
import tifffile
import torch
from scipy import ndimage
from skimage.measure import regionprops

from savgan.model.data.simulator import (
    SimulatedVideo,
    SimulatorDataset,
    SimulatorParams,
    Track,
    save_simulation,
    simulate,
)

PARAMS = SimulatorParams()


@pytest.fixture(scope="module")
def sim() -> SimulatedVideo:
    # not square, so that a swapped axis shows up
    return simulate(frames=32, height=96, width=128, seed=4)


def _well_seen(sim: SimulatedVideo, track: Track, t: int) -> np.ndarray | None:
    """The cell's mask at frame t if it is whole: off the border and not much occluded."""
    mask = sim.masks[t] == track.track_id
    if not mask.any():
        return None
    rows, cols = np.nonzero(mask)
    height, width = mask.shape
    if rows.min() == 0 or cols.min() == 0 or rows.max() == height - 1 or cols.max() == width - 1:
        return None
    if mask.sum() < 0.8 * np.pi * track.radius_px[t] ** 2:
        return None
    return mask


def _migration_speeds_um_per_min(track: Track, params: SimulatorParams) -> np.ndarray:
    """Frame-to-frame speeds of a cell over steps where it is not in contact."""
    steps = np.linalg.norm(np.diff(track.positions[:, 1:], axis=0), axis=1)
    free = ~(track.contact[1:] | track.contact[:-1])
    return steps[free] * params.pixel_size_um / params.frame_interval_min


def test_shapes_and_types(sim: SimulatedVideo) -> None:
    assert sim.video.shape == (32, 96, 128) and sim.video.dtype == np.uint16
    assert sim.masks.shape == (32, 96, 128) and sim.masks.dtype == np.int32
    kinds = {track.kind for track in sim.tracks}
    assert kinds == {"tcell", "tumour"}
    ids = [track.track_id for track in sim.tracks]
    assert ids == list(range(1, len(ids) + 1))
    for track in sim.tracks:
        assert track.positions.shape == (32, 3)
        np.testing.assert_array_equal(track.positions[:, 0], np.arange(32))
        assert set(track.state) <= {"alive", "dying", "dead"}


def test_same_seed_same_video_and_other_seed_differs(sim: SimulatedVideo) -> None:
    again = simulate(frames=32, height=96, width=128, seed=4)
    other = simulate(frames=32, height=96, width=128, seed=5)
    assert np.array_equal(sim.video, again.video)
    assert np.array_equal(sim.masks, again.masks)
    assert all(np.array_equal(a.positions, b.positions) for a, b in zip(sim.tracks, again.tracks))
    assert not np.array_equal(sim.video, other.video)


def test_mask_labels_are_the_visible_tracks(sim: SimulatedVideo) -> None:
    for t in range(0, 32, 5):
        in_mask = set(np.unique(sim.masks[t])) - {0}
        visible = {track.track_id for track in sim.tracks if track.visible[t]}
        assert in_mask == visible


def test_mask_centroids_follow_tracks(sim: SimulatedVideo) -> None:
    checked = 0
    for track in sim.tracks:
        for t in range(32):
            mask = _well_seen(sim, track, t)
            if mask is None:
                continue
            rows, cols = np.nonzero(mask)
            error = np.hypot(rows.mean() - track.positions[t, 1], cols.mean() - track.positions[t, 2])
            assert error < 0.3 * track.radius_px[t] + 0.5, (track.track_id, t, error)
            checked += 1
    assert checked > 100


def test_tcells_move_faster_than_tumour_cells_within_physical_range() -> None:
    run = simulate(frames=48, height=128, width=128, seed=2)
    tcell_low, tcell_high = PARAMS.tcell_speed_um_per_min
    tcell_medians, tumour_means = [], []
    for track in run.tracks:
        speeds = _migration_speeds_um_per_min(track, PARAMS)
        if track.kind == "tcell" and len(speeds) >= 5:
            tcell_medians.append(np.median(speeds))
        if track.kind == "tumour":  # contact does not stop a tumour cell: every step counts
            steps = np.linalg.norm(np.diff(track.positions[:, 1:], axis=0), axis=1)
            tumour_means.append(steps.mean() * PARAMS.pixel_size_um / PARAMS.frame_interval_min)
    assert len(tcell_medians) >= 10 and len(tumour_means) >= 5
    # each T cell crawls at its own speed inside the documented range (10 % for collisions)
    assert min(tcell_medians) >= 0.9 * tcell_low
    assert max(tcell_medians) <= 1.1 * tcell_high
    assert np.mean(tumour_means) < PARAMS.tumour_speed_um_per_min[1]
    assert np.mean(tcell_medians) > 10 * np.mean(tumour_means)


def test_phase_contrast_look_dark_body_bright_halo(sim: SimulatedVideo) -> None:
    body = {"tcell": [], "tumour": []}
    ring = {"tcell": [], "tumour": []}
    background = []
    for t in (0, 15, 31):
        frame = sim.video[t].astype(np.float64)
        cells = sim.masks[t] > 0
        far = ndimage.distance_transform_edt(~cells) > 8
        background.append(frame[far])
        for track in sim.tracks:
            mask = _well_seen(sim, track, t)
            if mask is None or track.state[t] != "alive":
                continue
            outside = ndimage.binary_dilation(mask, iterations=3) & ~ndimage.binary_dilation(mask) & ~cells
            body[track.kind].append(frame[mask].mean())
            ring[track.kind].append(frame[outside].mean())
    level = np.median(np.concatenate(background))
    assert len(body["tumour"]) >= 5 and len(body["tcell"]) >= 5
    assert np.mean(body["tumour"]) < 0.97 * level  # phase-dark body
    assert np.mean(ring["tumour"]) > 1.05 * level  # bright halo just outside
    assert np.mean(ring["tcell"]) > 1.05 * level


def test_shot_and_read_noise_have_the_camera_scale() -> None:
    def frame_to_frame_std(params: SimulatorParams) -> float:
        run = simulate(frames=6, height=64, width=64, seed=9, params=params)
        empty = ndimage.distance_transform_edt(run.masks.max(axis=0) == 0) > 8
        differences = np.diff(run.video.astype(np.float64), axis=0)[:, empty]
        return float(differences.std() / np.sqrt(2))

    no_cells = dataclasses.replace(
        PARAMS, tumour_density_per_mm2=0.0, tcell_in_view=False, debris_density_per_mm2=0.0
    )
    for electrons in (2000.0, 18000.0):
        params = dataclasses.replace(no_cells, background_electrons=electrons)
        expected = params.camera_gain_adu_per_electron * np.sqrt(electrons + params.read_noise_electrons**2)
        assert frame_to_frame_std(params) == pytest.approx(expected, rel=0.1)


def _killing_run() -> tuple[SimulatedVideo, Track, int, int]:
    """A run where a tumour cell is killed in view: (run, track, an alive frame, a dead frame).

    Both frames are chosen without a T cell attached, so the mask is the tumour cell's own.
    """
    params = dataclasses.replace(PARAMS, kill_rate_per_min=20.0, contact_duration_min=0.5, burn_in_min=1.0)
    for seed in range(20):
        run = simulate(frames=40, height=64, width=64, seed=seed, params=params)
        for track in run.tracks:
            if track.kind != "tumour" or track.state[0] != "alive" or track.state[-1] != "dead":
                continue
            alive = [t for t in np.flatnonzero(track.state == "alive") if not track.contact[t]]
            dead = [t for t in np.flatnonzero(track.state == "dead") if not track.contact[t]]
            if alive and dead and _well_seen(run, track, alive[-1]) is not None:
                if _well_seen(run, track, dead[-1]) is not None:
                    return run, track, int(alive[-1]), int(dead[-1])
    raise AssertionError("no clean killing found in 20 seeds with a high kill rate")


def test_killed_tumour_cell_rounds_up_shrinks_and_brightens() -> None:
    run, track, before, dead = _killing_run()
    states = list(track.state)
    first_dying = states.index("dying")
    assert set(states[:first_dying]) == {"alive"}
    last_dying = len(states) - 1 - states[::-1].index("dying")
    assert set(states[first_dying:last_dying + 1]) == {"dying"}
    assert set(states[last_dying + 1:]) == {"dead"}
    assert last_dying - first_dying + 1 == round(PARAMS.dying_duration_min / PARAMS.frame_interval_min)

    alive_region = regionprops((run.masks[before] == track.track_id).astype(np.uint8))[0]
    dead_region = regionprops((run.masks[dead] == track.track_id).astype(np.uint8))[0]
    assert dead_region.area < 0.75 * alive_region.area

    def roundness(region) -> float:
        return region.axis_minor_length / region.axis_major_length

    assert roundness(dead_region) > roundness(alive_region)
    assert roundness(dead_region) > 0.85
    brightness_before = run.video[before][run.masks[before] == track.track_id].mean()
    brightness_dead = run.video[dead][run.masks[dead] == track.track_id].mean()
    assert brightness_dead > brightness_before


def test_dataset_items_are_scaled_and_deterministic() -> None:
    dataset = SimulatorDataset(num_videos=3, frames=8, height=32, width=48, seed=1)
    item = dataset[1]
    assert len(dataset) == 3
    assert item.shape == (1, 8, 32, 48) and item.dtype == torch.float32
    assert item.min().item() == pytest.approx(-1.0) and item.max().item() == pytest.approx(1.0)
    assert torch.equal(item, SimulatorDataset(num_videos=3, frames=8, height=32, width=48, seed=1)[1])
    assert not torch.equal(item, dataset[2])
    assert not torch.equal(item, SimulatorDataset(num_videos=3, frames=8, height=32, width=48, seed=2)[1])
    with pytest.raises(IndexError):
        dataset[3]


def test_save_simulation_writes_readable_ground_truth(sim: SimulatedVideo, tmp_path) -> None:
    files = save_simulation(sim, tmp_path / "out", "toc")
    masks = tifffile.imread(files.masks)
    assert masks.dtype == np.uint16
    np.testing.assert_array_equal(masks, sim.masks)

    with files.tracks.open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["track_id", "kind", "t", "y_px", "x_px", "state", "contact"]
    assert len(rows) == sum(int(track.visible.sum()) for track in sim.tracks)
    first = sim.tracks[0]
    t0 = int(np.argmax(first.visible))
    row = next(r for r in rows if int(r["track_id"]) == first.track_id and int(r["t"]) == t0)
    assert float(row["y_px"]) == pytest.approx(first.positions[t0, 1], abs=1e-3)
    assert row["kind"] == first.kind and row["state"] == first.state[t0]

    saved = json.loads(files.params.read_text())
    assert saved["seed"] == 4 and (saved["frames"], saved["height"], saved["width"]) == (32, 96, 128)
    assert SimulatorParams.from_dict(saved["params"]) == sim.params


def test_invalid_parameters_are_rejected() -> None:
    with pytest.raises(ValueError, match="pixel_size_um"):
        SimulatorParams(pixel_size_um=0.0)
    with pytest.raises(ValueError, match="tcell_speed_um_per_min"):
        SimulatorParams(tcell_speed_um_per_min=(15.0, 2.0))
    with pytest.raises(ValueError, match="unknown simulator parameter"):
        SimulatorParams.from_dict({"pixel_size": 1.3})
    with pytest.raises(ValueError, match="frames"):
        simulate(frames=0, height=64, width=64, seed=0)
