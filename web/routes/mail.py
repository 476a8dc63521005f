"""The owner's received emails (status, reason, retry), .eml upload (the same path as IMAP mail),
and the operator's pages (quarantine, outbox)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath

from fastapi import APIRouter, Request
from sqlalchemy.orm import defer
from sqlmodel import Session, col, or_, select
from starlette.datastructures import UploadFile

from purchaseshare.attribution import read_headers
from purchaseshare.clock import utcnow
from purchaseshare.config import Settings
from purchaseshare.mailstore import store_raw
from purchaseshare.models import OutboxMail, RawEmail, RawStatus, User
from purchaseshare.pipeline import MAX_BYTES
from purchaseshare.quota import refusal, used_bytes
from web.deps import CurrentUser, DbDep, SettingsDep, flash, not_found, render
from web.forms import (
    FormDep,
    PageDep,
    decoded_subject,
    object_id,
    owned_or_404,
    paginate,
    see_other,
)
from web.limits import MAX_FORM_FILES

router = APIRouter(include_in_schema=False)

MAX_UPLOAD_FILES = MAX_FORM_FILES
# Emails the owner should look at: nothing came out of them, or their purchase was deleted.
ATTENTION = (RawStatus.FAILED.value, RawStatus.UNPARSED.value, RawStatus.NOT_PURCHASE.value,
             RawStatus.RECEIVED.value)


# --- received emails --------------------------------------------------------------------------


@router.get("/emails")
def emails(request: Request, user: CurrentUser, db: DbDep, page: PageDep = 1):
    deleted = (RawEmail.status == RawStatus.PARSED.value) & col(RawEmail.purchase_id).is_(None)
    query = (select(RawEmail).options(defer(RawEmail.raw))  # a page of 50 MB emails: never their bytes
             .where(RawEmail.user_id == user.id, or_(col(RawEmail.status).in_(ATTENTION), deleted))
             .order_by(col(RawEmail.received_at).desc(), col(RawEmail.id).desc()))
    rows, has_more = paginate(db, query, page)
    return render(request, "owner/emails.html", {"emails": rows, "page": page, "has_more": has_more,
                                                 "subject": decoded_subject},
                  user=user, db=db)


def _queue_reparse(db: Session, raw: RawEmail) -> None:
    if raw.status in (RawStatus.PARSED.value, RawStatus.APPLIED.value) and raw.purchase_id is None:
        # Its purchase was deleted: parse it from scratch so the purchase comes back to the inbox.
        raw.status, raw.reason = RawStatus.RECEIVED.value, None
    raw.queued_at = utcnow()
    db.commit()
    from workers.actors import reparse_email

    reparse_email.send(raw.id)  # after the commit: the worker must see what we wrote


@router.post("/emails/{raw_id}/retry")
def retry_email(request: Request, raw_id: str, user: CurrentUser, db: DbDep):
    raw = owned_or_404(db, RawEmail, raw_id, user)
    _queue_reparse(db, raw)
    flash(request, "Queued: this email will be read again in a moment.")
    return see_other("/emails")


@router.get("/operator/quarantine")
def quarantine(request: Request, user: CurrentUser, db: DbDep, page: PageDep = 1):
    if not user.is_operator:
        raise not_found()
    query = (select(RawEmail).options(defer(RawEmail.raw)).where(RawEmail.status == RawStatus.QUARANTINED.value)
             .order_by(col(RawEmail.received_at).desc(), col(RawEmail.id).desc()))
    rows, has_more = paginate(db, query, page)
    return render(request, "owner/quarantine.html", {"emails": rows, "page": page, "has_more": has_more,
                                                     "subject": decoded_subject},
                  user=user, db=db)


@router.post("/operator/quarantine/{raw_id}/retry")
def quarantine_retry(request: Request, raw_id: str, user: CurrentUser, db: DbDep):
    raw = db.get(RawEmail, object_id(raw_id))
    if not user.is_operator or raw is None or raw.status != RawStatus.QUARANTINED.value:
        raise not_found()
    _queue_reparse(db, raw)  # attributed again: the sender may have verified the address since
    flash(request, "Queued for attribution and parsing again.")
    return see_other("/operator/quarantine")


@router.get("/operator/outbox")
def outbox(request: Request, user: CurrentUser, db: DbDep, settings: SettingsDep, page: PageDep = 1):
    """Every mail we sent or hold. With no SMTP_URL this is where it stays (and where the demo's
    verification and reset links are read): operators only, since it holds other people's links."""
    if not user.is_operator:
        raise not_found()
    query = select(OutboxMail).order_by(col(OutboxMail.created_at).desc(), col(OutboxMail.id).desc())
    rows, has_more = paginate(db, query, page)
    return render(request, "owner/outbox.html", {"mails": rows, "page": page, "has_more": has_more,
                                                 "smtp": bool(settings.smtp_url)}, user=user, db=db)


