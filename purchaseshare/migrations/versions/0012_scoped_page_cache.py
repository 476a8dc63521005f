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
On PostgreSQL the counters are bumped at commit time, each once per transaction and all of them
in ascending order (see POSTGRES_FUNCTIONS).
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
             "DELETE": (None, "SELECT OLD.id AS s UNION SELECT 0")},
}
# A deleted account leaves no row about it, its counter included (the site's counter moves instead;
# a scope is bumped only while its user exists: rows deleted with the account would bring it back).
EXISTS = 'EXISTS (SELECT 1 FROM "user" WHERE id = {s})'
UPSERT = "INSERT INTO cache_scope (id, value) {rows} ON CONFLICT (id) DO UPDATE SET value = cache_scope.value + 1"
SQLITE_BUMP = UPSERT.format(rows=f"SELECT s, 1 FROM ({{scopes}}) WHERE s = 0 OR {EXISTS.format(s='s')}")
SQLITE_FORGET = {("user", "DELETE"): "DELETE FROM cache_scope WHERE id = OLD.id; "}
# PostgreSQL: a row's trigger only NOTES its scopes (a transaction-local list, each scope once);
# a deferred trigger bumps them all at commit, in ascending order, and once per transaction (a bulk
# write of 100 000 rows would otherwise update one counter 100 000 times, each new version found by
# walking the previous ones). All counters are thus locked in one global order: bumping them as
# each trigger fired let a follow and a like in one transaction deadlock with the reverse in another
# (tests/web/test_page_cache.py). A noted scope whose user is gone by commit loses its row instead.
POSTGRES_FUNCTIONS = (
    "CREATE FUNCTION cache_scope_note(scope bigint) RETURNS void LANGUAGE plpgsql AS $$ BEGIN "
    "IF scope IS NOT NULL AND current_setting('purchaseshare.noted_' || scope, true) IS DISTINCT FROM 'yes' THEN "
    "PERFORM set_config('purchaseshare.noted_' || scope, 'yes', true); "
    "PERFORM set_config('purchaseshare.scopes', concat_ws(',', nullif(current_setting('purchaseshare.scopes', true), ''), "
    "scope::text), true); END IF; END $$",
    "CREATE FUNCTION cache_scope_flush() RETURNS trigger LANGUAGE plpgsql AS $$ DECLARE scope bigint; BEGIN "
    "FOR scope IN SELECT DISTINCT noted::bigint FROM unnest(string_to_array("
    "nullif(current_setting('purchaseshare.scopes', true), ''), ',')) AS noted ORDER BY 1 LOOP "
    f"IF scope = 0 OR {EXISTS.format(s='scope')} THEN {UPSERT.format(rows='VALUES (scope, 1)')}; "
    "ELSE DELETE FROM cache_scope WHERE id = scope; END IF; "
    "PERFORM set_config('purchaseshare.noted_' || scope, '', true); END LOOP; "
    "PERFORM set_config('purchaseshare.scopes', '', true); RETURN NULL; END $$",
)


def trigger_names(dialect: str) -> list[str]:
    names = [f"cache_scope_{table}_{event.lower()}" for table, events in WATCHED.items() for event in events]
    return names + [name.replace("cache_scope_", "cache_flush_") for name in names] if dialect == "postgresql" else names


def upgrade() -> None:
    _migration_0003().downgrade()  # its single counter and triggers go
    op.create_table('cache_scope',
                    sa.Column('id', sa.BigInteger(), nullable=False),
                    sa.Column('value', sa.BigInteger(), nullable=False),
                    sa.PrimaryKeyConstraint('id'))
    op.execute("INSERT INTO cache_scope (id, value) VALUES (0, 1)")
    postgres = op.get_bind().dialect.name == "postgresql"
    for function in POSTGRES_FUNCTIONS if postgres else ():
        op.execute(function)
    for table, events in WATCHED.items():
        for event, (condition, scopes) in events.items():
            name = f"cache_scope_{table}_{event.lower()}"
            when = f" WHEN ({condition})" if condition else ""
            if postgres:
                op.execute(f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                           f"PERFORM cache_scope_note(s) FROM ({scopes}) AS touched; RETURN NULL; END $$")
                op.execute(f'CREATE TRIGGER {name} AFTER {event} ON "{table}" FOR EACH ROW{when} '
                           f"EXECUTE FUNCTION {name}()")
                op.execute(f'CREATE CONSTRAINT TRIGGER {name.replace("cache_scope_", "cache_flush_")} AFTER {event} '
                           f'ON "{table}" DEFERRABLE INITIALLY DEFERRED FOR EACH ROW{when} '
                           "EXECUTE FUNCTION cache_scope_flush()")
            else:
                forget = SQLITE_FORGET.get((table, event), "")
                op.execute(f'CREATE TRIGGER {name} AFTER {event} ON "{table}" FOR EACH ROW{when} '
                           f"BEGIN {forget}{SQLITE_BUMP.format(scopes=scopes)}; END")


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table, events in WATCHED.items():
        for event in events:
            name = f"cache_scope_{table}_{event.lower()}"
            if postgres:
                op.execute(f'DROP TRIGGER IF EXISTS {name.replace("cache_scope_", "cache_flush_")} ON "{table}"')
                op.execute(f'DROP TRIGGER IF EXISTS {name} ON "{table}"')
                op.execute(f"DROP FUNCTION IF EXISTS {name}()")
            else:
                op.execute(f"DROP TRIGGER IF EXISTS {name}")
    if postgres:
        op.execute("DROP FUNCTION IF EXISTS cache_scope_flush()")
        op.execute("DROP FUNCTION IF EXISTS cache_scope_note(bigint)")
    op.drop_table('cache_scope')
    _migration_0003().upgrade()


def _migration_0003():
    path = Path(__file__).with_name("0003_page_cache.py")
    spec = importlib.util.spec_from_file_location("migration_0003", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module
