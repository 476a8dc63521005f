"""The page cache (web/page_cache.py) on SQLite and PostgreSQL: repeat views are served from memory,
and EVERY change a page shows — through the web, the ORM, or a bulk SQL statement — is visible on
the very next view. A stale public page would be a privacy bug (an item the owner just hid)."""

from __future__ import annotations

import importlib.util
import logging
import threading
import warnings
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text, update
from sqlmodel import select

from purchaseshare.db import get_engine, session_scope
from purchaseshare.models import Comment, Follow, Like, Notification, Purchase, PurchaseItem, User
from tests.web.conftest import counted, log_in, make_user, post
from tests.web.test_public import add_purchase
from web.app import create_app
from web.page_cache import Shown, installed_triggers, required_triggers

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

HTML = {"accept": "text/html"}
MIGRATION = Path(__file__).resolve().parents[2] / "purchaseshare/migrations/versions/0012_scoped_page_cache.py"


def view(client: TestClient, path: str) -> tuple[str, bool]:
    response = client.get(path, headers=HTML)
    assert response.status_code == 200, (path, response.status_code)
    return response.text, response.headers.get("x-page-cache") == "hit"


def settled(client: TestClient, path: str) -> str:
    """The page once stored (the first view renders and stores it; the second must be a hit)."""
    view(client, path)
    text_, hit = view(client, path)
    assert hit, f"{path} was not served from the cache on a repeat view"
    return text_


def test_migration_installs_every_trigger_the_cache_needs(settings):
    spec = importlib.util.spec_from_file_location("migration_0012", MIGRATION)
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)  # type: ignore[union-attr]
    dialect = get_engine(settings).dialect.name
    assert set(migration.trigger_names(dialect)) == required_triggers(dialect)
    assert installed_triggers(get_engine(settings)) == required_triggers(dialect)


def test_migration_0012_goes_down_to_the_single_counter_and_up_again(settings):
    from alembic import command

    from purchaseshare.db import alembic_config

    engine = get_engine(settings)
    command.downgrade(alembic_config(engine), "0011")
    with engine.connect() as conn:
        query = ("SELECT tgname FROM pg_trigger WHERE tgname LIKE 'cache_gen_%'" if conn.dialect.name == "postgresql"
                 else "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'cache_gen_%'")
        assert len(conn.execute(text(query)).all()) == 30  # 0003's ten tables x three events, as before
    assert installed_triggers(engine) == set()
    command.upgrade(alembic_config(engine), "head")
    assert installed_triggers(engine) == required_triggers(engine.dialect.name)


def test_repeat_view_costs_one_counter_read_and_no_page_query(settings, client):
    owner = make_user(settings, "ada")
    add_purchase(settings, owner, [("Linen notebook", True)])
    first, hit = view(client, "/u/ada")
    assert not hit and "Linen notebook" in first
    reader = client.app.state.generation_reader
    before = reader.queries
    with counted(settings) as statements:  # SQLAlchemy's; the generation read goes around it
        again, hit = view(client, "/u/ada")
    assert hit and again == first
    assert statements["n"] == 0 and reader.queries - before == 1


