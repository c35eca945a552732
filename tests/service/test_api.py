"""The API in process (ASGI), with local storage, in-memory transient state and a recording dispatcher.

Covers validation paths, auth, ownership, cancellation rules, links, metrics and the OpenAPI
document; a bounded schemathesis run checks that no generated input gets a 5xx.
"""

from __future__ import annotations

import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import tifffile
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from savgan.common.context import build_context
from savgan.common.jobs import JobRecord, ResultFile
from savgan.common.settings import Settings
from savgan.service.app import create_app
from savgan.service.dispatch import DispatchError

ALICE = {"Authorization": "Bearer alice-key-0123456789abcdef"}
BOB = {"Authorization": "Bearer bob-key-0123456789abcdef"}


class FakeDispatcher:
    def __init__(self) -> None:
        self.submitted: list[JobRecord] = []
        self.cancelled: list[str] = []
        self.fail = False

    def submit(self, record: JobRecord) -> None:
        if self.fail:
            raise DispatchError("the job queue is unreachable")
        self.submitted.append(record)

    def cancel(self, record: JobRecord) -> None:
        self.cancelled.append(record.id)

    def workers(self, wait: bool = False) -> int:
        return 1

    def queue_depths(self) -> dict[str, int]:
        return {"generate": len(self.submitted), "train": 0}

    def close(self) -> None:
        pass


def write_model(ctx, owner: str, name: str, tmp_path: Path, frames: int = 16, size: int = 32) -> None:
    """A published version with only a manifest: the API reads manifests, never weights."""
    run = tmp_path / f"run-{owner}-{name}"
    run.mkdir(exist_ok=True)
    manifest = {"model_config": {"arch": "savgan", "frames": frames, "size": size}, "step": 3, "data": "unit test"}
    (run / "manifest.json").write_text(json.dumps(manifest))
    ctx.models.publish_run(owner, name, run)


@pytest.fixture
def api(settings_local: Settings, tmp_path: Path):
    ctx = build_context(settings_local)
    write_model(ctx, "alice", "tiny", tmp_path)
    dispatcher = FakeDispatcher()
    app = create_app(settings_local, context=ctx, dispatcher=dispatcher)
    with TestClient(app, raise_server_exceptions=False) as client:
        client.ctx, client.dispatcher = ctx, dispatcher
        yield client


def float_tiff_bytes(bad: int, frames: int = 40, size: int = 64) -> bytes:
    """A float32 recording with ``bad`` pixels NaN or infinite, spread over frames."""
    video = np.random.default_rng(0).uniform(0, 1, (frames, size, size)).astype(np.float32)
    for index in range(bad):
        video[index * 7 % frames, index, index] = (np.nan, np.inf, -np.inf)[index % 3]
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, video, photometric="minisblack")
    return buffer.getvalue()


