"""Issue 13 over the web app: sharing an item queues ONE fetch of its image after the commit; the
worker stores a re-encoded copy that public pages, the feed, JSON-LD/Open Graph and the API show
from /media on our origin (never the merchant's URL); a failed fetch is recorded and not tried
again; un-sharing, removing an item, deleting a purchase or an account removes the files that no
other item names. The queue is replaced by a recorder that runs the real actor bodies on demand
(`Queue.run`), with a fetcher that draws a picture per URL instead of using the network (the
network fetch has its own tests in tests/images)."""

from __future__ import annotations

import io
import json
import random
import zipfile
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

import pytest
from lxml import html
from sqlmodel import select

import workers.actors
from purchaseshare import sharing
from purchaseshare.clock import utcnow
from purchaseshare.config import Settings
from purchaseshare.db import session_scope
from purchaseshare.image_proxy import ImageError
from purchaseshare.images import THUMB, media_path, resized_path
from purchaseshare.item_images import release, store_for, sync_avatar, sync_purchase
from purchaseshare.models import Purchase, PurchaseItem, User
from tests.images.fakes import fake_fetcher
from tests.web.conftest import log_in, make_user, post

HTML = {"accept": "text/html"}
HOST = "img-cdn.test"  # the merchant's image host: no public output may name it


@dataclass
class Queue:
    """What was queued after commits, and the worker that runs it when the test says so."""

    settings: Settings
    sent: list[tuple[list[int], list[str], list[int]]] = field(default_factory=list)
    fetched: list[str] = field(default_factory=list)

    def fetcher(self, url: str, settings: Settings) -> dict[int, bytes]:
        self.fetched.append(url)
        if "missing" in url:
            raise ImageError("status 404")
        return fake_fetcher(url, settings)

    def run(self) -> None:
        while self.sent:
            purchase_ids, names, user_ids = self.sent.pop(0)
            for purchase_id in purchase_ids:
                sync_purchase(self.settings, purchase_id, fetcher=self.fetcher)
            for user_id in user_ids:
                sync_avatar(self.settings, user_id, fetcher=self.fetcher)
            release(self.settings, names)


@pytest.fixture
def queue(settings, monkeypatch) -> Queue:
    recorder = Queue(settings)
    monkeypatch.setattr(workers.actors, "send_image_work", lambda purchase_ids, names, user_ids=():
                        recorder.sent.append((list(purchase_ids), list(names), list(user_ids))))
    return recorder


def image_url(name: str) -> str:
    return f"https://{HOST}/{name}-{random.randrange(10**6)}.jpg?u=someone"


def add_purchase(settings, user: User, images: list[str | None]) -> tuple[Purchase, list[int]]:
    """A private purchase, one item per image; its item ids."""
    with session_scope(settings) as session:
        purchase = Purchase(user_id=user.id, merchant_name="Harrow & Pine", merchant_domain="harrowpine.test",
                            order_date=date(2025, 2, 3), currency="EUR", total=Decimal("30.00"))
        session.add(purchase)
        session.flush()
        for position, image in enumerate(images):
            session.add(PurchaseItem(purchase_id=purchase.id, position=position, name=f"Thing {position}",
                                     unit_price=Decimal("10.00"), image=image))
        session.commit()
        ids = list(session.exec(select(PurchaseItem.id).where(PurchaseItem.purchase_id == purchase.id)
                                .order_by(PurchaseItem.position)).all())
        session.refresh(purchase)
        session.expunge(purchase)
        return purchase, ids


def share(settings, purchase_id: int, item_ids: set[int]) -> None:
    """The owner's approval, through sharing.set_approved as the routes call it."""
    with session_scope(settings) as session:
        purchase = session.get(Purchase, purchase_id)
        items = list(session.exec(select(PurchaseItem).where(PurchaseItem.purchase_id == purchase_id)).all())
        sharing.set_approved(purchase, items, item_ids)
        session.commit()


def stored(settings, item_id: int) -> PurchaseItem:
    with session_scope(settings) as session:
        item = session.get(PurchaseItem, item_id)
        session.expunge(item)
        return item


def public_text(client, handle: str, purchase: Purchase) -> str:
    """Everything public about the purchase: its page, the profile, the Atom feed, the API."""
    return "\n".join(client.get(path, headers=HTML).text for path in (
        f"/u/{handle}/p/{purchase.public_id}", f"/u/{handle}", f"/u/{handle}/feed.atom",
        f"/api/v1/users/{handle}/purchases/{purchase.public_id}"))


