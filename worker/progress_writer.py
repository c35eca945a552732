"""A running job's progress, written without ever making the job wait for Redis.

A training runs for hours; Redis restarting for half a minute must not fail it, nor stall it.
Progress goes to Redis (and Celery's task state) from a thread of its own: while Redis is down
only the latest value is kept, retried with the backoff of :func:`savgan.common.outages.ride_out`,
and written when Redis is back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from savgan.common.jobs import Progress
from savgan.common.outages import FIRST_DELAY_S, next_delay, outage_of
from savgan.common.settings import Settings

log = logging.getLogger(__name__)


class LatestProgress:
    """Writes a job's progress with ``write`` from a daemon thread, keeping only the newest value.

    :meth:`offer` never blocks. :meth:`close` waits (at most ``outage_ride_out_s``) until the
    last offered value is written, so the job's final save, which comes after, is never
    overwritten by an older progress.
    """

    def __init__(self, write: Callable[[Progress], None], settings: Settings, job_id: str) -> None:
        self._write = write
        self._settings = settings
        self._job_id = job_id
        self._pending: Progress | None = None
        self._closing = False
        self._give_up_at = float("inf")
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def offer(self, progress: Progress) -> None:
        with self._changed:
            self._pending = progress
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=f"savgan-progress-{self._job_id[:8]}", daemon=True)
                self._thread.start()
            self._changed.notify()

    def close(self) -> None:
        with self._changed:
            self._closing = True
            self._give_up_at = time.monotonic() + self._settings.outage_ride_out_s
            self._changed.notify()
            thread = self._thread
        if thread is not None:
            thread.join(self._settings.outage_ride_out_s)
            if thread.is_alive():
                log.warning("job %s: its last progress could not be written within %g s",
                            self._job_id, self._settings.outage_ride_out_s)

    def _take(self) -> Progress | None:
        with self._changed:
            while self._pending is None and not self._closing:
                self._changed.wait()
            progress, self._pending = self._pending, None
            return progress

    def _loop(self) -> None:
        delay = FIRST_DELAY_S
        while (progress := self._take()) is not None:
            try:
                self._write(progress)
                delay = FIRST_DELAY_S
            except Exception as err:  # noqa: BLE001 - a progress line is never worth failing the job for
                outage = outage_of(err, self._settings)
                if outage is None:
                    log.exception("job %s: progress not written", self._job_id)
                    continue
                with self._changed:
                    if self._closing and time.monotonic() >= self._give_up_at:
                        return  # close() stopped waiting: a late write would land after the final save
                    if self._pending is None:
                        self._pending = progress  # nothing newer came meanwhile: this one is still the latest
                log.warning("job %s: progress kept until %s answers again (%s)", self._job_id, outage.address, outage.cause)
                time.sleep(delay)
                delay = next_delay(delay, self._settings)
