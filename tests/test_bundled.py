"""The bundled Moving MNIST model: it loads, generates, stays continuous, and its run can be resumed."""

from pathlib import Path

import numpy as np
import pytest

from savgan.model import registry
from savgan.model.checkpoint import unpack_run
from savgan.model.continuity import seam_continuity
from savgan.model.generate import generate_videos

ROOT = Path(__file__).resolve().parents[1]
PACKED = ROOT / "checkpoints" / "mmnist-cpu.safetensors"


@pytest.fixture(scope="module")
def bundled():
    record = registry.resolve("mmnist")
    assert record.source == "bundled"
    return record, registry.load_generator(record)


def test_bundled_model_generates_dark_background_with_bright_strokes(bundled):
    record, generator = bundled
    videos = generate_videos(generator, seed=0, frames=record.config.frames, count=4)
    assert videos.shape == (4, 16, 32, 32)
    assert np.median(videos) < -0.8  # Moving MNIST is mostly black background
    assert (videos > 0.5).mean(axis=(1, 2, 3)).min() > 0.002  # and every video draws something
    assert not np.allclose(videos[0], videos[1], atol=0.05)  # different latents, different videos


def test_long_videos_from_the_trained_model_have_no_seams(bundled):
    record, generator = bundled
    videos = generate_videos(generator, seed=1, frames=160, count=4)
    report = seam_continuity(videos, stretch=record.config.frames)
    assert report.seams == 9
    assert report.ratio < 1.5, report


def test_the_committed_checkpoint_resumes_the_bundled_run(tmp_path, bundled):
    record, _ = bundled
    unpack_run(PACKED, tmp_path / "run")
    resumed = registry.resolve(str(tmp_path / "run"))
    assert resumed.config == record.config
    assert resumed.manifest["step"] >= record.manifest["step"]
    assert resumed.manifest["data"] == record.manifest["data"]