def test_sharing_stores_each_image_once_after_the_commit(settings, client, queue):
    alice = make_user(settings, "alice")
    first, second = image_url("kettle"), image_url("cup")
    purchase, (kettle, cup, plain, private) = add_purchase(settings, alice, [first, second, None, image_url("x")])
    share(settings, purchase.id, {kettle, cup, plain})
    assert queue.sent == [([purchase.id], [], [])]  # queued once the approval committed
    queue.run()
    assert sorted(queue.fetched) == sorted([first, second])  # the private item's image is never fetched
    names = {stored(settings, kettle).image_file, stored(settings, cup).image_file}
    assert None not in names and len(names) == 2 and store_for(settings).names() == names
    assert stored(settings, private).image_file is None and stored(settings, plain).image_file is None

    # Idempotent: the worker again, or the same approval again, fetches nothing.
    assert sync_purchase(settings, purchase.id, fetcher=queue.fetcher) == 0
    share(settings, purchase.id, {kettle, cup, plain})
    queue.run()
    assert len(queue.fetched) == 2

    kettle_path = media_path(stored(settings, kettle).image_file)
    page = client.get(f"/u/alice/p/{purchase.public_id}", headers=HTML).text
    tree = html.fromstring(page)
    sources = tree.xpath("//main//img/@src")
    assert kettle_path in sources and all(src.startswith("/media/") for src in sources)
    ld = json.loads(tree.xpath('//script[@type="application/ld+json"]')[0].text)
    assert ld["@graph"][0]["image"] == settings.base_url + kettle_path and "image" not in ld["@graph"][2]
    assert tree.xpath('//meta[@property="og:image"]/@content') == [settings.base_url + kettle_path]
    api = client.get(f"/api/v1/users/alice/purchases/{purchase.public_id}").json()
    assert [item["image"] for item in api["items"]] == [settings.base_url + kettle_path,
                                                        settings.base_url + media_path(stored(settings, cup).image_file),
                                                        None]
    everything = public_text(client, "alice", purchase)
    assert HOST not in everything and "/img/" not in everything
    assert settings.base_url + kettle_path in client.get("/u/alice/feed.atom").text

    # Served from our origin, cached for good (the name is the content's hash), as an image only.
    answer = client.get(kettle_path)
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/webp"
    assert answer.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.content == fake_fetcher(first, settings)[480]
    thumb = client.get(resized_path(kettle_path, THUMB))
    assert thumb.status_code == 200 and thumb.content == fake_fetcher(first, settings)[THUMB]


def test_nothing_is_queued_when_the_approval_rolls_back(settings, queue):
    alice = make_user(settings, "alice")
    purchase, ids = add_purchase(settings, alice, [image_url("lamp")])
    with session_scope(settings) as session:
        items = list(session.exec(select(PurchaseItem).where(PurchaseItem.purchase_id == purchase.id)).all())
        sharing.set_approved(session.get(Purchase, purchase.id), items, set(ids))
        session.rollback()
    with session_scope(settings) as session:
        session.commit()  # a later commit of the same kind of session sends nothing either
    assert queue.sent == []


def test_a_failed_fetch_is_recorded_not_retried_and_an_edited_url_is_fetched(settings, client, queue):
    alice = make_user(settings, "alice")
    missing = f"https://{HOST}/missing.jpg"
    purchase, (item,) = add_purchase(settings, alice, [missing])
    share(settings, purchase.id, {item})
    queue.run()
    failed = stored(settings, item)
    assert failed.image_file is None and failed.image_failed_at is not None and queue.fetched == [missing]
    page = client.get(f"/u/alice/p/{purchase.public_id}", headers=HTML).text
    assert not html.fromstring(page).xpath("//main//img") and HOST not in page  # the placeholder's business
    for _ in range(3):  # views and re-syncs do not fetch it again
        client.get(f"/u/alice/p/{purchase.public_id}", headers=HTML)
        sync_purchase(settings, purchase.id, fetcher=queue.fetcher)
    assert queue.fetched == [missing]

    # The owner corrects the image URL: the new one is fetched (once), the failure forgotten.
    log_in(client, "alice")
    fixed = image_url("fixed")
    answer = post(client, f"/purchases/{purchase.id}/edit", {f"item-{item}-image": fixed},
                  page=f"/purchases/{purchase.id}")
    assert answer.status_code == 303
    queue.run()
    now = stored(settings, item)
    assert queue.fetched == [missing, fixed] and now.image_file and now.image_failed_at is None