def test_every_kind_of_change_shows_on_the_next_view(settings, client):
    owner, fan = make_user(settings, "ada"), make_user(settings, "bob")
    purchase = add_purchase(settings, owner, [("Linen notebook", True), ("Secret gift", False)])
    path = f"/u/ada/p/{purchase.public_id}"
    for page in ("/u/ada", path):
        assert "Secret gift" not in settled(client, page)

    def change(statement: str, *, params: dict | None = None) -> None:
        with session_scope(settings) as session:
            session.execute(text(statement), params or {})
            session.commit()

    steps = [
        # (what changes, how, what the next view must show / must not show)
        ("approve an item (ORM)", lambda s: s.add(_item(s, purchase.id, 1, approved=True)), "Secret gift", None),
        ("rename an approved item (bulk SQL)", lambda s: s.execute(
            update(PurchaseItem).where(PurchaseItem.purchase_id == purchase.id, PurchaseItem.position == 1)
            .values(name="Brass lamp")), "Brass lamp", "Secret gift"),
        ("hide it again", lambda s: s.add(_item(s, purchase.id, 1, approved=False)), None, "Brass lamp"),
        ("a caption", lambda s: s.add(_changed(s, Purchase, purchase.id, caption="Bought for the studio")),
         "Bought for the studio", None),
        ("a new display name", lambda s: s.add(_changed(s, User, owner.id, display_name="Ada Quill")), "Ada Quill", None),
        ("a comment", lambda s: s.add(Comment(purchase_id=purchase.id, user_id=fan.id, body="Looks great")),
         None, None),
        ("a like", lambda s: s.add(Like(purchase_id=purchase.id, user_id=fan.id)), None, None),
    ]
    for what, apply, shows, hides in steps:
        before = {page: view(client, page)[0] for page in ("/u/ada", path)}
        with session_scope(settings) as session:
            apply(session)
            session.commit()
        for page in ("/u/ada", path):
            after, hit = view(client, page)
            assert not hit, f"{what}: {page} came from the cache"
            assert after != before[page], f"{what}: {page} unchanged"
            if shows:
                assert shows in after, (what, page)
            if hides:
                assert hides not in after, (what, page)
            settled(client, page)

    change("UPDATE purchase SET hide_prices = :on WHERE id = :id", params={"on": True, "id": purchase.id})
    assert "10.00" not in view(client, path)[0]
    change("UPDATE purchase SET review = 'rejected' WHERE id = :id", params={"id": purchase.id})
    page, hit = view(client, "/u/ada")
    assert not hit and "Linen notebook" not in page
    assert client.get(path, headers=HTML).status_code == 404


def test_private_churn_keeps_the_cache_and_publication_drops_it(settings, client):
    owner = make_user(settings, "ada")
    add_purchase(settings, owner, [("Linen notebook", True)])
    settled(client, "/u/ada")
    # A worker storing a new, private purchase changes nothing public: still a hit.
    private = add_purchase(settings, owner, [("Unreviewed kettle", False)], published=False, review="new")
    page, hit = view(client, "/u/ada")
    assert hit and "Unreviewed kettle" not in page
    with session_scope(settings) as session:  # the owner publishes one item of it
        session.add(_item(session, private.id, 0, approved=True))
        session.add(_changed(session, Purchase, private.id, published_at=datetime.now(UTC), review="reviewed"))
        session.commit()
    page, hit = view(client, "/u/ada")
    assert not hit and "Unreviewed kettle" in page
    with session_scope(settings) as session:  # deleting it takes it off at once
        for item in session.exec(select(PurchaseItem).where(PurchaseItem.purchase_id == private.id)):
            session.delete(item)
        session.delete(session.get(Purchase, private.id))
        session.commit()
    page, hit = view(client, "/u/ada")
    assert not hit and "Unreviewed kettle" not in page


def test_the_counter_moves_at_commit_only(settings, app):
    owner = make_user(settings, "ada")
    purchase = add_purchase(settings, owner, [("Linen notebook", True)])
    reader = app.state.generation_reader
    start = _owner_counter(reader, "ada", owner.id)
    with session_scope(settings) as session:
        session.add(_item(session, purchase.id, 0, name="Renamed"))
        session.flush()
        assert _owner_counter(reader, "ada", owner.id) == start  # the write is not visible yet: nor its counter
        session.rollback()
    assert _owner_counter(reader, "ada", owner.id) == start
    with session_scope(settings) as session:
        session.add(_item(session, purchase.id, 0, name="Renamed"))
        session.commit()
    assert _owner_counter(reader, "ada", owner.id) > start


