"""Job records: in the fast store (Redis, or memory when embedded) from the submit, and durable in
object storage once a job runs or ends; live progress in the fast store.

Storage is the truth for what a job produced: losing Redis loses no finished result, only the
jobs still queued (whose queue entries were in the same Redis) and the live progress of running
ones. A submit costs one Redis round trip, no object write (see ``savgan.common.job_records``).
Progress, cancel flags and counters are transient and go to the fast store only.
"""

from __future__ import annotations

import threading
import time
import uuid
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

from pydantic import BaseModel, Field

from savgan.common.job_records import KEY_PREFIX, LIVE_TTL_S, Entry, MemoryRecords, RecordCache, RedisRecords, live_key
from savgan.common.storage import ObjectNotFound, Storage

JobKind = Literal["generate", "train"]
JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]
TERMINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})
# How long a finished record stays in the fast store once storage has it (reads then go to storage).
DEFAULT_RETENTION_S = 24 * 3600


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
    """Live job state: a hash per job, flags with expiry, counters; and ``records``, the fast copy
    of the job records kept in the same store."""

    records: RecordCache

    @abstractmethod
    def update(self, job_id: str, fields: dict[str, str]) -> None: ...

    @abstractmethod
    def read(self, job_id: str) -> dict[str, str]: ...

    @abstractmethod
    def set_flag(self, name: str, ttl_s: int) -> None: ...

    @abstractmethod
    def flag(self, name: str) -> bool: ...

    def incr(self, counter: str, amount: float = 1) -> None:
        self.incr_many({counter: amount})

    @abstractmethod
    def incr_many(self, amounts: dict[str, float]) -> None:
        """Add to several counters in one round trip."""

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
        self.records = RedisRecords(self.client)

    def update(self, job_id: str, fields: dict[str, str]) -> None:
        key = live_key(job_id)
        with self.client.pipeline(transaction=False) as pipe:
            pipe.hset(key, mapping=fields)
            pipe.expire(key, LIVE_TTL_S)
            pipe.execute()

    def read(self, job_id: str) -> dict[str, str]:
        return self.client.hgetall(live_key(job_id))

    def set_flag(self, name: str, ttl_s: int) -> None:
        self.client.set(f"{KEY_PREFIX}:flag:{name}", "1", ex=ttl_s)

    def flag(self, name: str) -> bool:
        return bool(self.client.exists(f"{KEY_PREFIX}:flag:{name}"))

    def incr_many(self, amounts: dict[str, float]) -> None:
        with self.client.pipeline(transaction=False) as pipe:
            for counter, amount in amounts.items():
                pipe.hincrbyfloat(f"{KEY_PREFIX}:counters", counter, amount)
            pipe.execute()

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
        self.records = MemoryRecords(self.update, self.read)

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

    def incr_many(self, amounts: dict[str, float]) -> None:
        with self._lock:
            for counter, amount in amounts.items():
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
    """Create, read, update and list jobs; the service and the workers share it.

    Where a record is written: at submit (``create``) to the fast store only, when that store is
    durable (Redis with AOF); when it runs or ends (``save`` of any state but ``queued``) to
    storage first, then the fast store, where a finished record expires after ``retention_s``.
    Embedded mode's fast store is memory, so there every write also goes to storage, which is
    what an embedded server restarted finds its unfinished jobs in. Reads try the fast store and
    fall back to storage (old jobs, or a Redis that lost its data); listing merges both.
    """

    def __init__(self, storage: Storage, transient: TransientState, retention_s: int = DEFAULT_RETENTION_S) -> None:
        self.storage = storage
        self.transient = transient
        self.fast = transient.records
        # Embedded mode's memory is lost with the process: every write goes to storage as well.
        self.writes_through = not self.fast.durable
        self.retention_s = retention_s
        self._index_writer = ThreadPoolExecutor(max_workers=8, thread_name_prefix="savgan-index")

    @staticmethod
    def record_key(job_id: str) -> str:
        return f"jobs/{job_id}.json"

    @staticmethod
    def marker_key(record: JobRecord) -> str:
        return f"index/{record.owner}/{created_ms(record):014d}-{record.id}"

    def create(self, record: JobRecord) -> None:
        """Store a new job. Without ``writes_through`` only the fast store is written, in one
        transaction: a failed create stored nothing."""
        self._store(record, to_storage=self.writes_through)

    def save(self, record: JobRecord) -> None:
        """Write the record where its state needs it and mirror its state into the live hash."""
        self._store(record, to_storage=record.state != "queued" or self.writes_through)

    def _store(self, record: JobRecord, to_storage: bool) -> None:
        data = record.model_dump_json()
        if to_storage:
            self._put_durable(record, data)
        live = {"state": record.state, "progress": record.progress.model_dump_json()}
        entry = Entry(record.id, record.owner, created_ms(record), data, live, record.finished)
        self.fast.put(entry, self.retention_s if record.finished else None)

    def _put_durable(self, record: JobRecord, data: str) -> None:
        """The record and the owner's index marker are independent objects, so they are written
        concurrently: one storage round trip of latency, not two."""
        pending = self._index_writer.submit(self.storage.put_bytes, self.marker_key(record), b"")
        try:
            self.storage.put_bytes(self.record_key(record.id), data.encode(), "application/json")
        finally:
            pending.result()

    def discard(self, record: JobRecord) -> None:
        """Remove a job that was created but never queued, so it is neither listed nor left `queued`."""
        self.fast.remove(record.id, record.owner)
        if self.writes_through:
            self.storage.delete(self.marker_key(record))
            self.storage.delete(self.record_key(record.id))

    def get(self, job_id: str) -> JobRecord | None:
        ((data, live),) = self.fast.read([job_id])
        return self._parse(job_id, data, live)

    def _parse(self, job_id: str, data: str | None, live: dict[str, str]) -> JobRecord | None:
        """The record from the fast store's ``data``, or from storage when that is None; with the
        live progress of an unfinished job."""
        try:
            record = JobRecord.model_validate_json(data if data is not None else self.storage.get_bytes(self.record_key(job_id)))
        except (ObjectNotFound, ValueError):
            return None
        if not record.finished and "progress" in live:
            record.progress = Progress.model_validate_json(live["progress"])
        return record

    def set_progress(self, job_id: str, progress: Progress) -> None:
        self.transient.update(job_id, {"progress": progress.model_dump_json()})

    def request_cancel(self, job_id: str) -> None:
        self.transient.set_flag(f"cancel:{job_id}", LIVE_TTL_S)

    def cancel_requested(self, job_id: str) -> bool:
        return self.transient.flag(f"cancel:{job_id}")

    def unfinished(self) -> list[JobRecord]:
        """Every owner's queued or running jobs, oldest first: what an embedded server must pick up
        again, and what a reaper of lost jobs looks at. Embedded mode also reads storage's index,
        since its fast store starts empty after a restart."""
        markers = self.storage.list("index/") if self.writes_through else []
        ids = ordered_ids(self.fast.unfinished_ids(), markers)
        records = (self.get(job_id) for job_id in reversed(ids))
        return [r for r in records if r is not None and not r.finished]

    def list(self, owner: str, limit: int = 20, before: str | None = None) -> list[JobRecord]:
        """The owner's jobs, newest first; ``before`` is the id of the last job of the previous page.

        The ids are the union of the fast store's listing (every job from its submit, until its
        finished record expires there) and storage's index (every job that ever ran or ended),
        so a page may mix jobs known only to Redis with jobs known only to storage."""
        listed = self.fast.owner_ids(owner)
        ids = ordered_ids(listed, self.storage.list(f"index/{owner}/"))
        if before is not None:
            ids = ids[ids.index(before) + 1 :] if before in ids else []
        in_fast = {job_id for _, job_id in listed}
        records: list[JobRecord] = []
        expired: list[str] = []
        while ids and len(records) < limit:
            chunk, ids = ids[: limit - len(records)], ids[limit - len(records) :]
            for job_id, (data, live) in zip(chunk, self.fast.read(chunk), strict=True):
                if data is None and job_id in in_fast:
                    expired.append(job_id)
                record = self._parse(job_id, data, live)
                if record is not None:
                    records.append(record)
        self.fast.unlist(owner, expired)
        return records


def created_ms(record: JobRecord) -> int:
    """The creation time both indexes sort by (index marker names, the fast store's scores)."""
    return int(record.created_at * 1000)


def ordered_ids(listed: list[tuple[int, str]], markers: list[str]) -> list[str]:
    """Job ids from the fast store's (created_ms, id) pairs and storage's index marker keys
    (``index/{owner}/{ms}-{id}``), each once, newest first."""
    entries = {job_id: ms for ms, job_id in listed}
    for marker in markers:
        ms, job_id = marker.rsplit("/", 1)[-1].split("-")
        entries.setdefault(job_id, int(ms))
    return [job_id for job_id, _ in sorted(entries.items(), key=lambda item: (item[1], item[0]), reverse=True)]