def test_unsharing_and_deleting_remove_the_files_nobody_else_uses(settings, client, other_client, queue):
    alice, bob = make_user(settings, "alice"), make_user(settings, "bob")
    common = image_url("shared")
    mine, (a_common, a_own, a_removed) = add_purchase(settings, alice, [common, image_url("own"), image_url("gone")])
    theirs, (b_common,) = add_purchase(settings, bob, [common])
    share(settings, mine.id, {a_common, a_own, a_removed})
    share(settings, theirs.id, {b_common})
    queue.run()
    common_name, own_name, removed_name = (stored(settings, i).image_file for i in (a_common, a_own, a_removed))
    assert common_name == stored(settings, b_common).image_file  # one picture, one file
    store = store_for(settings)
    assert store.names() == {common_name, own_name, removed_name}

    log_in(client, "alice")
    # Removing an item: its file goes once the deletion is committed.
    assert post(client, f"/purchases/{mine.id}/items/{a_removed}/remove",
                page=f"/purchases/{mine.id}").status_code == 303
    queue.run()
    assert store.names() == {common_name, own_name}
    # Un-sharing everything: alice's own file goes, the one bob's shared item shows stays.
    assert post(client, f"/purchases/{mine.id}/items", {}, page=f"/purchases/{mine.id}").status_code == 303
    queue.run()
    assert stored(settings, a_own).image_file is None and stored(settings, a_common).image_file is None
    assert store.names() == {common_name}
    assert client.get(media_path(own_name)).status_code == 404
    assert other_client.get(media_path(common_name)).status_code == 200
    # Sharing again fetches again (the files were given up).
    share(settings, mine.id, {a_own})
    queue.run()
    assert store.names() == {common_name, own_name}

    # Deleting the purchase: alice's files go; bob's stay until bob deletes his.
    assert post(client, f"/purchases/{mine.id}/delete", page=f"/purchases/{mine.id}").status_code == 303
    queue.run()
    assert store.names() == {common_name}
    log_in(other_client, "bob")
    assert post(other_client, f"/purchases/{theirs.id}/delete", page=f"/purchases/{theirs.id}").status_code == 303
    queue.run()
    assert store.names() == set()


def test_deleting_an_account_removes_its_stored_images(settings, client, other_client, queue):
    alice, bob = make_user(settings, "alice"), make_user(settings, "bob")
    common = image_url("shared")
    mine, (a_common, a_own) = add_purchase(settings, alice, [common, image_url("own")])
    theirs, (b_common,) = add_purchase(settings, bob, [common])
    share(settings, mine.id, {a_common, a_own})
    share(settings, theirs.id, {b_common})
    queue.run()
    own_name, common_name = stored(settings, a_own).image_file, stored(settings, b_common).image_file
    assert store_for(settings).names() == {own_name, common_name}

    log_in(client, "alice")
    response = post(client, "/settings/delete", {"handle": "alice", "password": "correct horse battery"},
                    page="/settings/delete")
    assert response.status_code == 303
    queue.run()
    assert store_for(settings).names() == {common_name}  # bob's item still shows it
    assert other_client.get(media_path(own_name)).status_code == 404
    assert media_path(common_name) in other_client.get(f"/u/bob/p/{theirs.public_id}", headers=HTML).text


def test_items_shared_as_they_arrive_queue_their_images_too(settings, queue):
    """An owner who shares by default: the parse itself approves, and queues after its commit."""
    from purchaseshare.pipeline import Item
    from purchaseshare.processing import add_items

    alice = make_user(settings, "alice")
    purchase, _ = add_purchase(settings, alice, [])
    url = image_url("auto")
    with session_scope(settings) as session:
        add_items(session, purchase.id, [Item(name="Auto", quantity=1, image=url)], approved=True)
        assert queue.sent == []
        session.commit()
    assert queue.sent == [([purchase.id], [], [])]
    queue.run()
    assert queue.fetched == [url]


@pytest.mark.parametrize("path", ["/media/" + "a" * 32 + "-480.webp", "/media/" + "a" * 32 + "-100.webp",
                                  "/media/..%2f..%2fpurchaseshare.db", "/media/" + "A" * 32 + "-480.webp",
                                  "/media/x.webp", "/media/"])
def test_the_media_route_serves_only_stored_files(settings, client, path):
    assert client.get(path).status_code == 404


def test_stored_images_are_not_in_the_owner_s_export_beyond_their_columns(settings, client, queue):
    alice = make_user(settings, "alice")
    purchase, (item,) = add_purchase(settings, alice, [image_url("export")])
    share(settings, purchase.id, {item})
    queue.run()
    name = stored(settings, item).image_file
    log_in(client, "alice")
    export = client.get("/settings/export")
    assert export.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(export.content))
    assert not any(member.endswith(".webp") for member in archive.namelist())
    [row] = json.loads(archive.read("purchase_items.json"))
    # The user's own data: the URL their email gave, and the name of our copy; not the pictures.
    assert row["image_file"] == name and row["image"].startswith(f"https://{HOST}/")


