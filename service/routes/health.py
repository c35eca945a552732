"""Liveness and readiness.

Readiness probes Redis, storage and the workers at once, each in its own thread, and reports
any probe that has not answered within ``readiness_timeout_s`` as failed: a frozen server (no
refusal, just silence) then costs an orchestrator one bounded wait, not a probe per backend
in a row. A probe left behind ends on its own client timeout.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from savgan.service.deps import ContextDep, DispatcherDep
from savgan.service.schemas import ErrorOut, ReadyOut

router = APIRouter(tags=["health"])

# Probes outlive a request only while their own timeouts run; a few threads cover repeated probes.
_probes = ThreadPoolExecutor(max_workers=12, thread_name_prefix="savgan-readyz")


@router.get("/livez", summary="The process answers")
def livez() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=ReadyOut,
    responses={503: {"model": ErrorOut, "description": "a check failed or did not answer in time; `detail` names it"}},
    summary="Redis, storage and at least one worker are reachable",
)
def readyz(ctx: ContextDep, dispatcher: DispatcherDep):
    probes: dict[str, Callable[[], None]] = {}
    if ctx.settings.mode == "distributed":
        probes["redis"] = ctx.transient.ping
    probes["storage"] = ctx.storage.ping

    def workers() -> None:
        if dispatcher.workers(wait=True) < 1:
            raise RuntimeError("no worker answered" + (" ping" if ctx.settings.mode == "distributed" else ": the worker thread stopped"))

    probes["workers"] = workers
    checks = _run_probes(probes, ctx.settings.readiness_timeout_s)
    failed = {k: v for k, v in checks.items() if v != "ok"}
    if failed:
        detail = "not ready: " + "; ".join(f"{k}: {v}" for k, v in failed.items())
        return JSONResponse({"detail": detail, "status": "not ready", "checks": checks}, status_code=503)
    return ReadyOut(status="ready", checks=checks)


def _run_probes(probes: dict[str, Callable[[], None]], timeout_s: float) -> dict[str, str]:
    futures = {name: _probes.submit(_check, probe) for name, probe in probes.items()}
    wait(futures.values(), timeout=timeout_s)
    return {
        name: future.result() if future.done() else f"no answer within {timeout_s:g} s"
        for name, future in futures.items()
    }


def _check(probe: Callable[[], None]) -> str:
    try:
        probe()
    except Exception as err:  # noqa: BLE001 - every failure is reported, none raised
        return f"{type(err).__name__}: {err}"[:300] or "failed"
    return "ok"
