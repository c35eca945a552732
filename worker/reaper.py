"""The reaper: sends a running job again once its lease has expired, that is once its worker died.

Every worker process that consumes tasks (the Celery parent, not its pool children) runs one in
a daemon thread. A pass runs every ``reaper_interval_s``; a Redis lock lets one reaper act per
interval whatever the number of workers. A pass sends each job whose record says ``running``
and whose lease key is gone (``savgan.common.leases``: a live worker renews it long before it
can expire), once per ``lease_ttl_s``: a resent job waiting behind others in its queue is not
sent again on every pass. Copies that still arrive (this one, or the broker's own redelivery
after its visibility timeout) find the job leased or finished and are dropped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from savgan.common.context import Context
from savgan.common.job_records import KEY_PREFIX
from savgan.common.jobs import JobKind
from savgan.common.leases import holder, worker_id
from savgan.common.outages import outage_of

if TYPE_CHECKING:
    import redis

log = logging.getLogger(__name__)

REAPER_LOCK = f"{KEY_PREFIX}:reaper"
# The lock lapses a little before the interval, so the reaper that took it finds it free on its next wake.
LOCK_FRACTION = 0.8

Send = Callable[[JobKind, str], None]


def resent_key(job_id: str) -> str:
    return f"{KEY_PREFIX}:resent:{job_id}"


def reap(ctx: Context, client: redis.Redis, send: Send, owner: str) -> list[str]:
    """One pass, if no other reaper made one this interval: the ids of the jobs sent again."""
    settings = ctx.settings
    if not client.set(REAPER_LOCK, owner, nx=True, px=int(settings.reaper_interval_s * LOCK_FRACTION * 1000)):
        return []
    sent = []
    for record in ctx.jobs.unfinished():
        if record.state != "running" or holder(client, record.id) is not None:
            continue
        if not client.set(resent_key(record.id), owner, nx=True, px=int(settings.lease_ttl_s * 1000)):
            continue
        log.warning("job %s: its lease expired (its worker is gone); sending it again", record.id)
        send(record.kind, record.id)
        sent.append(record.id)
    return sent


class Reaper:
    """:func:`reap` every ``reaper_interval_s`` in a daemon thread, until :meth:`stop`."""

    def __init__(self, ctx: Context, client: redis.Redis, send: Send) -> None:
        self.ctx, self.client, self.send = ctx, client, send
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="savgan-reaper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(self.ctx.settings.reaper_interval_s)

    def _loop(self) -> None:
        reap_once = partial(reap, self.ctx, self.client, self.send, worker_id())
        while not self._stop.wait(self.ctx.settings.reaper_interval_s):
            try:
                reap_once()
            except Exception as err:  # noqa: BLE001 - the next pass tries again; a reaper must not die
                outage = outage_of(err, self.ctx.settings)
                if outage is None:
                    log.exception("reaper: pass failed")
                else:
                    log.warning("reaper: pass skipped, %s", outage.describe())
