"""The worker side against real components: moto's S3 server, Redis, real Celery worker processes."""

from __future__ import annotations

import hashlib
import io
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import numpy as np
import pytest
import tifffile

from savgan.common.context import Context, build_context
from savgan.common.jobs import JobRecord, new_job
from savgan.common.models_store import ModelStore
from savgan.common.requests import GenerateRequest, TrainRequest, Upload
from savgan.common.settings import Settings
from savgan.common.webhooks import SIGNATURE_HEADER, verify
from savgan.worker.app import make_app, send_job
from savgan.worker.embedded import EmbeddedWorker
from savgan.worker.jobs_runner import run_generate


def wait_for(ctx: Context, job_id: str, done, timeout_s: float = 60) -> JobRecord:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        record = ctx.jobs.get(job_id)
        if record is not None and done(record):
            return record
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {ctx.jobs.get(job_id)!r} after {timeout_s} s")


def finished(record: JobRecord) -> bool:
    return record.finished


def queue_generate(ctx: Context, **fields) -> JobRecord:
    request = GenerateRequest(**{"model": "tiny", "frames": 16, "count": 2, **fields})
    record = new_job("alice", "generate", request.model_dump(mode="json"), str(request.webhook_url or "") or None)
    ctx.jobs.create(record)
    return record


def recording_upload(ctx: Context, tmp_path: Path) -> Upload:
    """A 30-frame recording of a drifting bright spot, stored as a training upload."""
    t, y, x = np.mgrid[0:30, 0:64, 0:64]
    video = 100 + 1000 * np.exp(-((x - 10 - t) ** 2 + (y - 32) ** 2) / 40.0)
    path = tmp_path / "cells.tif"
    tifffile.imwrite(path, video.astype(np.uint16))
    ctx.storage.put_file("uploads/cells.tif", path)
    return Upload(key="uploads/cells.tif", filename="cells.tif", bytes=path.stat().st_size, format="tiff")


def queue_training(ctx: Context, tmp_path: Path, **fields) -> JobRecord:
    """A small training on :func:`recording_upload`, its record stored as POST /train would."""
    defaults = {"name": "cells", "batch_size": 2, "n_critic": 1, "patch_method": "grid", "checkpoint_every": 2}
    request = TrainRequest(**{**defaults, **fields}, uploads=[recording_upload(ctx, tmp_path)])
    record = new_job("alice", "train", request.model_dump(mode="json"))
    ctx.jobs.create(record)
    return record


def test_model_store_publishes_lists_resolves_and_fetches(settings_s3: Settings, tiny_run: Path, tmp_path: Path):
    store = ModelStore(build_context(settings_s3).storage)
    first = store.publish_run("alice", "tiny", tiny_run)
    store.storage.put_bytes("models/alice/tiny/2/generator.safetensors", b"half an upload")
    second = store.publish_run("alice", "tiny", tiny_run)
    assert (first.version, second.version) == ("1", "3")
    assert [v.version for v in store.get_model("alice", "tiny").versions] == ["1", "3"]
    assert second.clip == "16x32x32" and second.physical["pixel_size_um"] == 0.65
    assert store.resolve("alice", "tiny").version == "3"
    assert store.resolve("alice", "tiny:1").version == "1"
    assert store.list_models("bob") == [] or all(m.owner == "public" for m in store.list_models("bob"))
    with pytest.raises(LookupError, match="versions: 1, 3"):
        store.resolve("alice", "tiny:2")
    with pytest.raises(LookupError, match="known models: mmnist, tiny"):
        store.resolve("alice", "nope")
    with pytest.raises(LookupError):
        store.resolve("bob", "tiny")
    folder = store.fetch(first, tmp_path / "cache")
    assert (folder / "manifest.json").is_file() and (folder / "generator.safetensors").is_file()
    store.storage.delete_prefix(first.prefix)
    assert store.fetch(first, tmp_path / "cache") == folder, "a fetched version is reused, not downloaded again"


def test_a_cached_model_listing_sees_another_process_publish(settings_s3: Settings, tiny_run: Path):
    """The API caches an owner's listing; a version a worker publishes must be resolved at once."""
    api, worker = build_context(settings_s3), build_context(settings_s3)
    worker.models.publish_run("alice", "tiny", tiny_run)
    assert api.models.resolve("alice", "tiny").version == "1"
    lists = []
    original = api.storage.list
    api.storage.list = lambda prefix: lists.append(prefix) or original(prefix)
    assert api.models.resolve("alice", "tiny").version == "1"
    assert lists == [], "an unchanged listing is served from the cache"
    worker.models.publish_run("alice", "tiny", tiny_run)
    assert api.models.resolve("alice", "tiny").version == "2"
    assert lists == ["models/alice/"], "a publish elsewhere invalidates the cached listing"


