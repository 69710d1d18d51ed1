"""/ui: the web dashboard's login, logout, pages and its one JSON route.

The pages are static files from pushq/ui; everything they show comes from the
/v1 API (plus /ui/api/overview), called with the session cookie set here.
"""

from __future__ import annotations

import hmac
import logging
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from ...errors import BadRequest, Forbidden, PayloadTooLarge
from ...policy.states import PUBLIC_STATES
from ..render import rfc3339
from ..ui import PAGES_DIR, STATIC_DIR
from ..ui.session import COOKIE_NAME
from .common import context, ok, require_token

log = logging.getLogger("pushq.ui")
LOGIN_BODY_LIMIT = 4096
# The pages load only their own scripts and styles and talk only to this origin.
PAGE_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "cache-control": "no-store",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
}
BAD_TOKEN = '<p class="error" role="alert">That is not the API token.</p>'


def _page(name: str) -> str:
    return (PAGES_DIR / name).read_text(encoding="utf-8")


def _login_page(status: int = 200, error: str = "") -> HTMLResponse:
    html = _page("login.html").replace("<!--error-->", error)
    return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)


def _has_session(request: Request) -> bool:
    value = request.cookies.get(COOKIE_NAME)
    sessions = context(request).sessions
    return value is not None and sessions is not None and sessions.valid(value)


def _refuse_cross_site(request: Request) -> None:
    # Browsers say where a request comes from; a form on another site must not log in or out.
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        raise Forbidden("cross-site requests to the dashboard are refused")


def _secure(request: Request) -> bool:
    public_url = context(request).settings.public_url or ""
    return request.url.scheme == "https" or public_url.startswith("https://")


async def dashboard(request: Request) -> Response:
    """The dashboard for a valid session; only the login page for anyone else."""
    if not _has_session(request):
        return _login_page()
    return HTMLResponse(_page("dashboard.html"), headers=PAGE_HEADERS)


async def login(request: Request) -> Response:
    """A form post of the API token: sets the session cookie, never echoes the token."""
    _refuse_cross_site(request)
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > LOGIN_BODY_LIMIT:
            raise PayloadTooLarge(f"a login form is at most {LOGIN_BODY_LIMIT} bytes")
    try:
        form = parse_qs(raw.decode(), max_num_fields=8)
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("send the login form as application/x-www-form-urlencoded") from None
    given = (form.get("token") or [""])[0].strip()
    expected = context(request).settings.api_token
    if not hmac.compare_digest(given.encode(), expected.encode()):
        log.warning("dashboard login refused (wrong token) from %s", request.client)
        return _login_page(401, BAD_TOKEN)
    sessions = context(request).sessions
    assert sessions is not None, "create_app always sets up sessions"
    response = RedirectResponse("/ui", status_code=303)
    response.set_cookie(
        COOKIE_NAME,
        sessions.issue(),
        max_age=int(sessions.ttl),
        path="/",
        secure=_secure(request),
        httponly=True,
        samesite="strict",
    )
    return response


async def logout(request: Request) -> Response:
    """End the session (here and in the browser) and go back to the login page."""
    _refuse_cross_site(request)
    value = request.cookies.get(COOKIE_NAME)
    sessions = context(request).sessions
    if value is not None and sessions is not None:
        sessions.revoke(value)
    response = RedirectResponse("/ui", status_code=303)
    response.delete_cookie(
        COOKIE_NAME, path="/", secure=_secure(request), httponly=True, samesite="strict"
    )
    return response


async def overview(request: Request) -> JSONResponse:
    """Jobs per queue and state: the dashboard's overview, whatever else the API offers."""
    ctx = context(request)
    require_token(request, ctx.settings.api_token)
    now = ctx.clock()
    counts = await ctx.store.count_by_state(now=now)
    names = sorted({queue for queue, _ in counts})
    queues = [
        {"name": name, "counts": {state: counts.get((name, state), 0) for state in PUBLIC_STATES}}
        for name in names
    ]
    return ok({"queues": queues, "generated_at": rfc3339(now)})


def routes() -> list[BaseRoute]:
    """The dashboard's routes, for create_app."""
    return [
        Route("/ui", dashboard, methods=["GET"]),
        Route("/ui/", dashboard, methods=["GET"]),
        Route("/ui/login", login, methods=["POST"]),
        Route("/ui/logout", logout, methods=["POST"]),
        Route("/ui/api/overview", overview, methods=["GET"]),
        Mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="ui-static"),
    ]
