"""`purchaseshare demo`: one process, no external service. Prepares a data dir (SQLite, a stable
secret key, the demo password), seeds sample users and the fixture emails through the real
ingestion path (store_raw + enqueue_parse, processed by the in-process worker), approves some
purchases, and watches a drop folder. Reused by the tests and the web bench.

Idempotent: running it again on the same data dir adds nothing twice (emails are de-duplicated by
store_raw; approvals and social samples are made only on the first seed, recorded in a marker
file) and prints the same password again.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from sqlmodel import Session, col, select

from purchaseshare.clock import utcnow
from purchaseshare.config import Settings, get_settings

log = logging.getLogger(__name__)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "emails"
DEMO_HANDLE = "demo"
# Other sample people, so follows, the home feed, likes and comments have something to show.
SAMPLE_USERS = {"sam": "Sam Rivera", "lee": "Lee Park"}
PASSWORD_FILE = "demo-password.txt"
SECRET_FILE = "secret-key.txt"
SEEDED_MARKER = "demo-seeded.txt"
DROP_POLL_SECONDS = 2.0


@dataclass
class DemoInfo:
    data_dir: Path
    database: str
    handle: str
    password: str
    password_current: bool  # False when the owner changed it in the app since the first start
    drop_dir: Path
    first_run: bool
    statuses: dict[str, int] = field(default_factory=dict)  # demo's raw emails by status
    shared: int = 0  # demo's purchases with at least one approved item
    private: int = 0  # demo's purchases still in the inbox


def drop_folder(settings: Settings) -> Path:
    """Where the demo picks up .eml files (for the demo account)."""
    return settings.data_dir.resolve() / "drop"


def is_demo(settings: Settings) -> bool:
    """The app runs on a data dir `purchaseshare demo` seeded, and no mail can leave (no SMTP_URL).
    Only then do pages say what a real site must not: a verification link on the page instead of
    in a mail, the drop folder instead of a forwarding address nothing can reach."""
    return not settings.smtp_url and (settings.data_dir / SEEDED_MARKER).is_file()


def _read_or_create(path: Path, make) -> str:
    """A small secret kept in the data dir (0600), generated once."""
    if path.exists():
        value = path.read_text(encoding="utf-8").strip()
        if value:
            return value
    value = make()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")
    return value


def prepare_environment(data_dir: Path | None = None, base_url: str | None = None) -> Settings:
    """Point this process at the demo data dir: SQLite there, no Redis (the in-process worker),
    and a secret key kept in the dir so restarts keep sessions. Sets the environment rather than
    only a Settings object because the actors and the broker read `get_settings()`; call this
    before workers.broker is imported."""
    base = Path(data_dir or os.environ.get("PURCHASESHARE_DATA_DIR") or "./purchaseshare-data").resolve()
    base.mkdir(parents=True, exist_ok=True)
    os.environ["PURCHASESHARE_DATA_DIR"] = str(base)
    for name in ("REDIS_URL", "DATABASE_URL"):  # the demo is SQLite + in-process by definition
        os.environ.pop(name, None)
    if base_url and not os.environ.get("PURCHASESHARE_BASE_URL"):  # links in feeds and mail point here
        os.environ["PURCHASESHARE_BASE_URL"] = base_url
    if not os.environ.get("SECRET_KEY"):
        os.environ["SECRET_KEY"] = _read_or_create(base / SECRET_FILE, lambda: secrets.token_urlsafe(32))
    get_settings.cache_clear()
    return get_settings()


def seed(settings: Settings, *, fixtures: Path = FIXTURES, timeout_s: float = 180.0) -> DemoInfo:
    """Users, fixture emails through the real queue (waits until processed), approvals and a
    little social activity. Safe to call again on the same database."""
    from purchaseshare.db import migrate, session_scope
    from purchaseshare.models import RawEmail, RawStatus, User
    from purchaseshare.users import create_user
    from web.security import check_password, hash_password
    from workers.broker import start_in_process_worker, wait_in_process

    migrate(settings)
    data_dir = settings.data_dir.resolve()
    password = _read_or_create(data_dir / PASSWORD_FILE, lambda: secrets.token_urlsafe(12))
    drop_dir = drop_folder(settings)
    (drop_dir / "done").mkdir(parents=True, exist_ok=True)

    with session_scope(settings) as session:
        users: dict[str, User] = {}
        first_run = False
        for handle, name in {DEMO_HANDLE: "Demo User", **SAMPLE_USERS}.items():
            user = session.exec(select(User).where(User.handle == handle)).first()
            if user is None:
                first_run = first_run or handle == DEMO_HANDLE
                user = create_user(session, handle, email=f"{handle}@example.org", display_name=name,
                                   password_hash=hash_password(password) if handle == DEMO_HANDLE else None)
                if handle == DEMO_HANDLE:
                    user.bio = "The sample account of `purchaseshare demo`."
            users[handle] = user
        # The demo's person is also its operator: the outbox (verification and reset links, with
        # no mail server) and the quarantine are theirs to read.
        users[DEMO_HANDLE].is_operator = True
        session.commit()
        owner_of = _assign_fixtures(sorted(fixtures.glob("*/*.eml")))
        for path, handle in owner_of:
            _store(session, path.read_bytes(), f"demo:{path.parent.name}/{path.name}", users[handle])
        # Anything still waiting (a demo stopped mid-way lost its in-process queue) is queued again.
        user_ids = [user.id for user in users.values()]
        waiting = session.exec(select(RawEmail.id).where(RawEmail.status == RawStatus.RECEIVED,
                                                         col(RawEmail.user_id).in_(user_ids))).all()
        start_in_process_worker()
        from workers.actors import enqueue_parse

        enqueue_parse(session, list(waiting))
    wait_in_process(timeout_ms=int(timeout_s * 1000))

    marker = data_dir / SEEDED_MARKER
    if first_run or not marker.exists():
        with session_scope(settings) as session:
            _approve_and_socialize(session, {handle: user.id for handle, user in users.items()})
            session.commit()
        marker.write_text(f"seeded at {utcnow().isoformat()}\n", encoding="utf-8")

    with session_scope(settings) as session:
        demo_user = session.get(User, users[DEMO_HANDLE].id)
        info = DemoInfo(data_dir=data_dir, database=settings.sqlalchemy_url, handle=DEMO_HANDLE, password=password,
                        password_current=check_password(demo_user.password_hash if demo_user else None, password),
                        drop_dir=drop_dir, first_run=first_run)
        _count(session, users[DEMO_HANDLE].id or 0, info)
    return info


def _assign_fixtures(paths: list[Path]) -> list[tuple[Path, str]]:
    """Most fixtures go to demo; a few to each sample user (an email belongs to one account)."""
    owners = []
    for index, path in enumerate(paths):
        handle = "sam" if index % 10 == 3 else "lee" if index % 10 == 7 else DEMO_HANDLE
        owners.append((path, handle))
    return owners


def _store(session: Session, raw: bytes, source: str, user) -> int:
    from purchaseshare.mailstore import store_raw

    return store_raw(session, raw, source=source, user_id=user.id, attributed_by="cli").raw_email.id


def _approve_and_socialize(session: Session, user_ids: dict[str, int]) -> None:
    """About half of demo's purchases shared whole, one item of another shared, the rest left
    private in the inbox; the sample users share theirs, follow each other, like and comment."""
    from purchaseshare.models import Comment, Follow, Like, Notification, Purchase, PurchaseItem
    from purchaseshare.sharing import set_approved

    now = utcnow()
    shared_by_handle: dict[str, list[int]] = {}
    for handle, user_id in user_ids.items():
        purchases = session.exec(select(Purchase).where(Purchase.user_id == user_id, Purchase.review == "new")
                                 .order_by(col(Purchase.id))).all()
        items_of: dict[int, list[PurchaseItem]] = {}
        for item in session.exec(select(PurchaseItem).where(col(PurchaseItem.purchase_id).in_(
                [p.id for p in purchases])).order_by(col(PurchaseItem.position))).all():
            items_of.setdefault(item.purchase_id, []).append(item)
        with_items = [p for p in purchases if items_of.get(p.id or 0)]
        partial_done = handle != DEMO_HANDLE
        shared_by_handle[handle] = []
        for index, purchase in enumerate(with_items):
            items = items_of[purchase.id or 0]
            if handle != DEMO_HANDLE or index % 2 == 0:
                chosen = items
            elif not partial_done and len(items) >= 2:
                chosen, partial_done = items[:1], True  # one item of two or more: the rest stays private
            else:
                continue  # still private in the inbox
            moment = now - timedelta(hours=3 * index + (1 if handle == "sam" else 2 if handle == "lee" else 0))
            # The owner's own rule (sharing.py), dated in the past so the samples spread over a day.
            set_approved(purchase, items, {item.id for item in chosen if item.id is not None}, now=moment)
            shared_by_handle[handle].append(purchase.id or 0)
    session.flush()

    demo_id = user_ids[DEMO_HANDLE]
    pairs = [(demo_id, user_ids["sam"]), (demo_id, user_ids["lee"]), (user_ids["sam"], demo_id),
             (user_ids["lee"], user_ids["sam"])]
    for follower, followee in pairs:
        if session.exec(select(Follow).where(Follow.follower_id == follower, Follow.followee_id == followee)).first():
            continue
        session.add(Follow(follower_id=follower, followee_id=followee))
        session.add(Notification(user_id=followee, actor_id=follower, kind="follow"))
    demo_shared = shared_by_handle[DEMO_HANDLE]
    if demo_shared:
        first = demo_shared[0]
        for actor in ("sam", "lee"):
            if not session.exec(select(Like).where(Like.user_id == user_ids[actor], Like.purchase_id == first)).first():
                session.add(Like(user_id=user_ids[actor], purchase_id=first))
                session.add(Notification(user_id=demo_id, actor_id=user_ids[actor], kind="like", purchase_id=first))
        comment = Comment(purchase_id=first, user_id=user_ids["lee"], body="Nice find! Is it as good as it looks?")
        session.add(comment)
        session.flush()
        session.add(Notification(user_id=demo_id, actor_id=user_ids["lee"], kind="comment", purchase_id=first,
                                 comment_id=comment.id))
    if shared_by_handle.get("sam"):
        session.add(Like(user_id=demo_id, purchase_id=shared_by_handle["sam"][0]))
        session.add(Notification(user_id=user_ids["sam"], actor_id=demo_id, kind="like",
                                 purchase_id=shared_by_handle["sam"][0]))


def _count(session: Session, user_id: int, info: DemoInfo) -> None:
    from sqlalchemy import func

    from purchaseshare.models import Purchase, RawEmail
    from purchaseshare.public import published_filter

    info.statuses = dict(session.exec(select(RawEmail.status, func.count()).where(RawEmail.user_id == user_id)
                                      .group_by(RawEmail.status)).all())
    info.shared = session.exec(select(func.count()).select_from(Purchase).where(
        Purchase.user_id == user_id, published_filter())).one()
    info.private = session.exec(select(func.count()).select_from(Purchase).where(
        Purchase.user_id == user_id, Purchase.review == "new")).one()


def ingest_drop_folder(settings: Settings, drop_dir: Path, handle: str = DEMO_HANDLE) -> list[Path]:
    """Store every .eml in the drop folder for `handle`, queue it, and move it to drop/done/
    (after the commit: a crash in between only means it is stored twice, which is a no-op)."""
    from purchaseshare.db import session_scope
    from purchaseshare.users import get_by_handle
    from workers.actors import enqueue_parse

    files = sorted(path for path in drop_dir.glob("*.eml") if path.is_file())
    if not files:
        return []
    done = drop_dir / "done"
    done.mkdir(exist_ok=True)
    moved = []
    with session_scope(settings) as session:
        owner = get_by_handle(session, handle)
        if owner is None:
            return []
        ids = []
        for path in files:
            try:
                raw = path.read_bytes()
            except OSError as exc:  # still being written, or vanished: try again next round
                log.warning("drop folder: cannot read %s: %s", path, exc)
                continue
            ids.append(_store(session, raw, f"drop:{path.name}", owner))
            target = done / path.name
            if target.exists():
                target = done / f"{path.stem}-{secrets.token_hex(3)}{path.suffix}"
            path.replace(target)
            moved.append(target)
        enqueue_parse(session, ids)
    return moved


class DropFolderWatcher(threading.Thread):
    """Polls the drop folder every couple of seconds until stopped."""

    def __init__(self, settings: Settings, drop_dir: Path, interval_s: float = DROP_POLL_SECONDS) -> None:
        super().__init__(name="purchaseshare-drop-folder", daemon=True)
        self.settings, self.drop_dir, self.interval_s = settings, drop_dir, interval_s
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                for path in ingest_drop_folder(self.settings, self.drop_dir):
                    log.warning("drop folder: ingested %s", path.name)
            except Exception:  # keep watching: one bad round must not end the demo's folder
                log.exception("drop folder: ingest failed")
            self._stop_event.wait(self.interval_s)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=10)


def banner(info: DemoInfo, host: str, port: int) -> str:
    shown = "localhost" if host in ("0.0.0.0", "::") else host
    url = f"http://{shown}:{port}"
    statuses = ", ".join(f"{count} {status}" for status, count in sorted(info.statuses.items()))
    lines = [
        "",
        "PurchaseShare demo",
        f"  open:        {url}/",
        f"  log in:      {url}/login  handle: {info.handle}  password: {info.password}",
    ]
    if not info.password_current:
        lines.append(f"               (changed in the app since; the first one is kept in {info.data_dir / PASSWORD_FILE})")
    lines += [
        f"  profile:     {url}/u/{info.handle}  ({info.shared} purchases shared, {info.private} private in the inbox)",
        f"  sample mail: {statuses or 'none'}",
        f"  drop folder: {info.drop_dir}  (.eml files dropped there are ingested for {info.handle}; moved to done/)",
        f"  outbox:      no SMTP_URL, so outgoing mail (verification and reset links) stays in the outbox: {url}/operator/outbox",
        f"  data:        {info.data_dir}  (database {info.database})",
        "  stop:        Ctrl-C",
        "",
    ]
    return "\n".join(lines)
