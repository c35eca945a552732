"""Telling "a backing service is down, try again later" apart from every other failure, and
retrying through it.

Redis, the Celery broker on it and S3 fail in their own exception types. The API answers all
of them with one 503 and ``Retry-After`` (``savgan.service.errors``), and a running job retries
its writes through them; both need the same answer to "is this an outage, of what, at which
address", so it is decided here once. The address shown never carries a password.

:func:`ride_out` retries a call through an outage for up to ``outage_ride_out_s``, pausing by a
doubling backoff capped at ``outage_backoff_max_s``; failures other than outages are never
retried.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

import boto3.exceptions
import botocore.exceptions
import kombu.exceptions
import redis.exceptions
from s3transfer.exceptions import RetriesExceededError

from savgan.common.settings import Settings

log = logging.getLogger(__name__)

REDIS_ERRORS: tuple[type[Exception], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    kombu.exceptions.OperationalError,
)
STORAGE_ERRORS: tuple[type[Exception], ...] = (
    botocore.exceptions.ConnectionError,
    botocore.exceptions.HTTPClientError,
)
# A storage server answering 5xx (overloaded, restarting, a proxy without its backend) is down too.
STORAGE_SERVER_ERRORS: tuple[type[Exception], ...] = (botocore.exceptions.ClientError,)
# boto3's transfers (upload_file, download_file) wrap the error of their last try in these.
TRANSFER_WRAPPERS: tuple[type[Exception], ...] = (
    RetriesExceededError,
    boto3.exceptions.RetriesExceededError,
    boto3.exceptions.S3UploadFailedError,
)
OUTAGE_ERRORS = REDIS_ERRORS + STORAGE_ERRORS + STORAGE_SERVER_ERRORS + TRANSFER_WRAPPERS
MAX_CAUSES = 8


NAMES = {"redis": "Redis", "storage": "S3 storage"}


@dataclass(frozen=True)
class Outage:
    backend: Literal["redis", "storage"]
    address: str
    cause: str

    def describe(self) -> str:
        return f"{NAMES[self.backend]} at {self.address} is unreachable ({self.cause})"

    def message(self, retry_after_s: int) -> str:
        return f"{self.describe()}; retry in {retry_after_s} s"


def without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _server_error(err: Exception) -> bool:
    status = getattr(err, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return status >= 500


def _chain(err: BaseException) -> list[BaseException]:
    """``err`` and what it wraps (``raise ... from``, the error being handled, a transfer's last try)."""
    chain: list[BaseException] = []
    current: BaseException | None = err
    while current is not None and len(chain) < MAX_CAUSES:
        chain.append(current)
        current = getattr(current, "last_exception", None) or current.__cause__ or current.__context__
    return chain


def outage_of(err: BaseException, settings: Settings) -> Outage | None:
    """The outage ``err`` reveals, or None when it is some other failure (a bug, bad input)."""
    for link in _chain(err):
        cause = f"{type(link).__name__}: {link}"[:200]
        if isinstance(link, REDIS_ERRORS):
            return Outage("redis", without_password(settings.redis_url), cause)
        if isinstance(link, STORAGE_ERRORS) or (isinstance(link, STORAGE_SERVER_ERRORS) and _server_error(link)):
            return Outage("storage", settings.s3_endpoint_url or "the AWS S3 endpoint", cause)
    return None


T = TypeVar("T")
FIRST_DELAY_S = 0.2


def next_delay(delay: float, settings: Settings) -> float:
    return min(delay * 2, settings.outage_backoff_max_s)


def ride_out(call: Callable[[], T], settings: Settings, what: str) -> T:
    """``call()``, retried through an outage for up to ``outage_ride_out_s``; then its error is raised."""
    deadline = time.monotonic() + settings.outage_ride_out_s
    delay = FIRST_DELAY_S
    while True:
        try:
            return call()
        except OUTAGE_ERRORS as err:
            outage = outage_of(err, settings)
            if outage is None or time.monotonic() + delay > deadline:
                raise
            log.warning("%s: %s; trying again in %.1f s", what, outage.describe(), delay)
            time.sleep(delay)
            delay = next_delay(delay, settings)
