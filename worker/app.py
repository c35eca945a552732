"""The Celery app, built from :class:`Settings`; the API imports it to send tasks by name.

Importing this module must not import torch: the API image has none. Tasks live in
``savgan.worker.tasks``, which only workers import (``include``).

Reliability choices: a job whose worker dies is sent again by the reaper once its lease has
expired (``savgan.common.leases``, ``savgan.worker.reaper``: about a minute with the defaults),
and a delivery whose job is leased or finished is dropped, so a live job never runs twice. Late
acks with reject-on-worker-lost stay as the last resort behind that: the broker delivers an
unacknowledged task again after its visibility timeout, which is above the longest hard time
limit, set everywhere Celery and kombu read it. One prefetched task per process, so a long
training never sits behind another. Workers look for tasks unacknowledged past the visibility
timeout every ``RESTORE_INTERVAL_S``; kombu's default throttle would look only every ten intervals.
"""

from __future__ import annotations

from celery import Celery

from savgan.common.jobs import JobKind
from savgan.common.settings import Settings, get_settings

TASK_NAMES: dict[JobKind, str] = {"generate": "savgan.generate", "train": "savgan.train"}
QUEUES: tuple[JobKind, ...] = ("generate", "train")
# Evaluation is not a job of the HTTP API: callers send it by name; it runs on the train
# queue because, like training, it can take many minutes (FVD on a CPU).
EVALUATE_TASK = "savgan.evaluate"
EVALUATE_QUEUE: JobKind = "train"
MODEL_LOAD_ALLOWANCE_S = 120
RESTORE_INTERVAL_S = 10


def make_app(settings: Settings) -> Celery:
    app = Celery("savgan", broker=settings.redis_url, backend=settings.redis_url, include=["savgan.worker.tasks"])
    visibility = {"visibility_timeout": settings.visibility_timeout_s}
    restore = {"unacked_restore_interval": RESTORE_INTERVAL_S, "unacked_restore_throttle": 1}
    app.conf.update(
        task_routes={**{TASK_NAMES[kind]: {"queue": kind} for kind in QUEUES}, EVALUATE_TASK: {"queue": EVALUATE_QUEUE}},
        task_default_queue="generate",
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options={**visibility, **restore},
        result_backend_transport_options=visibility,
        visibility_timeout=settings.visibility_timeout_s,
        broker_connection_retry_on_startup=True,
        task_annotations={
            TASK_NAMES["generate"]: {
                "soft_time_limit": settings.generate_soft_time_limit_s,
                "time_limit": settings.generate_time_limit_s,
            },
            TASK_NAMES["train"]: {
                "soft_time_limit": settings.train_soft_time_limit_s,
                "time_limit": settings.train_time_limit_s,
            },
            EVALUATE_TASK: {
                "soft_time_limit": settings.train_soft_time_limit_s,
                "time_limit": settings.train_time_limit_s,
            },
        },
        worker_proc_alive_timeout=MODEL_LOAD_ALLOWANCE_S,
        task_track_started=True,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_expires=7 * 24 * 3600,
        worker_send_task_events=True,
        task_send_sent_event=True,
    )
    return app


def send_job(app: Celery, kind: JobKind, job_id: str) -> None:
    """Queue a job by task name (the API has no task code); the Celery task id is the job id.

    A job's outcome lives in its record, so Celery's result is ignored: otherwise every send
    subscribes to and unsubscribes from a result channel in Redis, and the worker writes a
    result nobody reads.
    """
    app.send_task(TASK_NAMES[kind], args=[job_id], task_id=job_id, queue=kind, ignore_result=True)


app = make_app(get_settings())
