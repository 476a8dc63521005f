"""The ASGI app: `create_app(settings)`. Routers live in web/routes (auth, owner, public, social,
api); this module wires settings, sessions, CSRF, security headers and error pages."""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import HTTPException
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware

from purchaseshare.config import Settings, get_settings
from purchaseshare.db import migrate
from web.deps import LoginRequired, render
from web.security import csrf_protect

STATIC = Path(__file__).with_name("static")
# Product images come from merchants' CDNs (https); nothing else is loaded from elsewhere, and no
# inline script runs: an injected <script> could not execute even if escaping ever failed.
CSP = ("default-src 'self'; img-src 'self' https: data:; style-src 'self'; script-src 'self'; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")


def create_app(settings: Settings | None = None, *, run_worker: bool = True) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        migrate(settings)
        if run_worker:  # no REDIS_URL: the actors run inside this process
            from workers.broker import start_in_process_worker

            start_in_process_worker()
        yield

    app = FastAPI(title="PurchaseShare", version="1", lifespan=lifespan,
                  dependencies=[Depends(csrf_protect)], docs_url="/api/docs", redoc_url=None,
                  openapi_url="/openapi.json")
    app.state.settings = settings
    app.add_middleware(SessionMiddleware, secret_key=settings.secret_key, session_cookie="ps_session",
                       same_site="lax", https_only=settings.secure_cookies, max_age=30 * 24 * 3600)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.middleware("http")
    async def security_headers(request: Request, call_next) -> Response:
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        if request.session.get("user_id") is not None:  # personal pages are never cached by proxies
            response.headers.setdefault("Cache-Control", "private, no-store")
        return response

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, _exc: LoginRequired) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target)}", status_code=303)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if request.url.path.startswith("/api/") or "text/html" not in request.headers.get("accept", ""):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
        return render(request, "error.html", {"status": exc.status_code, "detail": exc.detail},
                      status_code=exc.status_code)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    from web.routes import api, auth, owner, public, social

    for module in (auth, owner, social, public, api):
        app.include_router(module.router)
    return app
