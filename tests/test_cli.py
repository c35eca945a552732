"""The ``savgan`` command end to end: generate -> files on disk -> read back with tifffile."""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import tifffile

from savgan.cli.main import main
from savgan.model.data.paths import data_root
from savgan.model.video_io.tiff import read_tiff_metadata

needs_mnist = pytest.mark.skipif(
    not (data_root() / "mnist" / "mnist_5k.csv.gz").exists(), reason="MNIST digits not found in the shared data folder"
)


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_generate_writes_ome_tiff_that_tifffile_reads_back(tmp_path):
    out = tmp_path / "videos"
    args = ["generate", "--model", "init:cpu", "--seed", "4", "--frames", "20", "--count", "2"]
    assert main([*args, "--format", "ome-tiff,mp4", "--out", str(out), "--pixel-size", "0.65", "--frame-interval", "10"]) == 0
    tif = out / "init-cpu_seed4_000.ome.tif"
    with tifffile.TiffFile(tif) as f:
        assert f.series[0].axes == "TYX"
        assert f.series[0].shape == (20, 32, 32)
    meta = read_tiff_metadata(tif)
    assert meta.pixel_size_um == pytest.approx(0.65) and meta.frame_interval_s == pytest.approx(10)
    assert (out / "init-cpu_seed4_001.mp4").stat().st_size > 0


def test_same_seed_gives_the_same_bytes(tmp_path):
    for run in ("a", "b", "c"):
        seed = "9" if run != "c" else "10"
        argv = ["generate", "--model", "init:cpu", "--seed", seed, "--format", "ome-tiff,imagej-tiff,png"]
        assert main([*argv, "--out", str(tmp_path / run)]) == 0
    for name in ("init-cpu_seed9_000.ome.tif", "init-cpu_seed9_000.tif", "init-cpu_seed9_000.png"):
        assert digest(tmp_path / "a" / name) == digest(tmp_path / "b" / name)
    assert digest(tmp_path / "a" / "init-cpu_seed9_000.ome.tif") != digest(tmp_path / "c" / "init-cpu_seed10_000.ome.tif")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["generate", "--model", "no-such-model"], "no model 'no-such-model'"),
        (["generate", "--model", "init:cpu", "--frames", "5000"], "frames must be between 1 and 1024"),
        (["generate", "--model", "init:cpu", "--format", "avi"], "unknown video format 'avi'"),
        (["generate", "--model", "init:huge"], "unknown preset 'huge'"),
        (["train", "--data", "nothing.tif", "--out", "x", "--steps", "1"], "not found"),
    ],
)
def test_bad_input_exits_2_with_a_message(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert message in capsys.readouterr().err


@needs_mnist
def test_train_then_install_then_generate_from_the_installed_model(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SAVGAN_MODELS_DIR", str(tmp_path / "models"))
    run = tmp_path / "run"
    common = ["train", "--data", "mmnist", "--clips", "4", "--batch-size", "2", "--n-critic", "1", "--out", str(run)]
    assert main([*common, "--steps", "2", "--install-as", "digits"]) == 0
    assert json.loads((run / "manifest.json").read_text())["step"] == 2
    assert main([*common, "--steps", "3"]) == 2
    assert main([*common, "--steps", "3", "--resume", "--lr-g", "1e-3"]) == 2
    assert "--lr-g 0.001 (the run's: 0.0001): these cannot change when resuming" in capsys.readouterr().err
    assert main([*common, "--steps", "3", "--resume"]) == 0
    assert json.loads((run / "manifest.json").read_text())["step"] == 3
    assert main(["generate", "--model", "digits:1", "--out", str(tmp_path / "gen")]) == 0
    assert (tmp_path / "gen" / "digits_seed0_000.ome.tif").exists()


def test_console_script_runs_and_lists_models(tmp_path):
    exe = shutil.which("savgan") or pytest.skip("savgan console script not on PATH")
    env = {"SAVGAN_MODELS_DIR": str(tmp_path), "PATH": "", "HOME": str(tmp_path)}
    done = subprocess.run([exe, "models"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout[done.stdout.index("[") :]) is not None
    helped = subprocess.run([sys.executable, "-m", "savgan.cli.main", "--help"], capture_output=True, text=True)
    assert all(cmd in helped.stdout for cmd in ("generate", "train", "simulate", "models"))


def test_simulate_writes_video_and_ground_truth(tmp_path):
    out = tmp_path / "sim"
    assert main(["simulate", "--frames", "6", "--size", "48", "--count", "2", "--format", "ome-tiff,mp4", "--out", str(out)]) == 0
    video = tifffile.imread(out / "toc_seed1.ome.tif")
    masks = tifffile.imread(out / "toc_seed1_masks.tif")
    assert video.shape == masks.shape == (6, 48, 48) and video.dtype.name == "uint16"
    assert read_tiff_metadata(out / "toc_seed0.ome.tif").pixel_size_um == pytest.approx(1.3)
    header = (out / "toc_seed0_tracks.csv").read_text().splitlines()[0]
    assert header.startswith("track_id,kind,t,y_px,x_px")
    assert not (tifffile.imread(out / "toc_seed0.ome.tif") == video).all()


@needs_mnist
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_training_after_the_step_with_a_checkpoint(tmp_path, signum):
    run = tmp_path / "run"
    command = [sys.executable, "-m", "savgan.cli.main", "train", "--data", "mmnist", "--clips", "4",
               "--steps", "100000", "--checkpoint-every", "100000", "--out", str(run)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    for line in process.stderr:
        if line.startswith("savgan train: savgan TrainConfig"):
            break
    time.sleep(2.0)
    process.send_signal(signum)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    summary = json.loads(out[out.index("{") :])
    assert summary["stopped_early"] and 1 <= summary["step"] < 100000
    assert json.loads((run / "manifest.json").read_text())["step"] == summary["step"]
    assert (run / "samples" / f"step_{summary['step']:07d}.png").exists()
    assert "stopping after this step" in err
