"""Fixtures shared by the service and worker tests: a real S3 protocol server (moto), the real
Redis at db 15, a real Celery worker process, and settings for both deployment modes."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from pydantic import SecretStr

from savgan.common.settings import Settings
from savgan.common.storage import S3Storage

REDIS_TEST_URL = "redis://127.0.0.1:6379/15"
API_KEYS = "alice:alice-key-0123456789abcdef,bob:bob-key-0123456789abcdef"
SIGNING_SECRET = "test-signing-secret-0123456789"
WORKER_START_TIMEOUT_S = 90


def settings_env(settings: Settings) -> dict[str, str]:
    """The ``SAVGAN_*`` variables that rebuild ``settings`` in another process."""
    env = {}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        env[f"SAVGAN_{name.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


class WorkerProcess:
    """A real ``celery worker`` (prefork, one child) in its own process group, so kill() takes it all."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.process: subprocess.Popen | None = None
        self.name = ""

    def start(self) -> None:
        from savgan.worker.app import make_app

        self.name = f"test-{uuid.uuid4().hex[:8]}@localhost"
        log = (self.log_dir / f"{self.name}.log").open("wb")
        # One torch thread: the tests share two cores, and oversubscribed threads run ten times slower.
        env = {**os.environ, **settings_env(self.settings), "OMP_NUM_THREADS": "1"}
        command = [
            sys.executable, "-m", "celery", "-A", "savgan.worker.tasks", "worker",
            "-Q", "generate,train", "-c", "1", "-P", "prefork", "-n", self.name, "-l", "info",
            "--without-gossip", "--without-mingle",
        ]
        self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        app = make_app(self.settings)
        deadline = time.monotonic() + WORKER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited with {self.process.returncode}; see {log.name}")
            if any(self.name in reply for reply in app.control.ping(destination=[self.name], timeout=0.5)):
                return
        raise TimeoutError(f"worker did not answer ping within {WORKER_START_TIMEOUT_S} s; see {log.name}")

    def kill(self) -> None:
        """SIGKILL the worker and its pool children at once, like a lost machine."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def settings_s3(request: pytest.FixtureRequest, tmp_path: Path, s3_server: str) -> Iterator[Settings]:
    """Override fields with ``@pytest.mark.parametrize("settings_s3", [{...}], indirect=True)``."""
    client = redis.Redis.from_url(REDIS_TEST_URL)
    client.flushdb()
    fields = {
        "mode": "distributed",
        "storage": "s3",
        "s3_endpoint_url": s3_server,
        "s3_bucket": f"test-{uuid.uuid4().hex[:12]}",
        "s3_access_key_id": "testing",
        "s3_secret_access_key": "testing",
        "redis_url": REDIS_TEST_URL,
        "api_keys": API_KEYS,
        "signing_secret": SIGNING_SECRET,
        "worker_model_cache_dir": tmp_path / "model-cache",
        "device": "cpu",
        "generate_soft_time_limit_s": 60,
        "generate_time_limit_s": 70,
        "train_soft_time_limit_s": 120,
        "train_time_limit_s": 130,
        "visibility_timeout_s": 140,
        "webhook_attempts": 3,
        "webhook_timeout_s": 2.0,
    }
    settings = Settings(**{**fields, **getattr(request, "param", {})})
    S3Storage(settings).ensure_bucket()
    yield settings
    client.flushdb()
    client.close()


@pytest.fixture
def celery_worker_process(settings_s3: Settings, tmp_path: Path) -> Iterator[WorkerProcess]:
    worker = WorkerProcess(settings_s3, tmp_path)
    worker.start()
    yield worker
    worker.stop()


@pytest.fixture
def settings_local(tmp_path: Path) -> Settings:
    return Settings(
        mode="embedded",
        storage="local",
        local_storage_dir=tmp_path / "storage",
        api_keys=API_KEYS,
        signing_secret=SIGNING_SECRET,
        worker_model_cache_dir=tmp_path / "model-cache",
        device="cpu",
        webhook_attempts=3,
        webhook_timeout_s=2.0,
        webhook_allow_private=True,
    )


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained cpu-preset generator saved as a run folder (manifest + weights)."""
    from savgan.model import checkpoint as ckpt
    from savgan.model import registry

    record = registry.resolve("init:cpu")
    folder = tmp_path_factory.mktemp("tiny-run")
    ckpt.save_tensors(folder / ckpt.GENERATOR_WEIGHTS, registry.load_generator(record).state_dict())
    manifest = {**record.manifest, "physical": {"pixel_size_um": 0.65, "frame_interval_s": 300.0}}
    ckpt.write_json(folder / ckpt.MANIFEST, manifest)
    return folder
