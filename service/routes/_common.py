"""Shared route helpers: documented error responses, queueing a created record, taking back what a failed request stored."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from functools import partial

from savgan.common.context import Context
from savgan.common.jobs import JobRecord
from savgan.common.outages import OUTAGE_ERRORS, outage_of, ride_out
from savgan.service.dispatch import Dispatcher
from savgan.service.schemas import ErrorOut, ValidationErrorOut

log = logging.getLogger(__name__)


def errors(*codes: int) -> dict[int | str, dict]:
    descriptions = {
        400: "malformed request",
        401: "missing or unknown API key",
        404: "not found (another owner's job answers the same)",
        409: "conflict with the job's state",
        413: "upload too large or too many files",
        415: "unsupported upload type (read from the content)",
        422: "invalid parameters, with a message naming the field and its limit",
        503: "a backend (queue, storage, workers) is unreachable",
    }
    return {
        code: {"model": ValidationErrorOut if code == 422 else ErrorOut, "description": descriptions[code]}
        for code in codes
    }


def queue_job(ctx: Context, dispatcher: Dispatcher, record: JobRecord) -> None:
    """Create the record (in distributed mode one Redis transaction, no object write), then queue it.

    A submit that fails half way (the queue down after the record was written) takes the record
    back and re-raises, to be answered 503: otherwise the job would stay `queued` forever, since
    no worker ever receives it. A create that failed in Redis stored nothing, so there is nothing
    to take back (with Redis down, trying would only wait for it). Once queued, the job is real,
    so counters that cannot be written then only cost a metric.
    """
    created = False
    try:
        ctx.jobs.create(record)
        created = True
        dispatcher.submit(record)
    except Exception as err:
        if created or ctx.jobs.writes_through:
            take_back(ctx, err, partial(ctx.jobs.discard, record), f"job {record.id}")
        raise
    try:
        ctx.transient.incr_many({"jobs_submitted": 1, f"jobs_submitted:{record.kind}": 1})
    except OUTAGE_ERRORS as err:
        log.warning("job %s queued, but its submission was not counted: %s", record.id, err)


def take_back(ctx: Context, err: BaseException, remove: Callable[[], None], what: str) -> None:
    """Remove what a failed request stored, never masking ``err``, the error to answer with.

    With storage itself down, removing now would wait out the same timeouts, and a write the
    server received but never answered may still land once it is back: so the removal is
    retried from a thread of its own until storage answers (at most ``outage_ride_out_s``).
    A removal that meets an outage itself (Redis gone between the write and the queueing) is
    handed to the same thread.
    """
    outage = outage_of(err, ctx.settings)
    if outage is not None and outage.backend == "storage":
        _remove_later(ctx, remove, what)
        return
    try:
        remove()
    except Exception as removal_err:  # noqa: BLE001 - logged; the request already has its own error
        if outage_of(removal_err, ctx.settings) is not None:
            _remove_later(ctx, remove, what)
        else:
            log.exception("could not remove %s after a failed request; it stays stored", what)


def _remove_later(ctx: Context, remove: Callable[[], None], what: str) -> None:
    threading.Thread(target=_ride_out_removal, args=(ctx, remove, what), name="savgan-take-back", daemon=True).start()


def _ride_out_removal(ctx: Context, remove: Callable[[], None], what: str) -> None:
    try:
        ride_out(remove, ctx.settings, f"removing {what} after a failed request")
    except Exception:  # noqa: BLE001 - logged; the request already has its own error
        log.exception("could not remove %s after a failed request; it stays stored", what)
