"""Routes: social (follow, home feed + live updates, likes, comments, notifications, reviews,
collections). The public pages include this area's partials through the context helpers below.
The logic lives in purchaseshare/social.py; public surfaces (the feed, its live events) are
rendered from purchaseshare.public views only.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import RedirectResponse, StreamingResponse
from sqlmodel import Session

from purchaseshare import limits, ratelimit, social
from purchaseshare.clock import utcnow
from purchaseshare.config import Settings
from purchaseshare.db import session_scope
from purchaseshare.limits import TEXT_MAX
from purchaseshare.models import Collection, Purchase, User
from purchaseshare.public import Owner, OwnerCounts, PublicPurchase
from web.deps import TEMPLATES, CurrentUser, DbDep, SettingsDep, flash, not_found, render, user_or_404
from web.errors import too_long
from web.forms import PageDep, object_id, owned_or_404, parse_id, see_other, typed_length
from web.page_cache import HOME_FEED, Versions
from web.routes.auth import safe_next
from web.security import csrf_token
from web.threads import reserved_threads

router = APIRouter(include_in_schema=False)

Text = Annotated[str, Form()]
OptionalText = Annotated[str, Form()]
POLL_SECONDS = 1.0  # how often the live feed looks for newly shared purchases
KEEPALIVE_SECONDS = 15.0  # an SSE comment so proxies do not close an idle stream
STREAM_MAX_SECONDS = 3600.0  # browsers reconnect (with Last-Event-ID) after this
# The live feeds' database reads share these few threads (and so at most this many pooled
# connections, counted in purchaseshare.db's pool margin): hundreds of open streams never take
# the threads or connections the other requests need.
STREAM_THREADS = 4
def stream_threads() -> anyio.CapacityLimiter:
    return reserved_threads("feed_stream_threads", STREAM_THREADS)


# --- context helpers for the public pages ---------------------------------------------------------


def purchase_social(db: Session, viewer: User | None, view: PublicPurchase, owner: User | Owner) -> dict[str, Any]:
    """Context for templates/social/_purchase_social.html (likes, comments, forms) on a purchase page.
    The public view already counts likes and comments: no query for the counts, none for the
    viewer's like or the comments when there are none, and the purchase row is never loaded."""
    is_owner = viewer is not None and viewer.id == owner.id
    return {"social": {
        "path": view.path, "likes": view.likes, "signed_in": viewer is not None,
        "liked": viewer is not None and view.likes > 0 and social.liked_by(db, viewer, view.public_id),
        "comments": social.comments_for(db, viewer, view.public_id, owner.id or 0) if view.comments else [],
        "comment_max": social.COMMENT_MAX, "review_max": social.REVIEW_MAX,
        "reviews": social.review_forms(db, view.public_id) if is_owner else [],
    }}


def follow_state(db: Session, viewer: User | None, owner: Owner, counts: OwnerCounts) -> dict[str, Any]:
    """Context for templates/social/_follow_button.html on a profile page (the counts were read
    with the owner: one query more only for a signed-in viewer, whether they follow)."""
    return {"follow": {
        "handle": owner.handle, "followers": counts.followers, "following_count": counts.following,
        "is_self": viewer is not None and viewer.id == owner.id, "signed_in": viewer is not None,
        "following": viewer is not None and viewer.id != owner.id
        and social.is_following(db, viewer.id or 0, owner.id or 0),
    }}


# --- helpers --------------------------------------------------------------------------------------


def _back(next_path: str | None, default: str) -> RedirectResponse:
    return see_other(safe_next(next_path, default))


def _send_after_commit(settings: Settings, mail_ids: list[int | None]) -> None:
    from workers.actors import send_after_commit

    send_after_commit(settings, mail_ids)


def _shared_or_404(db: Session, handle: str, public_id: str) -> tuple[Purchase, User]:
    found = social.published_purchase(db, handle, public_id)
    if found is None:
        raise not_found()
    return found


# --- follows --------------------------------------------------------------------------------------


@router.post("/u/{handle}/follow")
def follow(request: Request, handle: str, user: CurrentUser, db: DbDep, settings: SettingsDep,
           next: OptionalText = ""):
    target = user_or_404(db, handle)
    if target.id == user.id:
        flash(request, "You cannot follow yourself.")
        return _back(next, f"/u/{target.handle}")
    mail_id = None
    if social.follow(db, user, target):
        mail_id = social.notify(db, settings, user=target, actor=user, kind="follow")
    db.commit()
    _send_after_commit(settings, [mail_id])
    return _back(next, f"/u/{target.handle}")


@router.post("/u/{handle}/unfollow")
def unfollow(handle: str, user: CurrentUser, db: DbDep, next: OptionalText = ""):
    target = user_or_404(db, handle)
    social.unfollow(db, user, target)
    db.commit()
    return _back(next, f"/u/{target.handle}")


# --- the home feed and its live updates -----------------------------------------------------------


