"""The bundled models: they load, generate what their data looks like, stay continuous, and fine-tune with their critics."""

from pathlib import Path

import numpy as np
import pytest
import torch

from savgan.model import registry
from savgan.model.config import TrainConfig
from savgan.model.layout import CRITIC_WEIGHTS
from savgan.model.train import Trainer
from savgan.model.continuity import seam_continuity
from savgan.model.generate import generate_videos
from savgan.model.metrics.evaluate import real_sets

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ("mmnist", "toc-sim")


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
    assert record.manifest["physical"] == {
        "pixel_size_um": 1.3,
        "frame_interval_s": 10.0,
        "intensity_low": 13229.0,  # the simulator's median per-clip count range (SimulatorDataset.intensity_range)
        "intensity_high": 21759.5,
    }


def test_long_videos_from_the_trained_model_have_no_seams(mmnist):
    record, generator = mmnist
    videos = generate_videos(generator, seed=1, frames=160, count=4)
    report = seam_continuity(videos, stretch=record.config.frames)
    assert report.seams == 9
    assert report.ratio < 1.5, report


@pytest.mark.parametrize("name", BUNDLED)
def test_a_bundled_model_fine_tunes_with_its_trained_critics(tmp_path, name):
    """--base loads the folder's bf16 critics: the video critic tells real from generated from step 0."""
    record = registry.resolve(name)
    assert (record.path / CRITIC_WEIGHTS).stat().st_size < 5_000_000
    bank = np.zeros((2, 1, record.config.frames + record.config.frames_per_latent, 32, 32), dtype=np.float32)
    trainer = Trainer(record.config, TrainConfig(steps=0), torch.from_numpy(bank), tmp_path / "ft", "zeros")
    untrained = {k: v.clone() for k, v in trainer.video_critic.state_dict().items()}
    trainer.load_weights(record.path, name)
    loaded = trainer.video_critic.state_dict()
    assert any(not torch.equal(untrained[k], loaded[k]) for k in loaded)
    generated = torch.from_numpy(generate_videos(registry.load_generator(record), 0, record.config.frames, 8))[:, None]
    source = "mmnist" if name == "mmnist" else "toc-sim"
    real = torch.from_numpy(real_sets(source, 8, record.config.frames, 32, 0, False).reference)[:, None]
    with torch.no_grad():
        assert trainer.video_critic(real).mean() > trainer.video_critic(generated).mean()
