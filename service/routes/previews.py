"""What a model or a running training looks like, for a person choosing or watching one: a model
version's sample montage and model card, and a training's latest sample montage.

These answer with the bytes themselves, behind the API key like every other route, because a page
cannot put an ``Authorization`` header on an ``<img>``: it fetches them and shows the blob. (Stored
versions also carry a signed ``samples_url``; bundled ones have no storage key to sign.)
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException, Response, status

from savgan.common.context import Context
from savgan.common.models_store import ModelVersionInfo
from savgan.common.storage import ObjectNotFound
from savgan.model.layout import BUNDLED_ROOT, SAMPLES
from savgan.service.deps import ContextDep, OwnerDep
from savgan.service.routes._common import errors
from savgan.service.views import own_job
from savgan.worker.jobs_runner import run_prefix

router = APIRouter()

MODEL_CARD = "MODEL_CARD.md"
PNG = {200: {"content": {"image/png": {}}, "description": "a PNG: rows are latents, columns frames"}}


def _version(ctx: Context, owner: str, name: str, version: str) -> ModelVersionInfo:
    try:
        return ctx.models.resolve(owner, f"{name}:{version}")
    except LookupError as err:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(err)) from err


def _bundled_file(info: ModelVersionInfo, filename: str) -> Path | None:
    path = BUNDLED_ROOT / info.name / filename
    return path if info.source == "bundled" and path.is_file() else None


def _stored_bytes(ctx: Context, key: str) -> bytes | None:
    try:
        return ctx.storage.get_bytes(key)
    except ObjectNotFound:
        return None


@router.get(
    "/models/{name}/versions/{version}/samples.png",
    response_class=Response,
    responses={**PNG, **errors(401, 404)},
    tags=["models"],
    summary="A model version's sample montage",
)
def model_samples(name: str, version: str, owner: OwnerDep, ctx: ContextDep) -> Response:
    info = _version(ctx, owner, name, version)
    bundled = _bundled_file(info, SAMPLES)
    data = bundled.read_bytes() if bundled else _stored_bytes(ctx, info.samples_key) if info.samples_key else None
    if data is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"model {info.spec} has no sample montage")
    return Response(data, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})


@router.get(
    "/models/{name}/versions/{version}/card",
    response_class=Response,
    responses={200: {"content": {"text/markdown": {}}, "description": "the model card (Markdown)"}, **errors(401, 404)},
    tags=["models"],
    summary="A bundled model's card: status, data, training, metrics, licence",
)
def model_card(name: str, version: str, owner: OwnerDep, ctx: ContextDep) -> Response:
    info = _version(ctx, owner, name, version)
    card = _bundled_file(info, MODEL_CARD)
    if card is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"model {info.spec} has no model card; GET /models/{info.name} lists its data, steps, base model and metrics",
        )
    return Response(card.read_text(encoding="utf-8"), media_type="text/markdown; charset=utf-8")


@router.get(
    "/jobs/{job_id}/samples.png",
    response_class=Response,
    responses={**PNG, **errors(401, 404)},
    tags=["jobs"],
    summary="A training's latest sample montage (while it runs, and after)",
)
def training_samples(job_id: str, owner: OwnerDep, ctx: ContextDep) -> Response:
    """Updated at each checkpoint (every `checkpoint_every` steps); after the training, the
    published version's montage."""
    record = own_job(ctx, owner, job_id)
    if record.kind != "train":
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"job {job_id} is a generation; its montage is among its results")
    latest_checkpoint = run_prefix(record.id) + SAMPLES
    for key in (latest_checkpoint, *(r.key for r in record.results if r.role == "montage")):
        data = _stored_bytes(ctx, key)
        if data is not None:
            return Response(data, media_type="image/png", headers={"Cache-Control": "no-store"})
    every = record.params.get("checkpoint_every")
    raise HTTPException(status.HTTP_404_NOT_FOUND, f"no sample montage yet: this training writes one every {every} steps")
