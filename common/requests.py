"""What a job asks for: validated at the API, stored in the job record, read back by the worker.

The same pydantic models serve the OpenAPI schema (limits and examples) and the worker, so
the two sides cannot drift apart. Limits that depend on configuration (frame and video
counts, training steps) are checked against :class:`Settings` by :func:`check_limits`.
Integer fields are strict: ``"frames": "10"`` or ``"seed": false`` is a 422, not a silent cast.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl

from savgan.common.settings import Settings

VideoFormat = Literal["ome-tiff", "imagej-tiff", "mp4", "gif", "png"]
MODEL_SPEC_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}(:[A-Za-z0-9._-]{1,32})?$"
NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"


class GenerateRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {"seed": 42, "frames": 64, "count": 2, "model": "mmnist", "formats": ["ome-tiff", "mp4"]}
        },
    )

    seed: int = Field(0, ge=0, le=2**31 - 1, strict=True, description="same seed, model and parameters give the same video")
    frames: int = Field(32, ge=1, le=1024, strict=True, description="frames per video; longer than the trained clip is fine")
    count: int = Field(1, ge=1, le=64, strict=True, description="number of videos")
    model: str = Field("mmnist", pattern=MODEL_SPEC_PATTERN, description="model name, optionally name:version")
    formats: list[VideoFormat] = Field(["ome-tiff"], min_length=1, max_length=5, description="output files per video")
    pixel_size_um: float | None = Field(None, gt=0, le=1000, description="metadata; default: the model's training data")
    frame_interval_s: float | None = Field(None, gt=0, le=86400, description="metadata; default: the model's")
    webhook_url: HttpUrl | None = Field(None, description="POSTed a signed JSON summary when the job ends")


class TrainParameters(BaseModel):
    """The JSON part of ``POST /train`` (the recordings come as files beside it)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"example": {"name": "my-cells", "base_model": "toc-sim", "steps": 500}},
    )

    name: str = Field(pattern=NAME_PATTERN, description="name of the new model; each training adds a version")
    base_model: str | None = Field(
        None, pattern=MODEL_SPEC_PATTERN, description="model to fine-tune; none: train from scratch at `preset`"
    )
    preset: Literal["cpu", "paper", "paper-full", "cpu-3dgan", "paper-3dgan", "cpu-tgan2", "paper-tgan2"] = Field(
        "cpu", description="network preset when training from scratch"
    )
    recipe: Literal["coherent", "paper"] = Field(
        "coherent",
        description="coherent: one content code per clip, identity-only negatives where the data has them, "
        "lambda_i 5 (docs/RECIPES.md); paper: SAVGAN as published. Recordings have no identity swaps, so on "
        "them the coherent recipe keeps its first layer and lambda_i and trains without negatives",
    )
    steps: int = Field(200, ge=1, le=1_000_000, strict=True, description="generator steps")
    batch_size: int = Field(8, ge=1, le=64, strict=True)
    lr_g: float = Field(1e-4, gt=0, le=1e-2)
    lr_d: float | None = Field(
        None, gt=0, le=1e-2, description="critic learning rate; default: the family's (4e-4 SAVGAN/3DGAN, 1e-4 TGANv2)"
    )
    n_critic: int = Field(5, ge=1, le=10, strict=True)
    ema_decay: float = Field(
        0.0, ge=0, lt=1, description="publish a moving average of the generator's weights (e.g. 0.999); 0: the last step's"
    )
    image_lambda: float | None = Field(
        None,
        ge=0,
        le=1000,
        description="weight of the image critic in the generator's loss (SAVGAN/3DGAN); default: the recipe's "
        "(coherent 5; paper 50, the paper's); see docs/RECIPES.md",
    )
    penalty_step: Literal["joint", "separate"] = Field(
        "joint",
        description="joint: one critic step on -W + 10 GP, as the paper writes it; separate: a step on -W, then "
        "one on the penalty, as the reference code does",
    )
    seed: int = Field(0, ge=0, le=2**31 - 1, strict=True)
    patch_method: Literal["flow", "grid"] = Field("flow", description="patches around moving cells, or a grid")
    checkpoint_every: int = Field(50, ge=1, le=100_000, strict=True)
    webhook_url: HttpUrl | None = None


class Upload(BaseModel):
    """A recording stored for a training job."""

    key: str
    filename: str
    bytes: int
    format: Literal["tiff", "mp4", "avi"]


class TrainRequest(TrainParameters):
    uploads: list[Upload] = Field(min_length=1)


def check_limits(request: GenerateRequest | TrainParameters, settings: Settings) -> None:
    """Raise ValueError with a message for a person when a request exceeds this deployment's limits."""
    if isinstance(request, GenerateRequest):
        if request.frames > settings.max_frames:
            raise ValueError(f"frames must be at most {settings.max_frames} on this server, got {request.frames}")
        if request.count > settings.max_videos_per_request:
            raise ValueError(
                f"count must be at most {settings.max_videos_per_request} on this server, got {request.count}"
            )
    elif request.steps > settings.max_train_steps:
        raise ValueError(f"steps must be at most {settings.max_train_steps} on this server, got {request.steps}")
