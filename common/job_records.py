"""The fast copy of job records, beside the durable one in object storage.

A submit writes the record here only, so ``POST /generate`` costs one Redis round trip instead
of two object writes: Redis runs with AOF in compose, and a queued job is no more durable than
its queue entry, which lives in the same Redis. Object storage gets the record when the job
starts and when it ends (``JobStore.save``); a finished record then expires here after the
retention. Memory (embedded mode) is lost with the process, so there ``durable`` is false and
``JobStore`` writes through to storage at submit too.

Each job is a record string, a member of its owner's sorted set (for listing, by creation time
in milliseconds, the same number the storage index markers carry), a member of the unfinished
set while it is queued or running, and its live state hash (state, progress) that the workers
update while it runs.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import redis

KEY_PREFIX = "savgan"
LIVE_TTL_S = 7 * 24 * 3600
UNFINISHED_KEY = f"{KEY_PREFIX}:unfinished"


def live_key(job_id: str) -> str:
    return f"{KEY_PREFIX}:job:{job_id}"


def record_key(job_id: str) -> str:
    return f"{KEY_PREFIX}:record:{job_id}"


def owner_key(owner: str) -> str:
    return f"{KEY_PREFIX}:jobs:{owner}"


@dataclass(frozen=True)
class Entry:
    """One job as the fast store keeps it: the record's JSON and what indexes it."""

    job_id: str
    owner: str
    created_ms: int
    data: str
    live: dict[str, str]
    finished: bool


class RecordCache(ABC):
    """Records by id, listed per owner and as unfinished; every write of one job is atomic."""

    durable: bool

    @abstractmethod
    def put(self, entry: Entry, ttl_s: int | None) -> None:
        """Store the record (expiring after ``ttl_s``, or never), list it under its owner, add it to
        or drop it from the unfinished set, and mirror its live state: all or nothing."""

    @abstractmethod
    def read(self, job_ids: list[str]) -> list[tuple[str | None, dict[str, str]]]:
        """For each id: its record (None when not here) and its live state hash."""

    @abstractmethod
    def owner_ids(self, owner: str) -> list[tuple[int, str]]:
        """(created_ms, id) of every job listed under ``owner`` here."""

    @abstractmethod
    def unfinished_ids(self) -> list[tuple[int, str]]:
        """(created_ms, id) of the queued and running jobs known here."""

    @abstractmethod
    def remove(self, job_id: str, owner: str) -> None:
        """Forget the job entirely (a submit that failed)."""

    @abstractmethod
    def unlist(self, owner: str, job_ids: list[str]) -> None:
        """Drop ids from the owner's listing whose records expired here (storage keeps listing them)."""


class RedisRecords(RecordCache):
    durable = True  # compose runs Redis with --appendonly yes (fsync every second)

    def __init__(self, client: redis.Redis) -> None:
        """``client`` decodes responses (``decode_responses=True``): records and ids come back as str."""
        self.client = client

    def put(self, entry: Entry, ttl_s: int | None) -> None:
        with self.client.pipeline(transaction=True) as pipe:
            pipe.set(record_key(entry.job_id), entry.data, ex=ttl_s)
            pipe.zadd(owner_key(entry.owner), {entry.job_id: entry.created_ms})
            if entry.finished:
                pipe.zrem(UNFINISHED_KEY, entry.job_id)
            else:
                pipe.zadd(UNFINISHED_KEY, {entry.job_id: entry.created_ms})
            pipe.hset(live_key(entry.job_id), mapping=entry.live)
            pipe.expire(live_key(entry.job_id), LIVE_TTL_S)
            pipe.execute()

    def read(self, job_ids: list[str]) -> list[tuple[str | None, dict[str, str]]]:
        with self.client.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.get(record_key(job_id))
                pipe.hgetall(live_key(job_id))
            replies = pipe.execute()
        return list(zip(replies[::2], replies[1::2], strict=True))

    def owner_ids(self, owner: str) -> list[tuple[int, str]]:
        return [(int(score), job_id) for job_id, score in self.client.zrange(owner_key(owner), 0, -1, withscores=True)]

    def unfinished_ids(self) -> list[tuple[int, str]]:
        return [(int(score), job_id) for job_id, score in self.client.zrange(UNFINISHED_KEY, 0, -1, withscores=True)]

    def remove(self, job_id: str, owner: str) -> None:
        with self.client.pipeline(transaction=True) as pipe:
            pipe.delete(record_key(job_id), live_key(job_id))
            pipe.zrem(owner_key(owner), job_id)
            pipe.zrem(UNFINISHED_KEY, job_id)
            pipe.execute()

    def unlist(self, owner: str, job_ids: list[str]) -> None:
        if job_ids:
            self.client.zrem(owner_key(owner), *job_ids)


class MemoryRecords(RecordCache):
    """The embedded mode's copy: dicts under a lock, gone with the process (storage has every record)."""

    durable = False

    def __init__(self, update_live: Callable[[str, dict[str, str]], None], read_live: Callable[[str], dict[str, str]]) -> None:
        self._update_live, self._read_live = update_live, read_live
        self._lock = threading.Lock()
        self._records: dict[str, tuple[str, float]] = {}  # id -> (data, expires at, monotonic)
        self._owners: dict[str, dict[str, int]] = {}
        self._unfinished: dict[str, int] = {}

    def put(self, entry: Entry, ttl_s: int | None) -> None:
        with self._lock:
            now = time.monotonic()
            if entry.finished:
                for job_id in [i for i, (_, expires) in self._records.items() if expires <= now]:
                    del self._records[job_id]
            self._records[entry.job_id] = (entry.data, now + ttl_s if ttl_s is not None else float("inf"))
            self._owners.setdefault(entry.owner, {})[entry.job_id] = entry.created_ms
            if entry.finished:
                self._unfinished.pop(entry.job_id, None)
            else:
                self._unfinished[entry.job_id] = entry.created_ms
        self._update_live(entry.job_id, entry.live)

    def read(self, job_ids: list[str]) -> list[tuple[str | None, dict[str, str]]]:
        now = time.monotonic()
        with self._lock:
            found = [self._records.get(job_id) for job_id in job_ids]
        data = [item[0] if item is not None and item[1] > now else None for item in found]
        return [(d, self._read_live(job_id)) for d, job_id in zip(data, job_ids, strict=True)]

    def owner_ids(self, owner: str) -> list[tuple[int, str]]:
        with self._lock:
            return [(ms, job_id) for job_id, ms in self._owners.get(owner, {}).items()]

    def unfinished_ids(self) -> list[tuple[int, str]]:
        with self._lock:
            return [(ms, job_id) for job_id, ms in self._unfinished.items()]

    def remove(self, job_id: str, owner: str) -> None:
        with self._lock:
            self._records.pop(job_id, None)
            self._owners.get(owner, {}).pop(job_id, None)
            self._unfinished.pop(job_id, None)

    def unlist(self, owner: str, job_ids: list[str]) -> None:
        with self._lock:
            for job_id in job_ids:
                self._owners.get(owner, {}).pop(job_id, None)