@router.get("/feed")
def feed(request: Request, user: CurrentUser, db: DbDep, page: PageDep = 1):
    since = social.as_utc(utcnow())  # live events start after what this page could show
    purchases, has_next = social.feed_page(db, user, page)
    # Whom the viewer follows matters only to an empty page ("you do not follow anyone yet").
    follows_nobody = not purchases and social.follow_counts(db, user.id or 0)[1] == 0
    return render(request, "social/feed.html", {
        "purchases": purchases, "page": page, "has_next": has_next, "follows_nobody": follows_nobody,
        "since": since.isoformat(),
    }, user=user, db=db)


def render_card(request: Request, view: Any, user: User) -> str:
    """A PublicPurchase as the same card the feed page shows (autoescaped by Jinja)."""
    template = TEMPLATES.get_template("social/_feed_card.html")
    return template.render(purchase=view, user=user, csrf_token=csrf_token(request), request=request)


def sse_event(event_id: str, data: str, event: str = "purchase") -> str:
    lines = "".join(f"data: {line}\n" for line in data.splitlines() or [""])
    return f"id: {event_id}\nevent: {event}\n{lines}\n"


@router.get("/feed/events")
def feed_events(request: Request, user: CurrentUser, db: DbDep, settings: SettingsDep,
                since: Annotated[str | None, Query(max_length=64)] = None) -> StreamingResponse:
    """Server-sent events: each newly shared purchase of someone the user follows, as its card.
    Polls the database (works across processes, no Redis); resumes from Last-Event-ID or ?since=.
    A poll runs only when the page cache's counters of the viewer's home feed moved (the people
    they follow, and their own): an idle stream costs one small read a second, no feed query."""
    db.close()  # done with the database: the sign-in check's connection goes back before the stream starts
    start = (social.parse_since(request.headers.get("last-event-id")) or social.parse_since(since)
             or social.as_utc(utcnow()))
    user_id = user.id or 0
    reader = request.app.state.generation_reader

    def open_cursor() -> tuple[social.LiveCursor, bool]:
        counted = reader.complete()  # once per process
        with session_scope(settings) as session:  # a short session per poll: no connection held open
            return social.open_cursor(session, user_id, start), counted

    def poll(cursor: social.LiveCursor) -> list:
        with session_scope(settings) as session:
            return cursor.poll(session, user_id)

    async def stream() -> AsyncIterator[str]:
        cursor, counted = await anyio.to_thread.run_sync(open_cursor, limiter=stream_threads())
        yield "retry: 3000\n: connected\n\n"
        loop = asyncio.get_running_loop()
        began = last_sent = loop.time()
        seen: Versions | None = None  # the counters read before the last poll (none yet: poll at once)
        while loop.time() - began < STREAM_MAX_SECONDS:
            if await request.is_disconnected():
                return
            # Equal to the counters read before the last poll: nothing the feed shows changed since.
            now = await reader.versions(HOME_FEED, user_id)
            if not counted or now is None or now != seen:
                seen = now
                for view in await anyio.to_thread.run_sync(poll, cursor, limiter=stream_threads()):
                    published = view.published_at.isoformat() if view.published_at else cursor.at.isoformat()
                    yield sse_event(published, render_card(request, view, user))
                    last_sent = loop.time()
            if loop.time() - last_sent >= KEEPALIVE_SECONDS:
                yield ": keepalive\n\n"
                last_sent = loop.time()
            await asyncio.sleep(POLL_SECONDS)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


# --- likes and comments ---------------------------------------------------------------------------


@router.post("/u/{handle}/p/{public_id}/like")
def like(handle: str, public_id: str, user: CurrentUser, db: DbDep, settings: SettingsDep,
         next: OptionalText = ""):
    purchase, owner = _shared_or_404(db, handle, public_id)
    mail_id = None
    if social.like(db, user, purchase):
        mail_id = social.notify(db, settings, user=owner, actor=user, kind="like", purchase=purchase)
    db.commit()
    _send_after_commit(settings, [mail_id])
    return _back(next, f"/u/{owner.handle}/p/{purchase.public_id}")


@router.post("/u/{handle}/p/{public_id}/unlike")
def unlike(handle: str, public_id: str, user: CurrentUser, db: DbDep, next: OptionalText = ""):
    purchase, owner = _shared_or_404(db, handle, public_id)
    social.unlike(db, user, purchase)
    db.commit()
    return _back(next, f"/u/{owner.handle}/p/{purchase.public_id}")


@router.post("/u/{handle}/p/{public_id}/comments")
def comment(request: Request, handle: str, public_id: str, user: CurrentUser, db: DbDep, settings: SettingsDep,
            body: Annotated[str, Form(max_length=social.COMMENT_MAX * 2)] = ""):
    # Twice the limit bounds the raw field (line breaks arrive as CR LF); the limit itself is
    # checked below, counted as the form counts it.
    purchase, owner = _shared_or_404(db, handle, public_id)
    path = f"/u/{owner.handle}/p/{purchase.public_id}"
    if typed_length(body) > social.COMMENT_MAX:
        return too_long(request, "comment", typed_length(body), social.COMMENT_MAX, path + "#comments")
    # Each comment notifies (and may mail) the owner: a burst must not become a flood.
    if not ratelimit.take(db, {f"comment:user:{user.id}": limits.COMMENT_RULES}):
        db.rollback()
        raise HTTPException(429, "You are commenting too fast. Wait a minute and try again.",
                            headers={"Retry-After": str(ratelimit.retry_after(limits.COMMENT_RULES))})
    try:
        created = social.add_comment(db, user, purchase, body)
    except social.SocialError as exc:
        flash(request, f"Your comment was not posted: {exc}.")
        return see_other(path + "#comments")
    mail_id = social.notify(db, settings, user=owner, actor=user, kind="comment", purchase=purchase,
                            comment=created)
    db.commit()
    _send_after_commit(settings, [mail_id])
    return see_other(f"{path}#comment-{created.id}")


