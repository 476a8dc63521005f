"""The IMAP door: fetch new mail from IMAP_URL, commit it, queue it, then move it out of the way.

For each new message, in UID order and in batches:
    FETCH BODY.PEEK[] -> store_raws (one commit per batch) -> queue -> MOVE to Processed/Failed -> last_uid
so a crash at any step loses nothing: a message is only moved once its bytes are committed, and a
message fetched twice is a no-op in store_raw (same bytes or same Message-ID, sender, date and
recipients, within the inbox's own de-duplication scope). Where we got to is kept
per (account, folder) in ImapState with the folder's UIDVALIDITY; when that changes the UIDs mean
nothing any more and we start again from 0 (harmless, see above).

IDLE when the server has it (renewed every imap_idle_seconds), otherwise a poll every
imap_poll_seconds. Every (re)connect starts with a catch-up. Connection trouble: reconnect with a
capped, jittered exponential backoff; one bad message never stops the rest (it goes to Failed).
"""

from __future__ import annotations

import logging
import random
import re
import signal
import ssl
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import unquote, urlsplit

from imapclient import IMAPClient
from imapclient.imapclient import DELETED, SocketTimeout
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlmodel import Session, col, select, update

from purchaseshare.clock import utcnow
from purchaseshare.config import Settings
from purchaseshare.db import session_scope
from purchaseshare.mailstore import Incoming, Stored, store_raw, store_raws
from purchaseshare.models import ImapState, RawStatus

log = logging.getLogger(__name__)

BATCH_MAX = 25  # messages per FETCH at most (small: the workers start on a batch as soon as it is queued)
BATCH_BYTES = 16 * 1024 * 1024  # ... and about this many bytes (one big message still goes alone)
SIZE_WINDOW = 1000  # UIDs whose RFC822.SIZE we ask for at once
BACKOFF_BASE, BACKOFF_CAP = 0.5, 60.0  # seconds
REQUEUE_EVERY = 5.0  # seconds between requeue_stale sweeps
PURGE_EVERY = 3600.0  # seconds between raw-mail retention sweeps (the purge_raw actor)
IDLE_TICK = 1.0  # seconds: how often IDLE wakes up to look at `stop` and the sweeper
TIMEOUT = SocketTimeout(connect=15.0, read=120.0)
HEADER_END = re.compile(rb"\r?\n\r?\n")
ENVELOPE_FIELD = re.compile(rb"^(delivered-to|x-original-to)[ \t]*:(.*(?:\r?\n[ \t].*)*)", re.IGNORECASE | re.MULTILINE)
TRANSIENT_CODES = ("[UNAVAILABLE]", "[INUSE]", "[LIMIT]", "[OVERQUOTA]")
ONCE_MAX_FAILURES = 8  # `--once` gives up after this many failed attempts in a row


class Stop(Exception):
    """The stop event was set: leave the loops now."""


