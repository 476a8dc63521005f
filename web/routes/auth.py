"""Accounts: sign up, log in/out (rate limited), password reset by mail, sender addresses verified
by a mailed link, and the page that shows the personal forwarding address."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from purchaseshare import gmail, limits, ratelimit
from purchaseshare.clock import utcnow
from purchaseshare.config import Settings
from purchaseshare.demo import drop_folder, is_demo
from purchaseshare.limits import TEXT_MAX
from purchaseshare.mailer import queue_mail
from purchaseshare.models import OutboxMail, RawEmail, SenderAddress, User
from purchaseshare.users import (
    EMAIL_ADDRESS,
    HANDLE,
    PendingClaim,
    UserError,
    add_sender_address,
    confirm_claim,
    create_user,
    get_by_handle,
    handle_free,
)
from web.deps import (
    CurrentUser,
    DbDep,
    OptionalUser,
    SettingsDep,
    account_stamp,
    flash,
    not_found,
    render,
    sign_in,
    sign_out,
)
from web.forms import owned_or_404, see_other
from web.security import (
    check_password,
    clear_login_failures,
    client_key,
    hash_password,
    login_blocked,
    make_link_token,
    password_problem,
    read_link_token,
    record_login_failure,
)
from web.sessions import revoke_all

router = APIRouter(include_in_schema=False)

AFTER_LOGIN = "/inbox"
RESET_MAX_AGE_S = 3600
VERIFY_MAX_AGE_S = 7 * 24 * 3600
MAX_PASSWORD = 1024  # argon2 takes anything, but nobody types more; bounds the work per request
# Mail we send on someone's request is capped per hour, so the site cannot be used to mail-bomb.
MAILS_PER_HOUR = 3

Text = Annotated[str, Form()]


# --- helpers ---------------------------------------------------------------------------------------


def safe_next(target: str | None, default: str = AFTER_LOGIN) -> str:
    """Only a same-site relative path: "//evil.example", "https://evil.example", "/\\evil" are ignored."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return default
    if "\\" in target or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in target):
        return default  # browsers treat "\" like "/" and drop tabs/newlines: "/\t/evil.example"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def link(settings: Settings, path: str) -> str:
    return settings.base_url.rstrip("/") + path


def send_queued(settings: Settings, mails: list[OutboxMail | None]) -> None:
    """After the commit: deliver over SMTP_URL when set (otherwise the mail stays in the outbox)."""
    from workers.actors import send_after_commit

    send_after_commit(settings, [mail.id for mail in mails if mail is not None])


def recent_mails(db: Session, purpose: str, *, to: str | None = None, user_id: int | None = None) -> int:
    query = select(func.count()).select_from(OutboxMail).where(
        OutboxMail.purpose == purpose, OutboxMail.created_at > utcnow() - timedelta(hours=1))
    if to is not None:
        query = query.where(OutboxMail.to_addr == to)
    if user_id is not None:
        query = query.where(OutboxMail.user_id == user_id)
    return db.exec(query).one()


def find_account(db: Session, identifier: str) -> User | None:
    identifier = identifier.strip().lower()
    if not identifier:
        return None
    if "@" in identifier:
        return db.exec(select(User).where(User.email == identifier)).first()
    return get_by_handle(db, identifier)


def verify_link(settings: Settings, row: SenderAddress | PendingClaim, user: User | None = None) -> str:
    if isinstance(row, PendingClaim):  # no row of its own: the link carries the claim (and its account)
        assert user is not None and user.id == row.user_id
        payload: dict[str, Any] = {"u": user.id, "c": account_stamp(user), "m": row.address}
    else:
        payload = {"a": row.id, "t": row.verify_token}
    return link(settings, f"/verify/{make_link_token(settings.secret_key, 'verify', payload)}")


def sent_link(request: Request, settings: Settings, address: str, row: SenderAddress | PendingClaim | None,
              user: User, sent: str) -> str:
    """What to say after a verification mail was queued. A real site says `sent`; the demo mails
    nothing (the outbox only an operator reads), so it says so and puts the link on the page."""
    if not is_demo(settings):
        return sent
    if row is not None:
        request.session["demo_link"] = {"address": address, "path": urlsplit(verify_link(settings, row, user)).path}
    return (f"This demo sends no mail, so no link went to {address}"
            f"{': open the verification link below instead' if row is not None else ''}.")


TOO_MANY_LINKS = "We sent several links to {} lately. Check its spam folder, or try again later."


