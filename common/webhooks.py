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

import httpx

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


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
ALLOW_HINT = "use a public address, or set SAVGAN_WEBHOOK_ALLOW_PRIVATE=true on a trusted network"
# Special-use names (RFC 6761 localhost, RFC 6762 local, RFC 8375 home.arpa, ICANN's internal):
# they never name a host on the public internet.
LOCAL_SUFFIXES = ("localhost", "local", "internal", "home.arpa")
# Ranges IANA marks not globally reachable that Python 3.11's ``is_global`` still reports global.
NOT_GLOBAL = tuple(ipaddress.ip_network(n) for n in ("192.0.0.0/24", "64:ff9b:1::/48", "fec0::/10"))
# IPv6 forms whose low 32 bits are an IPv4 address the packets end up at (IPv4-compatible, NAT64).
LOW_32_BITS_IPV4 = tuple(ipaddress.ip_network(n) for n in ("::/96", "64:ff9b::/96"))


def _hostname(url: str) -> str:
    """The URL's host, lower case, without brackets or a trailing dot (``localhost.`` is localhost)."""
    return (urlsplit(url).hostname or "").rstrip(".")


def _ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _embedded_ipv4(ip: IPAddress) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address carries (mapped, 6to4, Teredo, IPv4-compatible, NAT64).

    Traffic to such an address reaches the IPv4 one, so ``[2002:7f00:1::]`` is 127.0.0.1.
    """
    if isinstance(ip, ipaddress.IPv4Address):
        return []
    found = [ip.ipv4_mapped, ip.sixtofour, *(ip.teredo or ())]
    if any(ip in net for net in LOW_32_BITS_IPV4):
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return [a for a in found if a is not None]


def not_public(ip: IPAddress) -> str | None:
    """Why a webhook must not go to ``ip`` (a reason for a person), or None for a public address.

    "Not globally routable" rather than "private": CGNAT (100.64.0.0/10), benchmarking, reserved
    and documentation ranges are not private, yet they are no public receiver either.
    """
    for inner in _embedded_ipv4(ip):
        reason = not_public(inner)
        if reason:
            return f"it embeds the IPv4 address {inner}, {reason}"
    if ip.is_multicast:
        return "a multicast address"
    if not ip.is_global or any(ip in net for net in NOT_GLOBAL):
        return "not a globally routable address (private, loopback, link-local, CGNAT or reserved)"
    return None


def _check_name(url: str, host: str) -> None:
    """Refuse names that can only mean this machine or the local network, before any DNS."""
    if host == "localhost" or host.endswith(".localhost"):
        raise WebhookRefused(f"webhook_url {url} points at this machine; {ALLOW_HINT}")
    local = "." not in host or any(host == s or host.endswith(f".{s}") for s in LOCAL_SUFFIXES)
    if local:
        raise WebhookRefused(
            f"webhook_url {url} names {host!r}, a host of a local network (a name without a dot, or one "
            f"under .{', .'.join(LOCAL_SUFFIXES)}); {ALLOW_HINT}"
        )


def _check_address(url: str, ip: IPAddress) -> None:
    reason = not_public(ip)
    if reason:
        raise WebhookRefused(f"webhook_url {url} points at {ip}: {reason}; {ALLOW_HINT}")


def check_webhook_url(url: str, settings: Settings) -> None:
    """Refuse webhooks aimed inside the deployment's network (SSRF) unless SAVGAN_WEBHOOK_ALLOW_PRIVATE.

    Without DNS, so the API can answer 422 at once: IP literals (including IPv6 forms that embed
    an IPv4 address) and local names. Names that resolve inside are refused by the worker, in
    :func:`resolve_webhook_target`.
    """
    if settings.webhook_allow_private:
        return
    host = _hostname(url)
    ip = _ip(host)
    if ip is None:
        _check_name(url, host)
    else:
        _check_address(url, ip)


def resolve_webhook_target(url: str, settings: Settings) -> list[str]:
    """The addresses to deliver ``url`` to: resolved once, every one checked.

    The sender connects to these and never resolves the name again: a second lookup at connect
    time could answer differently (DNS rebinding) and reach an address this check never saw.
    """
    check_webhook_url(url, settings)
    parts = urlsplit(url)
    host = parts.hostname or ""
    if _ip(host) is not None:
        return [host]
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        raise WebhookRefused(f"webhook host {host!r} does not resolve ({err}); check the name in webhook_url") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not settings.webhook_allow_private:
        for address in addresses:
            _check_address(url, ipaddress.ip_address(address))
    return addresses


def _retryable(status: int) -> bool:
    return status == 429 or status >= 500


def _post_to(client: httpx.Client, url: str, address: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    """POST to ``url`` over a connection to the checked ``address``, never a fresh lookup.

    The Host header and the TLS server name (SNI and certificate check) stay the URL's host, so
    the receiver and its certificate see the name the client registered.
    """
    original = httpx.URL(url)
    pinned = original.copy_with(host=address)
    return client.post(
        pinned,
        content=body,
        headers={**headers, "Host": original.netloc.decode("ascii")},
        extensions={"sni_hostname": original.raw_host.decode("ascii")},
    )


def send_webhook(record: JobRecord, settings: Settings) -> bool:
    """POST the job's summary to its webhook URL; True once a receiver answered 2xx.

    Attempts go round the resolved addresses, so a name with an unreachable IPv6 address still
    gets its IPv4 one.
    """
    if not record.webhook_url:
        return False
    try:
        addresses = resolve_webhook_target(record.webhook_url, settings)
    except WebhookRefused as err:
        log.warning("webhook for job %s not sent: %s", record.id, err)
        return False
    body = json.dumps(payload(record), sort_keys=True).encode()
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(body, settings.signing_secret.get_secret_value()),
        TIMESTAMP_HEADER: str(int(time.time())),
        "User-Agent": "savgan-webhook/1",
    }
    with httpx.Client(timeout=settings.webhook_timeout_s) as client:
        for attempt in range(settings.webhook_attempts):
            if attempt:
                time.sleep(FIRST_RETRY_DELAY_S * 2 ** (attempt - 1))
            address = addresses[attempt % len(addresses)]
            try:
                response = _post_to(client, record.webhook_url, address, body, headers)
            except Exception as err:  # noqa: BLE001 - whatever the receiver does, the job's outcome stands
                log.warning("webhook for job %s, attempt %d (%s): %s", record.id, attempt + 1, address, err)
                continue
            if response.is_success:
                return True
            log.warning("webhook for job %s, attempt %d: HTTP %d", record.id, attempt + 1, response.status_code)
            if not _retryable(response.status_code):
                return False
    return False
