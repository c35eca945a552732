"""``/docs`` (Swagger UI) and ``/redoc`` built from the bundles shipped in the package.

FastAPI's own pages load their JavaScript and CSS from a CDN and stay blank offline, on an
air-gapped microscope PC for instance; the app turns them off (``docs_url=None, redoc_url=None``)
and these routes serve the same pages with every asset from ``/static/vendor/``. The online
validator badge and Google fonts are left out for the same reason, and a content security policy
keeps images, fonts and requests on this server: ReDoc's sidebar always asks a CDN for the
Redocly logo, which the policy stops before it leaves the browser (the logo then hides itself).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse

from savgan.service.routes.assets import static_url

router = APIRouter(include_in_schema=False)

POLICY = "img-src 'self' data:; font-src 'self' data:; connect-src 'self'"


def _root(request: Request) -> str:
    return request.scope.get("root_path", "").rstrip("/")


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    root = _root(request)
    page = get_swagger_ui_html(
        openapi_url=root + request.app.openapi_url,
        title=f"{request.app.title} - Swagger UI",
        swagger_js_url=static_url(root, "vendor/swagger-ui/swagger-ui-bundle.js"),
        swagger_css_url=static_url(root, "vendor/swagger-ui/swagger-ui.css"),
        swagger_favicon_url=static_url(root, "vendor/swagger-ui/favicon-32x32.png"),
        swagger_ui_parameters={"validatorUrl": None},
    )
    page.headers["Content-Security-Policy"] = POLICY
    return page


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    root = _root(request)
    page = get_redoc_html(
        openapi_url=root + request.app.openapi_url,
        title=f"{request.app.title} - ReDoc",
        redoc_js_url=static_url(root, "vendor/redoc/redoc.standalone.js"),
        redoc_favicon_url=static_url(root, "vendor/swagger-ui/favicon-32x32.png"),
        with_google_fonts=False,
    )
    page.headers["Content-Security-Policy"] = POLICY
    return page
