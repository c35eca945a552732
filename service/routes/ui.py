"""``GET /``: the page for people who do not script the API (generate, train, follow jobs).

Plain HTML, CSS and JavaScript modules from ``service/static/ui`` with no build step and nothing
from another site, so it works offline, in both modes. It calls the same public API as any client
and shows the API's own messages; every check stays on the server. The content security policy
keeps the page to this server's scripts; videos and pictures may come from the storage's signed
links, which are on another origin when results live in S3.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse

from savgan.service.routes.assets import SHIPPED

router = APIRouter(include_in_schema=False)

PAGE = "ui/index.html"
POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' blob: http: https:; media-src 'self' http: https:; frame-ancestors 'none'; base-uri 'self'"
)


@router.get("/")
def page() -> FileResponse:
    return FileResponse(
        SHIPPED[PAGE], media_type="text/html", headers={"Cache-Control": "no-cache", "Content-Security-Policy": POLICY}
    )
