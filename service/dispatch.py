"""Handing jobs to workers: Celery (distributed) or the in-process worker thread (embedded).

Cancellation is cooperative first: a flag the running job checks between videos or training
steps (a training stops and keeps its last checkpoint). Celery jobs still running after
``settings.cancel_grace_s`` are revoked with ``terminate=True`` and marked cancelled here,
because a terminated runner cannot write its own end.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Protocol

from savgan.common.jobs import JobRecord, JobStore, TransientState
from savgan.common.settings import Settings

if TYPE_CHECKING:
    from celery import Celery

    from savgan.worker.embedded import EmbeddedWorker

log = logging.getLogger(__name__)

WORKER_PING_TIMEOUT_S = 1.0
WORKER_COUNT_CACHE_S = 10.0
# kombu's Redis transport keeps messages with priority p > 0 in "<queue>\x06\x16<p>" lists.
PRIORITY_SEP = "\x06\x16"
PRIORITY_STEPS = (3, 6, 9)


class DispatchError(RuntimeError):
    """The job could not be handed to a worker (the embedded worker thread stopped).

    A broker that cannot be reached raises its own error, which ``savgan.common.outages``
    recognises like any other Redis outage.
    """


class Dispatcher(Protocol):
    def submit(self, record: JobRecord) -> None:
        """Queue the job; raise DispatchError, or the broker's own error, when it cannot be queued."""

    def cancel(self, record: JobRecord) -> None:
        """Ask a queued or running job to stop (queued: it never starts)."""

    def workers(self, wait: bool = False) -> int:
        """Workers reachable now (readiness, /metrics); ``wait``: return at the first answer."""

    def queue_depths(self) -> dict[str, int]:
        """Jobs waiting per queue."""

    def close(self) -> None: ...


class CeleryDispatcher:
    RECORD_WAIT_S = 10.0

    def __init__(self, settings: Settings, jobs: JobStore, transient: TransientState, app: Celery | None = None) -> None:
        import redis

        from savgan.worker.app import make_app

        self.settings = settings
        self.jobs = jobs
        self.transient = transient
        self.app = app or make_app(settings)
        self.redis = redis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
        self._timers: dict[str, threading.Timer] = {}
        self._lock = threading.Lock()
        self._count: tuple[float, int] = (0.0, 0)

    def submit(self, record: JobRecord) -> None:
        from savgan.worker.app import send_job

        send_job(self.app, record.kind, record.id)  # a broker outage raises kombu's OperationalError: a 503

    def cancel(self, record: JobRecord) -> None:
        self.jobs.request_cancel(record.id)
        if record.state == "queued":
            # A worker that later receives it discards it; the runner also checks the flag and state.
            self._revoke(record.id, terminate=False)
            return
        timer = threading.Timer(self.settings.cancel_grace_s, self._force, args=(record.id,))
        timer.daemon = True
        with self._lock:
            old = self._timers.pop(record.id, None)
            self._timers[record.id] = timer
        if old:
            old.cancel()
        timer.start()

    def _revoke(self, job_id: str, terminate: bool) -> None:
        try:
            self.app.control.revoke(job_id, terminate=terminate, signal="SIGTERM")
        except Exception:  # noqa: BLE001 - the flag is already set; revoke is a best effort
            log.warning("could not revoke job %s", job_id, exc_info=True)

    def _force(self, job_id: str) -> None:
        """Fallback after the grace period: terminate the task. The worker's parent process records
        the end of a terminated task; if none has after ``RECORD_WAIT_S`` (no worker holds it any
        more), the record is ended here."""
        from savgan.common.webhooks import send_webhook

        with self._lock:
            self._timers.pop(job_id, None)
        record = self.jobs.get(job_id)
        if record is None or record.finished:
            return
        log.warning("job %s ignored its cancel flag for %s s; terminating it", job_id, self.settings.cancel_grace_s)
        self._revoke(job_id, terminate=True)
        deadline = time.monotonic() + self.RECORD_WAIT_S
        while time.monotonic() < deadline:
            record = self.jobs.get(job_id)
            if record is None or record.finished:
                return
            time.sleep(0.5)
        record.state = "cancelled"
        record.finished_at = time.time()
        record.error = f"cancelled: the job did not stop within {self.settings.cancel_grace_s} s and was terminated"
        self.jobs.save(record)
        self.transient.incr("jobs_cancelled")
        send_webhook(record, self.settings)

    def workers(self, wait: bool = False) -> int:
        now = time.monotonic()
        if not wait and now - self._count[0] < WORKER_COUNT_CACHE_S:
            return self._count[1]
        replies = self.app.control.ping(timeout=WORKER_PING_TIMEOUT_S, limit=1 if wait else None) or []
        count = len(replies)
        if not wait:
            self._count = (now, count)
        return count

    def queue_depths(self) -> dict[str, int]:
        from savgan.worker.app import QUEUES

        depths = {}
        with self.redis.pipeline(transaction=False) as pipe:
            for queue in QUEUES:
                pipe.llen(queue)
                for step in PRIORITY_STEPS:
                    pipe.llen(f"{queue}{PRIORITY_SEP}{step}")
            lengths = pipe.execute()
        per_queue = 1 + len(PRIORITY_STEPS)
        for i, queue in enumerate(QUEUES):
            depths[queue] = int(sum(lengths[i * per_queue : (i + 1) * per_queue]))
        return depths

    def close(self) -> None:
        with self._lock:
            timers = list(self._timers.values())
            self._timers.clear()
        for timer in timers:
            timer.cancel()
        self.redis.close()


class EmbeddedDispatcher:
    """The embedded worker thread: one queue, cooperative cancel only (a thread cannot be killed)."""

    QUEUE = "embedded"

    def __init__(self, worker: EmbeddedWorker, jobs: JobStore) -> None:
        self.worker = worker
        self.jobs = jobs

    def submit(self, record: JobRecord) -> None:
        if not self.worker.alive():
            raise DispatchError("the embedded worker thread has stopped; restart the server")
        self.worker.submit(record.id, record.kind)

    def cancel(self, record: JobRecord) -> None:
        self.jobs.request_cancel(record.id)

    def resume_unfinished(self) -> int:
        """Queue again the jobs a previous run of this server left queued or running (its queue was in memory)."""
        pending = self.jobs.unfinished()
        for record in pending:
            self.worker.submit(record.id, record.kind)
        return len(pending)

    def workers(self, wait: bool = False) -> int:
        return 1 if self.worker.alive() else 0

    def queue_depths(self) -> dict[str, int]:
        return {self.QUEUE: self.worker.pending()}

    def close(self) -> None:
        self.worker.stop(timeout_s=10)
