"""The owner's settings, and leaving: download everything, delete everything."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import func
from sqlmodel import select
from starlette.concurrency import iterate_in_threadpool

from purchaseshare.account import delete_account, export_chunks
from purchaseshare.config import Settings
from purchaseshare.item_images import queue_avatar
from purchaseshare.limits import TEXT_MAX
from purchaseshare.models import Purchase, RawEmail, User
from purchaseshare.users import HANDLE, handle_free, rename
from web.deps import CurrentUser, DbDep, SettingsDep, flash, render
from web.forms import (
    Errors,
    FormDep,
    parse_name,
    parse_url,
    see_other,
    text_field,
    typed_length,
)
from web.limits import ExportSlots
from web.routes.auth import client_address
from web.security import check_password, login_blocked, record_login_failure
from web.sessions import revoke_all

router = APIRouter(include_in_schema=False)


# --- settings, export, delete -----------------------------------------------------------------


def _settings_values(user: User) -> dict[str, Any]:
    return {"handle": user.handle, "display_name": user.display_name, "avatar_url": user.avatar_url or "",
            "bio": user.bio, "default_share_items": user.default_share_items, "allow_indexing": user.allow_indexing,
            "raw_retention_days": "" if user.raw_retention_days is None else str(user.raw_retention_days)}


@router.get("/settings")
def settings_page(request: Request, user: CurrentUser, db: DbDep):
    return render(request, "owner/settings.html", {"values": _settings_values(user), "errors": []}, user=user, db=db)


@router.post("/settings")
def save_settings(request: Request, user: CurrentUser, db: DbDep, form: FormDep):
    values: dict[str, Any] = {name: text_field(form, name) for name in
                              ("handle", "display_name", "avatar_url", "bio", "raw_retention_days")}
    values["default_share_items"] = "default_share_items" in form
    values["allow_indexing"] = "allow_indexing" in form
    errors = Errors()
    handle = values["handle"].lower()
    if handle != user.handle:
        if not HANDLE.match(handle):
            errors.messages.append("handle: 1-40 letters, digits, '-' or '_', starting and ending with a letter or digit")
        elif not handle_free(db, handle, user.id):  # taken, or another's old handle still reserved
            errors.messages.append(f"handle: {handle} is taken")
    display_name = errors.check(parse_name, values["display_name"], "display name", TEXT_MAX["display_name"],
                                required=False)
    avatar = errors.check(parse_url, values["avatar_url"], "avatar", https_only=True)
    if len(values["avatar_url"]) > TEXT_MAX["avatar_url"]:
        errors.messages.append(f"avatar: at most {TEXT_MAX['avatar_url']} characters")
    if typed_length(values["bio"]) > TEXT_MAX["bio"]:
        errors.messages.append(f"bio: at most {TEXT_MAX['bio']} characters")
    days_text, days = values["raw_retention_days"], None
    if days_text:
        if not days_text.isdigit() or not 1 <= int(days_text) <= 36500:
            errors.messages.append("raw-mail retention: a number of days from 1, or empty to keep until you delete")
        else:
            days = int(days_text)
    if errors.messages:
        return render(request, "owner/settings.html", {"values": values, "errors": errors.messages},
                      status_code=400, user=user, db=db)
    rename(db, user, handle)  # the old handle stays reserved for this user a while
    if avatar != user.avatar_url:
        queue_avatar(db, user.id)  # stored by the worker after the commit; public pages show only that copy
    user.display_name, user.avatar_url = display_name or handle, avatar
    user.bio, user.raw_retention_days = values["bio"], days
    user.default_share_items, user.allow_indexing = values["default_share_items"], values["allow_indexing"]
    db.add(user)
    db.commit()
    flash(request, "Settings saved.")
    return see_other("/settings")


@router.post("/settings/sign-out-everywhere")
def sign_out_everywhere(request: Request, user: CurrentUser, db: DbDep):
    # Every server-side session of the account is revoked, on every device, this one too; the
    # session_version moves as well, so unused reset links stop working.
    user.session_version += 1
    db.add(user)
    revoke_all(db, user.id)
    db.commit()
    request.session.clear()
    flash(request, "You are signed out everywhere, on every device and browser. Log in again to continue.")
    return see_other("/login")


_export_slots: ExportSlots | None = None


def export_slots(settings: Settings) -> ExportSlots:
    global _export_slots
    if _export_slots is None:
        _export_slots = ExportSlots(settings.max_concurrent_exports)
    return _export_slots


@router.get("/settings/export")
def export(user: CurrentUser, settings: SettingsDep):
    """The zip streams as it is written (purchaseshare.account.export_chunks). A few exports at
    once per process, one per user: more wait for a slot (503 + Retry-After), so six at once
    cannot hold six accounts' worth of mail."""
    slot = export_slots(settings).take(user.id or 0)
    if slot is None:
        raise HTTPException(status_code=503, headers={"Retry-After": "30"},
                            detail="Your data is being prepared for another download, or the server is busy "
                                   "with others: try again in a minute.")
    chunks = export_chunks(settings, user.id or 0)

    async def body() -> AsyncIterator[bytes]:
        try:
            async for chunk in iterate_in_threadpool(chunks):
                yield chunk
        finally:  # finished, failed or the client went away: the slot is free again
            slot.release()

    name = f"purchaseshare-{user.handle}-{date.today().isoformat()}.zip"
    return StreamingResponse(body(), media_type="application/zip",
                             headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/settings/delete")
def delete_form(request: Request, user: CurrentUser, db: DbDep):
    counts = {
        "purchases": db.exec(select(func.count()).select_from(Purchase).where(Purchase.user_id == user.id)).one(),
        "emails": db.exec(select(func.count()).select_from(RawEmail).where(RawEmail.user_id == user.id)).one(),
    }
    return render(request, "owner/delete.html", {"errors": [], "counts": counts}, user=user, db=db)


@router.post("/settings/delete")
def delete_everything(request: Request, user: CurrentUser, db: DbDep, form: FormDep):
    # The password is checked only once the confirmation is complete, and counts as a login attempt
    # (same limits): a stolen session cookie is no password oracle.
    address = client_address(request)
    if text_field(form, "handle").lower() != user.handle:
        errors = ["Type your handle exactly to confirm."]
    elif login_blocked(db, user.handle, address):
        return render(request, "owner/delete.html", {"errors": [
            "Too many wrong passwords from here. Wait 15 minutes and try again."], "counts": None},
            status_code=429, user=user, db=db, headers={"Retry-After": "900"})
    elif not isinstance(password := form.get("password"), str) or not check_password(user.password_hash, password):
        record_login_failure(db, user.handle, address)
        errors = ["The password is not right."]
    else:
        errors = []
    if errors:
        return render(request, "owner/delete.html", {"errors": errors, "counts": None}, status_code=400,
                      user=user, db=db)
    delete_account(db, user)
    request.session.clear()
    flash(request, "Your account and everything in it were deleted.")
    return see_other("/")
