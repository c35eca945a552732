"""Response bodies of the API. Request bodies live in ``savgan.common.requests`` (shared with workers)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from savgan.common.jobs import JobKind, JobState, Progress
from savgan.common.models_store import ModelVersionInfo


class ErrorOut(BaseModel):
    detail: str = Field(description="what was wrong, for a person", examples=["no model named 'x'; known models: mmnist"])


class ValidationErrorOut(ErrorOut):
    errors: list[dict[str, Any]] = Field(default_factory=list, description="each invalid field: loc, msg, type")


class JobLinks(BaseModel):
    self: str = Field(description="GET: the job")
    events: str = Field(description="GET: server-sent progress events until the job ends")
    cancel: str = Field(description="DELETE: cancel the job")


class Timings(BaseModel):
    queued_s: float | None = Field(None, description="seconds between submission and start (so far, while queued)")
    run_s: float | None = Field(None, description="seconds running (so far, while running)")


class ResultOut(BaseModel):
    filename: str
    role: str = Field(description="video, preview, montage, model or ground_truth")
    format: str
    bytes: int
    sha256: str
    url: str = Field(description="short-lived download link that saves under `filename`")


class JobOut(BaseModel):
    id: str = Field(examples=["3f0c9a2b7d1e4c5f8a6b0e1d2c3b4a59"])
    kind: JobKind
    state: JobState
    progress: Progress
    created_at: float = Field(description="Unix time")
    started_at: float | None = None
    finished_at: float | None = None
    timings: Timings
    error: str | None = Field(None, description="why the job failed, for a person")
    cancel_requested: bool = Field(False, description="a cancel was asked for; the job stops at its next step")
    results: list[ResultOut] = Field(default_factory=list, description="only complete files; empty until the job succeeds")
    model: str | None = Field(None, description="for training: the new model version, name:version, usable by /generate")
    params: dict[str, Any] = Field(description="the request as stored (the model resolved to name:version)")
    links: JobLinks


class JobList(BaseModel):
    jobs: list[JobOut] = Field(description="the caller's jobs, newest first")
    next: str | None = Field(None, description="pass as `before` to get the next page; null on the last page")
    next_url: str | None = None


class ModelVersionOut(ModelVersionInfo):
    ref: str = Field(description="name:version, to pass as `model` to /generate or `base_model` to /train")
    samples_url: str | None = Field(None, description="short-lived link to the sample montage")


class ModelOut(BaseModel):
    name: str
    owner: str = Field(description='the caller, or "public" for models bundled with the service')
    versions: list[ModelVersionOut] = Field(description="oldest first; the last one is used when none is named")


class ReadyOut(BaseModel):
    status: str = Field(examples=["ready"])
    checks: dict[str, str] = Field(description="each check: ok, or why it failed")
