"""The embedded mode's worker: one daemon thread and an in-process queue in place of Celery.

It runs the very same job code as the Celery tasks, one job at a time, so a laptop with
no Redis, S3 or Docker behaves like the deployed service. Jobs queued when the process
exits are lost from the queue, but their records stay ``queued`` in local storage.
"""

from __future__ import annotations

import logging
import queue
import threading

from savgan.common.context import Context
from savgan.common.jobs import JobKind
from savgan.worker.jobs_runner import run_generate, run_train

log = logging.getLogger(__name__)

RUNNERS = {"generate": run_generate, "train": run_train}


class EmbeddedWorker:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._queue: queue.Queue[tuple[str, JobKind] | None] = queue.Queue()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="savgan-embedded-worker", daemon=True)
        self._thread.start()

    def submit(self, job_id: str, kind: JobKind) -> None:
        if kind not in RUNNERS:
            raise ValueError(f"unknown job kind {kind!r}; known: {', '.join(RUNNERS)}")
        self._queue.put((job_id, kind))

    def pending(self) -> int:
        """Jobs waiting behind the one running (the queue depth for /metrics)."""
        return self._queue.qsize()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout_s: float | None = None) -> None:
        """Let the running job finish, start no other, end the thread; waiting jobs stay ``queued``."""
        self._stopping.set()
        self._queue.put(None)
        self._thread.join(timeout_s)

    def _loop(self) -> None:
        while (item := self._queue.get()) is not None and not self._stopping.is_set():
            job_id, kind = item
            try:
                RUNNERS[kind](self.ctx, job_id)
            except Exception:  # noqa: BLE001 - the runner records failures; this keeps the thread alive
                log.exception("embedded worker: job %s crashed outside its runner", job_id)
