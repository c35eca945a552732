"""The Celery tasks: thin wrappers that run the shared job code with this process's context.

The context (storage clients, Redis connection) is built in each prefork child, because
neither boto3 clients nor sockets survive a fork well. Progress is mirrored into a custom
``PROGRESS`` task state for Flower and result watchers. When a child is stopped from outside
(hard time limit, ``revoke(terminate=True)``), the parent process records the job's end, since
the child can no longer do it.

Each job runs under its lease (``savgan.common.leases``), and the parent runs the reaper
(``savgan.worker.reaper``) that sends again the jobs of workers that died.
"""

from __future__ import annotations

import importlib
from functools import cache, partial
from typing import TYPE_CHECKING, Any

from celery import Task
from celery.exceptions import TimeLimitExceeded
from celery.signals import task_failure, task_revoked, worker_process_init, worker_ready, worker_shutdown

from savgan.common.context import Context, build_context
from savgan.common.jobs import JobState, Progress, RedisState
from savgan.common.leases import JobLease
from savgan.common.settings import get_settings
from savgan.worker.app import EVALUATE_TASK, TASK_NAMES, app, make_app, send_job
from savgan.worker.jobs_runner import ProgressCallback, abandon, run_evaluate, run_generate, run_train
from savgan.worker.reaper import Reaper

if TYPE_CHECKING:
    import redis

PROGRESS_STATE = "PROGRESS"


@cache
def process_context() -> Context:
    return build_context(get_settings())


def redis_client(ctx: Context) -> redis.Redis:
    """Leases and the reaper need Redis itself, which only the distributed mode has."""
    if not isinstance(ctx.transient, RedisState):
        raise RuntimeError("Celery workers keep job leases in Redis: run them with SAVGAN_MODE=distributed")
    return ctx.transient.client


def _lease(job_id: str) -> JobLease:
    ctx = process_context()
    return JobLease(redis_client(ctx), job_id, ctx.settings)


@cache
def _reaper() -> Reaper:
    """The parent's reaper, with a context and an app of its own: its thread shares no connection
    with the consumer or with the parent's :func:`process_context`."""
    ctx = build_context(get_settings())
    return Reaper(ctx, redis_client(ctx), partial(send_job, make_app(ctx.settings)))


@worker_ready.connect
def _start_reaper(**_: Any) -> None:
    _reaper().start()


@worker_shutdown.connect
def _stop_reaper(**_: Any) -> None:
    _reaper().stop()


@worker_process_init.connect
def _preload(**_: Any) -> None:
    """Import torch and the model code in each child before its first task (no CUDA call here),
    so time limits measure work, not imports; ``worker_proc_alive_timeout`` allows for it.
    A context the parent built (see below) is dropped: the child opens its own connections."""
    importlib.import_module("savgan.model.generate")
    importlib.import_module("savgan.model.train")
    process_context.cache_clear()
    process_context()


@task_failure.connect
def _hard_time_limit(exception: BaseException | None = None, args: tuple = (), **_: Any) -> None:
    if isinstance(exception, TimeLimitExceeded) and _is_job(args):
        message = f"the job was stopped after {exception.args[0]} s, this server's hard time limit"
        abandon(process_context(), args[0], "failed", message)


@task_revoked.connect
def _terminated(request: Any = None, terminated: bool = False, **_: Any) -> None:
    if terminated and request is not None and _is_job(request.args):
        abandon(process_context(), request.args[0], "cancelled")


def _is_job(args: Any) -> bool:
    """Generate and train tasks carry a job id with a record to close; evaluate carries a request dict."""
    return bool(args) and isinstance(args[0], str)


def _reporter(task: Task, job_id: str) -> ProgressCallback:
    def report(progress: Progress) -> None:
        task.update_state(task_id=job_id, state=PROGRESS_STATE, meta=progress.model_dump())

    return report


@app.task(name=TASK_NAMES["generate"], bind=True)
def generate(self: Task, job_id: str) -> JobState | None:
    return run_generate(process_context(), job_id, _reporter(self, job_id), _lease(job_id))


@app.task(name=TASK_NAMES["train"], bind=True)
def train(self: Task, job_id: str) -> JobState | None:
    return run_train(process_context(), job_id, _reporter(self, job_id), _lease(job_id))


@app.task(name=EVALUATE_TASK, bind=True)
def evaluate(self: Task, request: dict) -> dict:
    """The metrics of ``savgan evaluate`` (see :func:`run_evaluate`); the result is the JSON dict."""
    def report(progress: Progress) -> None:
        self.update_state(state=PROGRESS_STATE, meta=progress.model_dump())

    return run_evaluate(process_context(), request, report)
