"""Every setting of the service and the worker, read from ``SAVGAN_*`` environment variables.

One object, imported by both sides, so the API and the workers can never disagree about
a bucket, a limit or a queue name. docs/SERVICE.md lists every variable.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SAVGAN_", extra="ignore")

    mode: Literal["distributed", "embedded"] = Field(
        "distributed", description="distributed: Redis + Celery + S3; embedded: one process, local folders"
    )
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="broker, result backend and transient job state")
    storage: Literal["s3", "local"] = Field("s3", description="where results, uploads and models are kept")
    local_storage_dir: Path = Field(Path("savgan-data"), description="root folder of the local storage")
    s3_endpoint_url: str | None = Field(None, description="S3 endpoint for traffic (inside the compose network)")
    s3_public_endpoint_url: str | None = Field(
        None, description="S3 endpoint used only to sign download links, as clients outside reach it"
    )
    s3_bucket: str = Field("savgan", description="bucket holding every object")
    s3_region: str = Field("us-east-1")
    s3_access_key_id: SecretStr | None = Field(None)
    s3_secret_access_key: SecretStr | None = Field(None)
    public_base_url: str = Field("http://127.0.0.1:8000", description="how clients reach the API (local links)")
    api_keys: SecretStr = Field(
        SecretStr(""), description="comma list of owner:key pairs; each key sees only its owner's jobs and models"
    )
    auth_disabled: bool = Field(False, description="accept requests without a key (embedded mode only)")
    link_ttl_s: int = Field(900, ge=30, le=7 * 24 * 3600, description="lifetime of download links")
    signing_secret: SecretStr = Field(
        SecretStr(""), description="HMAC secret for webhook signatures and local download links"
    )
    api_workers: int = Field(
        1, ge=1, le=64, description="uvicorn worker processes of the API in distributed mode (embedded: always 1)"
    )
    max_upload_bytes: int = Field(512 * 2**20, ge=1, description="largest accepted upload file")
    max_upload_files: int = Field(16, ge=1)
    max_frames: int = Field(1024, ge=1, le=1024, description="longest video a request may ask for")
    max_videos_per_request: int = Field(16, ge=1)
    max_train_steps: int = Field(100_000, ge=1)
    generate_soft_time_limit_s: int = Field(600, ge=1)
    generate_time_limit_s: int = Field(660, ge=1)
    train_soft_time_limit_s: int = Field(6 * 3600, ge=1)
    train_time_limit_s: int = Field(6 * 3600 + 300, ge=1)
    max_attempts: int = Field(3, ge=1, description="a job that kills its worker this many times fails")
    cancel_grace_s: int = Field(30, ge=1, description="wait for cooperative stop before revoke(terminate=True)")
    worker_model_cache_dir: Path = Field(Path("/tmp/savgan-models"), description="worker's local copy of models")
    device: str = Field("auto", description="torch device of the workers: auto, cpu, cuda, cuda:N")
    webhook_timeout_s: float = Field(5.0, gt=0)
    webhook_attempts: int = Field(5, ge=1)
    webhook_allow_private: bool = Field(
        False, description="allow webhooks to private, loopback and link-local addresses (trusted networks only)"
    )
    retry_after_s: int = Field(
        5, ge=1, description="Retry-After of a 503 answered while Redis or storage is unreachable"
    )
    s3_connect_timeout_s: float = Field(1.0, gt=0, description="give up opening a connection to S3 after this long")
    s3_read_timeout_s: float = Field(
        1.5, gt=0, description="give up on an S3 answer when no byte arrives for this long (a frozen server)"
    )
    s3_attempts: int = Field(2, ge=1, description="tries of one S3 call, the first included, before it fails")
    readiness_timeout_s: float = Field(
        2.0, gt=0, description="/readyz reports a check that has not answered after this long as failed"
    )
    shutdown_grace_s: float = Field(
        3.0, gt=0, description="on SIGTERM, open connections (event streams) get this long before they are closed"
    )
    outage_ride_out_s: float = Field(
        120.0, gt=0, description="a running job retries a write to Redis or storage this long before failing"
    )
    outage_backoff_max_s: float = Field(
        5.0, gt=0, description="longest pause between two retries of a write through an outage"
    )
    job_retention_s: int = Field(
        24 * 3600,
        ge=60,
        description="a finished job's record stays in Redis this long once storage has it; later reads go to storage",
    )
    visibility_timeout_s: int = Field(
        0,
        ge=0,
        description="Redis redelivers an unacknowledged task after this long, the last resort behind job "
        "leases; must exceed the longest hard time limit; 0: that limit + 600 s",
    )
    lease_ttl_s: float = Field(
        60.0,
        ge=3,
        description="a running job's lease lasts this long unless its worker renews it; a dead worker's job "
        "is sent again once its lease has expired",
    )
    reaper_interval_s: float = Field(
        10.0, gt=0, description="how often the workers look for running jobs whose lease has expired"
    )

    @field_validator("s3_endpoint_url", "s3_public_endpoint_url")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value or None

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.auth_disabled and self.mode != "embedded":
            raise ValueError("SAVGAN_AUTH_DISABLED is allowed only with SAVGAN_MODE=embedded")
        if self.generate_time_limit_s <= self.generate_soft_time_limit_s:
            raise ValueError("SAVGAN_GENERATE_TIME_LIMIT_S must exceed SAVGAN_GENERATE_SOFT_TIME_LIMIT_S")
        if self.train_time_limit_s <= self.train_soft_time_limit_s:
            raise ValueError("SAVGAN_TRAIN_TIME_LIMIT_S must exceed SAVGAN_TRAIN_SOFT_TIME_LIMIT_S")
        longest = max(self.generate_time_limit_s, self.train_time_limit_s)
        if self.visibility_timeout_s == 0:
            self.visibility_timeout_s = longest + 600
        elif self.visibility_timeout_s <= longest:
            raise ValueError(
                "SAVGAN_VISIBILITY_TIMEOUT_S must exceed the longest hard time limit "
                f"({longest} s), or a running task would be handed to a second worker"
            )
        self.owners_by_key()
        return self

    def owners_by_key(self) -> dict[str, str]:
        """key -> owner name, from ``owner:key`` pairs."""
        pairs = {}
        for item in filter(None, (p.strip() for p in self.api_keys.get_secret_value().split(","))):
            owner, sep, key = item.partition(":")
            if not sep or not owner or len(key) < 16:
                raise ValueError("SAVGAN_API_KEYS must be owner:key pairs with keys of at least 16 characters")
            pairs[key] = owner
        return pairs


@lru_cache
def get_settings() -> Settings:
    return Settings()