def test_generate_through_a_real_worker(settings_s3: Settings, celery_worker_process, tiny_run: Path):
    ctx = build_context(settings_s3)
    ctx.models.publish_run("alice", "tiny", tiny_run)
    record = queue_generate(ctx, frames=20, formats=["ome-tiff", "mp4"])
    send_job(make_app(settings_s3), "generate", record.id)
    done = wait_for(ctx, record.id, finished)
    assert done.state == "succeeded", done.error
    assert done.attempts == 1 and done.progress.fraction == 1.0
    assert sorted(r.role for r in done.results) == ["preview"] + ["video"] * 4
    tiff = next(r for r in done.results if r.format == "ome-tiff")
    response = httpx.get(ctx.storage.link(tiff.key, tiff.filename, 60))
    assert response.status_code == 200 and hashlib.sha256(response.content).hexdigest() == tiff.sha256
    with tifffile.TiffFile(io.BytesIO(response.content)) as tif:
        assert tif.series[0].axes == "TYX" and tif.series[0].shape == (20, 32, 32)
    assert not ctx.storage.list(f"tmp/{record.id}/")
    assert ctx.transient.counters()["generated_frames"] == 40


def test_cancel_a_running_training_keeps_its_checkpoint(settings_s3: Settings, celery_worker_process, tmp_path: Path):
    ctx = build_context(settings_s3)
    record = queue_training(ctx, tmp_path, steps=500)
    send_job(make_app(settings_s3), "train", record.id)
    wait_for(ctx, record.id, lambda r: r.progress.step >= 1)
    ctx.jobs.request_cancel(record.id)
    done = wait_for(ctx, record.id, finished)
    assert done.state == "cancelled", done.error
    assert done.model == "cells:1"
    version = ctx.models.resolve("alice", "cells")
    assert 1 <= version.step < 500 and version.samples_key
    assert "grid" in version.data
    assert [r.role for r in done.results] == ["montage", "preview"]
    assert not ctx.storage.list(f"runs/{record.id}/")


def test_a_job_that_keeps_killing_workers_fails(settings_local: Settings, tiny_run: Path):
    ctx = build_context(settings_local)
    ctx.models.publish_run("alice", "tiny", tiny_run)
    record = queue_generate(ctx)
    record.state, record.attempts = "running", settings_local.max_attempts
    ctx.jobs.save(record)
    assert run_generate(ctx, record.id) == "failed"
    done = ctx.jobs.get(record.id)
    assert done.error.startswith(f"worker died {settings_local.max_attempts} times on this job")
    assert done.results == [] and ctx.transient.counters()["jobs_failed"] == 1


def test_unknown_model_fails_with_a_message_for_people(settings_local: Settings):
    ctx = build_context(settings_local)
    record = queue_generate(ctx, model="nothing-here")
    assert run_generate(ctx, record.id) == "failed"
    assert ctx.jobs.get(record.id).error.startswith("no model named 'nothing-here'")


