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
    """Create the durable record, then queue it.

    A submit that fails half way (Redis or the queue down after the record was written) takes
    the record back and re-raises, to be answered 503: otherwise the job would stay `queued`
    forever, since no worker ever receives it. Once queued, the job is real, so a counter that
    cannot be written then only costs a metric.
    """
    try:
        ctx.jobs.create(record)
        dispatcher.submit(record)
    except Exception as err:
        take_back(ctx, err, partial(ctx.jobs.discard, record), f"job {record.id}")
        raise
    try:
        ctx.transient.incr("jobs_submitted")
        ctx.transient.incr(f"jobs_submitted:{record.kind}")
    except OUTAGE_ERRORS as err:
        log.warning("job %s queued, but its submission was not counted: %s", record.id, err)


def take_back(ctx: Context, err: BaseException, remove: Callable[[], None], what: str) -> None:
    """Remove what a failed request stored, never masking ``err``, the error to answer with.

    With storage itself down, removing now would wait out the same timeouts, and a write the
    server received but never answered may still land once it is back: so the removal is
    retried from a thread of its own until storage answers (at most ``outage_ride_out_s``).
    """
    outage = outage_of(err, ctx.settings)
    if outage is not None and outage.backend == "storage":
        threading.Thread(target=_remove, args=(ctx, remove, what, True), name="savgan-take-back", daemon=True).start()
    else:
        _remove(ctx, remove, what, False)


def _remove(ctx: Context, remove: Callable[[], None], what: str, through_outage: bool) -> None:
    try:
        if through_outage:
            ride_out(remove, ctx.settings, f"removing {what} after a failed request")
        else:
            remove()
    except Exception:  # noqa: BLE001 - logged; the request already has its own error
        log.exception("could not remove %s after a failed request; it stays in storage", what)
