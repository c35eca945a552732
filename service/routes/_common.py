"""Shared route helpers: documented error responses, queueing a created record."""

from __future__ import annotations

from fastapi import HTTPException, status

from savgan.common.context import Context
from savgan.common.jobs import JobRecord
from savgan.service.dispatch import Dispatcher, DispatchError
from savgan.service.schemas import ErrorOut, ValidationErrorOut


def errors(*codes: int) -> dict[int | str, dict]:
    descriptions = {
        400: "malformed request",
        401: "missing or unknown API key",
        404: "not found (another owner's job answers the same)",
        409: "conflict with the job's state",
        413: "upload too large or too many files",
        415: "unsupported upload type (read from the content)",
        422: "invalid parameters, with a message naming the field and its limit",
        503: "a backend (queue, storage, workers) is unreachable",
    }
    return {
        code: {"model": ValidationErrorOut if code == 422 else ErrorOut, "description": descriptions[code]}
        for code in codes
    }


def queue_job(ctx: Context, dispatcher: Dispatcher, record: JobRecord) -> None:
    """Create the durable record, then queue it; a queue that cannot be reached fails the job, 503."""
    ctx.jobs.create(record)
    try:
        dispatcher.submit(record)
    except DispatchError as err:
        record.state, record.error = "failed", str(err)
        ctx.jobs.save(record)
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(err)) from err
    ctx.transient.incr("jobs_submitted")
    ctx.transient.incr(f"jobs_submitted:{record.kind}")