def test_a_bulk_write_moves_the_counter(settings, app):
    owner = make_user(settings, "ada")
    fans = [make_user(settings, f"fan{number}") for number in range(30)]
    purchase = add_purchase(settings, owner, [("Linen notebook", True)])
    reader = app.state.generation_reader
    start = _owner_counter(reader, "ada", owner.id)
    with session_scope(settings) as session:
        session.add_all([Like(purchase_id=purchase.id, user_id=fan.id) for fan in fans])
        session.commit()
    if get_engine(settings).dialect.name == "postgresql":
        # once per scope and transaction, not once per row (that was quadratic)
        assert _owner_counter(reader, "ada", owner.id) == start + 1
    else:
        assert _owner_counter(reader, "ada", owner.id) > start


def test_a_write_drops_only_the_pages_that_show_it(settings, app):
    """Scoped invalidation: a like on Ada's purchase drops Ada's pages (the count is on them) and
    the feeds of her followers, and leaves Bob's pages and the feeds of people not following her."""
    ada, bob, fan, loner = (make_user(settings, handle) for handle in ("ada", "bob", "fan", "loner"))
    ada_purchase = add_purchase(settings, ada, [("Linen notebook", True)])
    bob_purchase = add_purchase(settings, bob, [("Walnut desk", True)])
    with session_scope(settings) as session:
        session.add_all([Follow(follower_id=fan.id, followee_id=ada.id),
                         Follow(follower_id=loner.id, followee_id=bob.id)])
        session.commit()
    ada_page, bob_page = f"/u/ada/p/{ada_purchase.public_id}", f"/u/bob/p/{bob_purchase.public_id}"
    with (TestClient(app, follow_redirects=False) as anonymous, TestClient(app, follow_redirects=False) as fans,
          TestClient(app, follow_redirects=False) as loners):
        log_in(fans, "fan")
        log_in(loners, "loner")
        for page in ("/u/ada", ada_page, "/u/bob", bob_page, "/"):
            settled(anonymous, page)
        fan_feed, loner_feed = settled(fans, "/feed"), settled(loners, "/feed")
        assert "Linen notebook" in fan_feed and "Walnut desk" in loner_feed
        with session_scope(settings) as session:
            session.add(Like(purchase_id=ada_purchase.id, user_id=bob.id))
            session.commit()
        for page in ("/u/bob", bob_page, "/"):
            assert view(anonymous, page)[1], f"{page} was dropped by a like on someone else's purchase"
        assert view(loners, "/feed")[1], "a feed that does not show Ada was dropped"
        for page in (ada_page, "/u/ada"):
            after, hit = view(anonymous, page)
            assert not hit and "1 like" in after, page
        after, hit = view(fans, "/feed")
        assert not hit and after != fan_feed

        # Following someone new changes the follower's feed (their own counter moves).
        settled(loners, "/feed")
        with session_scope(settings) as session:
            session.add(Follow(follower_id=loner.id, followee_id=ada.id))
            session.commit()
        after, hit = view(loners, "/feed")
        assert not hit and "Linen notebook" in after
        assert view(anonymous, bob_page)[1]


def test_a_rename_drops_the_pages_that_print_the_name(settings, app):
    """A commenter's name is printed under someone else's purchase: renaming them drops that page
    (the site-wide scope), and a notification drops the signed-in pages of whom it tells (the badge)."""
    ada, bob = make_user(settings, "ada"), make_user(settings, "bob")
    purchase = add_purchase(settings, ada, [("Linen notebook", True)])
    page = f"/u/ada/p/{purchase.public_id}"
    with session_scope(settings) as session:
        session.add(Comment(purchase_id=purchase.id, user_id=bob.id, body="Looks great"))
        session.commit()
    with TestClient(app, follow_redirects=False) as anonymous, TestClient(app, follow_redirects=False) as bobs:
        assert "Looks great" in settled(anonymous, page)
        with session_scope(settings) as session:
            session.add(_changed(session, User, bob.id, display_name="Robert Quill"))
            session.commit()
        after, hit = view(anonymous, page)
        assert not hit and "Robert Quill" in after

        log_in(bobs, "bob")
        other = add_purchase(settings, ada, [("Brass lamp", True)])
        before = settled(bobs, page)
        settled(anonymous, page)
        with session_scope(settings) as session:
            session.add(Notification(user_id=bob.id, actor_id=ada.id, kind="like", purchase_id=other.id))
            session.commit()
        after, hit = view(bobs, page)
        assert not hit and after != before and 'aria-label="1 unread"' in after
        assert view(anonymous, page)[1]  # nobody else's view of the page changed


