"""Signed webhooks sent when a job ends.

Receivers verify ``X-Savgan-Signature: sha256=<hex>``, the HMAC-SHA256 of the raw request body
with the shared ``SAVGAN_SIGNING_SECRET``; ``X-Savgan-Timestamp`` (also inside the signed body
as ``sent_at``) lets them refuse replays. Delivery is retried with exponential backoff on
network errors, 429 and 5xx, and never raises: a broken receiver must not fail a finished job.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import socket
import time
from typing import Any
from urllib.parse import urlsplit

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


class WebhookRefused(ValueError):
    pass


def _internal(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved or ip.is_multicast or ip.is_unspecified


def check_webhook_target(url: str, settings: Settings, resolve: bool) -> None:
    """Refuse webhooks aimed inside the deployment's network (SSRF) unless SAVGAN_WEBHOOK_ALLOW_PRIVATE.

    The API checks without DNS (IP literals and localhost names: fast, and the request stays
    cheap); the worker resolves the host just before delivering, which also catches names that
    point inside.
    """
    if settings.webhook_allow_private:
        return
    host = urlsplit(url).hostname or ""
    hint = "use a public address, or set SAVGAN_WEBHOOK_ALLOW_PRIVATE=true on a trusted network"
    if host == "localhost" or host.endswith(".localhost"):
        raise WebhookRefused(f"webhook_url {url} points at this machine; {hint}")
    try:
        addresses = [host] if _is_ip(host) else ([i[4][0] for i in socket.getaddrinfo(host, None)] if resolve else [])
    except socket.gaierror as err:
        raise WebhookRefused(f"webhook host {host!r} does not resolve ({err})") from None
    internal = [a for a in addresses if _internal(a)]
    if internal:
        raise WebhookRefused(f"webhook_url {url} points at a private or local address ({internal[0]}); {hint}")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _retryable(status: int) -> bool:
    return status == 429 or status >= 500


def send_webhook(record: JobRecord, settings: Settings) -> bool:
    """POST the job's summary to its webhook URL; True once a receiver answered 2xx."""
    if not record.webhook_url:
        return False
    try:
        check_webhook_target(record.webhook_url, settings, resolve=True)
    except WebhookRefused as err:
        log.warning("webhook for job %s not sent: %s", record.id, err)
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
