"""Helpers of the browser tests: a real embedded server on a free port, and a stand-in for the internet."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import httpx
import uvicorn

from savgan.common.settings import Settings
from savgan.service.app import create_app
from savgan.service.server import embedded_settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class EmbeddedServer:
    """The embedded app under a real uvicorn in a thread; the settings need the port, so it is chosen first."""

    def __init__(self, base: Settings) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.settings = embedded_settings(base, "127.0.0.1", self.port)
        self.app = create_app(self.settings)
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> EmbeddedServer:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "uvicorn did not start"
            time.sleep(0.05)
        self.client = httpx.Client(base_url=self.url, timeout=30)
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(30)


def base_settings(root: Path, **fields: object) -> Settings:
    return Settings(
        local_storage_dir=root / "storage", worker_model_cache_dir=root / "model-cache", device="cpu", **fields
    )


# Chromium's own services (clock, component updates, sign-in), asked at start-up whatever the flags;
# exact names, so a page's CDN (fonts.googleapis.com, say) is still seen.
BROWSER_SERVICES = {"accounts.google.com", "clients2.google.com", "update.googleapis.com"}


def requested_host(request_line: str) -> str:
    """``CONNECT host:443 HTTP/1.1`` or ``GET http://host/path HTTP/1.1``: the host."""
    target = request_line.split(" ")[1] if " " in request_line else request_line
    return target.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0]


class OutsideWorld:
    """Stands in for the internet as the browser's proxy: it records what the browser asked for
    outside loopback (Chromium sends loopback requests direct) and answers nothing."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.asked: list[str] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return
            with connection:
                connection.settimeout(2)
                try:
                    self.asked.append(connection.recv(4096).split(b"\r\n", 1)[0].decode(errors="replace"))
                except OSError:
                    self.asked.append("(a connection that sent nothing)")

    def take(self) -> list[str]:
        """What pages asked for since the last call (the browser's own services left out)."""
        asked, self.asked = self.asked, []
        return [line for line in asked if requested_host(line) not in BROWSER_SERVICES]

    def close(self) -> None:
        self.sock.close()