def queue_verification(db: Session, settings: Settings, user: User, row: SenderAddress | PendingClaim,
                       template: str = "verify_address") -> OutboxMail | None:
    """The verification mail, or None when the address or the account had its share of them:
    many accounts must not turn the site into a mail cannon aimed at one outside address."""
    if not ratelimit.take(db, {f"verify-mail:to:{row.address}": limits.VERIFY_TO_RULES,
                            f"verify-mail:by:{user.id}": limits.VERIFY_BY_RULES}):
        return None
    return queue_mail(db, to=row.address, template=template, user_id=user.id, purpose="verify",
                      user=user, address=row.address,
                      forwarding_address=settings.forwarding_address(user.forwarding_token),
                      forwarding_url=link(settings, "/settings/forwarding"), base_url=settings.base_url,
                      verify_url=verify_link(settings, row, user))


# --- sign up ---------------------------------------------------------------------------------------


@router.get("/signup")
def signup_form(request: Request, user: OptionalUser, db: DbDep):
    return render(request, "auth/signup.html", {"form": {}, "errors": {}}, user=user, db=db)


@router.post("/signup")
def signup(request: Request, db: DbDep, settings: SettingsDep, user: OptionalUser,
           handle: Text = "", display_name: Text = "", email: Text = "", password: Text = ""):
    form = {"handle": handle.strip(), "display_name": display_name.strip(), "email": email.strip()}
    errors: dict[str, str] = {}
    wanted = form["handle"].lower()
    if not wanted:
        errors["handle"] = "Choose a handle."
    elif not HANDLE.match(wanted):
        errors["handle"] = ("Use 1-40 lowercase letters, digits, '-' or '_', starting and ending with a "
                            "letter or digit.")
    elif not handle_free(db, wanted):  # handles are public: saying so reveals nothing
        errors["handle"] = f"The handle {wanted} is taken. Choose another."
    if len(form["display_name"]) > TEXT_MAX["display_name"]:
        errors["display_name"] = f"Use at most {TEXT_MAX['display_name']} characters."
    address = form["email"].lower()
    if not EMAIL_ADDRESS.fullmatch(address) or len(address) > 320:
        errors["email"] = "Enter an email address, like you@example.org."
    problem = password_problem(password)
    if problem:
        errors["password"] = f"Choose a longer password: {problem}."
    elif len(password) > MAX_PASSWORD:
        errors["password"] = f"Use at most {MAX_PASSWORD} characters."
    account: User | None = None
    if not errors:
        allowed = ratelimit.take(db, {f"signup:ip:{client_key(client_address(request))}": limits.SIGNUP_RULES})
        db.commit()  # the attempt counts even when the account cannot be made below
    if not errors and not allowed:
        return render(request, "auth/signup.html", {"form": form, "errors": {
            "form": "Too many sign-ups from here. Try again in an hour."}}, status_code=429, user=user, db=db,
            headers={"Retry-After": str(ratelimit.retry_after(limits.SIGNUP_RULES))})
    # An address that already has an account gets the same answer as a new one (the page must not
    # tell who has an account here); its owner is told by mail, and the new account gets no email.
    owner = db.exec(select(User).where(User.email == address)).first() if not errors else None
    if not errors:
        try:
            account = create_user(db, wanted, email=None if owner else address, display_name=form["display_name"],
                                  password_hash=hash_password(password))
        except (UserError, IntegrityError):  # the same handle or email signed up at the same moment
            db.rollback()
            errors["handle"] = "This handle or email address was just taken. Try another."
    if account is None:
        return render(request, "auth/signup.html", {"form": form, "errors": errors}, status_code=400,
                      user=user, db=db)
    mail, row = None, None
    if owner is not None:
        if recent_mails(db, "signup-existing", to=address) < MAILS_PER_HOUR:
            mail = queue_mail(db, to=address, template="signup_existing", user_id=owner.id,
                              purpose="signup-existing", user=owner, login_url=link(settings, "/login"),
                              reset_url=link(settings, "/reset"), base_url=settings.base_url)
    else:
        try:
            # The account's address is also where its receipts usually come from: a sender to verify.
            row = add_sender_address(db, account, address)
            mail = queue_verification(db, settings, account, row, template="welcome")
        except UserError:
            row = None  # verified by another account already: this account simply forwards to its plus-address
    db.commit()
    send_queued(settings, [mail])
    sign_in(request, account, db)
    # The same words whether a mail left or not (an existing account's owner, a mail limit reached):
    # the page must not tell who has an account here.
    told = sent_link(request, settings, address, row if mail is not None else None, account,
                     f"We sent a link to {address}: open it to verify the address.")
    flash(request, f"Welcome, {account.display_name}! {told} Then forward your receipts as shown below.")
    return see_other("/settings/forwarding")


