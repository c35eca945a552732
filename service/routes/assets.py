"""The browser files shipped in the package (``service/static``): the page's HTML, CSS and JS, and the
vendored Swagger UI and ReDoc bundles.

Only files present when the module loads are served, looked up by their exact relative path, so no
request path can reach outside the folder. The page's own files are revalidated on every load
(``no-cache``: a new version of the package shows at once); vendored bundles carry their version in
their folder's README and may be cached for a day.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import FileResponse

STATIC_ROOT = Path(__file__).resolve().parent.parent / "static"
SERVED_SUFFIXES = {".html", ".css", ".js", ".png", ".svg"}
VENDOR_MAX_AGE_S = 24 * 3600

router = APIRouter(include_in_schema=False)


def _shipped_files(root: Path) -> dict[str, Path]:
    return {
        path.relative_to(root).as_posix(): path
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.suffix in SERVED_SUFFIXES
    }


SHIPPED = _shipped_files(STATIC_ROOT)


def static_url(root_path: str, relative: str) -> str:
    """The URL of a shipped file under the app's root path (set when served behind a path prefix)."""
    if relative not in SHIPPED:
        raise LookupError(f"{relative} is not shipped in {STATIC_ROOT}")
    return f"{root_path.rstrip('/')}/static/{relative}"


@router.get("/static/{relative:path}")
def shipped_file(relative: str) -> FileResponse:
    path = SHIPPED.get(relative)
    if path is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no file {relative!r} ships with this server")
    cache = f"public, max-age={VENDOR_MAX_AGE_S}" if relative.startswith("vendor/") else "no-cache"
    return FileResponse(path, headers={"Cache-Control": cache})
