"""The service while a backing service is down, through real components: uvicorn and Celery
workers in their own processes, a private ``redis-server`` stopped and started, moto's S3 server
frozen with SIGSTOP.

An outage must answer 503 with ``Retry-After`` and a message naming the service, quickly, on a
keep-alive connection that stays usable; a submit it interrupts must leave nothing stored; a
running job must get through it; a stopping API must not wait on open event streams.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import ApiServer, MotoProcess, PrivateRedis, WorkerProcess
from test_api import ALICE, BOB, post_train, tiff_bytes
from test_worker import queue_training

from savgan.common.context import Context, build_context
from savgan.common.jobs import JobRecord, Progress
from savgan.common.settings import Settings
from savgan.common.storage import S3Storage
from savgan.worker.app import make_app, send_job

# The bounds: any request within 5 s, /readyz within 3 s, with the default timeouts.
REQUEST_BOUND_S = 5.0
READYZ_BOUND_S = 3.0
SHUTDOWN_BOUND_S = 5.0
# Longer than one S3 call's bound (2 tries of 1.5 s and the backoff): a checkpoint upload fails.
FROZEN_DURING_TRAINING_S = 8
CLIENT_TIMEOUT_S = 30.0
# The cpu preset at batch 2 runs 3 to 10 steps a second on one shared core: each case trains
# for at least twice its outage, so the training is still running when Redis comes back, and
# the time limits leave room for the slow end (30 s of outage: 2 to 3 minutes, hence slow).
LONG_TRAINING_LIMITS = {"train_soft_time_limit_s": 600, "train_time_limit_s": 630, "visibility_timeout_s": 700}


def local_port(response: httpx.Response) -> int:
    """The client side's port: the same port for two answers means the same TCP connection."""
    return response.extensions["network_stream"].get_extra_info("client_addr")[1]


def one_connection(server: ApiServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=CLIENT_TIMEOUT_S, limits=httpx.Limits(max_connections=1))


def assert_unavailable(response: httpx.Response, service: str, address: str, retry_after_s: int) -> None:
    where = f"{response.request.method} {response.request.url.path}"
    assert response.status_code == 503, f"{where}: {response.status_code} {response.text}"
    assert response.headers.get("retry-after") == str(retry_after_s), f"{where}: {response.headers}"
    detail = response.json()["detail"]
    assert detail.startswith(f"{service} at {address} is unreachable (") and detail.endswith(f"; retry in {retry_after_s} s"), detail


