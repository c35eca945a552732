"""Job records: durable in object storage, live progress in Redis (or memory when embedded).

The record in storage is the truth for what a job asked for and what it produced; losing
Redis loses only live progress of running jobs, never a finished result. Progress,
cancel flags and counters are transient and go to the fast store.
"""

from __future__ import annotations

import threading
import time
import uuid
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

from pydantic import BaseModel, Field

from savgan.common.storage import ObjectNotFound, Storage

JobKind = Literal["generate", "train"]
JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]
TERMINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})
KEY_PREFIX = "savgan"


class Progress(BaseModel):
    fraction: float = Field(0.0, ge=0.0, le=1.0)
    step: int = 0
    total: int = 0
    eta_s: float | None = None
    message: str = ""


class ResultFile(BaseModel):
    key: str
    filename: str
    role: str = Field(description="video, preview, montage, model or ground_truth")
    format: str
    bytes: int
    sha256: str


class JobRecord(BaseModel):
    id: str
    owner: str
    kind: JobKind
    state: JobState = "queued"
    params: dict[str, Any]
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    progress: Progress = Field(default_factory=Progress)
    error: str | None = None
    results: list[ResultFile] = Field(default_factory=list)
    model: str | None = Field(None, description="name:version of the model a training produced")
    attempts: int = 0
    webhook_url: str | None = None

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL_STATES


def new_job(owner: str, kind: JobKind, params: dict[str, Any], webhook_url: str | None = None) -> JobRecord:
    return JobRecord(id=uuid.uuid4().hex, owner=owner, kind=kind, params=params, created_at=time.time(), webhook_url=webhook_url)


class TransientState(ABC):
    """Live job state: a hash per job, flags with expiry, counters."""

    @abstractmethod
    def update(self, job_id: str, fields: dict[str, str]) -> None: ...

    @abstractmethod
    def read(self, job_id: str) -> dict[str, str]: ...

    @abstractmethod
    def set_flag(self, name: str, ttl_s: int) -> None: ...

    @abstractmethod
    def flag(self, name: str) -> bool: ...

    @abstractmethod
    def incr(self, counter: str, amount: float = 1) -> None: ...

    @abstractmethod
    def counters(self) -> dict[str, float]: ...

    @abstractmethod
    def generation(self, name: str) -> int:
        """A number that changes whenever ``bump(name)`` is called anywhere: a cheap staleness check."""

    @abstractmethod
    def bump(self, name: str) -> None: ...

    @abstractmethod
    def ping(self) -> None: ...


class RedisState(TransientState):
    def __init__(self, url: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=5, socket_connect_timeout=5)

    def update(self, job_id: str, fields: dict[str, str]) -> None:
        key = f"{KEY_PREFIX}:job:{job_id}"
        with self.client.pipeline(transaction=False) as pipe:
            pipe.hset(key, mapping=fields)
            pipe.expire(key, 7 * 24 * 3600)
            pipe.execute()

    def read(self, job_id: str) -> dict[str, str]:
        return self.client.hgetall(f"{KEY_PREFIX}:job:{job_id}")

    def set_flag(self, name: str, ttl_s: int) -> None:
        self.client.set(f"{KEY_PREFIX}:flag:{name}", "1", ex=ttl_s)

    def flag(self, name: str) -> bool:
        return bool(self.client.exists(f"{KEY_PREFIX}:flag:{name}"))

    def incr(self, counter: str, amount: float = 1) -> None:
        self.client.hincrbyfloat(f"{KEY_PREFIX}:counters", counter, amount)

    def counters(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.client.hgetall(f"{KEY_PREFIX}:counters").items()}

    def generation(self, name: str) -> int:
        return int(self.client.get(f"{KEY_PREFIX}:generation:{name}") or 0)

    def bump(self, name: str) -> None:
        self.client.incr(f"{KEY_PREFIX}:generation:{name}")

    def ping(self) -> None:
        self.client.ping()


