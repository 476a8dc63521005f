"""The database tables (sqlmodel). SQLite by default, PostgreSQL with DATABASE_URL; the schema
itself is created and changed only by the alembic migrations in purchaseshare/migrations.

Privacy: everything here is private to its owner. Public surfaces never read these rows
directly; they go through `purchaseshare.public` which copies allow-listed, approved fields.
"""

from __future__ import annotations

import secrets
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import BigInteger, Column, Index, Integer, LargeBinary, String, Text, UniqueConstraint, text
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from purchaseshare.clock import utcnow


class Money(TypeDecorator):
    """Decimal stored as its exact decimal string: SQLite has no decimal type and SQLAlchemy's
    Numeric would round-trip through float there. Never float, on either database."""

    impl = String(40)
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect) -> str | None:
        if value is None:
            return None
        if not isinstance(value, Decimal):
            raise TypeError(f"money must be Decimal, not {type(value).__name__}")
        return str(value)

    def process_result_value(self, value: str | None, dialect) -> Decimal | None:
        return None if value is None else Decimal(value)


def money_field() -> Decimal | None:
    return Field(default=None, sa_type=Money)  # type: ignore[return-value]


def new_token() -> str:
    return secrets.token_hex(8)  # 64 bits, lowercase: survives mail clients that fold case


class RawStatus(StrEnum):
    RECEIVED = "received"  # stored, waiting for a worker
    PARSED = "parsed"  # a purchase came out (new, or matched to one already stored)
    APPLIED = "applied"  # a refund/cancellation updated an existing purchase
    NOT_PURCHASE = "not_purchase"  # newsletter, shipping notice, ...
    UNPARSED = "unparsed"  # looks like a receipt, no parser could read it
    FAILED = "failed"  # unreadable, or failed for good after retries
    QUARANTINED = "quarantined"  # nobody we know sent it

    @property
    def is_final(self) -> bool:
        return self is not RawStatus.RECEIVED


class User(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    handle: str = Field(sa_column=Column(String(40), unique=True, nullable=False, index=True))
    display_name: str = Field(default="", max_length=80)
    email: str | None = Field(default=None, max_length=320, unique=True)  # account email (login, reset)
    password_hash: str | None = Field(default=None, max_length=200)
    session_version: int = 0  # bumped on password change/reset: old sessions and reset links die
    forwarding_token: str = Field(default_factory=new_token, sa_column=Column(String(32), unique=True,
                                                                              nullable=False))
    bio: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    avatar_url: str | None = Field(default=None, max_length=500)
    # The avatar as WE store it (purchaseshare/item_images.py): the stored file's name and the
    # digest of the URL it was made (or failed) from. Public pages show only this copy.
    avatar_file: str | None = Field(default=None, max_length=32, index=True)
    avatar_from: str | None = Field(default=None, max_length=32)
    default_share_items: bool = False  # new purchases start private unless the owner changed this
    allow_indexing: bool = False  # search engines: noindex unless the owner opts in
    raw_retention_days: int | None = None  # None: the site's setting
    is_operator: bool = False
    created_at: datetime = Field(default_factory=utcnow)
    # A hard bounce of our verification or reset mail to `email` (migration 0010): shown to the user.
    email_bounced_at: datetime | None = None
    email_bounce_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class SenderAddress(SQLModel, table=True):
    """An address the user forwards from. Only verified ones attribute mail."""

    __tablename__ = "sender_address"
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True, ondelete="CASCADE")
    address: str = Field(sa_column=Column(String(320), unique=True, nullable=False))  # lowercased
    verified_at: datetime | None = None
    verify_token: str | None = Field(default=None, max_length=64, index=True)
    created_at: datetime = Field(default_factory=utcnow)
    # A hard bounce of the verification mail to this address (migration 0010): shown to the user.
    bounced_at: datetime | None = None
    bounce_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


_KEPT = text("raw_purged_at IS NULL AND raw IS NOT NULL")


