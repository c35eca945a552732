"""Turning stored records into response bodies (links signed per request)."""

from __future__ import annotations

import re
import time

from fastapi import HTTPException, Request, status

from savgan.common.context import Context
from savgan.common.jobs import JobRecord
from savgan.common.models_store import ModelInfo
from savgan.service.schemas import JobLinks, JobOut, ModelOut, ModelVersionOut, ResultOut, Timings

JOB_ID = re.compile(r"^[0-9a-f]{32}$")


def job_links(request: Request, job_id: str) -> JobLinks:
    base = str(request.base_url).rstrip("/")
    return JobLinks(self=f"{base}/jobs/{job_id}", events=f"{base}/jobs/{job_id}/events", cancel=f"{base}/jobs/{job_id}")


def timings(record: JobRecord, now: float | None = None) -> Timings:
    now = now or time.time()
    if record.started_at is None:
        queued = (record.finished_at or now) - record.created_at
        return Timings(queued_s=round(max(0.0, queued), 3), run_s=None)
    run = (record.finished_at or now) - record.started_at
    return Timings(queued_s=round(max(0.0, record.started_at - record.created_at), 3), run_s=round(max(0.0, run), 3))


def job_out(record: JobRecord, request: Request, ctx: Context) -> JobOut:
    ttl = ctx.settings.link_ttl_s
    results = [
        ResultOut(**r.model_dump(exclude={"key"}), url=ctx.storage.link(r.key, r.filename, ttl)) for r in record.results
    ]
    cancel_requested = not record.finished and ctx.jobs.cancel_requested(record.id)
    return JobOut(
        id=record.id,
        kind=record.kind,
        state=record.state,
        progress=record.progress,
        created_at=record.created_at,
        started_at=record.started_at,
        finished_at=record.finished_at,
        timings=timings(record),
        error=record.error,
        cancel_requested=cancel_requested,
        results=results,
        model=record.model,
        params={k: v for k, v in record.params.items() if k != "uploads"}
        | ({"uploads": [u.get("filename") for u in record.params.get("uploads", [])]} if record.kind == "train" else {}),
        links=job_links(request, record.id),
    )


def own_job(ctx: Context, owner: str, job_id: str) -> JobRecord:
    """The caller's job, or 404: another owner's id answers exactly like an unknown one."""
    record = ctx.jobs.get(job_id) if JOB_ID.match(job_id) else None
    if record is None or record.owner != owner:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no job {job_id!r}")
    return record


def model_out(model: ModelInfo, ctx: Context) -> ModelOut:
    ttl = ctx.settings.link_ttl_s
    versions = [
        ModelVersionOut(
            **v.model_dump(),
            ref=v.spec,
            samples_url=ctx.storage.link(v.samples_key, f"{v.name}-{v.version}-samples.png", ttl) if v.samples_key else None,
        )
        for v in model.versions
    ]
    return ModelOut(name=model.name, owner=model.owner, versions=versions)
