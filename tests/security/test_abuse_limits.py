"""Point 10: actions that reach other people are rate limited. A burst of comments makes at most
the burst's worth of comments and notifications (the rest: 429, HTML or JSON, with Retry-After);
verification mail to one outside address is capped across all accounts, per account, and resends
too; the hourly and daily windows count older events."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from sqlmodel import select

from purchaseshare import limits
from purchaseshare.clock import utcnow
from purchaseshare.db import session_scope
from purchaseshare.models import (
    Comment,
    LoginAttempt,
    Notification,
    OutboxMail,
    SenderAddress,
    User,
)
from tests.security.conftest import csrf, post_form, share_purchase

BURST = limits.COMMENT_RULES[0][0]
HOURLY = limits.COMMENT_RULES[1][0]
TO_HOUR, TO_DAY = (limit for limit, _ in limits.VERIFY_TO_RULES)
BY_HOUR = limits.VERIFY_BY_RULES[0][0]


def shared_purchase(settings, user: User) -> str:
    return share_purchase(settings, user).rsplit("/", 1)[1]


def rows(settings, model, *where) -> list:
    with session_scope(settings) as session:
        return list(session.exec(select(model).where(*where)).all())


def earlier_events(settings, key: str, n: int, age: timedelta) -> None:
    """n events under `key`, `age` ago: what the longer windows must still count."""
    with session_scope(settings) as session:
        session.add_all([LoginAttempt(key=key, created_at=utcnow() - age) for _ in range(n)])
        session.commit()


def test_a_parallel_comment_burst_posts_and_notifies_only_the_burst_allowance(site):
    owner = site.make_user("owner")
    spammer = site.make_user("spammer")
    path = f"/u/owner/p/{shared_purchase(site.settings, owner)}"
    with site.client() as client:
        site.log_in(client, "spammer")
        token = csrf(client, path)

        def comment(n: int):
            return client.post(f"{path}/comments", data={"body": f"spam {n}", "csrf_token": token},
                               headers={"accept": "text/html"})

        with ThreadPoolExecutor(max_workers=10) as pool:
            answers = list(pool.map(comment, range(40)))
        statuses = sorted(answer.status_code for answer in answers)
        assert statuses == [303] * BURST + [429] * (40 - BURST)
        refused = next(answer for answer in answers if answer.status_code == 429)
        assert "commenting too fast" in refused.text and "<html" in refused.text.lower()
        assert refused.headers["retry-after"] == "60"
        as_json = client.post(f"{path}/comments", data={"body": "one more", "csrf_token": token},
                              headers={"accept": "application/json"})
        assert as_json.status_code == 429 and "commenting too fast" in as_json.json()["detail"]
    assert len(rows(site.settings, Comment, Comment.user_id == spammer.id)) == BURST
    assert len(rows(site.settings, Notification, Notification.user_id == owner.id)) == BURST


def test_the_hourly_comment_limit_counts_comments_older_than_the_burst_window(site):
    owner = site.make_user("owner")
    spammer = site.make_user("spammer")
    path = f"/u/owner/p/{shared_purchase(site.settings, owner)}"
    earlier_events(site.settings, f"comment:user:{spammer.id}", HOURLY - 1, timedelta(minutes=30))
    earlier_events(site.settings, f"comment:user:{owner.id}", HOURLY, timedelta(minutes=61))  # out of the hour
    with site.client() as client:
        site.log_in(client, "spammer")
        first = post_form(client, f"{path}/comments", {"body": "the last one this hour"}, page=path)
        second = post_form(client, f"{path}/comments", {"body": "one too many"}, page=path)
        assert (first.status_code, second.status_code) == (303, 429)
    with site.client() as client:  # the owner's old comments have left the window
        site.log_in(client, "owner")
        assert post_form(client, f"{path}/comments", {"body": "hello"}, page=path).status_code == 303


def test_twelve_accounts_cannot_flood_one_outside_address_with_verification_mail(site):
    victim = "victim@outside.test"
    answers = []
    for n in range(12):
        site.make_user(f"attacker{n}")
        with site.client() as client:
            site.log_in(client, f"attacker{n}")
            for _ in range(2):  # the address, then once more as if resending
                answers.append(post_form(client, "/settings/addresses", {"address": victim},
                                         page="/settings/addresses").status_code)
    mails = rows(site.settings, OutboxMail, OutboxMail.to_addr == victim)
    assert len(mails) == TO_HOUR
    assert answers.count(303) == TO_HOUR and answers.count(429) == len(answers) - TO_HOUR


def test_resend_is_limited_per_address_and_the_day_counts_earlier_hours(site):
    site.make_user("alice")
    address = "shop@outside.test"
    earlier_events(site.settings, f"verify-mail:to:{address}", TO_DAY - 2, timedelta(hours=5))
    with site.client() as client:
        site.log_in(client, "alice")
        added = post_form(client, "/settings/addresses", {"address": address}, page="/settings/addresses")
        assert added.status_code == 303
        [row] = rows(site.settings, SenderAddress, SenderAddress.address == address)
        statuses = [post_form(client, f"/settings/addresses/{row.id}/resend", page="/settings/addresses")
                    for _ in range(3)]
        assert [s.status_code for s in statuses] == [303, 429, 429]
        assert "sent several links" in statuses[1].text and statuses[1].headers["retry-after"] == "3600"
    assert len(rows(site.settings, OutboxMail, OutboxMail.to_addr == address)) == 2  # TO_DAY in the day


def test_one_account_cannot_mail_many_addresses(site):
    site.make_user("alice")
    with site.client() as client:
        site.log_in(client, "alice")
        statuses = [post_form(client, "/settings/addresses", {"address": f"a{n}@outside.test"},
                              page="/settings/addresses").status_code for n in range(BY_HOUR + 3)]
    assert statuses == [303] * BY_HOUR + [429] * 3
    assert len(rows(site.settings, OutboxMail, OutboxMail.purpose == "verify")) == BY_HOUR


def test_failed_logins_do_not_wipe_the_longer_windows(site):
    """The login limiter purges its own old rows; it once purged every row of the shared table,
    so one wrong password reset the hourly and daily counts of comments and mail."""
    site.make_user("alice")
    address = "shop@outside.test"
    earlier_events(site.settings, f"verify-mail:to:{address}", TO_DAY, timedelta(hours=5))
    with site.client() as client:
        wrong = post_form(client, "/login", {"handle": "alice", "password": "wrong password!"}, page="/login")
        assert wrong.status_code == 400
        site.log_in(client, "alice")
        refused = post_form(client, "/settings/addresses", {"address": address}, page="/settings/addresses")
        assert refused.status_code == 429
    assert rows(site.settings, OutboxMail, OutboxMail.to_addr == address) == []
