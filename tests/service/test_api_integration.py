"""The API against real components: uvicorn on a free port, Redis, moto's S3 server, a Celery worker
process; and the embedded mode as a user runs it (``serve(embedded=True)`` in a subprocess)."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tifffile
from conftest import ServerThread, free_port
from prometheus_client.parser import text_string_to_metric_families

from savgan.common.context import build_context
from savgan.common.settings import Settings

ALICE = {"Authorization": "Bearer alice-key-0123456789abcdef"}
BOB = {"Authorization": "Bearer bob-key-0123456789abcdef"}
JOB_TIMEOUT_S = 120


def wait_job(client: httpx.Client, job_id: str, headers: dict, timeout_s: float = JOB_TIMEOUT_S) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{job_id}", headers=headers).json()
        if job["state"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} not finished after {timeout_s} s: {job}")


def read_video(content: bytes) -> tuple[str, tuple[int, ...]]:
    with tifffile.TiffFile(io.BytesIO(content)) as tif:
        series = tif.series[0]
        return series.axes, series.shape


def sse_events(client: httpx.Client, path: str, headers: dict) -> list[tuple[str, dict]]:
    events, name = [], None
    with client.stream("GET", path, headers=headers, timeout=JOB_TIMEOUT_S) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[6:])))
    return events


def recording(frames: int = 40, size: int = 64) -> bytes:
    """A moving bright blob over a dim background, uint16: what a cell in a time-lapse looks like to the patch cutter."""
    t, y, x = np.mgrid[0:frames, 0:size, 0:size]
    video = 100 + 1000 * np.exp(-((x - 10 - t * 0.8) ** 2 + (y - size / 2 - 5 * np.sin(t / 6)) ** 2) / 30.0)
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, video.astype(np.uint16))
    return buffer.getvalue()


TRAIN_PARAMS = {
    "name": "cells",
    "steps": 2,
    "batch_size": 2,
    "n_critic": 1,
    "patch_method": "grid",
    "checkpoint_every": 2,
    "image_lambda": 5,
    "penalty_step": "separate",
}


def post_train(client: httpx.Client, files: list[tuple[str, bytes]], params: dict = TRAIN_PARAMS) -> httpx.Response:
    return client.post(
        "/train", headers=ALICE, data={"params": json.dumps(params)},
        files=[("files", (name, content, "image/tiff")) for name, content in files],
    )


def test_generate_end_to_end_with_auth_events_listing_and_metrics(settings_s3: Settings, celery_worker_process, tiny_run: Path):
    build_context(settings_s3).models.publish_run("alice", "tiny", tiny_run)
    with ServerThread(settings_s3) as client:
        assert client.get("/jobs").status_code == 401
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"redis": "ok", "storage": "ok", "workers": "ok"}

        response = client.post("/generate", headers=ALICE, json={"model": "tiny", "frames": 20, "seed": 3})
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]
        events = sse_events(client, f"/jobs/{job_id}/events", ALICE)
        assert events[-1][0] == "end" and events[-1][1]["state"] == "succeeded", events[-1]
        assert all(name == "progress" for name, _ in events[:-1])

        job = client.get(f"/jobs/{job_id}", headers=ALICE).json()
        assert job["state"] == "succeeded" and job["params"]["model"] == "tiny:1"
        assert job["timings"]["run_s"] > 0 and job["progress"]["fraction"] == 1.0
        video = next(r for r in job["results"] if r["role"] == "video")
        download = httpx.get(video["url"])
        assert download.status_code == 200 and video["filename"] in download.headers["content-disposition"]
        assert read_video(download.content) == ("TYX", (20, 32, 32))

        assert client.get(f"/jobs/{job_id}", headers=BOB).status_code == 404
        assert client.delete(f"/jobs/{job_id}", headers=BOB).status_code == 404
        assert client.delete(f"/jobs/{job_id}", headers=ALICE).status_code == 409
        more = [client.post("/generate", headers=ALICE, json={"model": "tiny", "frames": 1}).json()["id"] for _ in range(2)]
        page = client.get("/jobs?limit=2", headers=ALICE).json()
        assert [j["id"] for j in page["jobs"]] == more[::-1]
        rest = client.get(page["next_url"], headers=ALICE).json()
        assert [j["id"] for j in rest["jobs"]] == [job_id] and rest["next"] is None
        assert client.get("/jobs", headers=BOB).json()["jobs"] == []
        for other in more:
            assert wait_job(client, other, ALICE)["state"] == "succeeded"

        text = client.get("/metrics").text
        families = {f.name: f for f in text_string_to_metric_families(text)}
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
        assert samples[("savgan_jobs_finished_total", (("state", "succeeded"),))] == 3
        assert samples[("savgan_jobs_submitted_total", (("kind", "generate"),))] == 3
        assert samples[("savgan_generated_frames_total", ())] == 22
        assert samples[("savgan_workers", ())] == 1
        assert samples[("savgan_queue_jobs", (("queue", "generate"),))] == 0
        assert samples[("savgan_job_duration_seconds_count", (("kind", "generate"),))] == 3
        assert any(s.labels.get("route") == "/jobs/{job_id}" for s in families["savgan_http_requests"].samples)
        promtool = shutil.which("promtool")
        if promtool:  # absent on machines without the Debian 'prometheus' package; test_api.py says so as a skip
            checked = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True)
            assert checked.returncode == 0 and not checked.stdout.strip(), checked.stdout + checked.stderr


@pytest.mark.parametrize("settings_s3", [{"max_upload_bytes": 400_000, "max_frames": 256}], indirect=True)
def test_train_on_an_upload_then_generate_with_the_new_version(settings_s3: Settings, celery_worker_process):
    with ServerThread(settings_s3) as client:
        good = recording()
        rejected = {
            "truncated": (post_train(client, [("cells.tif", good[: len(good) // 2])]), 422, "cells.tif: the TIFF is corrupt or truncated"),
            "png": (post_train(client, [("cells.tif", b"\x89PNG\r\n\x1a\n" + bytes(2000))]), 415, "cells.tif: this is a PNG image"),
            "large": (post_train(client, [("big.tif", recording(frames=60))]), 413, "big.tif: larger than this server's limit"),
            "base": (post_train(client, [("cells.tif", good)], {**TRAIN_PARAMS, "base_model": "nope"}), 404, "no model named 'nope'"),
        }
        for case, (response, status, text) in rejected.items():
            assert response.status_code == status and text in response.json()["detail"], (case, response.text)
        assert build_context(settings_s3).storage.list("uploads/") == [], "rejected uploads are deleted"

        response = post_train(client, [("cells.tif", good)])
        assert response.status_code == 202, response.text
        job = wait_job(client, response.json()["id"], ALICE)
        assert job["state"] == "succeeded", job["error"]
        assert job["model"] == "cells:1" and {r["role"] for r in job["results"]} == {"montage", "preview"}
        montage = next(r for r in job["results"] if r["role"] == "montage")
        assert httpx.get(montage["url"]).content.startswith(b"\x89PNG")

        [cells] = [m for m in client.get("/models", headers=ALICE).json() if m["name"] == "cells"]
        assert [v["ref"] for v in cells["versions"]] == ["cells:1"] and cells["versions"][0]["step"] == 2
        assert cells["versions"][0]["samples_url"]
        training = cells["versions"][0]["training"]
        assert (training["image_lambda"], training["penalty_step"], training["n_critic"]) == (5, "separate", 1)
        assert client.get("/models/cells", headers=BOB).status_code == 404

        unknown = client.post("/generate", headers=ALICE, json={"model": "nope"})
        assert unknown.status_code == 404 and "known models: cells" in unknown.json()["detail"]
        too_long = client.post("/generate", headers=ALICE, json={"model": "cells", "frames": 300})
        assert too_long.status_code == 422 and "at most 256" in too_long.json()["detail"]

        generated = client.post("/generate", headers=ALICE, json={"model": "cells", "frames": 12, "formats": ["ome-tiff"]})
        assert generated.status_code == 202 and generated.json()["params"]["model"] == "cells:1"
        done = wait_job(client, generated.json()["id"], ALICE)
        assert done["state"] == "succeeded", done["error"]
        video = next(r for r in done["results"] if r["role"] == "video")
        assert read_video(httpx.get(video["url"]).content) == ("TYX", (12, 32, 32))


@pytest.fixture
def embedded_server(tmp_path: Path, tiny_run: Path) -> Iterator[tuple[httpx.Client, Path]]:
    """``serve(embedded=True)`` in its own process, keys off, a model published for owner ``local``."""
    storage = tmp_path / "storage"
    settings = Settings(mode="embedded", storage="local", local_storage_dir=storage)
    build_context(settings).models.publish_run("local", "tiny", tiny_run)
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SAVGAN_")},
        "SAVGAN_LOCAL_STORAGE_DIR": str(storage),
        "SAVGAN_WORKER_MODEL_CACHE_DIR": str(tmp_path / "cache"),
        "SAVGAN_DEVICE": "cpu",
        "OMP_NUM_THREADS": "1",
    }
    log = tmp_path / "serve.log"
    code = f"from savgan.service.server import serve; serve('127.0.0.1', {port}, embedded=True)"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=out, stderr=subprocess.STDOUT)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "embedded server did not start"
            try:
                if client.get("/livez").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        yield client, log
    finally:
        client.close()
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_embedded_mode_end_to_end(embedded_server):
    client, log = embedded_server
    assert "API keys are OFF" in log.read_text()
    assert client.get("/readyz").json()["checks"] == {"storage": "ok", "workers": "ok"}
    response = client.post("/generate", json={"model": "tiny", "frames": 24, "formats": ["ome-tiff", "mp4"]})
    assert response.status_code == 202, response.text
    events = sse_events(client, response.json()["links"]["events"], {})
    assert events[-1][0] == "end" and events[-1][1]["state"] == "succeeded", events[-1]
    job = client.get(response.json()["links"]["self"]).json()
    tiff = next(r for r in job["results"] if r["format"] == "ome-tiff")
    assert tiff["url"].startswith(str(client.base_url).rstrip("/") + "/files/results/")
    download = client.get(tiff["url"])
    assert download.status_code == 200
    assert download.headers["content-disposition"] == f'attachment; filename="{tiff["filename"]}"'
    assert read_video(download.content) == ("TYX", (24, 32, 32))
    assert [j["id"] for j in client.get("/jobs").json()["jobs"]] == [job["id"]]


def test_cancelling_a_running_training_keeps_its_checkpoint(settings_s3: Settings, celery_worker_process):
    with ServerThread(settings_s3) as client:
        response = post_train(client, [("cells.tif", recording())], {**TRAIN_PARAMS, "steps": 500})
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while client.get(f"/jobs/{job_id}", headers=ALICE).json()["progress"]["step"] < 1:
            assert time.monotonic() < deadline, "training made no step"
            time.sleep(0.2)
        cancel = client.delete(f"/jobs/{job_id}", headers=ALICE)
        assert cancel.status_code == 202 and cancel.json()["cancel_requested"], cancel.text
        job = wait_job(client, job_id, ALICE)
        assert job["state"] == "cancelled" and job["model"] == "cells:1", job
        version = client.get("/models/cells", headers=ALICE).json()["versions"][-1]
        assert 1 <= version["step"] < 500
