from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response, status

from savgan.common.jobs import new_job
from savgan.common.requests import GenerateRequest, check_limits
from savgan.common.webhooks import check_webhook_url
from savgan.service.deps import ContextDep, DispatcherDep, OwnerDep
from savgan.service.routes._common import errors, queue_job
from savgan.service.schemas import JobOut
from savgan.service.views import job_out

router = APIRouter(tags=["generate"])


@router.post(
    "/generate",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobOut,
    responses=errors(400, 401, 404, 422, 503),
    summary="Queue the synthesis of one or more videos",
)
def generate(body: GenerateRequest, request: Request, response: Response, owner: OwnerDep, ctx: ContextDep, dispatcher: DispatcherDep) -> JobOut:
    """Same seed, model version and parameters give the same video on the same hardware.
    The model is resolved now (`name` means its newest version), so the job records the exact
    `name:version` it will use. Poll `links.self` or follow `links.events`."""
    try:
        check_limits(body, ctx.settings)
        if body.webhook_url:
            check_webhook_url(str(body.webhook_url), ctx.settings)
    except ValueError as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(err)) from err
    try:
        info = ctx.models.resolve(owner, body.model)
    except LookupError as err:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(err)) from err
    params = body.model_dump(mode="json") | {"model": info.spec}
    record = new_job(owner, "generate", params, str(body.webhook_url) if body.webhook_url else None)
    queue_job(ctx, dispatcher, record)
    out = job_out(record, request, ctx)
    response.headers["Location"] = out.links.self
    return out
