"""Dependencies injected into routes: settings, the shared context, the dispatcher, the caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from savgan.common.context import Context
from savgan.common.settings import Settings
from savgan.service.auth import current_owner
from savgan.service.dispatch import Dispatcher


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_context(request: Request) -> Context:
    return request.app.state.ctx


def get_dispatcher(request: Request) -> Dispatcher:
    return request.app.state.dispatcher


SettingsDep = Annotated[Settings, Depends(get_settings)]
ContextDep = Annotated[Context, Depends(get_context)]
DispatcherDep = Annotated[Dispatcher, Depends(get_dispatcher)]
OwnerDep = Annotated[str, Depends(current_owner)]
