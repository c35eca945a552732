"""Downloads of local-storage results (embedded mode): HMAC-signed, expiring links."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import FileResponse

from savgan.common.storage import LocalStorage, ObjectNotFound, OutsideStorage, check_key
from savgan.service.deps import ContextDep
from savgan.service.routes._common import errors
from savgan.service.schemas import ErrorOut

router = APIRouter(tags=["files"])


@router.get(
    "/files/{key:path}",
    response_class=FileResponse,
    responses={
        200: {"content": {"application/octet-stream": {}}},
        **errors(404),
        403: {"model": ErrorOut, "description": "invalid or expired link, or one leading outside the storage folder"},
    },
    summary="Download a result through a signed link (local storage only)",
)
def download(
    key: str,
    ctx: ContextDep,
    filename: Annotated[str, Query(min_length=1, max_length=255)],
    expires: Annotated[int, Query(ge=0, le=2**62)],
    signature: Annotated[str, Query(pattern=r"^[0-9a-f]{64}$", description="hex HMAC-SHA256 of the link")],
) -> FileResponse:
    storage = ctx.storage
    if not isinstance(storage, LocalStorage):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "downloads come from object storage links on this server")
    try:
        check_key(key)
    except ValueError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such file") from None
    if not storage.verify(key, filename, expires, signature):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this link is invalid or has expired; fetch the job again for a fresh one")
    try:
        path = storage.servable(key)
    except ObjectNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such file") from None
    except OutsideStorage:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "this link names a symbolic link that leads outside the server's storage folder, which is never "
            "served; the server's operator must replace the link with the file itself",
        ) from None
    # Serve the resolved path: a symbolic link put at the key after the check is not followed.
    return FileResponse(path, filename=filename, content_disposition_type="attachment")
