"""The FastAPI application: ``create_app(settings)`` builds it; the lifespan builds the shared context once.

Distributed mode queues jobs to Celery by task name (this image has no torch); embedded mode
runs the same job code in a worker thread of this process. Tests may pass a prepared
``context`` and ``dispatcher``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from savgan.common.context import Context, build_context
from savgan.common.requests import TrainParameters
from savgan.common.settings import Settings, get_settings
from savgan.common.storage import LocalStorage
from savgan.service.dispatch import CeleryDispatcher, Dispatcher, EmbeddedDispatcher
from savgan.service.errors import install_outage_handlers
from savgan.service.schemas import ValidationErrorOut
from savgan.service.routes import (
    assets, docs_offline, files, generate, health, jobs, metrics, models, previews, server_info, train, ui,
)

log = logging.getLogger("savgan.service")

DESCRIPTION = """Synthesis of time-lapse microscopy videos (tumour-on-chip, phase contrast) with SAVGAN,
a video GAN with Nyström self-attention, and fine-tuning on your own recordings.

`POST /generate` or `POST /train` answer 202 with a job; follow `links.self` (poll) or
`links.events` (server-sent events) until it ends, then download `results[].url`.
Authenticate with `Authorization: Bearer <API key>`; each key sees only its own jobs and models.
Errors are `{"detail": "<message for a person>"}`."""


def build_dispatcher(ctx: Context) -> Dispatcher:
    if ctx.settings.mode == "embedded":
        from savgan.worker.embedded import EmbeddedWorker

        dispatcher = EmbeddedDispatcher(EmbeddedWorker(ctx), ctx.jobs)
        resumed = dispatcher.resume_unfinished()
        if resumed:
            log.info("embedded mode: queued again %d job(s) left unfinished by the previous run", resumed)
        return dispatcher
    return CeleryDispatcher(ctx.settings, ctx.jobs, ctx.transient)


def _install(app: FastAPI, ctx: Context, dispatcher: Dispatcher) -> None:
    app.state.ctx = ctx
    app.state.dispatcher = dispatcher
    app.state.metrics.watch(ctx, dispatcher)


def create_app(settings: Settings | None = None, *, context: Context | None = None, dispatcher: Dispatcher | None = None) -> FastAPI:
    settings = settings or (context.settings if context else get_settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = None
        if getattr(app.state, "ctx", None) is None:
            ctx = build_context(settings)
            owned = build_dispatcher(ctx)
            _install(app, ctx, owned)
        _log_startup(settings, app.state.ctx)
        try:
            yield
        finally:
            if owned is not None:
                owned.close()

    app = FastAPI(
        title="savgan",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served from the package by routes/docs_offline.py, so they work offline
        redoc_url=None,
        responses={500: {"description": "internal error (never caused by bad input)"}},
    )
    app.state.settings = settings
    app.state.keys = settings.owners_by_key()
    app.state.ctx = None
    app.state.metrics = metrics.Metrics()
    if context is not None:
        _install(app, context, dispatcher or build_dispatcher(context))

    for module in (generate, train, jobs, models, previews, health, server_info, metrics, docs_offline, assets, ui):
        app.include_router(module.router)
    if settings.storage == "local":
        app.include_router(files.router)
    app.add_middleware(metrics.MetricsMiddleware, metrics=app.state.metrics)
    _error_handlers(app)
    install_outage_handlers(app)
    app.openapi = lambda: _openapi(app, settings)  # type: ignore[method-assign]
    return app


def _log_startup(settings: Settings, ctx: Context) -> None:
    if settings.auth_disabled:
        log.warning("API keys are OFF (embedded mode): every request acts as owner 'local'. "
                    "Set SAVGAN_API_KEYS to require keys.")
    else:
        log.info("API keys on: %d key(s) configured", len(settings.owners_by_key()))
    if isinstance(ctx.storage, LocalStorage) and not settings.signing_secret.get_secret_value():
        log.warning("SAVGAN_SIGNING_SECRET is empty: download links are signed with an empty secret")
    log.info("savgan API ready: mode %s, storage %s", settings.mode, settings.storage)


def _describe(error: dict[str, Any]) -> str:
    loc = [str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path", "header")]
    where = ".".join(loc) or "request"
    return f"{where}: {error.get('msg', 'invalid')}"


def _error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in exc.errors()]
        detail = "; ".join(_describe(e) for e in errors) or "invalid request"
        return JSONResponse(
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
            content=jsonable_encoder({"detail": detail, "errors": errors}),
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"detail": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": f"internal error ({type(exc).__name__}); the server log has details"}, status_code=500)


def _openapi(app: FastAPI, settings: Settings) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    params = TrainParameters.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(params.pop("$defs", {}))
    components["TrainParameters"] = params
    post = schema["paths"]["/train"]["post"]
    post["requestBody"] = train.openapi_body(settings.max_upload_files, settings.max_upload_bytes)["requestBody"]
    # The schema says what this server enforces, not the models' wider bounds.
    server_limits = (
        ("GenerateRequest", "frames", settings.max_frames),
        ("GenerateRequest", "count", settings.max_videos_per_request),
        ("TrainParameters", "steps", settings.max_train_steps),
    )
    for model, field, limit in server_limits:
        prop = components.get(model, {}).get("properties", {}).get(field)
        if prop is not None:
            prop["description"] = prop.get("description", field) + f" (this server: at most {limit})"
            prop["maximum"] = limit
    # Validation errors answer {"detail": "<message>", "errors": [...]}, not FastAPI's default shape.
    components.setdefault("ValidationErrorOut", ValidationErrorOut.model_json_schema(ref_template="#/components/schemas/{model}"))
    for operations in schema["paths"].values():
        for operation in operations.values():
            if "422" in operation.get("responses", {}):
                operation["responses"]["422"] = {
                    "description": "invalid parameters, with a message naming the field and its limit",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ValidationErrorOut"}}},
                }
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    app.openapi_schema = schema
    return schema