class RawEmail(SQLModel, table=True):
    """The bytes as received, committed before any parsing. De-duplicated on sha256 and on
    message_key, within one dedup_scope only (see purchaseshare.mailstore): never across owners."""

    __tablename__ = "raw_email"
    __table_args__ = (
        UniqueConstraint("dedup_scope", "sha256", name="uq_raw_email_scope_sha256"),
        UniqueConstraint("dedup_scope", "message_key", name="uq_raw_email_scope_message_key"),
        # The quota's sum (purchaseshare.quota) from the index alone (migration 0013).
        Index("ix_raw_email_user_kept", "user_id", "size", sqlite_where=_KEPT, postgresql_where=_KEPT),
    )
    id: int | None = Field(default=None, primary_key=True)
    dedup_scope: str = Field(default="inbox", sa_column=Column(String(40), nullable=False))  # inbox | user:<id>
    sha256: str = Field(sa_column=Column(String(64), nullable=False))
    message_id: str | None = Field(default=None, sa_column=Column(String(998), nullable=True))  # shown only
    message_key: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))  # Message-ID+From+Date+To
    raw: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))  # None once purged
    size: int = 0
    source: str = Field(default="", max_length=500)  # imap://account/folder;uid=, file:path, upload:
    envelope_to: str | None = Field(default=None, max_length=320)
    from_addr: str | None = Field(default=None, max_length=320)
    subject: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    user_id: int | None = Field(default=None, foreign_key="user.id", index=True, ondelete="CASCADE")
    attributed_by: str | None = Field(default=None, max_length=40)  # token | sender | cli | upload
    status: str = Field(default=RawStatus.RECEIVED, max_length=20, index=True)
    reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))  # shown to the user
    attempts: int = 0
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    result_json: str | None = Field(default=None, sa_column=Column(Text, nullable=True))  # private
    purchase_id: int | None = Field(default=None, foreign_key="purchase.id", index=True, ondelete="SET NULL")
    received_at: datetime = Field(default_factory=utcnow)
    queued_at: datetime | None = None
    processed_at: datetime | None = None
    raw_purged_at: datetime | None = None
    replied_at: datetime | None = None
    # Google's forwarding-confirmation link, read once when the email is processed (migration 0006):
    # /settings/forwarding shows it without parsing the stored message on every view.
    confirm_url: str | None = Field(default=None, max_length=500)


