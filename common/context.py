"""The shared handles both the API and the workers need, built once from settings."""

from __future__ import annotations

from dataclasses import dataclass

from savgan.common.jobs import JobStore, MemoryState, RedisState, TransientState
from savgan.common.models_store import ModelStore
from savgan.common.settings import Settings
from savgan.common.storage import Storage, build_storage


@dataclass
class Context:
    settings: Settings
    storage: Storage
    transient: TransientState
    jobs: JobStore
    models: ModelStore


def build_context(settings: Settings, transient: TransientState | None = None) -> Context:
    """Embedded mode keeps transient state in memory; pass the same one to the API and its worker thread."""
    storage = build_storage(settings)
    if transient is None:
        transient = MemoryState() if settings.mode == "embedded" else RedisState(settings.redis_url)
    jobs = JobStore(storage, transient, settings.job_retention_s)
    return Context(settings, storage, transient, jobs, ModelStore(storage, transient))
