from __future__ import annotations

import asyncio
import json
import time
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from savgan.common.context import Context
from savgan.common.jobs import TERMINAL_STATES
from savgan.service.deps import ContextDep, DispatcherDep, OwnerDep
from savgan.service.routes._common import errors
from savgan.service.schemas import JobList, JobOut
from savgan.service.views import job_out, own_job

router = APIRouter(prefix="/jobs", tags=["jobs"])

EVENT_POLL_S = 0.5
FULL_READ_EVERY_S = 5.0
KEEPALIVE_S = 15.0


@router.get("", response_model=JobList, responses=errors(401, 422), summary="The caller's jobs, newest first")
def list_jobs(
    request: Request,
    owner: OwnerDep,
    ctx: ContextDep,
    limit: Annotated[int, Query(ge=1, le=100, description="jobs per page")] = 20,
    before: Annotated[
        str | None, Query(pattern=r"^[0-9a-f]{32}$", description="the `next` cursor of the previous page (a job id)")
    ] = None,
) -> JobList:
    records = ctx.jobs.list(owner, limit + 1, before)
    page, more = records[:limit], len(records) > limit
    cursor = page[-1].id if more and page else None
    next_url = str(request.url.include_query_params(limit=limit, before=cursor)) if cursor else None
    return JobList(jobs=[job_out(r, request, ctx) for r in page], next=cursor, next_url=next_url)


@router.get("/{job_id}", response_model=JobOut, responses=errors(401, 404), summary="A job: state, progress, results")
def get_job(job_id: str, request: Request, owner: OwnerDep, ctx: ContextDep) -> JobOut:
    return job_out(own_job(ctx, owner, job_id), request, ctx)


@router.delete(
    "/{job_id}",
    response_model=JobOut,
    status_code=status.HTTP_200_OK,
    responses={**errors(401, 404, 409), 202: {"model": JobOut, "description": "running: asked to stop at its next step"}},
    summary="Cancel a job",
)
def cancel_job(job_id: str, request: Request, response: Response, owner: OwnerDep, ctx: ContextDep, dispatcher: DispatcherDep) -> JobOut:
    """Queued: cancelled at once and never starts (200). Running: asked to stop at its next step (202);
    a training keeps its last checkpoint as a model version. Finished: 409."""
    record = own_job(ctx, owner, job_id)
    if record.finished:
        raise HTTPException(status.HTTP_409_CONFLICT, f"job {job_id} already ended ({record.state}); nothing to cancel")
    dispatcher.cancel(record)  # sets the flag the runner checks before starting and between steps
    if record.state == "queued":
        latest = ctx.jobs.get(job_id) or record
        if latest.state == "queued":
            latest.state, latest.finished_at = "cancelled", time.time()
            ctx.jobs.save(latest)
            ctx.transient.incr("jobs_cancelled")
            return job_out(latest, request, ctx)
        record = latest
    response.status_code = status.HTTP_202_ACCEPTED
    return job_out(record, request, ctx)


def _sse(event: str, data: str) -> str:
    return f"event: {event}\ndata: {data}\n\n"


@router.get(
    "/{job_id}/events",
    responses={200: {"content": {"text/event-stream": {}}, "description": "`progress` events, then one `end` event"}, **errors(401, 404)},
    response_class=StreamingResponse,
    summary="Server-sent events of a job's progress until it ends",
)
def job_events(job_id: str, request: Request, owner: OwnerDep, ctx: ContextDep) -> StreamingResponse:
    """Each `progress` event carries {state, progress}; the stream ends with an `end` event holding
    the whole job (results with links). Comments keep idle connections open."""
    record = own_job(ctx, owner, job_id)
    return StreamingResponse(
        _events(ctx, request, record.id, record.finished),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _events(ctx: Context, request: Request, job_id: str, finished: bool):
    last: tuple[str, str] | None = None
    last_full = last_sent = time.monotonic()
    while not finished:
        live = await run_in_threadpool(ctx.transient.read, job_id)
        now = time.monotonic()
        if "state" not in live or now - last_full > FULL_READ_EVERY_S:
            # Transient state lost (Redis restarted) or stale: the durable record is the truth.
            record = await run_in_threadpool(ctx.jobs.get, job_id)
            last_full = now
            if record is None:
                break
            live = {"state": record.state, "progress": record.progress.model_dump_json()}
        current = (live["state"], live.get("progress", "{}"))
        if current != last:
            last, last_sent = current, now
            yield _sse("progress", json.dumps({"state": current[0], "progress": json.loads(current[1])}))
        elif now - last_sent > KEEPALIVE_S:
            last_sent = now
            yield ": keep-alive\n\n"
        if current[0] in TERMINAL_STATES:
            break
        if await request.is_disconnected():
            return
        await asyncio.sleep(EVENT_POLL_S)
    record = await run_in_threadpool(ctx.jobs.get, job_id)
    if record is not None:
        yield _sse("end", job_out(record, request, ctx).model_dump_json())
