"""``GET /info``: what a client must know before its first request, answered without a key.

The page reads it to decide whether to ask for an API key at all (embedded mode with keys off
asks nothing) and to set its form limits to this server's; the server still checks every request.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from savgan.service.deps import SettingsDep

router = APIRouter(tags=["health"])


class LimitsOut(BaseModel):
    max_frames: int = Field(description="frames per generated video")
    max_videos_per_request: int
    max_train_steps: int
    max_upload_files: int = Field(description="recordings per training")
    max_upload_bytes: int = Field(description="bytes per recording")


class ServerInfoOut(BaseModel):
    version: str
    mode: str = Field(description="embedded (one process) or distributed (queue and workers)")
    keys_required: bool = Field(description="false only in embedded mode with keys switched off")
    limits: LimitsOut


@router.get("/info", response_model=ServerInfoOut, summary="Whether an API key is needed, and this server's limits")
def server_info(request: Request, settings: SettingsDep) -> ServerInfoOut:
    return ServerInfoOut(
        version=request.app.version,
        mode=settings.mode,
        keys_required=not settings.auth_disabled,
        limits=LimitsOut(
            max_frames=settings.max_frames,
            max_videos_per_request=settings.max_videos_per_request,
            max_train_steps=settings.max_train_steps,
            max_upload_files=settings.max_upload_files,
            max_upload_bytes=settings.max_upload_bytes,
        ),
    )