class Receiver:
    """A webhook receiver that answers 500 to the first delivery and 200 afterwards."""

    def __init__(self) -> None:
        self.calls: list[tuple[bytes, dict[str, str]]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.calls.append((body, dict(self.headers)))
                self.send_response(500 if len(receiver.calls) == 1 else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    yield hook
    hook.server.shutdown()


def test_embedded_worker_generates_and_signs_its_webhook(settings_local: Settings, tiny_run: Path, receiver: Receiver):
    ctx = build_context(settings_local)
    ctx.models.publish_run("alice", "tiny", tiny_run)
    worker = EmbeddedWorker(ctx)
    try:
        record = queue_generate(ctx, formats=["ome-tiff"], webhook_url=receiver.url)
        worker.submit(record.id, "generate")
        done = wait_for(ctx, record.id, finished)
    finally:
        worker.stop(timeout_s=30)
    assert done.state == "succeeded", done.error
    tiff = next(r for r in done.results if r.format == "ome-tiff")
    with tifffile.TiffFile(ctx.storage.path(tiff.key)) as tif:
        assert tif.series[0].axes == "TYX" and tif.series[0].shape == (16, 32, 32)
    deadline = time.monotonic() + 10
    while len(receiver.calls) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(receiver.calls) == 2, "a webhook answered with 500 is sent again"
    body, headers = receiver.calls[-1]
    assert verify(body, headers[SIGNATURE_HEADER], settings_local.signing_secret.get_secret_value())
    assert not verify(body + b" ", headers[SIGNATURE_HEADER], settings_local.signing_secret.get_secret_value())
    summary = json.loads(body)
    assert summary["id"] == record.id and summary["state"] == "succeeded"
    assert sorted(summary["results"]) == sorted(r.filename for r in done.results)


def test_a_retried_training_resumes_from_its_uploaded_checkpoint(settings_local: Settings, tmp_path: Path, one_torch_thread):
    from savgan.model.config import TrainConfig, preset
    from savgan.model.data.sources import load_training_data
    from savgan.model.train import Trainer, TrainHooks
    from savgan.worker.jobs_runner import _upload_checkpoint, run_train

    ctx = build_context(settings_local)
    upload = recording_upload(ctx, tmp_path)
    request = TrainRequest(name="cells", steps=3, batch_size=2, n_critic=1, patch_method="grid", checkpoint_every=2, uploads=[upload])
    record = new_job("alice", "train", request.model_dump(mode="json"))
    record.state, record.attempts = "running", 1
    ctx.jobs.create(record)
    config = preset("cpu")
    data = load_training_data([str(ctx.storage.path(upload.key))], config, 0, show_progress=False, patch_method="grid")
    earlier = Trainer(config, TrainConfig(steps=2, batch_size=2, n_critic=1, checkpoint_every=2, sample_every=2), data.bank, tmp_path / "earlier", data.description)
    earlier.train(TrainHooks(show_progress_bar=False))
    _upload_checkpoint(ctx, record.id, tmp_path / "earlier")

    steps = []
    assert run_train(ctx, record.id, lambda p: steps.append(p.step)) == "succeeded"
    assert [s for s in steps if s] == [3], "steps 1 and 2 came from the checkpoint"
    done = ctx.jobs.get(record.id)
    assert done.attempts == 2 and done.model == "cells:1"
    assert ctx.models.resolve("alice", "cells").step == 3


def test_a_training_request_can_publish_the_weight_average(settings_local: Settings, tmp_path: Path, one_torch_thread):
    from savgan.worker.jobs_runner import run_train

    ctx = build_context(settings_local)
    record = queue_training(ctx, tmp_path, name="smooth", steps=2, ema_decay=0.5)
    assert run_train(ctx, record.id, lambda _: None) == "succeeded"
    folder = ctx.models.fetch(ctx.models.resolve("alice", "smooth"), tmp_path / "cache")
    assert json.loads((folder / "manifest.json").read_text())["train_config"]["ema_decay"] == 0.5


def test_terminating_a_task_records_the_job_as_cancelled(settings_s3: Settings, celery_worker_process, tiny_run: Path):
    ctx = build_context(settings_s3)
    ctx.models.publish_run("alice", "tiny", tiny_run)
    record = queue_generate(ctx, frames=64, count=16)
    app = make_app(settings_s3)
    send_job(app, "generate", record.id)
    wait_for(ctx, record.id, lambda r: r.progress.step >= 1)
    app.control.revoke(record.id, terminate=True)
    done = wait_for(ctx, record.id, finished, timeout_s=30)
    assert done.state == "cancelled" and done.results == []


def test_an_embedded_restart_picks_up_jobs_left_queued(settings_local: Settings, tiny_run: Path):
    """The embedded queue lives in memory: a restarted server must find unfinished jobs in storage."""
    from savgan.service.app import build_dispatcher

    ctx = build_context(settings_local)
    ctx.models.publish_run("alice", "tiny", tiny_run)
    left = queue_generate(ctx, formats=["ome-tiff"], count=1)
    done_before = queue_generate(ctx, formats=["ome-tiff"], count=1)
    done_before.state = "succeeded"
    ctx.jobs.save(done_before)
    assert [r.id for r in ctx.jobs.unfinished()] == [left.id]
    restarted = build_context(settings_local)
    dispatcher = build_dispatcher(restarted)
    try:
        assert wait_for(restarted, left.id, finished).state == "succeeded"
    finally:
        dispatcher.close()
