"""Where job records live, through the real API (uvicorn; in process where a test hands it a
dispatcher), the real Redis, moto's S3 server and a real Celery worker: a submit writes Redis
only, storage gets the record once the job ran, a submit the queue refuses leaves nothing, a
listing pages newest first across jobs known only to Redis and jobs known only to storage, and
an embedded server restarted on its folder finishes what the previous run left unfinished.
"""

from __future__ import annotations

import time
from pathlib import Path

import redis
from conftest import REDIS_TEST_URL, ServerThread, WorkerProcess, free_port
from fastapi.testclient import TestClient
from test_api_integration import ALICE, BOB, wait_job

from savgan.common.context import build_context
from savgan.common.job_records import owner_key, record_key
from savgan.common.jobs import JobRecord, JobStore, new_job
from savgan.common.settings import Settings
from savgan.common.storage import S3Storage
from savgan.service.app import create_app
from savgan.service.dispatch import CeleryDispatcher

GENERATE = {"model": "mmnist", "frames": 16, "formats": ["ome-tiff"]}


def test_a_submit_writes_no_object_and_storage_gets_the_record_once_the_job_ran(settings_s3: Settings, tmp_path: Path):
    storage = S3Storage(settings_s3)
    worker = WorkerProcess(settings_s3, tmp_path)
    with ServerThread(settings_s3) as client:
        response = client.post("/generate", headers=ALICE, json=GENERATE)
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]
        assert storage.list("jobs/") == [] and storage.list("index/") == [], "a submit must write no object"
        assert client.get(f"/jobs/{job_id}", headers=ALICE).json()["state"] == "queued"
        assert [j["id"] for j in client.get("/jobs", headers=ALICE).json()["jobs"]] == [job_id]
        assert client.get(f"/jobs/{job_id}", headers=BOB).status_code == 404
        try:
            worker.start()
            done = wait_job(client, job_id, ALICE)
        finally:
            worker.stop()
    assert done["state"] == "succeeded", done["error"]
    stored = JobRecord.model_validate_json(storage.get_bytes(JobStore.record_key(job_id)))
    assert stored.state == "succeeded" and stored.started_at is not None and stored.attempts == 1
    assert [r.filename for r in stored.results] == [r["filename"] for r in done["results"]]
    assert [key.rsplit("-", 1)[-1] for key in storage.list("index/alice/")] == [job_id]


def test_a_submit_whose_queue_is_unreachable_leaves_nothing_in_redis_or_storage(settings_s3: Settings):
    """The record is written (Redis is up), then Celery's broker refuses the connection (a real
    Celery app on a closed port): 503, and the record, its listing entries and its live state are
    taken back."""
    ctx = build_context(settings_s3)
    unreachable = settings_s3.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    dispatcher = CeleryDispatcher(unreachable, ctx.jobs, ctx.transient)
    with TestClient(create_app(settings_s3, context=ctx, dispatcher=dispatcher)) as client:
        response = client.post("/generate", headers=ALICE, json=GENERATE)
        assert response.status_code == 503 and response.headers["retry-after"] == str(settings_s3.retry_after_s), response.text
        assert client.get("/jobs", headers=ALICE).json()["jobs"] == []
    with redis.Redis.from_url(REDIS_TEST_URL, decode_responses=True) as client:
        assert client.keys("savgan:*") == [], "nothing of the refused job may stay in Redis"
    assert ctx.storage.list("") == []


def test_listing_pages_newest_first_across_jobs_only_in_redis_and_jobs_only_in_storage(settings_s3: Settings):
    ctx = build_context(settings_s3)
    expiring = JobStore(ctx.storage, ctx.transient, retention_s=1)
    created = time.time() - 60
    records = []
    for index in range(7):
        record = new_job("alice", "generate", GENERATE)
        record.created_at = created + index
        ctx.jobs.create(record)
        records.append(record)
    # Even ones ran and ended: storage has them; 0 and 4 have since expired from Redis. Odd ones
    # are still queued: only Redis has them.
    for index, record in enumerate(records[::2]):
        record.state, record.started_at, record.finished_at = "succeeded", record.created_at, record.created_at + 1
        (expiring if index in (0, 2) else ctx.jobs).save(record)
    time.sleep(1.5)
    gone, queued = [records[0], records[4]], records[1::2]
    with redis.Redis.from_url(REDIS_TEST_URL) as client:
        assert not any(client.exists(record_key(r.id)) for r in gone), "the retention should have expired them"
        assert all(client.exists(record_key(r.id)) for r in queued)
    assert not any(ctx.storage.exists(JobStore.record_key(r.id)) for r in queued), "queued jobs must not be in storage"
    with ServerThread(settings_s3) as client:
        seen, url = [], "/jobs?limit=2"
        while url:
            page = client.get(url, headers=ALICE)
            assert page.status_code == 200, page.text
            seen += [(job["id"], job["state"]) for job in page.json()["jobs"]]
            url = page.json()["next_url"]
        assert client.get("/jobs", headers=BOB).json()["jobs"] == []
    assert seen == [(r.id, r.state) for r in reversed(records)]
    with redis.Redis.from_url(REDIS_TEST_URL, decode_responses=True) as client:
        listed = set(client.zrange(owner_key("alice"), 0, -1))
    assert listed == {r.id for r in records} - {r.id for r in gone}, "expired ids are dropped from Redis's listing"


def test_an_embedded_server_restarted_finishes_the_jobs_it_left_unfinished(settings_local: Settings):
    heavy = {**GENERATE, "frames": 128, "count": 8}
    with ServerThread(settings_local) as client:
        ids = [client.post("/generate", headers=ALICE, json=heavy).json()["id"] for _ in range(3)]
    # Stopping lets the running job finish and starts no other: the rest stay queued in storage.
    left = [r.id for r in build_context(settings_local).jobs.unfinished()]
    assert left and set(left) <= set(ids), left
    with ServerThread(settings_local) as client:
        done = [wait_job(client, job_id, ALICE)["state"] for job_id in ids]
        listed = [j["id"] for j in client.get("/jobs", headers=ALICE).json()["jobs"]]
    assert done == ["succeeded"] * 3 and listed == ids[::-1]
