"""Signed webhooks sent when a job ends.

Receivers verify ``X-Savgan-Signature: sha256=<hex>``, the HMAC-SHA256 of the raw request body
with the shared ``SAVGAN_SIGNING_SECRET``; ``X-Savgan-Timestamp`` (also inside the signed body
as ``sent_at``) lets them refuse replays. Delivery is retried with exponential backoff on
network errors, 429 and 5xx, and never raises: a broken receiver must not fail a finished job.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from typing import Any

from savgan.common.jobs import JobRecord
from savgan.common.settings import Settings

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Savgan-Signature"
TIMESTAMP_HEADER = "X-Savgan-Timestamp"
FIRST_RETRY_DELAY_S = 0.5


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(body: bytes, signature: str, secret: str) -> bool:
    return hmac.compare_digest(sign(body, secret), signature)


def payload(record: JobRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "kind": record.kind,
        "state": record.state,
        "model": record.model,
        "error": record.error,
        "results": [r.filename for r in record.results],
        "finished_at": record.finished_at,
        "sent_at": int(time.time()),
    }


def _retryable(status: int) -> bool:
    return status == 429 or status >= 500


def send_webhook(record: JobRecord, settings: Settings) -> bool:
    """POST the job's summary to its webhook URL; True once a receiver answered 2xx."""
    if not record.webhook_url:
        return False
    import httpx

    body = json.dumps(payload(record), sort_keys=True).encode()
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(body, settings.signing_secret.get_secret_value()),
        TIMESTAMP_HEADER: str(int(time.time())),
        "User-Agent": "savgan-webhook/1",
    }
    for attempt in range(settings.webhook_attempts):
        if attempt:
            time.sleep(FIRST_RETRY_DELAY_S * 2 ** (attempt - 1))
        try:
            response = httpx.post(record.webhook_url, content=body, headers=headers, timeout=settings.webhook_timeout_s)
        except Exception as err:  # noqa: BLE001 - whatever the receiver does, the job's outcome stands
            log.warning("webhook for job %s, attempt %d: %s", record.id, attempt + 1, err)
            continue
        if response.is_success:
            return True
        log.warning("webhook for job %s, attempt %d: HTTP %d", record.id, attempt + 1, response.status_code)
        if not _retryable(response.status_code):
            return False
    return False
