"""The ASGI app: `create_app(settings)`. Routers live in web/routes (auth, owner, public, social,
api); this module wires settings, sessions, CSRF, security headers and error pages."""

from __future__ import annotations

from contextlib import asynccontextmanager
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from babel import Locale
from babel.dates import format_date
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import HTTPException, RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import pass_context
from markupsafe import Markup
from starlette.datastructures import MutableHeaders
from starlette.middleware.sessions import SessionMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from purchaseshare.config import Settings, get_settings
from purchaseshare.db import get_engine, migrate
from purchaseshare.limits import TEXT_MAX
from purchaseshare.public import PublicPurchase
from web.api_docs import add_api_docs
from web.deps import TEMPLATES, HandleMoved, LoginRequired, render
from web.errors import validation_error
from web.forms import see_other
from web.hosts import RelativeRedirects, moved_path
from web.images import image_key, image_src
from web.limits import BodyLimit
from web.money import format_money, request_locale
from web.overload import Overload
from web.page_cache import GenerationReader, PageCache
from web.reading import total_in_doubt
from web.security import csrf_protect
from web.sessions import SESSION_KEY

STATIC = Path(__file__).with_name("static")
# Nothing is loaded from elsewhere (product images come through /img, web/images.py), and no
# inline script runs: an injected <script> could not execute even if escaping ever failed.
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")


_HEADERS = (("content-security-policy", CSP), ("x-content-type-options", "nosniff"),
            ("referrer-policy", "same-origin"), ("x-frame-options", "DENY"))


class SecurityHeaders:
    """Security headers on every HTTP response, as a pure ASGI middleware (BaseHTTPMiddleware
    costs a task and a stream per request). Signed-in pages are never cached by proxies."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _HEADERS:
                    headers.setdefault(name, value)
                # SessionMiddleware (inside this one) has put the session in the scope.
                if scope.get("session", {}).get(SESSION_KEY) is not None:
                    headers.setdefault("cache-control", "private, no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)


def viewer_locale(context: Any) -> Locale:
    """The locale money and dates are written in: a memoized card gets it as `locale`, a page via its request."""
    return context.get("locale") or request_locale(context["request"])


@pass_context
def money(context: Any, amount: Decimal, currency: str | None) -> str:
    """Jinja filter `amount|money(currency)`: the amount as the viewer's locale writes it."""
    return format_money(amount, currency, viewer_locale(context))


@pass_context
def day(context: Any, value: date) -> str:
    """Jinja filter `when|day`: a date (or a datetime's day) as the viewer's locale writes it."""
    return _day(value.date() if isinstance(value, datetime) else value, viewer_locale(context))


@lru_cache(maxsize=4096)  # babel writes a datetime's date part (no zone conversion): memoized on that day
def _day(value: date, locale: Locale) -> str:
    return format_date(value, "medium", locale=locale)


@lru_cache(maxsize=4096)
def _card_html(view: PublicPurchase, published_at: str, image_key: str, locale: Locale) -> Markup:
    return Markup(TEMPLATES.get_template("public/_purchase_card_body.html").render(
        purchase=view, image_key=image_key, locale=locale))


@pass_context
def public_card(context: Any, view: PublicPurchase) -> Markup:
    """A purchase's card HTML. The card shows nothing but the (immutable) public view, written in
    the viewer's locale (its money and dates), so it is memoized on the view's value and that locale: a
    changed view is a new key, never stale, and a French visitor never gets an English card.
    (published_at as text too: equal datetimes in other zones would print differently.)"""
    return _card_html(view, str(view.published_at), image_key(context), viewer_locale(context))


@lru_cache(maxsize=4096)
def _byline_html(view: PublicPurchase, published_at: str, locale: Locale) -> Markup:
    return Markup(TEMPLATES.get_template("social/_feed_byline.html").render(purchase=view, locale=locale))


@pass_context
def feed_byline(context: Any, view: PublicPurchase) -> Markup:
    """Who shared a home-feed entry and when (their day in the viewer's locale): memoized like
    `public_card`, on the view's value and that locale."""
    return _byline_html(view, str(view.published_at), viewer_locale(context))


TEMPLATES.env.globals["public_card"] = public_card
TEMPLATES.env.globals["feed_byline"] = feed_byline
TEMPLATES.env.globals["image_src"] = image_src
TEMPLATES.env.filters["money"] = money
TEMPLATES.env.filters["day"] = day
TEMPLATES.env.globals["total_in_doubt"] = total_in_doubt  # owner lists only
TEMPLATES.env.globals["field_max"] = TEXT_MAX  # maxlength = the server's limit


def create_app(settings: Settings | None = None, *, run_worker: bool = True) -> FastAPI:
    settings = settings or get_settings()

    generation_reader = GenerationReader(get_engine(settings))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        migrate(settings)
        if run_worker:  # no REDIS_URL: the actors run inside this process
            from workers.broker import start_in_process_worker

            start_in_process_worker()
        yield
        generation_reader.close()

    app = FastAPI(title="PurchaseShare", version="1", lifespan=lifespan,
                  dependencies=[Depends(csrf_protect)], docs_url=None, redoc_url=None,
                  openapi_url="/openapi.json")
    app.state.settings = settings
    app.state.generation_reader = generation_reader
    # Inside the session middleware: the cache keys signed-in pages on the verified session.
    app.add_middleware(PageCache, reader=generation_reader, max_bytes=settings.page_cache_mb * 2**20)
    app.add_middleware(SessionMiddleware, secret_key=settings.secret_key, session_cookie="ps_session",
                       same_site="lax", https_only=settings.secure_cookies, max_age=30 * 24 * 3600)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    add_api_docs(app)  # Swagger UI from local files (no CDN, no inline script)

    app.add_middleware(BodyLimit, upload_bytes=settings.upload_max_mb * 2**20)  # bodies counted as read
    app.add_middleware(Overload)  # a burst gets quick 503s, not a queue without end (web/overload.py)
    app.add_middleware(RelativeRedirects)  # no Location built from the client's Host header
    app.add_middleware(SecurityHeaders)  # error pages get the headers too
    if settings.check_host:  # outermost: an unknown Host is refused before anything runs
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=settings.host_names())
    TEMPLATES.env.auto_reload = False  # no stat() of every template per include; a restart reloads

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, _exc: LoginRequired) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return see_other(f"/login?next={quote(target)}")

    @app.exception_handler(HandleMoved)
    async def handle_moved(request: Request, exc: HandleMoved) -> Response:
        if request.method not in ("GET", "HEAD"):
            return await http_error(request, HTTPException(status_code=404, detail="Not found"))
        return RedirectResponse(moved_path(request, exc), status_code=302)  # temporary: the reservation ends

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if request.url.path.startswith("/api/") or "text/html" not in request.headers.get("accept", ""):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
        return render(request, "error.html", {"status": exc.status_code, "detail": exc.detail},
                      status_code=exc.status_code, headers=exc.headers)  # Retry-After on a 429 page too

    app.add_exception_handler(RequestValidationError, validation_error)  # no echo of the input

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:  # async: answered even when every worker thread is busy
        return {"status": "ok"}

    from web import images
    from web.routes import account, api, auth, mail, owner, public, social, teach

    for module in (auth, owner, mail, teach, account, social, public, api, images):
        app.include_router(module.router)
    return app