# --- log in / out ----------------------------------------------------------------------------------


@router.get("/login")
def login_form(request: Request, user: OptionalUser, db: DbDep, next: str = ""):
    return render(request, "auth/login.html", {"next": safe_next(next, ""), "handle": "", "error": None},
                  user=user, db=db)


@router.post("/login")
def login(request: Request, db: DbDep, user: OptionalUser, handle: Text = "", password: Text = "",
          next: Text = ""):
    identifier = handle.strip().lower()[:320]
    account = find_account(db, identifier)
    key = account.handle if account else identifier  # one counter per account, by handle or email
    address = client_address(request)
    context: dict[str, Any] = {"next": safe_next(next, ""), "handle": handle.strip()[:320]}
    if login_blocked(db, key, address):
        # Refused whatever the password: a correct guess must not get through while blocked. Only
        # this client is blocked (web.security.login_blocked): the owner elsewhere still gets in.
        context["error"] = ("Too many failed attempts from here. Wait 15 minutes and try again, or reset "
                            "your password by mail.")
        return render(request, "auth/login.html", context, status_code=429, user=user, db=db,
                      headers={"Retry-After": "900"})
    ok = check_password(account.password_hash if account else None, password[:MAX_PASSWORD])
    if not ok or account is None:
        record_login_failure(db, key, address)
        context["error"] = "That handle or email and password do not match."
        return render(request, "auth/login.html", context, status_code=400, user=user, db=db)
    clear_login_failures(db, account.handle, address)
    sign_in(request, account, db)
    if account.email_bounced_at:  # our verification or reset mail bounced (purchaseshare.bounces)
        flash(request, f"Our mail to {account.email} bounced ({account.email_bounce_reason}): that address does "
                       "not take mail. See Settings, Addresses.")
    return see_other(safe_next(next))


@router.post("/logout")
def logout(request: Request, db: DbDep):
    sign_out(request, db)
    return see_other("/")


# --- password reset --------------------------------------------------------------------------------


@router.get("/reset")
def reset_request_form(request: Request, user: OptionalUser, db: DbDep):
    return render(request, "auth/reset_request.html", {"sent": False}, user=user, db=db)


@router.post("/reset")
def reset_request(request: Request, db: DbDep, settings: SettingsDep, user: OptionalUser, email: Text = ""):
    account = find_account(db, email[:320])
    mail = None
    # The same answer whether or not the account exists: the page reveals nothing.
    if account is not None and account.email and recent_mails(db, "reset", user_id=account.id) < MAILS_PER_HOUR:
        token = make_link_token(settings.secret_key, "reset", {"u": account.id, "sv": account.session_version,
                                                           "c": account_stamp(account)})
        mail = queue_mail(db, to=account.email, template="reset_password", user_id=account.id, purpose="reset",
                          user=account, reset_url=link(settings, f"/reset/{token}"), base_url=settings.base_url)
        db.commit()
        send_queued(settings, [mail])
    return render(request, "auth/reset_request.html", {"sent": True}, user=user, db=db)


def reset_account(db: Session, settings: Settings, token: str) -> User | None:
    """The account a reset link is for, while the link is fresh and unused (session_version unchanged)."""
    payload = read_link_token(settings.secret_key, "reset", token, RESET_MAX_AGE_S)
    if not isinstance(payload, dict) or not isinstance(payload.get("u"), int):
        return None
    account = db.get(User, payload["u"])
    # The creation stamp too: a deleted account's id can be reused by SQLite for a new one.
    if account is None or payload.get("sv") != account.session_version or payload.get("c") != account_stamp(account):
        return None
    return account


def bad_link(request: Request, user: User | None, db: Session, what: str, again: str):
    return render(request, "auth/message.html", {
        "title": "This link does not work", "message": f"This {what} link is invalid, has expired, or was already used.",
        "action": again}, status_code=400, user=user, db=db)


