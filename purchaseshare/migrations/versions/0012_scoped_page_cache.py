"""page cache scoped to whom a write touches: one counter per user instead of one for the site

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 19:10:00

0003's single counter was bumped by every public write anywhere, so on a site where people like,
comment and share all day every stored page was dropped many times a second. Now the triggers
bump the counters of the users a write concerns (a scope is a user id; 0 is the whole site):

- a purchase, its approved items, likes, comments, reviews: the purchase's owner;
- a collection and what is in it: its owner; a notification: whom it tells;
- a follow: both people; a user row: that user, and the whole site when the handle or display
  name changes (they are printed beside the user's comments on other people's pages) or the
  account goes.

web/page_cache.py stores each page with the counters of the scopes it shows (the site, the page's
owner, the signed-in viewer, and for a home feed everyone the viewer follows) and serves it only
while all of them are unchanged. Private churn still bumps nothing (the same conditions as 0003).
On PostgreSQL the triggers are deferred to commit time and bump each scope once per transaction
(a transaction-local flag per scope); the scopes of one row are bumped in ascending order.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

# Each trigger: (condition or None, a SELECT of the scope ids the row touches, as column `s`).
# "{r}" is NEW or OLD. Tables not listed never appear on a cached page.
OWNER_OF_PURCHASE = "SELECT user_id AS s FROM purchase WHERE id = {r}.purchase_id"
OWNER_OF_ITEM = ("SELECT p.user_id AS s FROM purchase_item i JOIN purchase p ON p.id = i.purchase_id "
                 "WHERE i.id = {r}.item_id")
OWNER_OF_COLLECTION = "SELECT user_id AS s FROM collection WHERE id = {r}.collection_id"
ITSELF = "SELECT {r}.user_id AS s"
BOTH_ENDS = "SELECT {r}.follower_id AS s UNION SELECT {r}.followee_id"
SITE_WIDE_COLUMNS = ("handle", "display_name")


def _every_event(scopes: str) -> dict[str, tuple[str | None, str]]:
    return {"INSERT": (None, scopes.format(r="NEW")), "UPDATE": (None, scopes.format(r="NEW")),
            "DELETE": (None, scopes.format(r="OLD"))}


def _renamed() -> str:
    return " OR ".join(f"OLD.{column} IS DISTINCT FROM NEW.{column}" for column in SITE_WIDE_COLUMNS)


WATCHED: dict[str, dict[str, tuple[str | None, str]]] = {
    "purchase": {"INSERT": ("NEW.published_at IS NOT NULL", "SELECT NEW.user_id AS s"),
                 "UPDATE": ("OLD.published_at IS NOT NULL OR NEW.published_at IS NOT NULL",
                            "SELECT OLD.user_id AS s UNION SELECT NEW.user_id"),
                 "DELETE": ("OLD.published_at IS NOT NULL", "SELECT OLD.user_id AS s")},
    "purchase_item": {"INSERT": ("NEW.approved", OWNER_OF_PURCHASE.format(r="NEW")),
                      "UPDATE": ("OLD.approved OR NEW.approved", OWNER_OF_PURCHASE.format(r="NEW")),
                      "DELETE": ("OLD.approved", OWNER_OF_PURCHASE.format(r="OLD"))},
    "like": _every_event(OWNER_OF_PURCHASE), "comment": _every_event(OWNER_OF_PURCHASE),
    "review": _every_event(OWNER_OF_ITEM), "collection": _every_event(ITSELF),
    "collection_item": _every_event(OWNER_OF_COLLECTION), "notification": _every_event(ITSELF),
    "follow": _every_event(BOTH_ENDS),
    "user": {"INSERT": (None, "SELECT NEW.id AS s"),
             "UPDATE": (None, f"SELECT NEW.id AS s UNION SELECT 0 WHERE {_renamed()}"),
             "DELETE": (None, "SELECT 0 AS s")},
}
# A deleted account leaves no row about it, its counter included (the site's counter moves
# instead, and a scope is bumped only while its user exists: the account's own rows deleted with it
# would otherwise bring the counter back).
FORGET = {("user", "DELETE"): "DELETE FROM cache_scope WHERE id = OLD.id"}
EXISTS = 'EXISTS (SELECT 1 FROM "user" WHERE id = {s})'
SQLITE_BUMP = ("INSERT INTO cache_scope (id, value) SELECT s, 1 FROM ({scopes}) "
               f"WHERE s = 0 OR {EXISTS.format(s='s')} ON CONFLICT (id) DO UPDATE SET value = value + 1")
# Once per scope and transaction: a bulk write of 100 000 rows would otherwise update one row
# 100 000 times at commit, each new version found by walking the previous ones (quadratic).
POSTGRES_BUMP_FUNCTION = (
    "CREATE FUNCTION cache_scope_bump(scope bigint) RETURNS void LANGUAGE plpgsql AS $$ BEGIN "
    "IF current_setting('purchaseshare.bumped_' || scope, true) IS DISTINCT FROM 'yes' "
    f"AND (scope = 0 OR {EXISTS.format(s='scope')}) THEN "
    "INSERT INTO cache_scope (id, value) VALUES (scope, 1) "
    "ON CONFLICT (id) DO UPDATE SET value = cache_scope.value + 1; "
    "PERFORM set_config('purchaseshare.bumped_' || scope, 'yes', true); END IF; END $$")


def trigger_names() -> list[str]:
    return [f"cache_scope_{table}_{event.lower()}" for table, events in WATCHED.items() for event in events]


def upgrade() -> None:
    _drop_0003()
    op.create_table('cache_scope',
                    sa.Column('id', sa.BigInteger(), nullable=False),
                    sa.Column('value', sa.BigInteger(), nullable=False),
                    sa.PrimaryKeyConstraint('id'))
    op.execute("INSERT INTO cache_scope (id, value) VALUES (0, 1)")
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute(POSTGRES_BUMP_FUNCTION)
    for table, events in WATCHED.items():
        for event, (condition, scopes) in events.items():
            name = f"cache_scope_{table}_{event.lower()}"
            when = f" WHEN ({condition})" if condition else ""
            forget = f"{FORGET[table, event]}; " if (table, event) in FORGET else ""
            if postgres:
                op.execute(f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ "
                           f"DECLARE scope bigint; BEGIN {forget}"
                           f"FOR scope IN SELECT s FROM ({scopes}) AS touched WHERE s IS NOT NULL ORDER BY s "
                           "LOOP PERFORM cache_scope_bump(scope); END LOOP; RETURN NULL; END $$")
                op.execute(f'CREATE CONSTRAINT TRIGGER {name} AFTER {event} ON "{table}" '
                           f"DEFERRABLE INITIALLY DEFERRED FOR EACH ROW{when} EXECUTE FUNCTION {name}()")
            else:
                op.execute(f'CREATE TRIGGER {name} AFTER {event} ON "{table}" FOR EACH ROW{when} '
                           f"BEGIN {forget}{SQLITE_BUMP.format(scopes=scopes)}; END")


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for name, table in ((f"cache_scope_{t}_{e.lower()}", t) for t, events in WATCHED.items() for e in events):
        op.execute(f'DROP TRIGGER IF EXISTS {name} ON "{table}"' if postgres else f"DROP TRIGGER IF EXISTS {name}")
        if postgres:
            op.execute(f"DROP FUNCTION IF EXISTS {name}()")
    if postgres:
        op.execute("DROP FUNCTION IF EXISTS cache_scope_bump(bigint)")
    op.drop_table('cache_scope')
    _migration_0003().upgrade()


def _migration_0003():
    path = Path(__file__).with_name("0003_page_cache.py")
    spec = importlib.util.spec_from_file_location("migration_0003", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _drop_0003() -> None:
    _migration_0003().downgrade()