def _settings_form(handle: str, avatar: str) -> dict[str, str]:
    return {"handle": handle, "display_name": "", "avatar_url": avatar, "bio": "", "raw_retention_days": ""}


def test_avatars_are_stored_the_same_way_and_go_with_the_account(settings, client, other_client, queue):
    alice = make_user(settings, "alice")
    log_in(client, "alice")
    typed = f"https://{HOST}/me.png?session=abc"
    assert post(client, "/settings", _settings_form("alice", typed), page="/settings").status_code == 303
    assert queue.sent == [([], [], [alice.id])]
    queue.run()
    with session_scope(settings) as session:
        name = session.get(User, alice.id).avatar_file
    assert name and queue.fetched == [typed]
    profile = other_client.get("/u/alice", headers=HTML).text
    assert html.fromstring(profile).xpath('//img[contains(@class, "avatar")]/@src') == [media_path(name, THUMB)]
    api = other_client.get("/api/v1/users/alice").json()
    assert api["avatar_url"] == settings.base_url + media_path(name, THUMB)
    assert HOST not in profile + json.dumps(api)
    assert other_client.get(media_path(name, THUMB)).status_code == 200
    # Saving the settings again (same avatar) fetches nothing; clearing it removes the file.
    assert post(client, "/settings", _settings_form("alice", typed), page="/settings").status_code == 303
    queue.run()
    assert queue.fetched == [typed]
    assert post(client, "/settings", _settings_form("alice", ""), page="/settings").status_code == 303
    queue.run()
    assert store_for(settings).names() == set()
    assert other_client.get("/api/v1/users/alice").json()["avatar_url"] is None
    assert not html.fromstring(other_client.get("/u/alice", headers=HTML).text).xpath('//img[contains(@class, "avatar")]')

    # An avatar goes with the account.
    assert post(client, "/settings", _settings_form("alice", typed), page="/settings").status_code == 303
    queue.run()
    assert len(store_for(settings).names()) == 1
    assert post(client, "/settings/delete", {"handle": "alice", "password": "correct horse battery"},
                page="/settings/delete").status_code == 303
    queue.run()
    assert store_for(settings).names() == set()


def _backfill_by_command() -> int:
    from typer.testing import CliRunner

    from purchaseshare.cli import app

    result = CliRunner().invoke(app, ["images"])
    assert result.exit_code == 0, result.output
    return int(result.output.split()[0])  # "<n> images fetched"


@pytest.mark.parametrize("backfill", [lambda: workers.actors.queue_missing_images(), _backfill_by_command],
                         ids=["function", "command"])
def test_rows_shared_before_the_worker_existed_are_queued_by_the_backfill(settings, queue, backfill):
    alice = make_user(settings, "alice")
    _, (item, private) = add_purchase(settings, alice, [image_url("old"), image_url("private")])
    with session_scope(settings) as session:  # approved by a direct write, as before migration 0011
        row = session.get(PurchaseItem, item)
        row.approved, row.approved_at = True, utcnow()
        user = session.get(User, alice.id)
        user.avatar_url = f"https://{HOST}/avatar.png"
        session.commit()
    assert queue.sent == []
    assert backfill() == 2
    queue.run()
    assert stored(settings, item).image_file and stored(settings, private).image_file is None
    assert backfill() == 0  # stored now: nothing left to backfill


def test_one_picture_twice_in_an_order_is_fetched_once(settings, queue):
    alice = make_user(settings, "alice")
    same = image_url("pair")
    purchase, (left, right) = add_purchase(settings, alice, [same, same])
    share(settings, purchase.id, {left, right})
    queue.run()
    assert queue.fetched == [same]
    assert stored(settings, left).image_file == stored(settings, right).image_file is not None


def test_an_item_unshared_while_its_image_is_fetched_keeps_no_file(settings, queue):
    alice = make_user(settings, "alice")
    purchase, (item,) = add_purchase(settings, alice, [image_url("race")])
    share(settings, purchase.id, {item})
    queue.sent.clear()

    def fetch_while_the_owner_unshares(url: str, settings: Settings) -> dict[int, bytes]:
        with session_scope(settings) as session:
            row = session.get(PurchaseItem, item)
            row.approved = False
            session.commit()
        return fake_fetcher(url, settings)

    assert sync_purchase(settings, purchase.id, fetcher=fetch_while_the_owner_unshares) == 1
    assert stored(settings, item).image_file is None and store_for(settings).names() == set()
