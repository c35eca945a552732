"""Losing Redis loses nothing that matters: a queued job outlives a Redis restart (AOF on, as in
docker-compose.yml), and a finished job outlives Redis losing everything (records live in S3).

Each test gets a private ``redis-server`` on a free port and a temporary folder: the machine's
Redis has no persistence and other tests share it, so it must never be restarted or flushed here.
"""

from __future__ import annotations

import hashlib
import io
import time
from pathlib import Path

import httpx
import tifffile
from conftest import PrivateRedis, WorkerProcess
from fastapi.testclient import TestClient

from savgan.common.context import build_context
from savgan.common.jobs import new_job
from savgan.common.requests import GenerateRequest
from savgan.common.settings import Settings
from savgan.service.app import create_app
from savgan.worker.jobs_runner import run_generate

ALICE = {"Authorization": "Bearer alice-key-0123456789abcdef"}
JOB_TIMEOUT_S = 60
FRAMES = 16


def download_tiff(client: TestClient, job_id: str) -> tuple[dict, bytes]:
    """The job as the API shows it, and its video fetched through the presigned link."""
    response = client.get(f"/jobs/{job_id}", headers=ALICE)
    assert response.status_code == 200, response.text
    job = response.json()
    video = next(r for r in job["results"] if r["format"] == "ome-tiff")
    download = httpx.get(video["url"])
    assert download.status_code == 200 and video["filename"] in download.headers["content-disposition"]
    return job, download.content


def frames_of(content: bytes) -> int:
    with tifffile.TiffFile(io.BytesIO(content)) as tif:
        return tif.series[0].shape[0]


def test_a_queued_job_survives_a_redis_restart(settings_private: Settings, private_redis: PrivateRedis, tmp_path: Path):
    with TestClient(create_app(settings_private)) as client:
        response = client.post("/generate", headers=ALICE, json={"model": "mmnist", "frames": FRAMES, "formats": ["ome-tiff"]})
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    with private_redis.client() as r:
        assert r.llen("generate") == 1, "no worker runs, so the task waits in the queue"

    private_redis.restart()
    with private_redis.client() as r:
        assert r.llen("generate") == 1, "the queued task came back from the AOF"

    ctx = build_context(settings_private)
    assert ctx.jobs.get(job_id).state == "queued"
    worker = WorkerProcess(settings_private, tmp_path)
    try:
        worker.start()
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while not (record := ctx.jobs.get(job_id)).finished:
            assert time.monotonic() < deadline, f"job still {record.state} after {JOB_TIMEOUT_S} s"
            time.sleep(0.2)
    finally:
        worker.stop()
    assert record.state == "succeeded" and record.attempts == 1, record.error
    with TestClient(create_app(settings_private)) as client:
        job, content = download_tiff(client, job_id)
    assert job["state"] == "succeeded" and frames_of(content) == FRAMES


def test_a_finished_job_survives_redis_losing_everything(settings_private: Settings, private_redis: PrivateRedis, one_torch_thread):
    ctx = build_context(settings_private)
    request = GenerateRequest(model="mmnist:bundled", frames=FRAMES, formats=["ome-tiff"])
    record = new_job("alice", "generate", request.model_dump(mode="json"))
    ctx.jobs.create(record)
    assert run_generate(ctx, record.id) == "succeeded"
    before = ctx.jobs.get(record.id)

    with private_redis.client() as r:
        r.flushall()
        assert r.dbsize() == 0, "a restart without persistence leaves an empty Redis"

    after = ctx.jobs.get(record.id)
    assert after == before and after.state == "succeeded" and after.progress.fraction == 1.0
    with TestClient(create_app(settings_private)) as client:
        job, content = download_tiff(client, record.id)
        listed = client.get("/jobs", headers=ALICE).json()["jobs"]
    assert [j["id"] for j in listed] == [record.id]
    tiff = next(r for r in after.results if r.format == "ome-tiff")
    assert hashlib.sha256(content).hexdigest() == tiff.sha256 and frames_of(content) == FRAMES
    assert job["results"] and all(r["url"] for r in job["results"])
