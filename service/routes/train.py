from __future__ import annotations

import uuid
from functools import partial

from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from savgan.common.context import Context
from savgan.common.jobs import new_job
from savgan.common.models_store import ModelVersionInfo
from savgan.common.requests import TrainParameters, TrainRequest, Upload, check_limits
from savgan.common.webhooks import check_webhook_url
from savgan.service.deps import ContextDep, DispatcherDep, OwnerDep
from savgan.service.routes._common import errors, queue_job, take_back
from savgan.service.schemas import JobOut
from savgan.service.uploads import ACCEPTED, FILES_FIELD, PARAMS_FIELD, MultipartUpload, ReceivedFile, UploadRejected
from savgan.service.views import job_out

router = APIRouter(tags=["train"])

MULTIPART_OVERHEAD = 1024 * 1024


def openapi_body(max_files: int, max_bytes: int) -> dict:
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": [FILES_FIELD, PARAMS_FIELD],
                        "properties": {
                            FILES_FIELD: {
                                "type": "array",
                                "items": {"type": "string", "format": "binary"},
                                "minItems": 1,
                                "maxItems": max_files,
                                "description": f"one or more recordings: {ACCEPTED}; at most {max_files} files of "
                                f"{max_bytes} bytes each. The type is read from the content, not the name. Each needs "
                                "at least as many frames, and frames at least as large, as the model's training clip "
                                "(preset cpu: 16 x 32 x 32; 24 frames or more are better)",
                            },
                            PARAMS_FIELD: {
                                "allOf": [{"$ref": "#/components/schemas/TrainParameters"}],
                                "description": "the training parameters as a JSON object (a form field holding JSON)",
                                "example": TrainParameters.model_config["json_schema_extra"]["example"],
                            },
                        },
                    },
                    "encoding": {PARAMS_FIELD: {"contentType": "application/json"}},
                }
            },
        }
    }


def required_clip(params: TrainParameters, base: ModelVersionInfo | None) -> tuple[int, int, str]:
    """(frames, size, what) a recording must at least hold for one training patch."""
    if base is not None:
        frames, size, _ = (int(n) if n.isdigit() else 0 for n in base.clip.split("x"))
        return frames, size, f"base model {base.spec}"
    from savgan.model.config import preset

    config = preset(params.preset)
    return config.frames, config.size, f"preset {params.preset!r}"


def check_fit(files: list[ReceivedFile], frames: int, size: int, what: str) -> None:
    for f in files:
        if f.frames < frames:
            raise UploadRejected(
                422,
                f"{f.filename}: has {f.frames} frames, fewer than the {frames} frames of one training clip of {what} "
                f"({frames + frames // 2} or more are better); upload a longer recording",
            )
        if f.height < size or f.width < size:
            raise UploadRejected(
                422,
                f"{f.filename}: frames are {f.height}x{f.width} pixels (HxW), smaller than the {size}x{size} "
                f"training patch of {what}; upload larger frames",
            )


def parse_params(text: str | None) -> TrainParameters:
    if text is None:
        raise UploadRejected(422, "the form field `params` (training parameters as JSON) is missing")
    try:
        return TrainParameters.model_validate_json(text)
    except ValidationError as err:
        raise RequestValidationError(
            [{**e, "loc": ("body", PARAMS_FIELD, *e["loc"])} for e in err.errors(include_url=False)]
        ) from None


def validate(ctx: Context, owner: str, upload: MultipartUpload) -> TrainRequest:
    params = parse_params(upload.params)
    if not upload.files:
        raise UploadRejected(422, f"no recordings: send one or more files in the form field `{FILES_FIELD}`")
    try:
        check_limits(params, ctx.settings)
        if params.webhook_url:
            check_webhook_url(str(params.webhook_url), ctx.settings)
    except ValueError as err:
        raise UploadRejected(422, str(err)) from err
    base = None
    if params.base_model:
        try:
            base = ctx.models.resolve(owner, params.base_model)
        except LookupError as err:
            raise UploadRejected(404, f"base_model: {err}") from err
    check_fit(upload.files, *required_clip(params, base))
    uploads = [Upload(key=f.key, filename=f.filename, bytes=f.bytes, format=f.format) for f in upload.files]
    fields = params.model_dump(mode="json") | ({"base_model": base.spec} if base else {})
    return TrainRequest(**fields, uploads=uploads)


@router.post(
    "/train",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobOut,
    responses=errors(400, 401, 404, 413, 415, 422, 503),
    summary="Fine-tune (or train) a model on uploaded recordings",
    openapi_extra=openapi_body(16, 512 * 2**20),
)
async def train(request: Request, response: Response, owner: OwnerDep, ctx: ContextDep, dispatcher: DispatcherDep) -> JobOut:
    """Multipart upload: `files` (one or more recordings) and `params` (TrainParameters as JSON).
    Uploads are streamed to storage, typed from their content and checked (frame count and
    size against the model's training clip, truncation) before the job is queued; a rejected
    request leaves nothing stored. The job produces a new version of the model `name`."""
    settings = ctx.settings
    content_type = request.headers.get("content-type", "")
    from python_multipart.multipart import parse_options_header

    media, options = parse_options_header(content_type)
    if media != b"multipart/form-data":
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            f"send multipart/form-data with `{FILES_FIELD}` (recordings) and `{PARAMS_FIELD}` (JSON), not {content_type or 'no content type'}",
        )
    boundary = options.get(b"boundary")
    if not boundary:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "the multipart content type has no boundary")
    declared = request.headers.get("content-length", "")
    limit = settings.max_upload_files * (settings.max_upload_bytes + MULTIPART_OVERHEAD)
    if declared.isdigit() and int(declared) > limit:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"the request is {declared} bytes; this server takes at most {settings.max_upload_files} files of "
            f"{settings.max_upload_bytes} bytes each",
        )
    job_id = uuid.uuid4().hex
    upload = MultipartUpload(ctx.storage, job_id, settings.max_upload_bytes, settings.max_upload_files)
    try:
        await upload.receive(boundary, request.stream())
        train_request = await run_in_threadpool(validate, ctx, owner, upload)
        record = new_job(owner, "train", train_request.model_dump(mode="json"),
                         str(train_request.webhook_url) if train_request.webhook_url else None)
        record.id = job_id
        await run_in_threadpool(queue_job, ctx, dispatcher, record)
    except BaseException as err:
        # Any rejection, a client that went away or a job that could not be queued leaves nothing
        # of this request in storage.
        await run_in_threadpool(take_back, ctx, err, partial(ctx.storage.delete_prefix, upload.prefix), upload.prefix)
        if isinstance(err, UploadRejected):
            raise HTTPException(err.status_code, err.detail) from err
        if isinstance(err, ClientDisconnect):
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "the client disconnected before the upload was complete") from err
        raise
    finally:
        upload.close()
    out = job_out(record, request, ctx)
    response.headers["Location"] = out.links.self
    return out