@dataclass(frozen=True)
class ImapTarget:
    secure: bool
    host: str
    port: int
    user: str
    password: str
    folder: str

    @property
    def account(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"  # never the password


def parse_imap_url(url: str) -> ImapTarget:
    """imap://user:pass@host:port/FOLDER or imaps://... (user and password URL-encoded)."""
    parts = urlsplit(url)
    if parts.scheme not in ("imap", "imaps"):
        raise ValueError(f"IMAP_URL must start with imap:// or imaps://, not {parts.scheme!r}://")
    if not parts.hostname or parts.username is None:
        raise ValueError("IMAP_URL needs a user and a host: imap://user:pass@host:port/FOLDER")
    secure = parts.scheme == "imaps"
    folder = unquote(parts.path.lstrip("/")) or "INBOX"
    return ImapTarget(secure=secure, host=parts.hostname, port=parts.port or (993 if secure else 143),
                      user=unquote(parts.username), password=unquote(parts.password or ""), folder=folder)


class Backoff:
    """Capped exponential delays with jitter (so a fleet of pollers does not reconnect in step)."""

    def __init__(self, base: float | None = None, cap: float | None = None) -> None:
        self.base = BACKOFF_BASE if base is None else base
        self.cap = BACKOFF_CAP if cap is None else cap
        self.failures = 0

    def next_delay(self) -> float:
        delay = min(self.cap, self.base * 2 ** min(self.failures, 20))
        self.failures += 1
        return delay * random.uniform(0.5, 1.0)

    def reset(self) -> None:
        self.failures = 0


def envelope_recipient(raw: bytes) -> str | None:
    """The address the server delivered to (Delivered-To / X-Original-To), when it says so.
    A scan of the header block, not a parse: store_raw parses the headers already."""
    end = HEADER_END.search(raw, 0, 65536)
    head = raw[:end.start()] if end else raw[:65536]
    for name in (b"delivered-to", b"x-original-to"):
        for match in ENVELOPE_FIELD.finditer(head):
            if match.group(1).lower() == name:
                value = " ".join(match.group(2).decode("utf-8", "replace").split())
                if value:
                    return value[:320]
    return None


def _transient(exc: BaseException) -> bool:
    """A database error that says nothing about the message (locked, connection lost)."""
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


class Poller:
    def __init__(self, settings: Settings, stop: threading.Event) -> None:
        if not settings.imap_url:
            raise ValueError("IMAP_URL is not set")
        self.settings = settings
        self.target = parse_imap_url(settings.imap_url)
        self.stop = stop
        self.batch_max = BATCH_MAX  # halved after a connection died mid-FETCH, grown back on success
        self.last_requeue = 0.0
        self.last_purge = float("-inf")  # first sweep soon after start, then hourly
        self.progressed = False  # this connection stored or moved something (resets the backoff)
        self.uidvalidity = 0
        self.last_uid = 0

    # -- connection --------------------------------------------------------------------------
    def connect(self) -> IMAPClient:
        target = self.target
        context = ssl.create_default_context(cafile=self.settings.imap_ca_file) if target.secure else None
        client = IMAPClient(target.host, port=target.port, ssl=target.secure, ssl_context=context,
                            timeout=TIMEOUT)
        try:
            client.login(target.user, target.password)
            for folder in {self.settings.imap_processed_folder, self.settings.imap_failed_folder}:
                self._ensure_folder(client, folder)
            selected = client.select_folder(target.folder)
            self._load_state(int(selected[b"UIDVALIDITY"]))
        except Exception:
            _close(client)
            raise
        log.info("imap: connected to %s/%s (uidvalidity %d, last uid %d, idle=%s, move=%s)",
                 target.account, target.folder, self.uidvalidity, self.last_uid,
                 client.has_capability("IDLE"), client.has_capability("MOVE"))
        return client

    @staticmethod
    def _ensure_folder(client: IMAPClient, folder: str) -> None:
        if client.folder_exists(folder):
            return
        try:
            client.create_folder(folder)
        except IMAPClient.Error:
            if not client.folder_exists(folder):  # lost a race with another poller: fine
                raise

    def _load_state(self, uidvalidity: int) -> None:
        account, folder = self.target.account, self.target.folder
        with session_scope(self.settings) as session:
            state = session.exec(select(ImapState).where(ImapState.account == account,
                                                         ImapState.folder == folder)).first()
            if state is None:
                state = ImapState(account=account, folder=folder, uidvalidity=uidvalidity, last_uid=0)
                session.add(state)
            elif state.uidvalidity != uidvalidity:
                # The server renumbered the folder: our last_uid means nothing now. Fetching again
                # from 0 is safe because store_raws de-duplicates on sha256 / message_key.
                log.warning("imap: UIDVALIDITY of %s/%s changed %s -> %s; starting again from uid 0",
                            account, folder, state.uidvalidity, uidvalidity)
                state.uidvalidity, state.last_uid, state.updated_at = uidvalidity, 0, utcnow()
            session.commit()
            self.uidvalidity, self.last_uid = uidvalidity, state.last_uid

    def _save_last_uid(self, uid: int) -> None:
        with session_scope(self.settings) as session:
            session.exec(update(ImapState).where(  # type: ignore[call-overload]
                col(ImapState.account) == self.target.account, col(ImapState.folder) == self.target.folder,
                col(ImapState.uidvalidity) == self.uidvalidity, col(ImapState.last_uid) < uid,
            ).values(last_uid=uid, updated_at=utcnow()))
            session.commit()
        self.last_uid = max(self.last_uid, uid)

    # -- catch-up ----------------------------------------------------------------------------
    def catch_up(self, client: IMAPClient) -> int:
        """Fetch, store, queue and move every message above last_uid. Returns how many."""
        done = 0
        while True:
            self._check_stop()
            # `UID n:*` always matches the highest UID even when it is below n: filter.
            uids = sorted(uid for uid in client.search(["UID", f"{self.last_uid + 1}:*"]) if uid > self.last_uid)
            if not uids:
                return done
            for start in range(0, len(uids), SIZE_WINDOW):
                window = uids[start:start + SIZE_WINDOW]
                sizes = {uid: int(data.get(b"RFC822.SIZE", 0))
                         for uid, data in client.fetch(window, ["RFC822.SIZE"]).items()}
                for batch in self._batches([uid for uid in window if uid in sizes], sizes):
                    self._check_stop()
                    done += self._process_batch(client, batch)
                    self._maybe_requeue()
                if self.last_uid < window[-1]:  # the rest vanished meanwhile: never search for them again
                    self._save_last_uid(window[-1])

    def _batches(self, uids: list[int], sizes: dict[int, int]) -> list[list[int]]:
        batches: list[list[int]] = []
        current: list[int] = []
        total = 0
        for uid in uids:
            if current and (len(current) >= self.batch_max or total + sizes[uid] > BATCH_BYTES):
                batches.append(current)
                current, total = [], 0
            current.append(uid)
            total += sizes[uid]
        if current:
            batches.append(current)
        return batches

    def _process_batch(self, client: IMAPClient, batch: list[int]) -> int:
        try:
            fetched = client.fetch(batch, ["BODY.PEEK[]"])
        except (IMAPClient.AbortError, OSError):
            # The connection died: perhaps the batch was too much for this link. Ask for less next time.
            self.batch_max = max(1, len(batch) // 2)
            raise
        except IMAPClient.Error as exc:  # the server said NO/BAD; the connection is fine
            if any(code in str(exc).upper() for code in TRANSIENT_CODES):
                raise  # busy or overloaded (RFC 5530): try again later, with backoff
            if len(batch) > 1:  # find the one message it will not give us
                half = len(batch) // 2
                return self._process_batch(client, batch[:half]) + self._process_batch(client, batch[half:])
            self._unreadable(client, batch[0], exc)
            return 1
        self.batch_max = min(BATCH_MAX, self.batch_max * 2)
        incoming: list[tuple[int, Incoming]] = []
        for uid in batch:
            data = fetched.get(uid)
            if data is None:  # expunged meanwhile by someone else: nothing to do
                continue
            raw = data.get(b"BODY[]") or b""
            incoming.append((uid, Incoming(raw, self._source(uid), envelope_recipient(raw))))
        processed: list[int] = []
        failed: list[int] = []
        created: list[int] = []
        # Stamped queued in the storing commit itself (no second write of each row): if the send
        # below fails, the sweeper (requeue_stale) queues them again once they are overdue.
        queued_at = utcnow()
        with session_scope(self.settings) as session:
            for (uid, email), stored in zip(incoming, self._store_batch(session, incoming, queued_at), strict=True):
                if stored is None:
                    failed.append(uid)
                    continue
                row = stored.raw_email
                if stored.created:
                    assert row.id is not None
                    created.append(row.id)
                    if row.status == RawStatus.FAILED:
                        log.warning("imap: %s stored as failed (%s); moving it to %s", email.source, row.reason,
                                    self.settings.imap_failed_folder)
                (failed if stored.created and row.status == RawStatus.FAILED else processed).append(uid)
        if created:
            from workers.actors import send_parse

            send_parse(created)  # after the commit, all in one round trip
        # Only now, with the bytes committed and queued, does the message leave the folder.
        self._move(client, processed, self.settings.imap_processed_folder)
        self._move(client, failed, self.settings.imap_failed_folder)
        self._save_last_uid(max(batch))
        self.progressed = True
        return len(processed) + len(failed)

    def _source(self, uid: int) -> str:
        return f"imap://{self.target.account}/{self.target.folder};uid={uid}"

    def _store_batch(self, session: Session, incoming: list[tuple[int, Incoming]],
                     queued_at: datetime) -> list[Stored | None]:
        """The whole FETCH batch in one commit; if that fails for a reason other than the database
        itself, one by one, so only the message that cannot be stored goes to Failed."""
        try:
            return list(store_raws(session, [email for _, email in incoming], queued_at=queued_at))
        except Exception as exc:
            session.rollback()
            if _transient(exc):
                raise  # the database is the problem, not the messages: reconnect and retry later
            log.warning("imap: storing a batch of %d failed (%s: %s); storing them one by one",
                        len(incoming), type(exc).__name__, exc)
        return [self._store(session, email, queued_at) for _, email in incoming]

    def _unreadable(self, client: IMAPClient, uid: int, exc: Exception) -> None:
        """A message the server refuses to give us: out of the way (if it can be moved), and skipped."""
        log.error("imap: the server will not give us uid %d of %s/%s (%s); moving it to %s", uid,
                  self.target.account, self.target.folder, exc, self.settings.imap_failed_folder)
        try:
            self._move(client, [uid], self.settings.imap_failed_folder)
        except IMAPClient.AbortError:
            raise
        except IMAPClient.Error as move_exc:  # cannot move it either: leave it there, never loop on it
            log.error("imap: cannot move uid %d either (%s); skipping it", uid, move_exc)
        self._save_last_uid(uid)

    def _store(self, session: Session, email: Incoming, queued_at: datetime) -> Stored | None:
        """The stored row, or None when this message cannot be stored at all."""
        try:
            return store_raw(session, email.raw, source=email.source, envelope_to=email.envelope_to,
                             queued_at=queued_at)
        except Exception as exc:
            session.rollback()
            if _transient(exc):
                raise  # the database is the problem, not the message: reconnect and retry later
            log.exception("imap: cannot store %s (%d bytes): %s: %s; moving it to %s", email.source, len(email.raw),
                          type(exc).__name__, exc, self.settings.imap_failed_folder)
            return None

    @staticmethod
    def _move(client: IMAPClient, uids: list[int], folder: str) -> None:
        if not uids:
            return
        if client.has_capability("MOVE"):
            client.move(uids, folder)
            return
        client.copy(uids, folder)
        client.add_flags(uids, [DELETED], silent=True)
        if client.has_capability("UIDPLUS"):
            client.uid_expunge(uids)  # only ours, not other clients' \Deleted messages
        else:
            client.expunge()

    # -- waiting -----------------------------------------------------------------------------
    def wait_for_mail(self, client: IMAPClient) -> None:
        """Return when there may be new mail (or it is time to look anyway)."""
        if client.has_capability("IDLE"):
            self._idle(client)
        else:
            deadline = time.monotonic() + self.settings.imap_poll_seconds
            while time.monotonic() < deadline:
                self._check_stop()
                self._maybe_requeue()
                self.stop.wait(min(IDLE_TICK, max(0.0, deadline - time.monotonic())))
            client.noop()

    def _idle(self, client: IMAPClient) -> None:
        client.idle()
        deadline = time.monotonic() + self.settings.imap_idle_seconds
        try:
            while not self.stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    return  # re-IDLE now and then: servers and NATs drop quiet connections
                tick = min(IDLE_TICK, left)
                started = time.monotonic()
                responses = client.idle_check(timeout=tick)
                if any(len(r) >= 2 and r[1] in (b"EXISTS", b"RECENT") for r in responses):
                    return
                if not responses and time.monotonic() - started < tick / 2:
                    # Woken with nothing to read: usually the server closed the connection
                    # (imapclient swallows that EOF). DONE below finds out either way.
                    return
                self._maybe_requeue()
        finally:
            client.idle_done()  # raises on a dead connection: the outer loop reconnects

    def _maybe_requeue(self) -> None:
        now = time.monotonic()
        if now - self.last_requeue < REQUEUE_EVERY:
            return
        self.last_requeue = now
        from workers.actors import requeue_stale

        try:
            count = requeue_stale()
        except Exception as exc:  # the queue or the database is down: the next sweep retries
            log.warning("imap: requeue_stale failed: %s: %s", type(exc).__name__, exc)
            return
        if count:
            log.info("imap: queued %d stale raw emails again", count)
        if now - self.last_purge >= PURGE_EVERY:
            self.last_purge = now
            from workers.actors import purge_raw

            try:
                purge_raw.send()
            except Exception as exc:  # the queue is down: the next hour tries again
                log.warning("imap: could not queue the retention sweep: %s: %s", type(exc).__name__, exc)

    def _check_stop(self) -> None:
        if self.stop.is_set():
            raise Stop

    # -- main loop ---------------------------------------------------------------------------
    def run(self, once: bool) -> None:
        backoff = Backoff()
        while not self.stop.is_set():
            client: IMAPClient | None = None
            self.progressed = False
            try:
                client = self.connect()
                while True:
                    count = self.catch_up(client)
                    if count:
                        log.info("imap: %d messages from %s/%s", count, self.target.account, self.target.folder)
                    self._maybe_requeue()
                    backoff.reset()
                    if once:
                        return
                    self.wait_for_mail(client)
            except Stop:
                return
            except Exception as exc:
                if self.progressed:
                    backoff.reset()  # it was working: try again soon
                delay = backoff.next_delay()
                if once and backoff.failures > ONCE_MAX_FAILURES:
                    raise
                log.warning("imap: %s: %s; reconnecting in %.1fs", type(exc).__name__, exc, delay)
                self.stop.wait(delay)
            finally:
                if client is not None:
                    _close(client)


def _close(client: IMAPClient) -> None:
    try:
        client.logout()
    except Exception:  # already dead: just drop the socket
        try:
            client.shutdown()
        except Exception:
            pass


def run_poller(settings: Settings, once: bool = False, stop: threading.Event | None = None) -> None:
    """Poll settings.imap_url until `stop` is set (or, with once=True, until caught up)."""
    previous = None
    if stop is None:
        stop = threading.Event()
        if threading.current_thread() is threading.main_thread():
            # `purchaseshare poll` under a supervisor: finish the current batch, then leave.
            previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        Poller(settings, stop).run(once)
    except KeyboardInterrupt:
        stop.set()
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
