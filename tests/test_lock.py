"""The lock (constraints.txt) is the one source of versions: the images, CI and the tests agree on it.

Why: the images once installed torch 2.10.0 while every test ran with 2.13.0, and their pinned
lists had drifted from the tests' versions (httpx, redis, uvicorn), so an image shipped code
paths no test had run.
"""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "constraints.txt"
IMAGE_LISTS = sorted((ROOT / "docker").glob("requirements-*.txt"))
WORKER_DOCKERFILE = ROOT / "docker" / "worker.Dockerfile"


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_pins() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not an exact pin (name==version)"
            pins[normalise(name)] = version.strip()
    return pins


def listed_names(path: Path) -> list[str]:
    return [normalise(line.strip()) for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def test_image_lists_are_names_pinned_by_the_lock() -> None:
    pins = lock_pins()
    assert IMAGE_LISTS, "no docker/requirements-*.txt"
    for path in IMAGE_LISTS:
        for name in listed_names(path):
            assert "=" not in name and "<" not in name and ">" not in name, f"{path.name}: {name!r} carries a version; versions live in constraints.txt"
            assert name in pins, f"{path.name} lists {name!r}, which constraints.txt does not pin"


def test_gpu_base_image_carries_the_locked_torch() -> None:
    tag = re.search(r"^ARG PYTORCH_IMAGE=pytorch/pytorch:([0-9.]+)-", WORKER_DOCKERFILE.read_text(), re.M)
    assert tag, "worker.Dockerfile: no ARG PYTORCH_IMAGE=pytorch/pytorch:<version>-..."
    assert tag[1] == lock_pins()["torch"], f"PYTORCH_IMAGE has torch {tag[1]}, constraints.txt pins {lock_pins()['torch']}"


def test_no_other_file_names_a_torch_version() -> None:
    pin = lock_pins()["torch"]
    files = [ROOT / "README.md", *(path for path in (ROOT / ".ci").iterdir() if path.is_file()), *(ROOT / "docs").glob("*.md"), WORKER_DOCKERFILE, ROOT / "docker" / "api.Dockerfile"]
    for path in files:
        for version in re.findall(r"torch==([0-9][0-9.]*[0-9])", path.read_text()):
            assert version == pin, f"{path.relative_to(ROOT)} names torch=={version}; constraints.txt pins {pin}"


def test_the_tests_run_with_what_the_images_ship() -> None:
    """What the images install at the lock's versions is what this test run has installed."""
    pins = lock_pins()
    wanted = {name for path in IMAGE_LISTS for name in listed_names(path)} | {"torch"}
    drift = []
    for name in sorted(wanted):
        try:
            installed = metadata.version(name).split("+")[0]
        except metadata.PackageNotFoundError:
            continue  # e.g. the API-free CLI install: nothing installed, nothing drifted
        if installed != pins[name]:
            drift.append(f"{name} {installed} (lock {pins[name]})")
    assert not drift, "installed versions differ from constraints.txt: " + ", ".join(drift) + "; reinstall with `pip install -c constraints.txt -e '.[service,test]'`"


def test_python_3_11_below_3_11_3_gets_what_redis_needs() -> None:
    """On 3.11.0-3.11.2 (Debian 12's python3) redis-py needs async-timeout, which the images' closure leaves out."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"].startswith(">=3.11"), project["requires-python"]
    markers = [d for d in project["optional-dependencies"]["service"] if d.startswith("async-timeout")]
    assert markers and "python_full_version < '3.11.3'" in markers[0], markers


def stage(text: str, name: str) -> list[str]:
    """A stage's instructions, continuation lines joined, comments and LABELs dropped."""
    body = re.search(rf"^FROM \S+ AS {name}\n(.*?)(?=^FROM |\Z)", text, re.M | re.S)
    assert body, f"worker.Dockerfile: no stage {name}"
    joined = re.sub(r"\\\n\s*", " ", body[1])
    return [line for line in joined.splitlines() if line.strip() and not line.startswith("#") and not line.startswith("LABEL")]


@pytest.mark.parametrize("kind", ["ENV", "USER", "WORKDIR", "HEALTHCHECK", "CMD"])
def test_gpu_and_cpu_worker_differ_only_where_they_must(kind: str) -> None:
    """Base image, torch install and SAVGAN_DEVICE may differ; the runtime contract may not."""
    text = WORKER_DOCKERFILE.read_text()
    cpu = [line for line in stage(text, "cpu") if line.startswith(kind)]
    gpu = [line for line in stage(text, "gpu") if line.startswith(kind)]
    if kind == "ENV":
        cpu, gpu = ([re.sub(r"SAVGAN_DEVICE=\S+", "SAVGAN_DEVICE=*", line) for line in lines] for lines in (cpu, gpu))
    assert cpu and cpu == gpu, f"{kind} differs between the cpu and gpu targets:\n{cpu}\n{gpu}"


def test_gpu_and_cpu_worker_run_as_the_same_user() -> None:
    text = WORKER_DOCKERFILE.read_text()
    cpu, gpu = ([line for line in stage(text, name) if line.startswith("RUN groupadd")] for name in ("cpu", "gpu"))
    assert len(cpu) == 1 and cpu == gpu, (cpu, gpu)
