"""Every bad argument is one line on stderr and exit code 2, before torch or any model loads."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from savgan.cli.main import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_model_loads(monkeypatch):
    from savgan.model import registry

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the arguments were checked")

    monkeypatch.setattr(registry, "load_generator", refuse)
    monkeypatch.setattr(registry, "resolve", refuse)


def one_error_line(capsys, *needles: str) -> None:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("savgan ") and ": error: " in err[0]
    for needle in needles:
        assert needle in err[0], err[0]


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--frames", "0"], "frames must be between 1 and 1024, got 0"),
        (["--frames", "-3"], "got -3"),
        (["--frames", "5000"], "got 5000"),
        (["--count", "0"], "--count must be at least 1"),
        (["--format", "avi"], "unknown video format 'avi'"),
        (["--pixel-size", "0"], "--pixel-size must be a positive number"),
        (["--out", "/proc/nope"], "--out /proc/nope is not writable"),
    ],
)
def test_bad_generate_arguments_fail_fast(tmp_path, capsys, no_model_loads, extra, needle):
    args = ["generate", "--out", str(tmp_path / "out"), *extra]
    assert main(args) == 2
    one_error_line(capsys, needle)


def test_an_out_under_a_file_is_refused(tmp_path, capsys, no_model_loads):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["generate", "--out", str(blocker / "videos")]) == 2
    one_error_line(capsys, "is a file, not a folder")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_out_is_refused(tmp_path, capsys, no_model_loads):
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o500)
    assert main(["generate", "--out", str(folder)]) == 2
    one_error_line(capsys, "is not writable")


def test_train_and_evaluate_arguments_fail_fast(tmp_path, capsys, no_model_loads):
    assert main(["train", "--data", "mmnist", "--out", str(tmp_path / "r"), "--identity-weight", "2"]) == 2
    one_error_line(capsys, "--identity-weight must lie in [0, 1]")
    assert main(["evaluate", "--count", "1"]) == 2
    one_error_line(capsys, "--count must be at least 2")


def test_the_check_runs_before_torch_is_imported(tmp_path):
    """--frames 5000 used to be refused only after about 10 s of loading torch and the model."""
    code = (
        "import sys; from savgan.cli.main import main; rc = main(['generate', '--frames', '5000', '--out', sys.argv[1]]);"
        "assert 'torch' not in sys.modules, 'torch was imported'; sys.exit(rc)"
    )
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().count("\n") == 0 and "got 5000" in done.stderr
