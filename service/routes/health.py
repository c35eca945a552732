from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from savgan.service.deps import ContextDep, DispatcherDep
from savgan.service.schemas import ErrorOut, ReadyOut

router = APIRouter(tags=["health"])


@router.get("/livez", summary="The process answers")
def livez() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=ReadyOut,
    responses={503: {"model": ErrorOut, "description": "a check failed; `detail` names it"}},
    summary="Redis, storage and at least one worker are reachable",
)
def readyz(ctx: ContextDep, dispatcher: DispatcherDep):
    checks: dict[str, str] = {}
    if ctx.settings.mode == "distributed":
        checks["redis"] = _check(ctx.transient.ping)
    checks["storage"] = _check(ctx.storage.ping)

    def workers() -> None:
        if dispatcher.workers(wait=True) < 1:
            raise RuntimeError("no worker answered" + (" ping" if ctx.settings.mode == "distributed" else ": the worker thread stopped"))

    checks["workers"] = _check(workers)
    failed = {k: v for k, v in checks.items() if v != "ok"}
    if failed:
        detail = "not ready: " + "; ".join(f"{k}: {v}" for k, v in failed.items())
        return JSONResponse({"detail": detail, "status": "not ready", "checks": checks}, status_code=503)
    return ReadyOut(status="ready", checks=checks)


def _check(probe) -> str:
    try:
        probe()
    except Exception as err:  # noqa: BLE001 - every failure is reported, none raised
        return f"{type(err).__name__}: {err}"[:300] or "failed"
    return "ok"
