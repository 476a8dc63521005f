"""Which items have a stored image, and keeping the files in step with what is shared.

`queue_sync(session, purchase_id)` is called where items get shared (purchaseshare/sharing.py,
processing.add_items): once that session COMMITS, the `store_item_images` actor (workers/actors.py)
gets the purchase's id. `queue_release(session, names)` likewise where items are deleted (an item,
a purchase, an account): the `release_images` actor then deletes the files nobody names.
Avatars are stored the same way (`queue_avatar` when the owner saves a new avatar URL; public
profiles show only our copy). `sync_purchase` (the actor's body) is idempotent and may run any number of
times: for each item it compares what is stored (`image_from`, the digest of the URL the file was
made from) with what should be (the image of an APPROVED item), fetches only what differs, and
records a failure instead of trying again. An item no longer shared loses its file; a file is
deleted once no row names it (`release`).

Known limit: `release` checks the rows, then unlinks; a worker storing the SAME picture for
another item in between would lose its file. The worker writes its files again after its commit,
which closes all but a window of microseconds; the item would then show the placeholder.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable
from functools import lru_cache
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session, col, select

from purchaseshare.clock import utcnow
from purchaseshare.config import Settings
from purchaseshare.db import session_scope
from purchaseshare.image_proxy import ImageError, Policy, fetch, policy_from
from purchaseshare.images import ImageStore, content_name, reencode
from purchaseshare.models import PurchaseItem, User

log = logging.getLogger(__name__)

SCHEMES = ("https", "http")  # the worker re-encodes what it gets: plain http is no risk to visitors
_PENDING = "purchaseshare.item_images.pending"  # session.info key: purchase ids to sync after commit


def store_for(settings: Settings) -> ImageStore:
    return ImageStore(Path(settings.data_dir) / "media")


def source_digest(url: str) -> str:
    """What `image_from` holds: a digest of the URL (the URL itself is already in `image`)."""
    return hashlib.sha256(url.encode()).hexdigest()[:32]


# --- after the approval's commit ---------------------------------------------------------------


def queue_sync(session: Session | OrmSession | None, purchase_id: int | None) -> None:
    """Sync this purchase's images once `session` commits (nothing if it rolls back)."""
    if session is not None and purchase_id is not None:
        _pending(session)[0].add(purchase_id)


def queue_release(session: Session | OrmSession, names: Iterable[str | None]) -> None:
    """Release these stored images once `session` commits (the rows naming them are deleted)."""
    _pending(session)[1].update(name for name in names if name)


def queue_avatar(session: Session | OrmSession, user_id: int | None) -> None:
    """Store (or drop) this user's avatar once `session` commits."""
    if user_id is not None:
        _pending(session)[2].add(user_id)


def _pending(session: Session | OrmSession) -> tuple[set[int], set[str], set[int]]:
    return session.info.setdefault(_PENDING, (set(), set(), set()))


@event.listens_for(OrmSession, "after_commit")
def _send_pending(session: OrmSession) -> None:
    pending = session.info.pop(_PENDING, None)
    if not pending or not any(pending):
        return
    purchase_ids, names, user_ids = (sorted(part) for part in pending)  # type: ignore[type-var]
    try:
        from workers.actors import send_image_work

        send_image_work(purchase_ids, names, user_ids)
    except Exception:  # the change is committed: its images wait for the next sync
        log.exception("could not queue the image work of purchases %s, users %s", purchase_ids, user_ids)


@event.listens_for(OrmSession, "after_rollback")
def _drop_pending(session: OrmSession) -> None:
    session.info.pop(_PENDING, None)


# --- the worker's side -------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _policy(allow: str, ca_file: str | None) -> Policy:
    return policy_from(allow, ca_file)


def fetch_image(url: str, settings: Settings) -> dict[int, bytes]:
    """The re-encoded sizes of the image at `url` (SSRF-safe fetch), or ImageError."""
    data, _kind = fetch(url, _policy(settings.image_proxy_allow, settings.image_proxy_ca_file), SCHEMES)
    return reencode(data)


Fetcher = Callable[[str, Settings], dict[int, bytes]]


