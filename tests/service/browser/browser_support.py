"""Helpers of the browser tests: a real embedded server on a free port, and a stand-in for the internet."""

from __future__ import annotations

import socket
import threading
from pathlib import Path


from conftest import ServerThread, free_port
from savgan.common.settings import Settings
from savgan.service.server import embedded_settings


class EmbeddedServer(ServerThread):
    """The embedded app under a real uvicorn in a thread; its settings need the port, so it is chosen first."""

    def __init__(self, base: Settings) -> None:
        port = free_port()
        self.settings = embedded_settings(base, "127.0.0.1", port)
        super().__init__(self.settings, port)

    def __enter__(self) -> EmbeddedServer:
        super().__enter__()
        return self


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