class Purchase(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("user_id", "original_message_id", name="uq_purchase_user_message"),
        UniqueConstraint("user_id", "merchant_domain", "order_number", name="uq_purchase_user_order"),
        Index("ix_purchase_user_published", "user_id", "published_at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    # Public pages address a purchase by this random id, never by the guessable primary key.
    public_id: str = Field(default_factory=lambda: secrets.token_urlsafe(9), sa_column=Column(
        String(24), unique=True, nullable=False))
    user_id: int = Field(foreign_key="user.id", index=True, ondelete="CASCADE")
    # One raw email makes at most one purchase, even when two workers race on it.
    source_raw_id: int | None = Field(default=None, sa_column=Column(Integer, nullable=True, unique=True))
    original_message_id: str | None = Field(default=None, max_length=998)
    kind: str = Field(default="order", max_length=20)
    status: str = Field(default="active", max_length=20)  # active | refunded | partially_refunded | cancelled
    review: str = Field(default="new", max_length=20)  # new (owner's inbox) | reviewed | rejected
    merchant_name: str | None = Field(default=None, max_length=200)
    merchant_domain: str | None = Field(default=None, max_length=253)
    order_number: str | None = Field(default=None, max_length=100)  # private, never public
    # JSON list of the email's own personal values (recipient's name, address lines, phone, card
    # digits): private, never public; public text is redacted against them (migration 0007).
    personal_terms: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    order_date: date | None = None
    currency: str | None = Field(default=None, max_length=3)
    total: Decimal | None = money_field()
    subtotal: Decimal | None = money_field()
    shipping: Decimal | None = money_field()
    tax: Decimal | None = money_field()
    discount: Decimal | None = money_field()
    refunded: Decimal | None = money_field()
    parser: str | None = Field(default=None, max_length=80)
    confidence: float | None = None  # a score, not money
    warnings: str | None = Field(default=None, sa_column=Column(Text, nullable=True))  # JSON list
    caption: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    hide_prices: bool = False
    entered_by_hand: bool = False
    published_at: datetime | None = None  # first time an item was approved
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class PurchaseItem(SQLModel, table=True):
    __tablename__ = "purchase_item"
    id: int | None = Field(default=None, primary_key=True)
    purchase_id: int = Field(foreign_key="purchase.id", index=True, ondelete="CASCADE")
    position: int = 0
    name: str = Field(sa_column=Column(Text, nullable=False))
    quantity: int = 1
    unit_price: Decimal | None = money_field()
    line_total: Decimal | None = money_field()
    url: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    image: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    sku: str | None = Field(default=None, max_length=100)
    variant: str | None = Field(default=None, sa_column=Column(Text, nullable=True))  # "Size: M" (owner only)
    approved: bool = False  # private until the owner approves this item
    approved_at: datetime | None = None
    # Its image as WE store it (purchaseshare/item_images.py): the stored file's name, the digest
    # of the URL it was made from (or last failed from), when that fetch failed. Set only while
    # the item is shared; public pages show nothing else.
    image_file: str | None = Field(default=None, max_length=32, index=True)
    image_from: str | None = Field(default=None, max_length=32)
    image_failed_at: datetime | None = None


class ImapState(SQLModel, table=True):
    """Where the poller got to in one mailbox folder."""

    __tablename__ = "imap_state"
    __table_args__ = (UniqueConstraint("account", "folder", name="uq_imap_state_folder"),)
    id: int | None = Field(default=None, primary_key=True)
    account: str = Field(max_length=400)  # user@host:port, no password
    folder: str = Field(max_length=200)
    uidvalidity: int | None = None
    last_uid: int = 0
    updated_at: datetime = Field(default_factory=utcnow)


class OutboxMail(SQLModel, table=True):
    """Every mail we send; with no SMTP_URL it stays here for the operator (and the demo) to read."""

    __tablename__ = "outbox_mail"
    id: int | None = Field(default=None, primary_key=True)
    user_id: int | None = Field(default=None, foreign_key="user.id", index=True, ondelete="CASCADE")
    to_addr: str = Field(max_length=320)
    subject: str = Field(max_length=500)
    body: str = Field(sa_column=Column(Text, nullable=False))
    purpose: str = Field(default="", max_length=40)  # reply-unparsed | reply-unknown | verify | reset | ...
    dedupe_key: str | None = Field(default=None, sa_column=Column(String(200), unique=True, nullable=True))
    created_at: datetime = Field(default_factory=utcnow)
    sent_at: datetime | None = None
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # Delivery (migration 0010, purchaseshare.mailer): queued -> sending -> sent | failed |
    # uncertain (a worker stopped after handing it to the server: never sent again) | bounced.
    state: str = Field(default="queued", sa_column=Column(String(20), nullable=False, server_default="queued"))
    attempts: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    message_id: str | None = Field(default=None, sa_column=Column(String(998), nullable=True, index=True))
    in_reply_to: str | None = Field(default=None, sa_column=Column(String(998), nullable=True))
    smtp_reply: str | None = Field(default=None, sa_column=Column(Text, nullable=True))  # the server's last answer
    sending_at: datetime | None = None  # recorded just before DATA


# --- the web's social layer (migration 0002) ---------------------------------------------------


class Follow(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("follower_id", "followee_id", name="uq_follow_pair"),)
    id: int | None = Field(default=None, primary_key=True)
    follower_id: int = Field(foreign_key="user.id", index=True, ondelete="CASCADE")
    followee_id: int = Field(foreign_key="user.id", index=True, ondelete="CASCADE")
    created_at: datetime = Field(default_factory=utcnow)


class Like(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("user_id", "purchase_id", name="uq_like_once"),)
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True, ondelete="CASCADE")
    purchase_id: int = Field(foreign_key="purchase.id", index=True, ondelete="CASCADE")
    created_at: datetime = Field(default_factory=utcnow)


class Comment(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    purchase_id: int = Field(foreign_key="purchase.id", index=True, ondelete="CASCADE")
    user_id: int = Field(foreign_key="user.id", index=True, ondelete="CASCADE")
    body: str = Field(sa_column=Column(Text, nullable=False))  # plain text; escaped when shown
    created_at: datetime = Field(default_factory=utcnow)


class Notification(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True, ondelete="CASCADE")  # who is told
    actor_id: int | None = Field(default=None, foreign_key="user.id", ondelete="CASCADE")  # who did it
    kind: str = Field(max_length=20)  # like | comment | follow | review
    purchase_id: int | None = Field(default=None, foreign_key="purchase.id", ondelete="CASCADE")
    comment_id: int | None = Field(default=None, foreign_key="comment.id", ondelete="CASCADE")
    read_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class Review(SQLModel, table=True):
    """A verified-purchase review: only the owner of the (shared) item writes it."""

    __table_args__ = (UniqueConstraint("item_id", name="uq_review_item"),)
    id: int | None = Field(default=None, primary_key=True)
    item_id: int = Field(foreign_key="purchase_item.id", index=True, ondelete="CASCADE")
    user_id: int = Field(foreign_key="user.id", index=True, ondelete="CASCADE")
    rating: int  # 1..5
    body: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Collection(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("user_id", "slug", name="uq_collection_slug"),)
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True, ondelete="CASCADE")
    name: str = Field(max_length=80)
    slug: str = Field(max_length=90)
    description: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    created_at: datetime = Field(default_factory=utcnow)


class CollectionItem(SQLModel, table=True):
    __tablename__ = "collection_item"
    __table_args__ = (UniqueConstraint("collection_id", "item_id", name="uq_collection_item"),)
    id: int | None = Field(default=None, primary_key=True)
    collection_id: int = Field(foreign_key="collection.id", index=True, ondelete="CASCADE")
    item_id: int = Field(foreign_key="purchase_item.id", index=True, ondelete="CASCADE")
    position: int = 0
    created_at: datetime = Field(default_factory=utcnow)


class LoginAttempt(SQLModel, table=True):
    """Failed logins, per account and per client address: the rate limiter reads these."""

    __tablename__ = "login_attempt"
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=400, index=True)  # "user:<handle>" or "ip:<address>"
    created_at: datetime = Field(default_factory=utcnow, index=True)


