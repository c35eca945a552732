"""The bundled models: they load, generate what their data looks like, stay continuous, and their runs resume."""

from pathlib import Path

import numpy as np
import pytest

from savgan.model import registry
from savgan.model.checkpoint import unpack_run
from savgan.model.continuity import seam_continuity
from savgan.model.generate import generate_videos

ROOT = Path(__file__).resolve().parents[1]
# Each bundled model and the committed checkpoint of the run it is a snapshot of.
RUNS = {"mmnist": "mmnist-ft20", "toc-sim": "toc-sim-ft10"}


def load(name: str):
    record = registry.resolve(name)
    assert record.source == "bundled"
    return record, registry.load_generator(record)


@pytest.fixture(scope="module")
def mmnist():
    return load("mmnist")


@pytest.fixture(scope="module")
def toc_sim():
    return load("toc-sim")


def test_bundled_mmnist_generates_dark_background_with_bright_strokes(mmnist):
    record, generator = mmnist
    videos = generate_videos(generator, seed=0, frames=record.config.frames, count=4)
    assert videos.shape == (4, 16, 32, 32)
    assert np.median(videos) < -0.8  # Moving MNIST is mostly black background
    assert (videos > 0.5).mean(axis=(1, 2, 3)).min() > 0.002  # and every video draws something
    assert not np.allclose(videos[0], videos[1], atol=0.05)  # different latents, different videos


def test_bundled_toc_sim_generates_grey_phase_contrast_frames_with_the_simulator_calibration(toc_sim):
    record, generator = toc_sim
    videos = generate_videos(generator, seed=0, frames=record.config.frames, count=4)
    assert videos.shape == (4, 16, 32, 32)
    assert -0.6 < np.median(videos) < 0.3  # a grey background, unlike Moving MNIST's black
    assert videos.std() > 0.1  # with structure on it
    assert not np.allclose(videos[0], videos[1], atol=0.05)
    assert record.manifest["physical"] == {"pixel_size_um": 1.3, "frame_interval_s": 10.0}


def test_long_videos_from_the_trained_model_have_no_seams(mmnist):
    record, generator = mmnist
    videos = generate_videos(generator, seed=1, frames=160, count=4)
    report = seam_continuity(videos, stretch=record.config.frames)
    assert report.seams == 9
    assert report.ratio < 1.5, report


@pytest.mark.parametrize("name", sorted(RUNS))
def test_the_committed_checkpoint_resumes_the_bundled_run(tmp_path, name):
    record = registry.resolve(name)
    unpack_run(ROOT / "checkpoints" / f"{RUNS[name]}.safetensors", tmp_path / "run")
    resumed = registry.resolve(str(tmp_path / "run"))
    assert resumed.config == record.config
    assert resumed.manifest["step"] >= record.manifest["step"]
    assert resumed.manifest["data"] == record.manifest["data"]