# --- upload -----------------------------------------------------------------------------------


def looks_like_email(data: bytes) -> bool:
    """RFC 5322 header fields up front: a From plus one more of the usual ones."""
    if not data.strip() or b"\x00" in data[:8192]:
        return False
    headers = read_headers(data[:65536])
    names = {name.lower() for name in headers}
    return "from" in names and bool(names & {"subject", "date", "message-id", "to"})


@dataclass
class UploadResult:
    name: str
    status: str
    detail: str = ""
    raw_id: int | None = None


def _read_limited(upload: UploadFile, limit: int) -> bytes:
    upload.file.seek(0)
    return upload.file.read(limit + 1)


def _limits(db: Session, settings: Settings, user: User) -> dict:
    """What the upload page says about sizes: per file, files per upload, the user's storage."""
    used = used_bytes(db, user.id or 0)
    return {"max_mb": MAX_BYTES // 2**20, "max_files": MAX_UPLOAD_FILES,
            "storage": {"used": round(used / 2**20, 1), "quota": settings.user_quota_mb}}


@router.get("/upload")
def upload_form(request: Request, user: CurrentUser, db: DbDep, settings: SettingsDep):
    return render(request, "owner/upload.html", {"results": [], "errors": [], **_limits(db, settings, user)},
                  user=user, db=db)


@router.post("/upload")
def upload(request: Request, user: CurrentUser, db: DbDep, settings: SettingsDep, form: FormDep):
    files = [f for f in form.getlist("files") if isinstance(f, UploadFile) and f.filename]
    errors: list[str] = []
    if not files:
        errors.append("Choose at least one .eml file.")
    elif len(files) > MAX_UPLOAD_FILES:
        errors.append(f"At most {MAX_UPLOAD_FILES} files at once.")
    results: list[UploadResult] = []
    queue: list[int] = []
    for upload_file in files if not errors else []:
        name = PurePath((upload_file.filename or "upload.eml").replace("\\", "/")).name[:200] or "upload.eml"
        data = _read_limited(upload_file, MAX_BYTES)
        if len(data) > MAX_BYTES:
            results.append(UploadResult(name, "rejected", f"larger than {MAX_BYTES // 2**20} MB"))
            continue
        if not looks_like_email(data):
            results.append(UploadResult(name, "rejected", "not an email: save the message as .eml "
                                                          "(\"Save as\" or \"Download message\" in your mail app)"))
            continue
        over = refusal(db, settings, user.id or 0, len(data))
        if over:
            results.append(UploadResult(name, "rejected", over))
            continue
        # De-duplicated among this user's own emails only: whatever anyone else (or the
        # quarantine) holds is never matched, handed over or hinted at.
        stored = store_raw(db, data, source=f"upload:{name}", user_id=user.id, attributed_by="upload")
        del data  # one file's bytes at a time (store_raw lets go of its copy after the commit)
        raw = stored.raw_email
        if not stored.created:
            results.append(UploadResult(name, "duplicate", f"already received ({raw.status}); not added again", raw.id))
        elif raw.status == RawStatus.RECEIVED.value:
            queue.append(raw.id)
            results.append(UploadResult(name, "queued", "stored; it will be read in a moment", raw.id))
        else:
            results.append(UploadResult(name, raw.status, raw.reason or "", raw.id))
    if queue:
        from workers.actors import enqueue_parse

        enqueue_parse(db, queue)  # the same path as IMAP mail, after the commit
    status = 400 if errors or (results and all(r.status == "rejected" for r in results)) else 200
    return render(request, "owner/upload.html", {"results": results, "errors": errors,
                                                 **_limits(db, settings, user)},
                  status_code=status, user=user, db=db)
