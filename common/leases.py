"""Job leases in Redis: which worker runs a job right now, so a dead worker's job is sent again
within seconds of its lease running out, and a live job is never run twice.

A worker takes ``savgan:lease:{job}`` (``SET NX PX lease_ttl_s``) before it admits a job, and a
heartbeat thread renews it every ``lease_ttl_s / RENEWALS_PER_TTL`` with a compare-and-set (a
Lua script: only the owner renews). A delivery that finds the lease held by another worker is
dropped. The reaper (``savgan.worker.reaper``) sends a running job again once its lease key
has expired.

Redis blips: one failed renewal changes nothing. The holder gives its job up only when the
lease belongs to someone else (or is gone) or when it has not renewed for
``lease_ttl_s * GIVE_UP_FRACTION``, which is before the key can expire in Redis, so the job has
stopped on this worker before any other can take it. Timings below are on Redis's clock for the
key and on the holder's monotonic clock for giving up; no two hosts' clocks are compared.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from functools import cache
from typing import TYPE_CHECKING

from savgan.common.job_records import KEY_PREFIX
from savgan.common.settings import Settings

if TYPE_CHECKING:
    import redis

log = logging.getLogger(__name__)

RENEWALS_PER_TTL = 12
GIVE_UP_FRACTION = 2 / 3
# Compare-and-set: renew or release only a lease this worker still owns.
RENEW_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


class LeaseLost(Exception):
    """The job is no longer this worker's: it stops without writing its end (the new owner will)."""


def lease_key(job_id: str) -> str:
    return f"{KEY_PREFIX}:lease:{job_id}"


def worker_id() -> str:
    """This process's name in leases: host, pid and a random part (a pid is reused after a restart).
    Keyed by pid, so a forked pool child never reuses its parent's name."""
    return _name_of(os.getpid())


@cache
def _name_of(pid: int) -> str:
    return f"{socket.gethostname()}:{pid}:{uuid.uuid4().hex[:8]}"


def holder(client: redis.Redis, job_id: str) -> str | None:
    """The worker that holds the job's lease, or None when nobody does."""
    value = client.get(lease_key(job_id))
    return value.decode() if isinstance(value, bytes) else value


def renew_every_s(settings: Settings) -> float:
    return settings.lease_ttl_s / RENEWALS_PER_TTL


def give_up_after_s(settings: Settings) -> float:
    return settings.lease_ttl_s * GIVE_UP_FRACTION


def outage_tolerance_s(settings: Settings) -> float:
    """The longest Redis outage a running job rides out: it may begin just before a renewal was due."""
    return give_up_after_s(settings) - renew_every_s(settings)


def redelivery_bound_s(settings: Settings) -> float:
    """After a worker dies: its lease expires within ``lease_ttl_s``, a reaper looks within
    ``reaper_interval_s`` more and sends the job; a free worker takes it at once."""
    return settings.lease_ttl_s + settings.reaper_interval_s


class JobLease:
    """One job's lease, held by this process while it runs the job.

    :meth:`acquire` takes it and starts the heartbeat; :attr:`lost` turns true when the job must
    stop; :meth:`check` raises :class:`LeaseLost` then; :meth:`release` stops the heartbeat and
    frees the lease (only if still ours).
    """

    def __init__(self, client: redis.Redis, job_id: str, settings: Settings, owner: str | None = None) -> None:
        self.client = client
        self.job_id = job_id
        self.owner = owner or worker_id()
        self.key = lease_key(job_id)
        self.ttl_ms = int(settings.lease_ttl_s * 1000)
        self.every_s = renew_every_s(settings)
        self.give_up_s = give_up_after_s(settings)
        self._renew = client.register_script(RENEW_SCRIPT)
        self._release = client.register_script(RELEASE_SCRIPT)
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def lost(self) -> bool:
        return self._lost.is_set()

    def check(self) -> None:
        if self._lost.is_set():
            raise LeaseLost(f"job {self.job_id}: this worker ({self.owner}) no longer holds its lease")

    def acquire(self) -> bool:
        """Take the lease and start renewing it; False when another worker holds it. Ours already
        counts as taken: a retried call whose first SET landed but whose answer was lost."""
        taken = self.client.set(self.key, self.owner, nx=True, px=self.ttl_ms)
        if not taken and holder(self.client, self.job_id) != self.owner:
            return False
        self._thread = threading.Thread(target=self._heartbeat, name=f"savgan-lease-{self.job_id[:8]}", daemon=True)
        self._thread.start()
        return True

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if not self._lost.is_set():
            try:
                self._release(keys=[self.key], args=[self.owner])
            except Exception as err:  # noqa: BLE001 - an unreleased lease only expires: the reaper then finds the job finished
                log.warning("job %s: lease not released (%s); it expires in %d ms", self.job_id, err, self.ttl_ms)

    def _heartbeat(self) -> None:
        renewed = time.monotonic()
        while not self._stop.wait(self.every_s):
            try:
                if not self._renew(keys=[self.key], args=[self.owner, self.ttl_ms]):
                    self._lost.set()
                    log.error("job %s: its lease expired or another worker holds it now; stopping it here", self.job_id)
                    return
                renewed = time.monotonic()
            except Exception as err:  # noqa: BLE001 - a failed renewal is retried; only a long silence gives the job up
                silent = time.monotonic() - renewed
                if silent >= self.give_up_s:
                    log.error("job %s: lease not renewed for %.0f s (%s); stopping it before another worker takes it",
                              self.job_id, silent, err)
                    self._lost.set()
                    return
                log.warning("job %s: lease renewal failed (%s); retrying", self.job_id, err)


class NoLease:
    """The embedded worker's stand-in: one process runs every job, so there is nobody to share with."""

    lost = False

    def acquire(self) -> bool:
        return True

    def check(self) -> None:
        return None

    def release(self) -> None:
        return None
