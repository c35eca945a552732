"""README.md's shell blocks run as written, so that what a reader pastes keeps working.

Why: the service snippet once queried the server before it listened and downloaded the video
while the job still ran; nothing ran it. Here every ```bash block of README.md runs, unchanged,
in its own temporary folder (with a ``dev`` link to the repository's ./dev, so ``./dev ...``
works there), with this venv's bin first on PATH (as after ``. .venv/bin/activate``) and PORT set
to a free port (the service snippet reads ``PORT=${PORT:-8000}``). A block is skipped only when
the line above it is ``<!-- not run by tests: REASON -->`` (installs, or the whole suite); any
other bash block is run, so a new one cannot slip past. A block that asks for videos (``--frames
F [--count K]`` or ``"frames": F``) must leave that many OME-TIFFs of F frames behind.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import tifffile

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SKIP_MARKER = re.compile(r"^<!--\s*not run by tests:\s*(?P<reason>\S.*?)\s*-->$")
FENCE = re.compile(r"^```(?P<language>\S*)\s*$")
# Fenced shell under another name would escape this test: shell blocks are written as bash.
OTHER_SHELL_NAMES = {"sh", "shell", "console", "zsh", "shell-session"}
BLOCK_TIMEOUT_S = 240
KILL_GRACE_S = 10


@dataclass(frozen=True)
class Block:
    line: int  # 1-based line of the opening fence
    language: str
    text: str
    skip_reason: str | None


def readme_blocks() -> list[Block]:
    """Every fenced block of README.md with the skip marker, if any, on the line above it."""
    lines = README.read_text(encoding="utf-8").splitlines()
    blocks = []
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        end = next((i for i in range(index + 1, len(lines)) if lines[i].startswith("```")), None)
        assert end is not None, f"README.md:{index + 1}: the block that opens here is never closed"
        marker = SKIP_MARKER.match(lines[index - 1]) if index else None
        blocks.append(Block(index + 1, opening["language"], "\n".join(lines[index + 1:end]) + "\n",
                            marker["reason"] if marker else None))
        index = end + 1
    return blocks


def bash_blocks() -> list[Block]:
    return [block for block in readme_blocks() if block.language == "bash"]


def run_blocks() -> list[Block]:
    return [block for block in bash_blocks() if block.skip_reason is None]


@dataclass(frozen=True)
class VideoRequest:
    frames: int
    count: int


def requested_videos(text: str) -> VideoRequest | None:
    """The videos a block asks for, read from its own command line or JSON body."""
    frames = re.search(r'--frames[ =](\d+)|"frames":\s*(\d+)', text)
    if frames is None:
        return None
    count = re.search(r'--count[ =](\d+)|"count":\s*(\d+)', text)
    return VideoRequest(int(frames[1] or frames[2]), int(count[1] or count[2]) if count else 1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def block_environment() -> dict[str, str]:
    """The reader's shell after ``. .venv/bin/activate``: no SAVGAN_* settings of this run leak in."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("SAVGAN_")}
    env["PATH"] = f"{Path(sys.prefix) / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = sys.prefix
    env["PORT"] = str(free_port())
    env["OMP_NUM_THREADS"] = "1"  # shared cores: one torch thread is faster than two contending
    return env


def end_process_group(leader: subprocess.Popen) -> None:
    """What a block left in the background (the server it started) goes with its shell."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(leader.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + KILL_GRACE_S
        while time.monotonic() < deadline:
            try:
                os.killpg(leader.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


@dataclass(frozen=True)
class BlockRun:
    returncode: int
    output: str


def run_block(block: Block, folder: Path) -> BlockRun:
    """The block's text under ``bash -e -o pipefail`` (stop at the first failing command)."""
    (folder / "dev").symlink_to(ROOT / "dev")
    log = folder / "block.log"
    with log.open("wb") as sink:
        shell = subprocess.Popen(["bash", "-e", "-o", "pipefail", "-c", block.text], cwd=folder, env=block_environment(),
                                 stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            returncode = shell.wait(timeout=BLOCK_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            returncode = -1
        finally:
            end_process_group(shell)
    output = log.read_text(errors="replace")
    assert returncode != -1, (
        f"README.md:{block.line}: the block did not finish within {BLOCK_TIMEOUT_S} s (a server left in the "
        f"foreground?); mark it <!-- not run by tests: REASON --> if it is not meant to end. Output:\n{output}"
    )
    return BlockRun(returncode, output)


def test_readme_has_blocks_to_run() -> None:
    """The extraction itself works: the README's generate command and service snippet are found."""
    texts = [block.text for block in run_blocks()]
    assert any("savgan generate" in text for text in texts), f"no run block calls savgan generate: {texts}"
    assert any("savgan serve --embedded" in text for text in texts), f"no run block starts the embedded server: {texts}"


def test_every_shell_block_is_bash_and_every_skip_marker_precedes_one() -> None:
    blocks = readme_blocks()
    disguised = [f"README.md:{b.line} ({b.language})" for b in blocks if b.language in OTHER_SHELL_NAMES]
    assert not disguised, f"shell blocks must be fenced as ```bash so that this test runs them: {disguised}"
    lines = README.read_text(encoding="utf-8").splitlines()
    bash_lines = {block.line for block in bash_blocks()}
    orphans = [i + 1 for i, line in enumerate(lines) if SKIP_MARKER.match(line) and i + 2 not in bash_lines]
    assert not orphans, f"README.md lines {orphans}: a skip marker must stand right above a ```bash block"


@pytest.mark.parametrize("block", run_blocks(), ids=lambda block: f"README.md:{block.line}")
def test_block_runs_as_written(block: Block, tmp_path: Path) -> None:
    run = run_block(block, tmp_path)
    assert run.returncode == 0, f"README.md:{block.line} exited {run.returncode}:\n{run.output}"
    request = requested_videos(block.text)
    if request is None:
        return
    videos = sorted(path for path in tmp_path.rglob("*.ome.tif") if "savgan-data" not in path.parts)
    assert len(videos) == request.count, (
        f"README.md:{block.line} asks for {request.count} video(s), left {[str(v.relative_to(tmp_path)) for v in videos]}:\n{run.output}"
    )
    for video in videos:
        frames = tifffile.imread(video)
        assert frames.ndim == 3 and frames.shape[0] == request.frames, (
            f"{video.relative_to(tmp_path)} has shape {frames.shape}, README.md:{block.line} asks for {request.frames} frames"
        )