def test_concurrent_writes_to_crossing_scopes_all_commit(settings, app):
    """Two people following each other at the same moment, while others like their purchases:
    each transaction bumps several counters at commit, always in the same order, so none waits
    for another in a cycle (a PostgreSQL deadlock would abort one of them)."""
    people = [make_user(settings, f"p{number}") for number in range(4)]
    purchases = [add_purchase(settings, person, [("Linen notebook", True)]) for person in people]
    reader = app.state.generation_reader
    before = {person.id: _owner_counter(reader, person.handle, person.id) for person in people}
    failures: list[BaseException] = []
    barrier = threading.Barrier(4)

    def crossing(me: int) -> None:
        try:
            barrier.wait(timeout=10)
            for round_ in range(6):
                other = people[(me + 1 + round_) % 4]
                if other.id == people[me].id:
                    continue
                with session_scope(settings) as session:
                    session.add(Follow(follower_id=people[me].id, followee_id=other.id))
                    session.add(Like(purchase_id=purchases[(me + 2) % 4].id, user_id=people[me].id))
                    session.commit()
                with session_scope(settings) as session:
                    session.execute(text("DELETE FROM follow WHERE follower_id = :a AND followee_id = :b"),
                                    {"a": people[me].id, "b": other.id})
                    session.execute(text('DELETE FROM "like" WHERE user_id = :a'), {"a": people[me].id})
                    session.commit()
        except BaseException as exc:  # reported below, with the others
            failures.append(exc)

    threads = [threading.Thread(target=crossing, args=(me,)) for me in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures
    assert all(_owner_counter(reader, person.handle, person.id) > before[person.id] for person in people)


def test_signed_in_pages_are_served_only_to_their_own_session(settings, app):
    reader_user, other = make_user(settings, "reader"), make_user(settings, "other")
    star = make_user(settings, "star")
    add_purchase(settings, star, [("Walnut desk", True)])
    with session_scope(settings) as session:
        session.add(Follow(follower_id=reader_user.id, followee_id=star.id))
        session.commit()
    with TestClient(app, follow_redirects=False) as mine, TestClient(app, follow_redirects=False) as theirs:
        log_in(mine, "reader")
        log_in(theirs, "other")
        feed = settled(mine, "/feed")  # the login made the CSRF token: the first page is stored already
        assert "Walnut desk" in feed
        other_feed, hit = view(theirs, "/feed")
        assert not hit and "Walnut desk" not in other_feed  # another session: never my page
        anonymous = TestClient(app, follow_redirects=False)
        response = anonymous.get("/feed", headers=HTML)
        assert response.status_code == 303 and "x-page-cache" not in response.headers
        # A forged cookie (my session's payload, signature broken) is no session at all.
        forged = mine.cookies["ps_session"][:-2] + ("AA" if not mine.cookies["ps_session"].endswith("AA") else "BB")
        anonymous.cookies.set("ps_session", forged)
        assert anonymous.get("/feed", headers=HTML).status_code == 303
        # "Sign out everywhere" (the session version moves): the stored feed is not served again.
        with session_scope(settings) as session:
            session.add(_changed(session, User, reader_user.id, session_version=reader_user.session_version + 1))
            session.commit()
        assert mine.get("/feed", headers=HTML).status_code == 303
    assert other.id != reader_user.id


def test_a_page_dropped_while_the_counters_are_read_is_still_answered(settings, app):
    """Another request may evict or replace the stored page while this one awaits the session
    check and the counters (bench.web --mix caught a KeyError -> 500 there): still a 200."""
    make_user(settings, "racer")
    with TestClient(app, follow_redirects=False) as mine:
        log_in(mine, "racer")
        first = settled(mine, "/feed")
        cache = _page_cache(app)
        real = cache.reader.versions

        async def evicting(shown, viewer):
            cache.pages.clear()  # what a concurrent request's eviction does during the await
            return await real(shown, viewer)

        cache.reader.versions = evicting
        response = mine.get("/feed", headers=HTML)
        assert response.status_code == 200 and "x-page-cache" not in response.headers  # rendered again
        assert response.text.split("<main", 1)[0] == first.split("<main", 1)[0]


def test_a_stored_signed_in_page_is_not_served_to_a_logged_out_cookie(settings, app):
    reader_user, star = make_user(settings, "reader"), make_user(settings, "star")
    add_purchase(settings, star, [("Walnut desk", True)])
    with session_scope(settings) as session:
        session.add(Follow(follower_id=reader_user.id, followee_id=star.id))
        session.commit()
    with TestClient(app, follow_redirects=False) as mine:
        log_in(mine, "reader")
        assert "Walnut desk" in settled(mine, "/feed")
        copied = mine.cookies["ps_session"]
        reader = app.state.generation_reader
        before = reader.queries
        assert view(mine, "/feed")[1]
        assert reader.queries - before == 2  # the session's one indexed lookup, and the counters
        assert post(mine, "/logout", page="/settings").status_code == 303
    # Logout changes no cached table (no counter moves): only the session check stops the replay.
    with TestClient(app, follow_redirects=False, cookies={"ps_session": copied}) as replay:
        response = replay.get("/feed", headers=HTML)
        assert response.status_code == 303 and "x-page-cache" not in response.headers
        assert "Walnut desk" not in response.text


def test_cache_off_when_disabled_or_a_trigger_is_missing(settings, caplog):
    owner = make_user(settings, "ada")
    add_purchase(settings, owner, [("Linen notebook", True)])
    with TestClient(create_app(settings.model_copy(update={"page_cache_mb": 0}), run_worker=False)) as off:
        for _ in range(3):
            assert not view(off, "/u/ada")[1]
    with get_engine(settings).begin() as conn:
        conn.exec_driver_sql('DROP TRIGGER cache_scope_like_insert ON "like"' if conn.dialect.name == "postgresql"
                             else "DROP TRIGGER cache_scope_like_insert")
    caplog.set_level(logging.WARNING, logger="web.page_cache")
    with TestClient(create_app(settings, run_worker=False)) as client:
        for _ in range(3):
            assert not view(client, "/u/ada")[1]
    assert "cache_scope_like_insert" in caplog.text


def test_memory_stays_under_its_bound(settings):
    owner = make_user(settings, "ada")
    for number in range(12):
        add_purchase(settings, owner, [(f"Item {number} " + "x" * 2000, True)])
    app = create_app(settings.model_copy(update={"page_cache_mb": 1}), run_worker=False)
    with TestClient(app) as client:
        cache = _page_cache(app)
        cache.max_bytes = 60_000  # a few pages' worth, to see eviction
        for handle_page in range(1, 40):
            view(client, f"/u/ada?page={handle_page % 3 + 1}&v={handle_page}")
            assert cache.size <= cache.max_bytes
        assert 0 < len(cache.pages) < 39


# --- helpers ------------------------------------------------------------------------------------


def _item(session, purchase_id: int, position: int, **values) -> PurchaseItem:
    return _set(session.exec(select(PurchaseItem).where(PurchaseItem.purchase_id == purchase_id,
                                                        PurchaseItem.position == position)).one(), **values)


def _changed(session, model, row_id: int, **values):
    return _set(session.get(model, row_id), **values)


def _set(row, **values):
    for name, value in values.items():
        setattr(row, name, value)
    return row


def _owner_counter(reader, handle: str, user_id: int) -> int:
    versions = dict(reader.read(Shown.of(f"/u/{handle}"), None))
    return versions.get(user_id, 0)


def _page_cache(app):
    layer = app.middleware_stack
    while layer is not None and type(layer).__name__ != "PageCache":
        layer = getattr(layer, "app", None)
    if layer is None:
        pytest.fail("no PageCache in the middleware stack")
    return layer
