"""A killed worker's job comes back within the lease bound, and a live job never runs twice:
real Redis, moto's S3 server and real Celery worker processes, SIGKILLed like a lost machine.

The integration tests shorten the lease and the reaper's interval through the settings (so they
take seconds); the bound they measure is the one the defaults are checked against.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from conftest import PrivateRedis, WorkerProcess
from test_worker import finished, queue_generate, wait_for

from savgan.common.context import Context, build_context
from savgan.common.jobs import JobRecord
from savgan.common.leases import (
    JobLease,
    LeaseLost,
    give_up_after_s,
    holder,
    lease_key,
    outage_tolerance_s,
    redelivery_bound_s,
    renew_every_s,
)
from savgan.common.settings import Settings
from savgan.worker.app import make_app, send_job

# The bounds with default settings, and the Redis outage progress writes ride out.
GENERATE_BOUND_S = 120
TRAIN_BOUND_S = 600
RIDDEN_OUT_OUTAGE_S = 30
FAST_LEASES = {"lease_ttl_s": 4.0, "reaper_interval_s": 1.0}
# From the resend to the record saying `running` again: the idle worker takes the task, reads the
# record, admits it. Seconds on two shared cores.
ADMISSION_S = 5.0
VIDEOS = 16
JOB_TIMEOUT_S = 120


def start_slow_job(ctx: Context, settings: Settings, tiny_run: Path) -> JobRecord:
    """A generation of sixteen 64-frame videos (5 s to a minute on a shared core), running on a worker."""
    ctx.models.publish_run("alice", "tiny", tiny_run)
    record = queue_generate(ctx, frames=64, count=VIDEOS)
    send_job(make_app(settings), "generate", record.id)
    wait_for(ctx, record.id, lambda r: r.progress.step >= 1)
    return record


def leaseholder(ctx: Context, job_id: str, workers: list[WorkerProcess]) -> WorkerProcess:
    """The worker whose pool child holds the job's lease (named host:pid:random; the child shares
    its worker's process group)."""
    pid = int(holder(ctx.transient.client, job_id).split(":")[1])
    (found,) = [w for w in workers if w.process.pid == os.getpgid(pid)]
    return found


@pytest.fixture
def two_workers(settings_private: Settings, tmp_path: Path) -> Iterator[list[WorkerProcess]]:
    """Two idle workers on a Redis of the test's own: the shared test Redis may hold (and flush)
    other runs' jobs, which leases and reapers would act on."""
    workers = [WorkerProcess(settings_private, tmp_path) for _ in range(2)]
    try:
        for worker in workers:
            worker.start()
        yield workers
    finally:
        for worker in workers:
            worker.stop()


def test_default_settings_bring_a_dead_workers_job_back_within_the_bounds(monkeypatch: pytest.MonkeyPatch):
    for name in [n for n in os.environ if n.startswith("SAVGAN_")]:
        monkeypatch.delenv(name)
    defaults = Settings()
    assert redelivery_bound_s(defaults) + ADMISSION_S <= GENERATE_BOUND_S <= TRAIN_BOUND_S
    assert outage_tolerance_s(defaults) >= RIDDEN_OUT_OUTAGE_S, "a 30 s Redis outage must not stop a running job"


@pytest.mark.parametrize("settings_s3", [FAST_LEASES], indirect=True)
def test_a_killed_workers_job_runs_again_within_the_lease_bound(
    settings_private: Settings, two_workers: list[WorkerProcess], tiny_run: Path
):
    ctx = build_context(settings_private)
    record = start_slow_job(ctx, settings_private, tiny_run)
    first_holder = holder(ctx.transient.client, record.id)
    leaseholder(ctx, record.id, two_workers).kill()
    killed = time.monotonic()
    assert ctx.jobs.get(record.id).state == "running"
    wait_for(ctx, record.id, lambda r: r.attempts == 2, timeout_s=settings_private.visibility_timeout_s)
    back_after_s = time.monotonic() - killed
    second_holder = holder(ctx.transient.client, record.id)
    done = wait_for(ctx, record.id, finished, timeout_s=JOB_TIMEOUT_S)
    assert back_after_s <= redelivery_bound_s(settings_private) + ADMISSION_S, f"running again after {back_after_s:.1f} s"
    assert first_holder and second_holder and first_holder != second_holder
    assert done.state == "succeeded", done.error
    assert done.attempts == 2
    assert len([r for r in done.results if r.role == "video"]) == VIDEOS


@pytest.mark.parametrize("settings_s3", [FAST_LEASES], indirect=True)
def test_a_duplicate_delivery_of_a_live_job_is_dropped(
    settings_private: Settings, two_workers: list[WorkerProcess], tiny_run: Path
):
    ctx = build_context(settings_private)
    record = start_slow_job(ctx, settings_private, tiny_run)
    send_job(make_app(settings_private), "generate", record.id)  # the idle worker gets it: the busy one prefetches none
    deadline = time.monotonic() + 30
    while ctx.transient.counters().get("duplicate_deliveries_dropped") != 1:
        assert time.monotonic() < deadline, "the idle worker never dropped the duplicate"
        time.sleep(0.2)
    time.sleep(3 * settings_private.reaper_interval_s)  # a live lease: no reaper sends it again meanwhile
    done = wait_for(ctx, record.id, finished, timeout_s=JOB_TIMEOUT_S)
    assert done.state == "succeeded", done.error
    assert done.attempts == 1, "the job was admitted twice"
    assert ctx.transient.counters()["duplicate_deliveries_dropped"] == 1
    assert len([r for r in done.results if r.role == "video"]) == VIDEOS


def lease_client(server: PrivateRedis) -> redis.Redis:
    return redis.Redis.from_url(server.url, decode_responses=True, socket_timeout=1, socket_connect_timeout=1)


def test_a_lease_rides_out_a_redis_blip_and_is_given_up_after_a_long_silence(private_redis: PrivateRedis):
    settings = Settings(redis_url=private_redis.url, lease_ttl_s=3.0)
    client = lease_client(private_redis)
    lease = JobLease(client, "job-1", settings)
    assert lease.acquire()
    assert not JobLease(client, "job-1", settings, owner="another-worker").acquire(), "a held lease is not taken twice"
    private_redis.stop()
    time.sleep(outage_tolerance_s(settings) * 0.6)
    private_redis.start()
    time.sleep(2 * renew_every_s(settings))
    assert not lease.lost and holder(client, "job-1") == lease.owner, "a short outage changes nothing"
    private_redis.stop()
    time.sleep(give_up_after_s(settings) + renew_every_s(settings))
    assert lease.lost, "a lease silent for longer than its holder may wait is given up"
    private_redis.start()
    lease.release()
    client.close()


def test_a_lease_taken_over_by_another_worker_stops_its_holder(private_redis: PrivateRedis):
    settings = Settings(redis_url=private_redis.url, **FAST_LEASES)
    client = lease_client(private_redis)
    lease = JobLease(client, "job-2", settings)
    assert lease.acquire()
    client.set(lease_key("job-2"), "another-worker")
    time.sleep(2 * renew_every_s(settings))
    assert lease.lost
    with pytest.raises(LeaseLost, match="no longer holds its lease"):
        lease.check()
    lease.release()
    assert holder(client, "job-2") == "another-worker", "releasing never frees another worker's lease"
    client.close()