class CacheScope(SQLModel, table=True):
    """A counter per scope (a user id; 0 = the whole site) that database triggers bump on every
    write a cached page of that scope could show (migration 0012); web/page_cache.py serves a
    stored page only while the counters of every scope it shows are unchanged."""

    __tablename__ = "cache_scope"
    id: int = Field(primary_key=True, sa_type=BigInteger)
    value: int = Field(default=0, sa_type=BigInteger)


class ServerSession(SQLModel, table=True):
    """A signed-in browser. The cookie carries a random token; only its sha256 is stored, so the
    table alone cannot be replayed. Logging out, signing out everywhere and a password reset
    revoke rows; the web app refuses a revoked or expired one on every request."""

    __tablename__ = "server_session"
    id: str = Field(sa_column=Column(String(64), primary_key=True))  # sha256 hex of the cookie token
    user_id: int = Field(foreign_key="user.id", index=True, ondelete="CASCADE")
    session_version: int = 0  # the user's at sign-in: bumping it (sign out everywhere) ends this one too
    created_at: datetime = Field(default_factory=utcnow)
    last_seen_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime = Field(index=True)  # expired rows are deleted in bulk
    revoked_at: datetime | None = None


class HandleReservation(SQLModel, table=True):
    """A handle someone renamed away from: kept for them (and /u/OLD redirects to the new one)
    until it expires, so nobody else can take it over at once."""

    __tablename__ = "handle_reservation"
    handle: str = Field(sa_column=Column(String(40), primary_key=True))
    user_id: int = Field(foreign_key="user.id", index=True, ondelete="CASCADE")
    expires_at: datetime


class Template(SQLModel, table=True):
    """A sender's layout learned from an owner's correction (parsers/templates.py): where each
    field sits, never a value. It reads its teachers' mail; once two users' corrections agree,
    everyone's. A template that keeps missing retires itself."""

    __tablename__ = "template"
    id: int | None = Field(default=None, primary_key=True)
    sender_domain: str = Field(max_length=253, index=True)
    signature: str = Field(sa_column=Column(Text, nullable=False))  # parsers.signature: hashes, no text
    anchors: str = Field(sa_column=Column(Text, nullable=False))  # JSON: labels and offsets only
    hits: int = 0
    misses: int = 0
    retired: bool = False
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class TemplateTeacher(SQLModel, table=True):
    """A user whose correction taught (or agreed with) a template."""

    __tablename__ = "template_teacher"
    template_id: int = Field(foreign_key="template.id", primary_key=True, ondelete="CASCADE")
    user_id: int = Field(foreign_key="user.id", primary_key=True, index=True, ondelete="CASCADE")
    taught_at: datetime = Field(default_factory=utcnow)