class MemoryState(TransientState):
    """The embedded mode's transient store: one process, so a dict under a lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, dict[str, str]] = {}
        self._flags: dict[str, float] = {}
        self._counters: dict[str, float] = {}
        self._generations: dict[str, int] = {}

    def update(self, job_id: str, fields: dict[str, str]) -> None:
        with self._lock:
            self._jobs.setdefault(job_id, {}).update(fields)

    def read(self, job_id: str) -> dict[str, str]:
        with self._lock:
            return dict(self._jobs.get(job_id, {}))

    def set_flag(self, name: str, ttl_s: int) -> None:
        with self._lock:
            self._flags[name] = time.monotonic() + ttl_s

    def flag(self, name: str) -> bool:
        with self._lock:
            return self._flags.get(name, 0.0) > time.monotonic()

    def incr(self, counter: str, amount: float = 1) -> None:
        with self._lock:
            self._counters[counter] = self._counters.get(counter, 0.0) + amount

    def counters(self) -> dict[str, float]:
        with self._lock:
            return dict(self._counters)

    def generation(self, name: str) -> int:
        with self._lock:
            return self._generations.get(name, 0)

    def bump(self, name: str) -> None:
        with self._lock:
            self._generations[name] = self._generations.get(name, 0) + 1

    def ping(self) -> None:
        return None


class JobStore:
    """Create, read, update and list jobs; the service and the workers share it."""

    def __init__(self, storage: Storage, transient: TransientState) -> None:
        self.storage = storage
        self.transient = transient
        self._index_writer = ThreadPoolExecutor(max_workers=8, thread_name_prefix="savgan-index")

    @staticmethod
    def record_key(job_id: str) -> str:
        return f"jobs/{job_id}.json"

    @staticmethod
    def marker_key(record: JobRecord) -> str:
        return f"index/{record.owner}/{int(record.created_at * 1000):014d}-{record.id}"

    def create(self, record: JobRecord) -> None:
        """The record and the owner's index marker are independent objects, so they are written
        concurrently: creating a job costs one storage round trip of latency, not two."""
        pending = self._index_writer.submit(self.storage.put_bytes, self.marker_key(record), b"")
        try:
            self.save(record)
        finally:
            pending.result()

    def discard(self, record: JobRecord) -> None:
        """Remove a job that was created but never queued, so it is neither listed nor left `queued`."""
        self.storage.delete(self.marker_key(record))
        self.storage.delete(self.record_key(record.id))

    def save(self, record: JobRecord) -> None:
        """Write the durable record and mirror its state into the transient store."""
        self.storage.put_bytes(self.record_key(record.id), record.model_dump_json().encode(), "application/json")
        self.transient.update(record.id, {"state": record.state, "progress": record.progress.model_dump_json()})

    def get(self, job_id: str) -> JobRecord | None:
        try:
            record = JobRecord.model_validate_json(self.storage.get_bytes(self.record_key(job_id)))
        except (ObjectNotFound, ValueError):
            return None
        if not record.finished:
            live = self.transient.read(job_id)
            if "progress" in live:
                record.progress = Progress.model_validate_json(live["progress"])
        return record

    def set_progress(self, job_id: str, progress: Progress) -> None:
        self.transient.update(job_id, {"progress": progress.model_dump_json()})

    def request_cancel(self, job_id: str) -> None:
        self.transient.set_flag(f"cancel:{job_id}", 7 * 24 * 3600)

    def cancel_requested(self, job_id: str) -> bool:
        return self.transient.flag(f"cancel:{job_id}")

    def unfinished(self) -> list[JobRecord]:
        """Every owner's queued or running jobs, oldest first: what an embedded server must pick up again."""
        markers = sorted(self.storage.list("index/"), key=lambda m: m.rsplit("/", 1)[-1])
        records = (self.get(m.rsplit("-", 1)[-1]) for m in markers)
        return [r for r in records if r is not None and not r.finished]

    def list(self, owner: str, limit: int = 20, before: str | None = None) -> list[JobRecord]:
        """The owner's jobs, newest first; ``before`` is the id of the last job of the previous page."""
        markers = list(reversed(self.storage.list(f"index/{owner}/")))
        ids = [m.rsplit("-", 1)[-1] for m in markers]
        if before is not None:
            ids = ids[ids.index(before) + 1 :] if before in ids else []
        records: list[JobRecord] = []
        for job_id in ids:
            if len(records) == limit:
                break
            record = self.get(job_id)
            if record is not None:
                records.append(record)
        return records