@router.post("/comments/{comment_id}/delete")
def delete_comment(request: Request, comment_id: str, user: CurrentUser, db: DbDep, next: OptionalText = ""):
    found = social.deletable_comment(db, user, object_id(comment_id))
    if found is None:
        raise not_found()
    purchase = db.get(Purchase, found.purchase_id)
    owner = db.get(User, purchase.user_id) if purchase else None
    db.delete(found)
    db.commit()
    flash(request, "Comment deleted.")
    default = f"/u/{owner.handle}/p/{purchase.public_id}#comments" if purchase and owner else "/feed"
    return _back(next, default)


# --- notifications --------------------------------------------------------------------------------


@router.get("/notifications")
def notifications(request: Request, user: CurrentUser, db: DbDep):
    notes = social.notifications(db, user)
    return render(request, "social/notifications.html", {
        "notifications": notes, "newest": max((note.id for note in notes), default=0),
        "any_unread": any(note.unread for note in notes)}, user=user, db=db)


@router.post("/notifications/read")
def notifications_read(user: CurrentUser, db: DbDep, upto: OptionalText = ""):
    social.mark_read(db, user, parse_id(upto))
    db.commit()
    return see_other("/notifications")


# --- verified-purchase reviews --------------------------------------------------------------------


@router.post("/items/{item_id}/review")
def review(request: Request, item_id: str, user: CurrentUser, db: DbDep, rating: OptionalText = "",
           body: Annotated[str, Form(max_length=social.REVIEW_MAX * 2)] = ""):
    found = social.reviewable_item(db, user, object_id(item_id))
    if found is None:  # not yours, not bought, or not shared: the same answer
        raise not_found()
    item, purchase = found
    path = f"/u/{user.handle}/p/{purchase.public_id}"
    if typed_length(body) > social.REVIEW_MAX:
        return too_long(request, "review", typed_length(body), social.REVIEW_MAX, path + "#reviews")
    try:
        social.save_review(db, user, item, rating, body)
    except social.SocialError as exc:
        flash(request, f"Your review was not saved: {exc}.")
        return see_other(path + "#reviews")
    db.commit()
    flash(request, "Review saved.")
    return see_other(path)


# --- collections ----------------------------------------------------------------------------------


@router.get("/collections")
def collections(request: Request, user: CurrentUser, db: DbDep):
    mine, shared = social.my_collections(db, user)
    return render(request, "social/collections.html", {"collections": mine, "shared_items": shared,
                                                       "name_max": social.COLLECTION_NAME_MAX}, user=user, db=db)


@router.post("/collections")
def create_collection(request: Request, user: CurrentUser, db: DbDep, name: OptionalText = "",
                      description: OptionalText = ""):
    if typed_length(description) > TEXT_MAX["collection_description"]:
        return too_long(request, "description", typed_length(description), TEXT_MAX["collection_description"],
                        "/collections")
    try:
        created = social.create_collection(db, user, name, description)
    except social.SocialError as exc:
        flash(request, f"The collection was not created: {exc}.")
        return see_other("/collections")
    db.commit()
    flash(request, f"Collection “{created.name}” created.")
    return see_other(f"/collections#collection-{created.id}")


@router.post("/collections/{collection_id}/items")
def add_collection_item(collection_id: str, user: CurrentUser, db: DbDep, item_id: OptionalText = ""):
    collection = owned_or_404(db, Collection, collection_id, user)
    wanted = parse_id(item_id)
    if wanted is None or not social.add_to_collection(db, user, collection, wanted):
        raise not_found()
    db.commit()
    return see_other(f"/collections#collection-{collection.id}")


@router.post("/collections/{collection_id}/items/{item_id}/remove")
def remove_collection_item(collection_id: str, item_id: str, user: CurrentUser, db: DbDep):
    collection = owned_or_404(db, Collection, collection_id, user)
    social.remove_from_collection(db, collection, object_id(item_id))
    db.commit()
    return see_other(f"/collections#collection-{collection.id}")


@router.post("/collections/{collection_id}/delete")
def delete_collection(request: Request, collection_id: str, user: CurrentUser, db: DbDep):
    collection = owned_or_404(db, Collection, collection_id, user)
    db.delete(collection)
    db.commit()
    flash(request, f"Collection “{collection.name}” deleted.")
    return see_other("/collections")
