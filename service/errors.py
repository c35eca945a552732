"""503 with ``Retry-After`` whenever a backing service (Redis, the queue on it, S3) is down.

Registered as exception handlers rather than caught in each route, so every endpoint, present
and future, answers an outage the same way. Handled here, an outage also never reaches
Starlette's catch-all 500 handler, which re-raises into uvicorn: uvicorn then closes the
connection, and a client's next request on that keep-alive connection was reset.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse

from savgan.common.outages import OUTAGE_ERRORS, outage_of
from savgan.service.dispatch import DispatchError

log = logging.getLogger(__name__)


def unavailable(request: Request, detail: str) -> JSONResponse:
    retry_after = request.app.state.settings.retry_after_s
    return JSONResponse(
        {"detail": detail}, status_code=status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": str(retry_after)}
    )


async def _outage(request: Request, exc: Exception) -> JSONResponse:
    settings = request.app.state.settings
    outage = outage_of(exc, settings)
    if outage is None:
        raise exc  # not an outage (e.g. S3 AccessDenied): the catch-all 500 handler logs it
    log.warning("%s %s: %s", request.method, request.url.path, outage.message(settings.retry_after_s))
    return unavailable(request, outage.message(settings.retry_after_s))


async def _dispatch(request: Request, exc: Exception) -> JSONResponse:
    return unavailable(request, str(exc))


def install_outage_handlers(app: FastAPI) -> None:
    for error in OUTAGE_ERRORS:
        app.add_exception_handler(error, _outage)
    app.add_exception_handler(DispatchError, _dispatch)
