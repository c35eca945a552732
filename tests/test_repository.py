"""The repository stays small to clone: no committed file over 10 MB, no training state in the tree.

Every commit of a checkpoint stays in the history every user clones (the packed runs once
made the clone 488 MB); runs are carried as model folders (`savgan export`) and recovered
from history when needed (docs/TRAINING.md).
"""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIMIT_BYTES = 10 * 1024 * 1024


def tracked_files() -> list[Path]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True).stdout
    return [ROOT / name for name in listed.decode().split("\0") if name]


def test_no_tracked_file_exceeds_10_mb():
    too_big = [f"{p.relative_to(ROOT)} ({p.stat().st_size / 2**20:.1f} MiB)"
               for p in tracked_files() if p.is_file() and p.stat().st_size > LIMIT_BYTES]
    assert not too_big, f"files over 10 MB are tracked: {too_big}; keep weights out of git (docs/TRAINING.md)"


def test_no_training_state_is_tracked():
    state = [str(p.relative_to(ROOT)) for p in tracked_files()
             if p.name == "training_state.safetensors" or p.relative_to(ROOT).parts[0] == "checkpoints"]
    assert not state, f"training state is tracked: {state}; carry runs as model folders (savgan export)"