@router.get("/reset/{token}")
def reset_form(request: Request, token: str, db: DbDep, settings: SettingsDep, user: OptionalUser):
    account = reset_account(db, settings, token)
    if account is None:
        return bad_link(request, user, db, "password reset", "/reset")
    return render(request, "auth/reset_form.html", {"token": token, "account": account, "error": None},
                  user=user, db=db)


@router.post("/reset/{token}")
def reset_password(request: Request, token: str, db: DbDep, settings: SettingsDep, user: OptionalUser,
                   password: Text = "", confirm: Text = ""):
    account = reset_account(db, settings, token)
    if account is None:
        return bad_link(request, user, db, "password reset", "/reset")
    error = None
    problem = password_problem(password)
    if problem:
        error = f"Choose a longer password: {problem}."
    elif len(password) > MAX_PASSWORD:
        error = f"Use at most {MAX_PASSWORD} characters."
    elif password != confirm:
        error = "The two passwords differ."
    if error:
        return render(request, "auth/reset_form.html", {"token": token, "account": account, "error": error},
                      status_code=400, user=user, db=db)
    account.password_hash = hash_password(password)
    account.session_version += 1  # every other session, and this link, stop working
    account.email_bounced_at = account.email_bounce_reason = None  # the link arrived: the address works
    db.add(account)
    revoke_all(db, account.id)
    db.commit()
    clear_login_failures(db, account.handle)
    sign_in(request, account, db)
    flash(request, "Your password was changed. Every other session was logged out.")
    return see_other(AFTER_LOGIN)


# --- sender addresses ------------------------------------------------------------------------------


def own_addresses(db: Session, user: User) -> list[SenderAddress]:
    return list(db.exec(select(SenderAddress).where(SenderAddress.user_id == user.id)
                        .order_by(col(SenderAddress.created_at), col(SenderAddress.id))).all())


def bounced(user: User, rows: list[SenderAddress]) -> list[dict[str, str]]:
    """The user's addresses our verification or reset mail bounced from (purchaseshare.bounces),
    until a later verification proves mail arrives there again."""
    found = [{"address": user.email, "reason": user.email_bounce_reason or ""}] if (
        user.email and user.email_bounced_at) else []
    for row in rows:
        if row.bounced_at and (row.verified_at is None or row.bounced_at > row.verified_at) and row.address != user.email:
            found.append({"address": row.address, "reason": row.bounce_reason or ""})
    return found


@router.get("/settings/addresses")
def addresses(request: Request, user: CurrentUser, db: DbDep):
    rows = own_addresses(db, user)
    return render(request, "auth/addresses.html", {"addresses": rows, "error": None, "address": "",
                                                   "bounced": bounced(user, rows)}, user=user, db=db)


@router.post("/settings/addresses")
def add_address(request: Request, user: CurrentUser, db: DbDep, settings: SettingsDep, address: Text = ""):
    wanted = address.strip().lower()[:320]
    error = None
    row = None
    status = 400
    try:
        row = add_sender_address(db, user, wanted)
    except UserError as exc:
        error = str(exc)[0].upper() + str(exc)[1:] + "."
    except IntegrityError:
        db.rollback()
        error = "This address was just added by someone else. Try again."
    mail = None
    if row is not None and (isinstance(row, PendingClaim) or row.verified_at is None):
        mail = queue_verification(db, settings, user, row)
        if mail is None:
            db.rollback()  # no link, no claim
            row, status, error = None, 429, TOO_MANY_LINKS.format(wanted)
    if row is None:
        return render(request, "auth/addresses.html", {"addresses": own_addresses(db, user), "error": error,
                                                       "address": address.strip()[:320]},
                      status_code=status, user=user, db=db, headers={"Retry-After": "3600"} if status == 429 else None)
    if mail is not None:
        flash(request, sent_link(request, settings, row.address, row, user,
                                 f"We sent a link to {row.address}. Open it to verify the address."))
    else:
        flash(request, f"{row.address} is already verified.")
    db.commit()
    send_queued(settings, [mail])
    return see_other("/settings/addresses")


@router.post("/settings/addresses/{address_id}/delete")
def delete_address(request: Request, address_id: str, user: CurrentUser, db: DbDep):
    row = owned_or_404(db, SenderAddress, address_id, user)
    db.delete(row)
    db.commit()
    flash(request, f"{row.address} was removed. Mail from it is no longer read for you.")
    return see_other("/settings/addresses")


