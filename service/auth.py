"""API keys as Bearer tokens: ``SAVGAN_API_KEYS=owner:key,...``; each key acts as its owner.

A missing or unknown key answers 401 with ``WWW-Authenticate: Bearer``. Keys may be switched
off only in embedded mode (settings refuse it otherwise); every request then acts as owner
``local``, and the startup log says so.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

LOCAL_OWNER = "local"

bearer = HTTPBearer(auto_error=False, description="an API key from SAVGAN_API_KEYS (owner:key pairs)")


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"})


def owner_for_key(keys: dict[str, str], presented: str) -> str | None:
    """Compare against every key in constant time, so timing says nothing about near misses."""
    found = None
    for key, owner in keys.items():
        if hmac.compare_digest(key.encode(), presented.encode()):
            found = owner
    return found


def current_owner(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> str:
    settings = request.app.state.settings
    if settings.auth_disabled:
        return LOCAL_OWNER
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise _unauthorized("an API key is required: send the header 'Authorization: Bearer <key>'")
    owner = owner_for_key(request.app.state.keys, credentials.credentials)
    if owner is None:
        raise _unauthorized("unknown API key")
    return owner
