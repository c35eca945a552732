from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from savgan.service.deps import ContextDep, OwnerDep
from savgan.service.routes._common import errors
from savgan.service.schemas import ModelOut
from savgan.service.views import model_out

router = APIRouter(prefix="/models", tags=["models"])


@router.get("", response_model=list[ModelOut], responses=errors(401), summary="The caller's models and the bundled ones")
def list_models(owner: OwnerDep, ctx: ContextDep) -> list[ModelOut]:
    return [model_out(m, ctx) for m in ctx.models.list_models(owner)]


@router.get("/{name}", response_model=ModelOut, responses=errors(401, 404), summary="A model: versions, preset, data, metrics")
def get_model(name: str, owner: OwnerDep, ctx: ContextDep) -> ModelOut:
    model = ctx.models.get_model(owner, name)
    if model is None:
        known = ", ".join(m.name for m in ctx.models.list_models(owner)) or "none yet"
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no model named {name!r}; known models: {known}")
    return model_out(model, ctx)
