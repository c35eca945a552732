"""The API while a backing service is down, through real components: uvicorn in its own process,
a private ``redis-server`` stopped and started, moto's S3 server frozen with SIGSTOP.

An outage must answer 503 with ``Retry-After`` and a message naming the service, quickly, on a
keep-alive connection that stays usable, and a submit it interrupts must leave nothing stored.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import ApiServer, MotoProcess, PrivateRedis
from test_api import ALICE, BOB, post_train, tiff_bytes

from savgan.common.settings import Settings
from savgan.common.storage import S3Storage

# The bounds: any request within 5 s, /readyz within 3 s, with the default timeouts.
REQUEST_BOUND_S = 5.0
READYZ_BOUND_S = 3.0
CLIENT_TIMEOUT_S = 30.0


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
                for method, path, headers, body in [
                    ("POST", "/generate", ALICE, {"model": "mmnist", "frames": 16}),  # alice's model listing is cached
                    ("GET", "/jobs", ALICE, None),
                    ("GET", f"/jobs/{job}", ALICE, None),
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
