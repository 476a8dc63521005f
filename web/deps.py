"""Request-scoped dependencies: settings, database session, the signed-in user, templates."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC
from pathlib import Path
from typing import Annotated, Any

import anyio
import anyio.to_thread
from fastapi import Depends, HTTPException, Request
from fastapi.templating import Jinja2Templates
from markupsafe import escape
from sqlalchemy import bindparam, func
from sqlalchemy import select as sa_select
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from purchaseshare import public
from purchaseshare.config import Settings
from purchaseshare.db import WEB_SESSIONS, get_engine
from purchaseshare.models import Notification, User
from web import sessions
from web.security import csrf_token
from web.sessions import SESSION_KEY

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))  # autoescapes .html


async def get_settings_dep(request: Request) -> Settings:  # async: no thread-pool hop for an attribute
    return request.app.state.settings


async def get_db(request: Request) -> AsyncIterator[Session]:
    """The request's session. Made on the event loop (no connection yet: no I/O, no thread), and
    closed as soon as the route has answered (scope="function" below), not after a slow client
    has read the whole response."""
    session = Session(get_engine(request.app.state.settings), expire_on_commit=False)
    try:
        yield session
    finally:
        if session.in_transaction():  # holds a connection: its rollback is I/O, done in a thread
            # ... that never waits for the shared thread pool (whose threads may all be busy):
            # a limiter of its own, as FastAPI does for the exit of sync dependencies.
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(session.close, limiter=anyio.CapacityLimiter(1))
        else:
            session.close()


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
# One Depends object shared by every route: at most WEB_SESSIONS requests hold a session (and so
# a pooled connection) at once; the others wait here, on the event loop, without a thread.
DbDep = Annotated[Session, Depends(get_db, scope="function", max_concurrency=WEB_SESSIONS)]


async def optional_user(request: Request, db: DbDep) -> User | None:
    """The signed-in user, or None. Async: an anonymous request (no token) is answered on the
    event loop, without the thread hop a sync dependency costs; only a lookup goes to a thread."""
    token = request.session.get(SESSION_KEY)
    if token is None:
        return None
    # One joined lookup: the server-side row must be live (not logged out, revoked or expired).
    user = await run_in_threadpool(sessions.user_for, db, token) if isinstance(token, str) else None
    if user is None:
        request.session.clear()
    return user


def account_stamp(user: User) -> str:
    return user.created_at.astimezone(UTC).isoformat()


class LoginRequired(Exception):
    """Raised for pages that need a signed-in user; the app redirects to /login?next=..."""


async def require_user(user: Annotated[User | None, Depends(optional_user)]) -> User:  # async: no I/O, no thread
    if user is None:
        raise LoginRequired()
    return user


OptionalUser = Annotated[User | None, Depends(optional_user)]
CurrentUser = Annotated[User, Depends(require_user)]


def sign_in(request: Request, user: User, db: Session) -> None:
    previous = request.session.get(SESSION_KEY)
    if isinstance(previous, str):  # this browser's earlier session (maybe another account's) ends
        sessions.revoke(db, previous)
    request.session.clear()  # a new session on login: no fixation
    request.session[SESSION_KEY] = sessions.start(db, user)
    csrf_token(request)  # made now, not by the first page: that page then leaves the session as is (cacheable)


def sign_out(request: Request, db: Session) -> None:
    """Ends this browser's session on the server too: a copy of the cookie stops working."""
    token = request.session.get(SESSION_KEY)
    if isinstance(token, str):
        sessions.revoke(db, token)
    request.session.clear()


def owner_or_404(db: Session, handle: str) -> tuple[public.Owner, public.OwnerCounts]:
    """The owner of a public page and their counts (one Core query, no ORM User), or the answer
    an unknown handle gets (a renamed one redirects, see `user_or_404`)."""
    found = public.owner(db, handle)
    if found is None:
        user_or_404(db, handle)  # raises: HandleMoved or 404
        raise not_found()  # made a moment ago: not there when the page was asked for
    return found


def user_or_404(db: Session, handle: str) -> User:
    """The user with this handle, or the 404 an unknown handle gets."""
    from purchaseshare.users import get_by_handle, moved_to

    user = get_by_handle(db, handle)
    if user is None:
        renamed = moved_to(db, handle)
        if renamed is not None:
            raise HandleMoved(handle.lower(), renamed.handle)
        raise not_found()
    return user


class HandleMoved(Exception):
    """A renamed handle, still reserved for its owner: the app redirects to the new one."""

    def __init__(self, old: str, new: str) -> None:
        super().__init__(old)
        self.old, self.new = old, new


def not_found() -> HTTPException:
    # The same answer for "does not exist" and "not yours": ids reveal nothing.
    return HTTPException(status_code=404, detail="Not found")


_NOTIFICATIONS = Notification.__table__.c  # type: ignore[attr-defined]
_UNREAD = (sa_select(func.count()).select_from(Notification.__table__)  # built once, like the public pages' queries
           .where(_NOTIFICATIONS.user_id == bindparam("user_id"), _NOTIFICATIONS.read_at.is_(None)))


def render(request: Request, template: str, context: dict[str, Any] | None = None, status_code: int = 200,
           user: User | None = None, db: Session | None = None, headers: dict[str, str] | None = None):
    """A page with the common context: user, csrf token, unread notifications, flash message."""
    unread = 0
    if user is not None and db is not None:
        unread = db.connection().execute(_UNREAD, {"user_id": user.id}).scalar_one()
    page = {"request": request, "user": user, "csrf_token": LazyCsrfToken(request), "unread": unread,
            "flash": request.session.pop("flash", None),
            "demo_link": request.session.pop("demo_link", None),  # set only by the demo (routes/auth.sent_link)
            **(context or {})}
    response = TEMPLATES.TemplateResponse(request, template, page, status_code=status_code, headers=headers)
    if db is not None:  # rendered: the transaction ends here, in the route's thread, not in another hop (get_db)
        db.close()
    return response


class LazyCsrfToken:
    """The session's CSRF token, made only when a page renders it (a form): an anonymous page
    without a form then starts no session and sets no cookie."""

    __slots__ = ("request",)

    def __init__(self, request: Request) -> None:
        self.request = request

    def __str__(self) -> str:
        return csrf_token(self.request)

    def __html__(self) -> str:
        return str(escape(csrf_token(self.request)))


def flash(request: Request, message: str) -> None:
    request.session["flash"] = message