@pytest.fixture
def api_server(settings_private: Settings, tmp_path: Path) -> Iterator[ApiServer]:
    server = ApiServer(settings_private, tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_redis_down_answers_503_with_retry_after_on_one_keep_alive_connection(
    settings_private: Settings, private_redis: PrivateRedis, api_server: ApiServer
):
    with one_connection(api_server) as client:
        queued = client.post("/generate", headers=ALICE, json={"model": "mmnist", "frames": 16})
        assert queued.status_code == 202, queued.text
        job = queued.json()["id"]
        ports = {local_port(queued)}

        private_redis.stop()
        for method, path, body in [
            ("POST", "/generate", {"model": "mmnist", "frames": 16}),
            ("GET", "/jobs", None),
            ("GET", "/models", None),
            ("GET", f"/jobs/{job}", None),
            ("DELETE", f"/jobs/{job}", None),
            ("GET", f"/jobs/{job}/events", None),
        ]:
            response = client.request(method, path, headers=ALICE, json=body)
            assert_unavailable(response, "Redis", private_redis.url, settings_private.retry_after_s)
            ports.add(local_port(response))
        ready = client.get("/readyz")
        assert ready.status_code == 503 and "redis: " in ready.json()["detail"], ready.text
        ports.add(local_port(ready))
        scraped = client.get("/metrics")
        assert scraped.status_code == 200 and "savgan_http_requests_total" in scraped.text
        assert "savgan_jobs_submitted_total" not in scraped.text, "counters kept in Redis cannot be read"
        ports.add(local_port(scraped))

        private_redis.start()
        listed = client.get("/jobs", headers=ALICE)
        assert listed.status_code == 200 and [j["id"] for j in listed.json()["jobs"]] == [job], listed.text
        ports.add(local_port(listed))
    assert len(ports) == 1, f"the server closed the keep-alive connection: answers came on ports {sorted(ports)}"
    assert "Exception in ASGI application" not in api_server.log.read_text()


def test_a_training_submitted_while_redis_is_down_leaves_nothing_stored(
    settings_private: Settings, private_redis: PrivateRedis, api_server: ApiServer
):
    storage = S3Storage(settings_private)
    private_redis.stop()
    with one_connection(api_server) as client:
        response = post_train(client, [("cells.tif", tiff_bytes(), "image/tiff")])
    assert_unavailable(response, "Redis", private_redis.url, settings_private.retry_after_s)
    assert storage.list("") == [], "no record, index marker or upload may outlive a refused submit"
    private_redis.start()
    with one_connection(api_server) as client:
        assert client.get("/jobs", headers=ALICE).json()["jobs"] == []


@pytest.fixture
def settings_frozen_s3(settings_private: Settings, moto_process: MotoProcess) -> Settings:
    """``settings_private`` with storage on a moto server of its own, to be frozen."""
    settings = settings_private.model_copy(update={"s3_endpoint_url": moto_process.url})
    S3Storage(settings).ensure_bucket()
    return settings


def test_a_frozen_storage_server_answers_503_within_the_bounds(
    settings_frozen_s3: Settings, moto_process: MotoProcess, tmp_path: Path
):
    server = ApiServer(settings_frozen_s3, tmp_path)
    server.start()
    try:
        with one_connection(server) as client:
            queued = client.post("/generate", headers=ALICE, json={"model": "mmnist", "frames": 16})
            assert queued.status_code == 202, queued.text
            job = queued.json()["id"]
            moto_process.freeze()
            try:
                timings = {}
                # A submit writes Redis only (alice's model listing is cached), and a queued job is read from there.
                for method, path, body, code in [("POST", "/generate", {"model": "mmnist", "frames": 16}, 202),
                                                 ("GET", f"/jobs/{job}", None, 200)]:
                    started = time.monotonic()
                    response = client.request(method, path, headers=ALICE, json=body)
                    timings[f"{method} {path}"] = time.monotonic() - started
                    assert response.status_code == code, f"{method} {path}: {response.status_code} {response.text}"
                for method, path, headers, body in [
                    ("GET", "/jobs", ALICE, None),  # the listing merges storage's index
                    ("GET", "/models", BOB, None),  # bob's listing is not cached: it needs storage
                ]:
                    started = time.monotonic()
                    response = client.request(method, path, headers=headers, json=body)
                    timings[f"{method} {path}"] = time.monotonic() - started
                    assert_unavailable(response, "S3 storage", moto_process.url, settings_frozen_s3.retry_after_s)
                started = time.monotonic()
                ready = client.get("/readyz")
                timings["GET /readyz"] = time.monotonic() - started
            finally:
                moto_process.thaw()
            assert ready.status_code == 503 and "storage: no answer within" in ready.json()["detail"], ready.text
            assert timings.pop("GET /readyz") < READYZ_BOUND_S
            assert max(timings.values()) < REQUEST_BOUND_S, timings
            listed = client.get("/jobs", headers=ALICE)
            assert listed.status_code == 200 and job in [j["id"] for j in listed.json()["jobs"]], listed.text
    finally:
        server.stop()


def wait_for_record(ctx: Context, job_id: str, done, timeout_s: float) -> JobRecord:
    """Polls the durable record only, so it works while Redis is down."""
    deadline = time.monotonic() + timeout_s
    while not done(record := JobRecord.model_validate_json(ctx.storage.get_bytes(ctx.jobs.record_key(job_id)))):
        assert time.monotonic() < deadline, f"job {job_id} still {record.state} after {timeout_s} s"
        time.sleep(0.2)
    return record


@pytest.mark.parametrize("settings_s3", [LONG_TRAINING_LIMITS], indirect=True)
@pytest.mark.parametrize(
    ("outage_s", "steps"), [pytest.param(3, 60, id="3s"), pytest.param(30, 360, id="30s", marks=pytest.mark.slow)]
)
def test_a_running_training_rides_out_a_redis_outage(
    settings_private: Settings, private_redis: PrivateRedis, tmp_path: Path, outage_s: int, steps: int
):
    ctx = build_context(settings_private)
    record = queue_training(ctx, tmp_path, steps=steps, checkpoint_every=steps)
    worker = WorkerProcess(settings_private, tmp_path)
    worker.start()
    try:
        send_job(make_app(settings_private), "train", record.id)
        deadline = time.monotonic() + 60
        while (progress := ctx.jobs.get(record.id).progress).step < 1:
            assert time.monotonic() < deadline, "the training did not start"
            time.sleep(0.1)
        private_redis.stop()
        time.sleep(outage_s)
        during = wait_for_record(ctx, record.id, lambda r: True, 1)
        private_redis.start()
        done = wait_for_record(ctx, record.id, lambda r: r.finished, LONG_TRAINING_LIMITS["train_time_limit_s"])
    finally:
        worker.stop()
    assert during.state == "running", f"the job ended during the outage: {during.error}"
    assert done.state == "succeeded" and done.attempts == 1, done.error
    assert progress.step < steps and done.progress.step == steps
    live = ctx.transient.read(record.id)
    assert live["state"] == "succeeded" and Progress.model_validate_json(live["progress"]).step == steps, live


def test_sigterm_closes_open_event_streams_and_a_reconnect_gets_the_end(settings_private: Settings, tmp_path: Path):
    first = ApiServer(settings_private, tmp_path)
    first.start()
    try:
        with one_connection(first) as client:
            queued = client.post("/generate", headers=ALICE, json={"model": "mmnist", "frames": 16})
        assert queued.status_code == 202, queued.text
        job = queued.json()["id"]
        lines: list[str] = []

        def follow() -> None:
            try:
                with httpx.stream("GET", f"{first.url}/jobs/{job}/events", headers=ALICE, timeout=CLIENT_TIMEOUT_S) as stream:
                    lines.extend(stream.iter_lines())
            except httpx.TransportError:
                lines.append("closed")

        reader = threading.Thread(target=follow, daemon=True)
        reader.start()
        deadline = time.monotonic() + 10
        while "event: progress" not in lines:
            assert time.monotonic() < deadline, f"no progress event: {lines}"
            time.sleep(0.05)
        took = first.stop(timeout_s=20)
        reader.join(5)
    finally:
        first.stop()
    assert took < SHUTDOWN_BOUND_S, f"the API took {took:.1f} s to stop with an event stream open"
    assert not reader.is_alive(), "the stream was not closed"

    second = ApiServer(settings_private, tmp_path)
    second.start()
    try:
        with one_connection(second) as client:
            assert client.delete(f"/jobs/{job}", headers=ALICE).json()["state"] == "cancelled"
            with client.stream("GET", f"/jobs/{job}/events", headers=ALICE) as stream:
                text = "".join(stream.iter_text())
    finally:
        second.stop()
    assert text.startswith("event: end\n") and '"state":"cancelled"' in text, text


def test_a_job_whose_storage_freezes_fails_with_the_reason(
    settings_frozen_s3: Settings, moto_process: MotoProcess, tmp_path: Path
):
    ctx = build_context(settings_frozen_s3)
    record = queue_training(ctx, tmp_path, steps=500)
    worker = WorkerProcess(settings_frozen_s3, tmp_path)
    worker.start()
    try:
        send_job(make_app(settings_frozen_s3), "train", record.id)
        deadline = time.monotonic() + 60
        while Progress.model_validate_json(ctx.transient.read(record.id)["progress"]).step < 1:
            assert time.monotonic() < deadline, "the training did not start"
            time.sleep(0.1)
        moto_process.freeze()
        try:
            time.sleep(FROZEN_DURING_TRAINING_S)
        finally:
            moto_process.thaw()
        done = wait_for_record(ctx, record.id, lambda r: r.finished, 60)
    finally:
        worker.stop()
    assert done.state == "failed", f"{done.state}: {done.error}"
    assert done.error.startswith(f"S3 storage at {moto_process.url} is unreachable (") and "the job stopped there" in done.error, done.error
