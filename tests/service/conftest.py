"""Fixtures shared by the service and worker tests: a real S3 protocol server (moto, in this
process or in its own to be frozen), the real Redis at db 15 or a private ``redis-server`` to
stop and start, a real Celery worker process, the API under real uvicorn, and settings for
both deployment modes."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
import uvicorn
from pydantic import SecretStr

from savgan.common.settings import Settings
from savgan.service.app import create_app
from savgan.common.storage import S3Storage

REDIS_TEST_URL = "redis://127.0.0.1:6379/15"
API_KEYS = "alice:alice-key-0123456789abcdef,bob:bob-key-0123456789abcdef"
SIGNING_SECRET = "test-signing-secret-0123456789"
WORKER_START_TIMEOUT_S = 90
SERVER_START_TIMEOUT_S = 60
REDIS_START_TIMEOUT_S = 10


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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerThread:
    """A real uvicorn serving the app on a free loopback port (or ``port``), in a thread of the test process."""

    def __init__(self, settings: Settings, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(settings)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> httpx.Client:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "uvicorn did not start"
            time.sleep(0.05)
        self.client = httpx.Client(base_url=self.url, timeout=30)
        return self.client

    def __exit__(self, *exc: object) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(30)


def wait_until_answering(process: subprocess.Popen, url: str, log: Path, timeout_s: float) -> None:
    """Poll ``url`` until any HTTP answer comes, failing early if ``process`` exits."""
    deadline = time.monotonic() + timeout_s
    while True:
        assert process.poll() is None, f"exited with {process.returncode}: {log.read_text()[-3000:]}"
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            assert time.monotonic() < deadline, f"{url} did not answer within {timeout_s} s: {log.read_text()[-3000:]}"
            time.sleep(0.1)


class PrivateRedis:
    """A ``redis-server`` owned by one test; restarting it on the same folder replays its AOF."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        command = [
            "redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.folder),
            "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--logfile", "redis.log",
        ]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + REDIS_START_TIMEOUT_S
        while True:
            assert self.process.poll() is None, (self.folder / "redis.log").read_text()
            try:
                with self.client() as client:
                    client.ping()
                return
            except redis.exceptions.RedisError:  # BusyLoadingError while the AOF replays, refused before bind
                assert time.monotonic() < deadline, f"redis-server on port {self.port} did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM, as ``docker compose restart`` sends: Redis fsyncs its AOF and exits."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    folder = tmp_path / "redis"
    folder.mkdir()
    server = PrivateRedis(folder)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def settings_private(settings_s3: Settings, private_redis: PrivateRedis) -> Settings:
    """``settings_s3`` (moto bucket, keys, short limits) with the broker and job state on the private Redis."""
    return settings_s3.model_copy(update={"redis_url": private_redis.url})


class MotoProcess:
    """moto's S3 server in a process of its own, so a test can freeze it (SIGSTOP) like a hung
    storage server: connections are still accepted by the kernel, but nothing ever answers."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log_dir / f"moto-{self.port}.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        wait_until_answering(self.process, self.url, self.log, SERVER_START_TIMEOUT_S)

    def freeze(self) -> None:
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.thaw()
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture
def moto_process(tmp_path: Path) -> Iterator[MotoProcess]:
    server = MotoProcess(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class ApiServer:
    """The API under real uvicorn in its own process, started by ``savgan serve`` from ``settings``
    like a deployment."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.settings = settings
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log_dir / f"api-{self.port}.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        env = {**os.environ, **settings_env(self.settings), "OMP_NUM_THREADS": "1"}
        command = [sys.executable, "-m", "savgan.cli.main", "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        wait_until_answering(self.process, f"{self.url}/livez", self.log, SERVER_START_TIMEOUT_S)

    def stop(self, timeout_s: float = 10) -> float:
        """SIGTERM, as ``docker stop`` sends; SIGKILL after ``timeout_s``. The seconds it took to exit."""
        started = time.monotonic()
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return time.monotonic() - started


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