def tiff_bytes(frames: int = 40, size: int = 64) -> bytes:
    t, y, x = np.mgrid[0:frames, 0:size, 0:size]
    video = 100 + 1000 * np.exp(-((x - 10 - t) ** 2 + (y - size // 2) ** 2) / 40.0)
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, video.astype(np.uint16))
    return buffer.getvalue()


def post_train(client, files, params=None, headers=ALICE):
    params = params if params is not None else {"name": "cells", "steps": 2}
    data = {"params": json.dumps(params)} if params != "omit" else {}
    return client.post("/train", headers=headers, files=[("files", f) for f in files], data=data)


def test_auth_is_required_and_says_how(api):
    response = api.get("/jobs")
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer" in response.json()["detail"]
    wrong = api.get("/jobs", headers={"Authorization": "Bearer not-a-key-0123456789"})
    assert wrong.status_code == 401 and wrong.json()["detail"] == "unknown API key"
    assert api.get("/livez").status_code == 200


def test_generate_queues_the_resolved_model_and_links(api):
    response = api.post("/generate", headers=ALICE, json={"model": "tiny", "frames": 20, "seed": 7})
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["state"] == "queued" and job["params"]["model"] == "tiny:1"
    assert job["links"]["self"].endswith(f"/jobs/{job['id']}") and response.headers["location"] == job["links"]["self"]
    assert [r.id for r in api.dispatcher.submitted] == [job["id"]]
    assert api.get(f"/jobs/{job['id']}", headers=ALICE).json()["timings"]["run_s"] is None
    assert api.get(f"/jobs/{job['id']}", headers=BOB).status_code == 404, "another owner's job is not found, not forbidden"


@pytest.mark.parametrize(
    ("body", "status", "text"),
    [
        ({"model": "nope"}, 404, "no model named 'nope'; known models: mmnist, tiny"),
        ({"model": "tiny:9"}, 404, "has no version '9'; versions: 1"),
        ({"model": "tiny", "frames": 5000}, 422, "frames: Input should be less than or equal to 1024"),
        ({"model": "tiny", "frames": "many"}, 422, "frames: Input should be a valid integer"),
        ({"model": "tiny", "frames": "10"}, 422, "frames: Input should be a valid integer"),  # no silent casts
        ({"model": "tiny", "frames": True}, 422, "frames: Input should be a valid integer"),
        ({"model": "tiny", "seed": False}, 422, "seed: Input should be a valid integer"),
        ({"model": "tiny", "count": 2.0}, 422, "count: Input should be a valid integer"),
        ({"model": "tiny", "count": 20}, 422, "count must be at most 16 on this server, got 20"),
        ({"model": "tiny", "formats": ["bmp"]}, 422, "formats.0: Input should be"),
        ({"model": "tiny", "colour": "red"}, 422, "colour: Extra inputs are not permitted"),
    ],
)
def test_generate_rejects_bad_input_with_a_message(api, body, status, text):
    response = api.post("/generate", headers=ALICE, json=body)
    assert response.status_code == status, response.text
    assert text in response.json()["detail"]
    assert not api.dispatcher.submitted


def test_generate_respects_a_lower_server_frame_limit(settings_local: Settings, tmp_path: Path):
    settings = Settings(**{**{k: getattr(settings_local, k) for k in Settings.model_fields}, "max_frames": 64})
    ctx = build_context(settings)
    write_model(ctx, "alice", "tiny", tmp_path)
    with TestClient(create_app(settings, context=ctx, dispatcher=FakeDispatcher())) as client:
        response = client.post("/generate", headers=ALICE, json={"model": "tiny", "frames": 65})
        assert response.status_code == 422
        assert response.json()["detail"] == "frames must be at most 64 on this server, got 65"
        frames = client.get("/openapi.json").json()["components"]["schemas"]["GenerateRequest"]["properties"]["frames"]
        assert "at most 64" in frames["description"] and frames["maximum"] == 64


def test_a_broken_queue_answers_503_and_leaves_no_job(api):
    api.dispatcher.fail = True
    response = api.post("/generate", headers=ALICE, json={"model": "tiny"})
    assert response.status_code == 503 and "unreachable" in response.json()["detail"]
    assert response.headers["retry-after"] == str(api.ctx.settings.retry_after_s)
    assert api.get("/jobs", headers=ALICE).json()["jobs"] == []
    assert not api.ctx.storage.list("jobs/") and not api.ctx.storage.list("index/")


def test_train_stores_uploads_and_queues(api):
    response = post_train(api, [("cells.tif", tiff_bytes(), "image/tiff"), ("../../etc/more cells.tif", tiff_bytes(30), "image/tiff")])
    assert response.status_code == 202, response.text
    job = response.json()
    record = api.ctx.jobs.get(job["id"])
    keys = [u["key"] for u in record.params["uploads"]]
    assert keys == [f"uploads/{job['id']}/0-cells.tif", f"uploads/{job['id']}/1-more-cells.tif"]
    assert all(api.ctx.storage.exists(k) for k in keys)
    assert job["params"]["uploads"] == ["cells.tif", "more-cells.tif"] and job["params"]["steps"] == 2


@pytest.mark.parametrize(
    ("files", "params", "status", "text"),
    [
        ([("cells.tif", b"\x89PNG\r\n\x1a\n" + b"0" * 100, "image/tiff")], None, 415, "cells.tif: this is a PNG image"),
        ([("cells.tif", tiff_bytes()[:3000], "image/tiff")], None, 422, "cells.tif: the TIFF is corrupt or truncated"),
        ([("short.tif", tiff_bytes(frames=10), "image/tiff")], None, 422, "short.tif: has 10 frames, fewer than the 16"),
        ([("small.tif", tiff_bytes(size=24), "image/tiff")], None, 422, "small.tif: frames are 24x24 pixels"),
        ([("empty.tif", b"", "image/tiff")], None, 422, "empty.tif: the file is empty"),
        ([("nan.tif", float_tiff_bytes(bad=3), "image/tiff")], None, 422, "nan.tif: 3 of 163840 pixels are NaN or infinite"),
        ([("cells.tif", tiff_bytes(), "image/tiff")], "omit", 422, "`params`"),
        ([("cells.tif", tiff_bytes(), "image/tiff")], {"name": "Bad Name"}, 422, "params.name: String should match pattern"),
        ([("cells.tif", tiff_bytes(), "image/tiff")], {"name": "x", "steps": 200000}, 422, "steps must be at most 100000"),
        ([("cells.tif", tiff_bytes(), "image/tiff")], {"name": "x", "base_model": "nope"}, 404, "base_model: no model named 'nope'"),
        ([("cells.tif", tiff_bytes(), "image/tiff")], {"name": "x", "lr_g": 1}, 422, "params.lr_g: Input should be less than or equal to 0.01"),
        ([("cells.tif", tiff_bytes(), "image/tiff")], {"name": "x", "image_lambda": -1}, 422, "params.image_lambda: Input should be greater than or equal to 0"),
        ([("cells.tif", tiff_bytes(), "image/tiff")], {"name": "x", "penalty_step": "both"}, 422, "params.penalty_step: Input should be 'joint' or 'separate'"),
    ],
)
def test_train_rejects_bad_uploads_and_stores_nothing(api, files, params, status, text):
    response = post_train(api, files, params)
    assert response.status_code == status, response.text
    assert text in response.json()["detail"]
    assert not api.dispatcher.submitted and not api.ctx.storage.list("uploads/")


def test_train_limits_file_count_size_and_content_type(settings_local: Settings, tmp_path: Path):
    fields = {k: getattr(settings_local, k) for k in Settings.model_fields}
    settings = Settings(**{**fields, "max_upload_bytes": 200_000, "max_upload_files": 2})
    ctx = build_context(settings)
    with TestClient(create_app(settings, context=ctx, dispatcher=FakeDispatcher())) as client:
        big = post_train(client, [("big.tif", tiff_bytes(frames=40), "image/tiff")])
        assert big.status_code == 413 and "big.tif: larger than this server's limit of 200000 bytes" in big.json()["detail"]
        small = tiff_bytes(frames=20, size=32)
        many = post_train(client, [("a.tif", small, "image/tiff")] * 3)
        assert many.status_code == 413 and "at most 2 recordings" in many.json()["detail"]
        assert not ctx.storage.list("uploads/")
        as_json = client.post("/train", headers=ALICE, json={"name": "x"})
        assert as_json.status_code == 415 and "multipart/form-data" in as_json.json()["detail"]


def test_cancel_rules(api):
    ids = [api.post("/generate", headers=ALICE, json={"model": "tiny"}).json()["id"] for _ in range(3)]
    queued = api.delete(f"/jobs/{ids[0]}", headers=ALICE)
    assert queued.status_code == 200 and queued.json()["state"] == "cancelled"
    assert api.delete(f"/jobs/{ids[0]}", headers=ALICE).status_code == 409
    running = api.ctx.jobs.get(ids[1])
    running.state, running.started_at = "running", time.time()
    api.ctx.jobs.save(running)
    api.ctx.jobs.request_cancel(ids[1])
    response = api.delete(f"/jobs/{ids[1]}", headers=ALICE)
    assert response.status_code == 202 and response.json()["state"] == "running" and response.json()["cancel_requested"]
    assert api.dispatcher.cancelled == ids[:2]
    assert api.delete(f"/jobs/{ids[2]}", headers=BOB).status_code == 404
    assert api.delete("/jobs/not-an-id", headers=ALICE).status_code == 404


def test_job_list_is_own_and_paginated(api):
    ids = [api.post("/generate", headers=ALICE, json={"model": "tiny", "seed": i}).json()["id"] for i in range(5)]
    first = api.get("/jobs?limit=2", headers=ALICE).json()
    assert [j["id"] for j in first["jobs"]] == ids[::-1][:2] and first["next"] == ids[3]
    second = api.get(first["next_url"], headers=ALICE).json()
    third = api.get(f"/jobs?limit=2&before={second['next']}", headers=ALICE).json()
    assert [j["id"] for j in second["jobs"] + third["jobs"]] == ids[::-1][2:] and third["next"] is None
    assert api.get("/jobs", headers=BOB).json() == {"jobs": [], "next": None, "next_url": None}
    assert api.get("/jobs?limit=0", headers=ALICE).status_code == 422


def test_results_are_signed_links_and_events_end_with_the_job(api):
    job_id = api.post("/generate", headers=ALICE, json={"model": "tiny"}).json()["id"]
    api.ctx.storage.put_bytes(f"results/{job_id}/v.tif", b"II*\x00data")
    record = api.ctx.jobs.get(job_id)
    record.state, record.started_at, record.finished_at = "succeeded", time.time(), time.time()
    record.results = [ResultFile(key=f"results/{job_id}/v.tif", filename="v.tif", role="video", format="ome-tiff", bytes=8, sha256="0")]
    api.ctx.jobs.save(record)
    job = api.get(f"/jobs/{job_id}", headers=ALICE).json()
    url = job["results"][0]["url"]
    download = api.get(url)
    assert download.status_code == 200 and download.content == b"II*\x00data"
    assert download.headers["content-disposition"] == 'attachment; filename="v.tif"'
    signature = url.rsplit("signature=", 1)[1]
    forged = url.replace(signature, ("0" if signature[0] != "0" else "1") + signature[1:])
    assert api.get(forged).status_code == 403
    assert api.get(url.replace("v.tif", "w.tif")).status_code == 403, "the signature covers the file name"
    with api.stream("GET", f"/jobs/{job_id}/events", headers=ALICE) as stream:
        text = "".join(stream.iter_text())
    assert text.startswith("event: end\n") and '"state":"succeeded"' in text


def test_models_and_readiness(api):
    models = api.get("/models", headers=ALICE).json()
    tiny = next(m for m in models if m["name"] == "tiny")
    assert tiny["owner"] == "alice" and tiny["versions"][0]["ref"] == "tiny:1" and tiny["versions"][0]["clip"] == "16x32x32"
    assert api.get("/models/tiny", headers=BOB).status_code == 404
    bundled = api.get("/models/mmnist", headers=BOB).json()
    assert bundled["owner"] == "public" and bundled["versions"][0]["ref"] == "mmnist:bundled"
    missing = api.get("/models/nope", headers=ALICE)
    assert missing.status_code == 404 and "known models: mmnist, tiny" in missing.json()["detail"]
    ready = api.get("/readyz").json()
    assert ready == {"status": "ready", "checks": {"storage": "ok", "workers": "ok"}}
    api.dispatcher.workers = lambda wait=False: 0
    not_ready = api.get("/readyz")
    assert not_ready.status_code == 503 and not_ready.json()["detail"].startswith("not ready: workers: ")


def test_metrics_follow_prometheus_conventions(api):
    api.post("/generate", headers=ALICE, json={"model": "tiny"})
    api.get("/no/such/path")
    api.ctx.transient.incr("generated_frames", 32)
    text = api.get("/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name, kind in [
        ("savgan_http_requests", "counter"), ("savgan_http_request_duration_seconds", "histogram"),
        ("savgan_jobs_submitted", "counter"), ("savgan_jobs_finished", "counter"), ("savgan_jobs_in_flight", "gauge"),
        ("savgan_queue_jobs", "gauge"), ("savgan_job_duration_seconds", "summary"),
        ("savgan_generated_frames", "counter"), ("savgan_workers", "gauge"),
    ]:
        assert families[name].type == kind and families[name].documentation, name
    routes = {s.labels["route"] for s in families["savgan_http_requests"].samples}
    assert {"/generate", "unmatched"} <= routes and "/no/such/path" not in routes
    assert next(s.value for s in families["savgan_generated_frames"].samples) == 32
    assert "# HELP savgan_generated_frames_total" in text and "# TYPE savgan_generated_frames_total counter" in text


def test_openapi_documents_limits_and_examples(api):
    schema = api.get("/openapi.json").json()
    generate = schema["components"]["schemas"]["GenerateRequest"]
    assert generate["properties"]["frames"]["maximum"] == 1024 and "example" in generate
    assert generate["properties"]["count"]["maximum"] == api.ctx.settings.max_videos_per_request == 16
    body = schema["paths"]["/train"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert body["schema"]["properties"]["params"]["allOf"][0]["$ref"] == "#/components/schemas/TrainParameters"
    assert schema["components"]["schemas"]["TrainParameters"]["properties"]["steps"]["maximum"] == api.ctx.settings.max_train_steps == 100_000


def fuzz_app(tmp_path_factory: pytest.TempPathFactory):
    """The embedded-mode app with keys off and a no-op dispatcher: every operation reachable."""
    root = tmp_path_factory.mktemp("fuzz")
    settings = Settings(mode="embedded", storage="local", auth_disabled=True, local_storage_dir=root / "storage",
                        signing_secret="fuzz-secret-0123456789", max_upload_bytes=2_000_000)
    ctx = build_context(settings)
    write_model(ctx, "local", "tiny", root)
    return create_app(settings, context=ctx, dispatcher=FakeDispatcher())


@pytest.fixture(scope="module")
def fuzz_schema(tmp_path_factory: pytest.TempPathFactory):
    import schemathesis

    return schemathesis.openapi.from_asgi("/openapi.json", fuzz_app(tmp_path_factory))


def test_fuzzed_requests_never_get_a_server_error(fuzz_schema):
    """A bounded schemathesis run over every operation, valid and invalid data, 30 examples each:
    no 5xx, and every status code and body as documented."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

    failures, calls = [], 0
    for result in fuzz_schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case):
                nonlocal calls
                calls += 1
                case.call_and_validate(checks=[not_a_server_error, status_code_conformance, response_schema_conformance])

            try:
                run()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # an operation without parameters has no invalid input
            except Exception as err:  # noqa: BLE001 - collect every operation's failure
                failures.append(f"{operation.label} ({mode.value}): {err}")
    assert not failures, "\n\n".join(failures)
    assert calls > 300


def test_celery_cancel_revokes_a_job_that_ignores_its_flag(settings_local: Settings):
    """After the grace period the task is terminated and the record says why; queued jobs are revoked at once."""
    from savgan.common.jobs import new_job
    from savgan.service.dispatch import CeleryDispatcher

    class Control:
        def __init__(self) -> None:
            self.calls = []

        def revoke(self, job_id, terminate=False, signal=None):
            self.calls.append((job_id, terminate))

    class App:
        control = Control()

    fields = {k: getattr(settings_local, k) for k in Settings.model_fields}
    settings = Settings(**{**fields, "cancel_grace_s": 1})
    ctx = build_context(settings)
    dispatcher = CeleryDispatcher(settings, ctx.jobs, ctx.transient, app=App())
    dispatcher.RECORD_WAIT_S = 0.2  # no worker here to record the termination
    queued, running = new_job("alice", "generate", {}), new_job("alice", "train", {})
    running.state = "running"
    for record in (queued, running):
        ctx.jobs.create(record)
        dispatcher.cancel(record)
        assert ctx.jobs.cancel_requested(record.id)
    assert App.control.calls == [(queued.id, False)]
    deadline = time.monotonic() + 5
    while ctx.jobs.get(running.id).state == "running" and time.monotonic() < deadline:
        time.sleep(0.1)
    done = ctx.jobs.get(running.id)
    assert App.control.calls[-1] == (running.id, True)
    assert done.state == "cancelled" and "terminated" in done.error and ctx.transient.counters()["jobs_cancelled"] == 1
    dispatcher.close()


def test_metrics_pass_promtool_when_it_is_installed(api):
    import shutil
    import subprocess

    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package 'prometheus' ships it)")
    api.post("/generate", headers=ALICE, json={"model": "tiny"})
    result = subprocess.run([promtool, "check", "metrics"], input=api.get("/metrics").content, capture_output=True)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_train_accepts_mp4_and_refuses_a_truncated_one(api, tmp_path: Path):
    from savgan.model.video_io.mp4 import write_mp4

    t = np.linspace(0, 1, 30)[:, None, None]
    video = np.clip(np.sin(np.arange(64)[None, None, :] / 5 + 6 * t) * np.ones((30, 64, 64)), -1, 1).astype(np.float32)
    path = tmp_path / "cells.mp4"
    write_mp4(path, video)
    content = path.read_bytes()
    accepted = post_train(api, [("clip.bin", content, "application/octet-stream")])
    assert accepted.status_code == 202, accepted.text
    assert api.ctx.jobs.get(accepted.json()["id"]).params["uploads"][0]["format"] == "mp4"
    truncated = post_train(api, [("cut.mp4", content[: len(content) * 2 // 3], "video/mp4")])
    assert truncated.status_code == 422 and truncated.json()["detail"].startswith("cut.mp4: the MP4 file is truncated")


def test_webhooks_into_the_local_network_are_refused(settings_local: Settings, tmp_path: Path):
    strict = settings_local.model_copy(update={"webhook_allow_private": False})
    ctx = build_context(strict)
    write_model(ctx, "alice", "tiny", tmp_path)
    with TestClient(create_app(strict, context=ctx, dispatcher=FakeDispatcher())) as client:
        refused = (
            "http://127.0.0.1:9/hook",
            "http://localhost/hook",
            "http://localhost./hook",  # a trailing dot is the same name
            "http://[::1]/hook",
            "http://10.0.0.5/hook",
            "http://100.64.0.1/hook",  # CGNAT: not private, not public either
            "http://[2002:7f00:1::]/hook",  # 6to4 form of 127.0.0.1
            "http://[::ffff:10.0.0.5]/hook",  # IPv4-mapped
            "http://[64:ff9b::a00:5]/hook",  # NAT64 of 10.0.0.5
            "http://198.18.0.1/hook",  # benchmarking range
            "http://printer/hook",  # a name without a dot
            "http://nas.local/hook",
        )
        for url in refused:
            answer = client.post("/generate", headers=ALICE, json={"model": "tiny", "webhook_url": url})
            assert answer.status_code == 422 and "SAVGAN_WEBHOOK_ALLOW_PRIVATE" in answer.json()["detail"], url
        public = client.post("/generate", headers=ALICE, json={"model": "tiny", "webhook_url": "http://93.184.215.14/hook"})
        assert public.status_code == 202


def test_the_files_route_refuses_symlinks_that_lead_outside_storage(api, tmp_path: Path):
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("not for download")
    storage = api.ctx.storage
    storage.put_bytes("results/job/inside.tif", b"II*\x00inside")
    (storage.root / "results" / "job" / "leak.tif").symlink_to(secret)
    (storage.root / "results" / "dir").symlink_to(secret.parent, target_is_directory=True)
    (storage.root / "results" / "job" / "alias.tif").symlink_to(storage.root / "results" / "job" / "inside.tif")
    for key in ("results/job/leak.tif", "results/dir/secret.txt"):
        answer = api.get(storage.link(key, "x.tif", 60).removeprefix(storage.base_url))
        assert answer.status_code == 403 and "outside the server's storage folder" in answer.json()["detail"], key
        assert b"not for download" not in answer.content
    alias = api.get(storage.link("results/job/alias.tif", "a.tif", 60).removeprefix(storage.base_url))
    assert alias.status_code == 200 and alias.content == b"II*\x00inside", "a link that stays inside is served"


def test_the_worker_connects_to_the_address_it_checked(settings_local, monkeypatch):
    """One lookup, then a connection to that address: a second answer (DNS rebinding) is never used."""
    import socket

    from savgan.common.jobs import new_job
    from savgan.common.webhooks import send_webhook

    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(self.headers["Host"])
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_port
    real_lookup, lookups = socket.getaddrinfo, []

    def rebinding_dns(host, *args, **kwargs):
        if host != "hooks.example.org":
            return real_lookup(host, *args, **kwargs)
        lookups.append(host)
        if len(lookups) > 1:
            raise AssertionError("the webhook name was resolved a second time")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding_dns)
    try:
        record = new_job("alice", "generate", {}, f"http://hooks.example.org:{port}/hook")
        assert send_webhook(record, settings_local) is True
    finally:
        server.shutdown()
    assert lookups == ["hooks.example.org"] and received == [f"hooks.example.org:{port}"]


def test_the_worker_does_not_deliver_to_names_that_resolve_inside(settings_local):
    from savgan.common.jobs import new_job
    from savgan.common.webhooks import send_webhook

    record = new_job("alice", "generate", {}, "http://localhost.:9/hook")
    strict = settings_local.model_copy(update={"webhook_allow_private": False})
    assert send_webhook(record, strict) is False
