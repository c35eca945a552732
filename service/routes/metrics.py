"""Prometheus metrics: this API process's requests, and job/queue/worker values shared through Redis.

Job counts come from counters (``TransientState.incr``) that workers write at each job's end
(``jobs_succeeded``, ``jobs_failed``, ``jobs_cancelled``, durations, ``generated_frames``) and
that the API writes on submission and on cancelling queued jobs; counting records in storage
at each scrape would not scale. Queue depth is the length of each Celery queue's Redis list.
Names follow Prometheus conventions (``_total`` counters, base units) so ``promtool check
metrics`` has nothing to say.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, SummaryMetricFamily
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from savgan.common.context import Context
from savgan.service.dispatch import Dispatcher

log = logging.getLogger(__name__)

router = APIRouter(tags=["health"])
FINISHED_STATES = ("succeeded", "failed", "cancelled")
KINDS = ("generate", "train")


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}}, summary="Prometheus metrics")
def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


class JobCollector:
    """Reads the shared counters at scrape time; a backend that does not answer leaves its metrics out."""

    def __init__(self, ctx: Context, dispatcher: Dispatcher) -> None:
        self.ctx = ctx
        self.dispatcher = dispatcher

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        try:
            counters = self.ctx.transient.counters()
        except Exception:  # noqa: BLE001
            log.warning("metrics: transient state unreachable", exc_info=True)
            counters = None
        if counters is not None:
            yield from self._jobs(counters)
        try:
            depths = self.dispatcher.queue_depths()
        except Exception:  # noqa: BLE001
            log.warning("metrics: queue depth unavailable", exc_info=True)
        else:
            queue = GaugeMetricFamily("savgan_queue_jobs", "Jobs waiting in each queue", labels=["queue"])
            for name, depth in sorted(depths.items()):
                queue.add_metric([name], depth)
            yield queue
        try:
            workers = self.dispatcher.workers()
        except Exception:  # noqa: BLE001
            log.warning("metrics: worker count unavailable", exc_info=True)
        else:
            yield GaugeMetricFamily("savgan_workers", "Workers that answered the last ping", value=workers)

    def _jobs(self, counters: dict[str, float]) -> Iterator[Metric]:
        submitted = CounterMetricFamily("savgan_jobs_submitted", "Jobs accepted by the API", labels=["kind"])
        for kind in KINDS:
            submitted.add_metric([kind], counters.get(f"jobs_submitted:{kind}", 0.0))
        yield submitted
        finished = CounterMetricFamily("savgan_jobs_finished", "Jobs that ended, by final state", labels=["state"])
        for state in FINISHED_STATES:
            finished.add_metric([state], counters.get(f"jobs_{state}", 0.0))
        yield finished
        ended = sum(counters.get(f"jobs_{s}", 0.0) for s in FINISHED_STATES)
        yield GaugeMetricFamily(
            "savgan_jobs_in_flight", "Jobs queued or running (submitted minus ended)",
            value=max(0.0, counters.get("jobs_submitted", 0.0) - ended),
        )
        durations = SummaryMetricFamily("savgan_job_duration_seconds", "Run time of ended jobs", labels=["kind"])
        for kind in KINDS:
            durations.add_metric(
                [kind],
                count_value=counters.get(f"job_duration_seconds_count:{kind}", 0.0),
                sum_value=counters.get(f"job_duration_seconds_sum:{kind}", 0.0),
            )
        yield durations
        frames = CounterMetricFamily("savgan_generated_frames", "Video frames generated")
        frames.add_metric([], counters.get("generated_frames", 0.0))
        yield frames


class Metrics:
    """One registry per app, so several apps in one process (tests) never share series."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "savgan_http_requests", "HTTP requests answered", ["route", "method", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "savgan_http_request_duration_seconds", "Time to answer an HTTP request", ["route", "method"],
            registry=self.registry, buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )

    def watch(self, ctx: Context, dispatcher: Dispatcher) -> None:
        self.registry.register(JobCollector(ctx, dispatcher))


class MetricsMiddleware:
    """Pure ASGI (streams pass through untouched); routes are labelled by template, unmatched paths as one."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            self.metrics.requests.labels(template, method, str(status)).inc()
            self.metrics.latency.labels(template, method).observe(time.perf_counter() - started)