def sync_purchase(settings: Settings, purchase_id: int, fetcher: Fetcher = fetch_image) -> int:
    """Bring the stored images of one purchase's items in step with what is shared; the number
    of fetches made. No database session is open while fetching."""
    released: list[str] = []
    todo: list[tuple[int, str]] = []
    with session_scope(settings) as session:
        for item in session.exec(select(PurchaseItem).where(PurchaseItem.purchase_id == purchase_id)):
            wanted = item.image if item.approved else None
            digest = source_digest(wanted) if wanted else None
            if item.image_from == digest:
                continue  # stored already, or failed already: nothing to do
            if item.image_file:
                released.append(item.image_file)
            item.image_file, item.image_from, item.image_failed_at = None, None, None
            if wanted and item.id is not None:
                todo.append((item.id, wanted))
        session.commit()
    release(settings, released)
    fetched: dict[str, tuple[str | None, dict[int, bytes] | None]] = {}
    for item_id, url in todo:
        if url not in fetched:  # the same picture twice in one order: one fetch
            fetched[url] = _fetch_into_store(settings, url, fetcher, f"item {item_id}")
        name, variants = fetched[url]
        with session_scope(settings) as session:
            item = session.get(PurchaseItem, item_id)
            current = item is not None and item.approved and item.image == url and item.image_from is None
            if item is not None and current:
                item.image_file, item.image_from = name, source_digest(url)
                item.image_failed_at = None if name else utcnow()
                session.commit()
        _settle(settings, name, variants, kept=current)
    return len(fetched)


def sync_avatar(settings: Settings, user_id: int, fetcher: Fetcher = fetch_image) -> int:
    """The same for a user's avatar: stored once per URL, dropped when the URL goes; fetches made."""
    with session_scope(settings) as session:
        user = session.get(User, user_id)
        if user is None:
            return 0
        url = user.avatar_url
        digest = source_digest(url) if url else None
        if user.avatar_from == digest:
            return 0
        old, user.avatar_file, user.avatar_from = user.avatar_file, None, None
        session.commit()
    release(settings, [old])
    if not url:
        return 0
    name, variants = _fetch_into_store(settings, url, fetcher, f"the avatar of user {user_id}")
    with session_scope(settings) as session:
        user = session.get(User, user_id)
        current = user is not None and user.avatar_url == url and user.avatar_from is None
        if user is not None and current:
            user.avatar_file, user.avatar_from = name, digest
            session.commit()
    _settle(settings, name, variants, kept=current)
    return 1


def _fetch_into_store(settings: Settings, url: str, fetcher: Fetcher,
                      what: str) -> tuple[str | None, dict[int, bytes] | None]:
    """(name, files) of the stored copy of `url`, or (None, None) when it is refused for good."""
    try:
        variants = fetcher(url, settings)
    except ImageError as exc:  # recorded by the caller: the page shows the placeholder
        log.info("no stored image for %s: %s", what, exc)  # not the URL: it may be personal
        return None, None
    name = content_name(variants)
    store_for(settings).put(name, variants)
    return name, variants


def _settle(settings: Settings, name: str | None, variants: dict[int, bytes] | None, kept: bool) -> None:
    """After the row was (or was not) pointed at the file: write it again if a concurrent
    `release` took it meanwhile, or give it up when the row changed or went while fetching."""
    if name and variants and kept:
        store_for(settings).put(name, variants)
    elif name:
        release(settings, [name])


def never_synced(settings: Settings) -> tuple[list[int], list[int]]:
    """Purchases with a shared item, and users with an avatar, whose image was never fetched (rows
    from before migration 0011, or a queue that was down at the commit): for a backfill."""
    with session_scope(settings) as session:
        purchases = session.exec(select(PurchaseItem.purchase_id).distinct().where(
            PurchaseItem.approved == True, col(PurchaseItem.image).is_not(None),  # noqa: E712
            col(PurchaseItem.image_from).is_(None))).all()
        users = session.exec(select(User.id).where(col(User.avatar_url).is_not(None), User.avatar_url != "",
                                                   col(User.avatar_from).is_(None))).all()
    return sorted(purchases), sorted(user_id for user_id in users if user_id is not None)


def release(settings: Settings, names: Iterable[str | None]) -> None:
    """Delete the stored files of these names that no item or avatar names any more (call after
    the commit that stopped naming them)."""
    wanted = {name for name in names if name}
    if not wanted:
        return
    with session_scope(settings) as session:
        used = set(session.exec(select(PurchaseItem.image_file)
                                .where(col(PurchaseItem.image_file).in_(wanted))).all())
        used |= set(session.exec(select(User.avatar_file).where(col(User.avatar_file).in_(wanted))).all())
    store = store_for(settings)
    for name in wanted - used:
        store.remove(name)


def names_of(session: Session, condition) -> list[str]:
    """The stored image names of the items matching `condition` (read before deleting them)."""
    return [name for name in session.exec(select(PurchaseItem.image_file)
                                          .where(condition, col(PurchaseItem.image_file).is_not(None))).all() if name]
