"""``savgan serve [--embedded]``: the API under uvicorn; embedded adds the worker thread and local storage.

uvicorn waits on SIGTERM for every open connection to end, and a server-sent event stream of a
queued job never ends by itself: without ``timeout_graceful_shutdown`` a stopping API needed
SIGKILL. After ``shutdown_grace_s`` the streams are closed; clients reconnect (``EventSource``
does by itself) to a running server and get the job's state, the terminal event once it ended.
"""

from __future__ import annotations

import logging
import secrets

from savgan.common.settings import Settings, get_settings

log = logging.getLogger("savgan.service")


def embedded_settings(settings: Settings, host: str, port: int) -> Settings:
    """One process, no Redis, no S3: local-folder storage, keys off unless some are configured."""
    overrides: dict = {"mode": "embedded", "storage": "local"}
    if not settings.owners_by_key():
        overrides["auth_disabled"] = True
    if not settings.signing_secret.get_secret_value():
        overrides["signing_secret"] = secrets.token_hex(32)  # links then last for this process's life
    if "public_base_url" not in settings.model_fields_set:
        shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        overrides["public_base_url"] = f"http://{shown}:{port}"
    fields = {name: getattr(settings, name) for name in Settings.model_fields}
    return Settings(**{**fields, **overrides})


def serve(host: str = "127.0.0.1", port: int = 8000, embedded: bool = False, settings: Settings | None = None,
          log_level: str = "info") -> None:
    import uvicorn

    from savgan.service.app import create_app

    settings = settings or get_settings()
    if embedded:
        settings = embedded_settings(settings, host, port)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if embedded:
        log.info("embedded mode: storage in %s, jobs run in this process", settings.local_storage_dir.resolve())
    if not embedded and settings.api_workers > 1:
        # Each worker process builds its app from the environment: that is where these settings came from.
        uvicorn.run("savgan.service.app:create_app", factory=True, workers=settings.api_workers, host=host, port=port,
                    log_level=log_level, proxy_headers=True, timeout_graceful_shutdown=settings.shutdown_grace_s)
        return
    uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level, proxy_headers=True,
                timeout_graceful_shutdown=settings.shutdown_grace_s)
