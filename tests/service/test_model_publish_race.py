"""Model versions under concurrent publishers, against moto's real S3 server and the local folder.

Two trainings finishing with the same model name once got the same version: the second
overwrote the first, and a version ended up with one run's manifest and the other's weights.
Here real processes publish at the same moment; every run must get a version of its own whose
files are that run's, and a reader must refuse a version whose files differ from its manifest.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from savgan.common.models_store import DamagedModel, ModelStore
from savgan.common.settings import Settings
from savgan.common.storage import ConditionalWritesUnsupported, ObjectExists, S3Storage, Storage, build_storage
from savgan.model.layout import GENERATOR_WEIGHTS, MANIFEST, TRAINING_STATE

PUBLISHERS = 6
# Large enough that the uploads of racing publishers overlap, small enough for two shared cores.
WEIGHTS_BYTES = 512 * 1024
PUBLISH_TIMEOUT_S = 120


@pytest.fixture(params=["s3", "local"])
def settings(request: pytest.FixtureRequest) -> Settings:
    """Each test runs against moto's S3 server (``settings_s3``) and the local folder (``settings_local``)."""
    return request.getfixturevalue(f"settings_{request.param}")


def make_run(folder: Path, run: int) -> Path:
    """A run folder whose weights are its own (random bytes: publishing never parses them)."""
    folder.mkdir(parents=True)
    (folder / GENERATOR_WEIGHTS).write_bytes(os.urandom(WEIGHTS_BYTES))
    (folder / TRAINING_STATE).write_bytes(os.urandom(WEIGHTS_BYTES))
    manifest = {"run": run, "step": run, "model_config": {"arch": "savgan", "frames": 16, "size": 32}}
    (folder / MANIFEST).write_text(json.dumps(manifest))
    return folder


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def publish(settings: Settings, run_dir: Path, start: Barrier, versions: multiprocessing.Queue) -> None:
    """One publisher process: waits for the others, then publishes its run as ``cells``."""
    store = ModelStore(build_storage(settings))
    start.wait(PUBLISH_TIMEOUT_S)
    versions.put(store.publish_run("alice", "cells", run_dir).version)


def test_racing_publishers_get_distinct_intact_versions(settings: Settings, tmp_path: Path):
    runs = [make_run(tmp_path / f"run-{i}", i) for i in range(PUBLISHERS)]
    spawn = multiprocessing.get_context("spawn")
    start, versions = spawn.Barrier(PUBLISHERS), spawn.Queue()
    processes = [spawn.Process(target=publish, args=(settings, run, start, versions)) for run in runs]
    for process in processes:
        process.start()
    for process in processes:
        process.join(PUBLISH_TIMEOUT_S)
    assert [p.exitcode for p in processes] == [0] * PUBLISHERS, "a publisher failed; its traceback is above"
    claimed = sorted(int(versions.get(timeout=5)) for _ in runs)
    # Distinct, not necessarily 1 to 6: a claim retried after a lost answer skips a number, harmlessly.
    assert len(set(claimed)) == PUBLISHERS, f"publishers got versions {claimed}: some share one"

    store = ModelStore(build_storage(settings))
    listed = store.get_model("alice", "cells").versions
    assert sorted(int(v.version) for v in listed) == claimed
    published_runs = set()
    for info in listed:
        manifest = json.loads(store.storage.get_bytes(info.prefix + MANIFEST))
        run = runs[manifest["run"]]
        published_runs.add(manifest["run"])
        for filename in (GENERATOR_WEIGHTS, TRAINING_STATE):
            stored = store.storage.get_bytes(info.prefix + filename)
            assert sha256(stored) == sha256((run / filename).read_bytes()), f"{info.spec}: {filename} of another run"
            assert manifest["files"][filename]["sha256"] == sha256(stored), f"{info.spec}: manifest and {filename} differ"
        folder = store.fetch(info, tmp_path / "cache")
        assert (folder / GENERATOR_WEIGHTS).read_bytes() == (run / GENERATOR_WEIGHTS).read_bytes()
    assert published_runs == set(range(PUBLISHERS)), "a run's version was overwritten by another run"


def test_fetch_refuses_a_version_whose_weights_differ_from_its_manifest(settings: Settings, tmp_path: Path):
    store = ModelStore(build_storage(settings))
    info = store.publish_run("alice", "cells", make_run(tmp_path / "run", 0))
    store.storage.put_bytes(info.prefix + GENERATOR_WEIGHTS, os.urandom(WEIGHTS_BYTES))
    with pytest.raises(DamagedModel, match=f"model cells:1 of alice is damaged in storage: {GENERATOR_WEIGHTS} has"):
        store.fetch(info, tmp_path / "cache")
    assert not (tmp_path / "cache" / "alice" / "cells" / "1").exists(), "a damaged version must not be cached"


def test_create_exclusive_refuses_a_second_create(settings: Settings):
    storage: Storage = build_storage(settings)
    storage.create_exclusive("claims/a.json", b"first")
    with pytest.raises(ObjectExists):
        storage.create_exclusive("claims/a.json", b"second")
    assert storage.get_bytes("claims/a.json") == b"first"
    assert storage.list("claims/") == ["claims/a.json"], "the refused create must leave nothing behind"


class WithoutConditionalWrites(BaseHTTPRequestHandler):
    """An S3 server from before conditional writes: a PUT with If-None-Match gets 501 NotImplemented."""

    def do_PUT(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = b"<?xml version='1.0'?><Error><Code>NotImplemented</Code><Message>not implemented</Message></Error>"
        self.send_response(501)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def old_s3_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), WithoutConditionalWrites)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_create_exclusive_on_a_server_without_conditional_writes_says_so(settings_s3: Settings, old_s3_server: str):
    storage = S3Storage(settings_s3.model_copy(update={"s3_endpoint_url": old_s3_server}))
    refusal = f"the S3 server at {old_s3_server} does not support conditional writes"
    with pytest.raises(ConditionalWritesUnsupported, match=refusal):
        storage.create_exclusive("claims/a.json", b"first")