@router.post("/settings/addresses/{address_id}/resend")
def resend_verification(request: Request, address_id: str, user: CurrentUser, db: DbDep, settings: SettingsDep):
    row = owned_or_404(db, SenderAddress, address_id, user)
    if row.verified_at is not None:
        flash(request, f"{row.address} is already verified.")
    else:
        mail = queue_verification(db, settings, user, row)
        if mail is None:
            db.rollback()
            return render(request, "auth/addresses.html", {
                "addresses": own_addresses(db, user), "error": TOO_MANY_LINKS.format(row.address), "address": ""},
                status_code=429, user=user, db=db, headers={"Retry-After": "3600"})
        db.commit()
        send_queued(settings, [mail])
        flash(request, sent_link(request, settings, row.address, row, user, f"We sent a new link to {row.address}."))
    return see_other("/settings/addresses")


def verify_target(db: Session, settings: Settings, user: User, token: str) -> SenderAddress | PendingClaim | None:
    """The signed-in user's unverified address (or pending claim) this link is for; None when the link
    is bad or stale. Someone else's link is a 404: the link proves the mailbox, the session the account."""
    payload = read_link_token(settings.secret_key, "verify", token, VERIFY_MAX_AGE_S)
    if not isinstance(payload, dict):
        return None
    if isinstance(payload.get("m"), str) and isinstance(payload.get("u"), int):  # a pending claim
        if payload["u"] != user.id or payload.get("c") != account_stamp(user):
            raise not_found()
        row = db.exec(select(SenderAddress).where(SenderAddress.address == payload["m"])).first()
        if row is not None and row.verified_at is not None:
            return None  # verified first by someone (or this link was used)
        return PendingClaim(user_id=user.id or 0, address=payload["m"])
    if not isinstance(payload.get("a"), int):
        return None
    row = db.get(SenderAddress, payload["a"])
    if row is None:
        return None
    if row.verify_token is None or row.verify_token != payload.get("t"):
        return None  # used, or dropped when another account verified first (its id may be reused)
    if row.user_id != user.id:
        raise not_found()
    return row


@router.get("/verify/{token}")
def verify_form(request: Request, token: str, user: CurrentUser, db: DbDep, settings: SettingsDep):
    row = verify_target(db, settings, user, token)
    if row is None:
        return bad_link(request, user, db, "verification", "/settings/addresses")
    return render(request, "auth/verify.html", {"token": token, "row": row}, user=user, db=db)


@router.post("/verify/{token}")
def verify(request: Request, token: str, user: CurrentUser, db: DbDep, settings: SettingsDep):
    target = verify_target(db, settings, user, token)
    # First to verify owns the address; other accounts' pending claims (and links) are dropped.
    row = confirm_claim(db, user, target.address) if target is not None else None
    if row is None:
        return bad_link(request, user, db, "verification", "/settings/addresses")
    row.bounced_at = row.bounce_reason = None  # the link arrived: the address works
    if user.email == row.address:
        user.email_bounced_at = user.email_bounce_reason = None
        db.add(user)
    db.commit()
    flash(request, f"{row.address} is verified: receipts you forward from it now reach your inbox.")
    return see_other("/settings/addresses")


# --- forwarding instructions -----------------------------------------------------------------------

def gmail_confirmation(db: Session, user: User) -> dict[str, str | None] | None:
    """Gmail mails a confirmation code to a new forwarding address, i.e. to the user's plus-address:
    show the latest one here, since it is not a receipt and would otherwise be hard to find. The
    link was read when the email was processed: nothing is parsed here (the row could be 50 MB)."""
    found = db.exec(select(RawEmail.subject, RawEmail.confirm_url).where(
        RawEmail.user_id == user.id, func.lower(RawEmail.from_addr) == gmail.SENDER,
        RawEmail.received_at > utcnow() - timedelta(days=2))
        .order_by(col(RawEmail.received_at).desc()).limit(1)).first()
    if found is None:
        return None
    subject, url = found
    code = gmail.CODE.search(subject or "")
    return {"code": code.group(1) if code else None, "url": url}


@router.get("/settings/forwarding")
def forwarding(request: Request, user: CurrentUser, db: DbDep, settings: SettingsDep):
    verified = [row for row in own_addresses(db, user) if row.verified_at is not None]
    return render(request, "auth/forwarding.html", {
        "demo_drop": drop_folder(settings) if is_demo(settings) else None,
        "forwarding_address": settings.forwarding_address(user.forwarding_token),
        "inbox_address": settings.inbox_address, "verified": verified,
        "gmail": gmail_confirmation(db, user)}, user=user, db=db)
