"""page cache: one generation counter, bumped by triggers on every write a cached page can show

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 15:40:00

web/page_cache.py serves a stored page only while this counter is unchanged. The triggers bump it
in the writing transaction itself, whoever writes (web, workers, CLI, raw SQL), so invalidation
is exact across processes. Private churn (a worker storing an unapproved purchase) does not bump
it: purchases count once published, items once approved (before or after the change).
On PostgreSQL the triggers are deferred to commit time and bump once per transaction: the
counter's row lock is then held only while committing, so two writers can never deadlock on it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

# table -> {event: condition (None = always)}. Tables not listed (raw_email, outbox_mail,
# imap_state, sender_address, login_attempt) never appear on a cached page.
ALWAYS = {"INSERT": None, "UPDATE": None, "DELETE": None}
WATCHED: dict[str, dict[str, str | None]] = {
    "user": ALWAYS, "follow": ALWAYS, "like": ALWAYS, "comment": ALWAYS, "notification": ALWAYS,
    "review": ALWAYS, "collection": ALWAYS, "collection_item": ALWAYS,
    "purchase": {"INSERT": "NEW.published_at IS NOT NULL",
                 "UPDATE": "OLD.published_at IS NOT NULL OR NEW.published_at IS NOT NULL",
                 "DELETE": "OLD.published_at IS NOT NULL"},
    "purchase_item": {"INSERT": "NEW.approved", "UPDATE": "OLD.approved OR NEW.approved",
                      "DELETE": "OLD.approved"},
}
BUMP = "UPDATE cache_generation SET value = value + 1 WHERE id = 1"


def trigger_names() -> list[str]:
    return [f"cache_gen_{table}_{event.lower()}" for table, events in WATCHED.items() for event in events]


def upgrade() -> None:
    op.create_table('cache_generation',
                    sa.Column('id', sa.Integer(), nullable=False),
                    sa.Column('value', sa.BigInteger(), nullable=False),
                    sa.PrimaryKeyConstraint('id'))
    op.execute("INSERT INTO cache_generation (id, value) VALUES (1, 0)")
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        # Once per transaction (a transaction-local flag): a bulk write of 100 000 rows would
        # otherwise update the one row 100 000 times at commit, each new version found by
        # walking the previous ones (quadratic).
        op.execute("CREATE FUNCTION cache_generation_bump() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                   "IF current_setting('purchaseshare.cache_bumped', true) IS DISTINCT FROM 'yes' THEN "
                   f"{BUMP}; PERFORM set_config('purchaseshare.cache_bumped', 'yes', true); "
                   "END IF; RETURN NULL; END $$")
    for table, events in WATCHED.items():
        for event, condition in events.items():
            name = f"cache_gen_{table}_{event.lower()}"
            when = f" WHEN ({condition})" if condition else ""
            if postgres:
                op.execute(f'CREATE CONSTRAINT TRIGGER {name} AFTER {event} ON "{table}" '
                           f"DEFERRABLE INITIALLY DEFERRED FOR EACH ROW{when} "
                           "EXECUTE FUNCTION cache_generation_bump()")
            else:
                op.execute(f'CREATE TRIGGER {name} AFTER {event} ON "{table}" FOR EACH ROW{when} '
                           f"BEGIN {BUMP}; END")


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table, events in WATCHED.items():
        for event in events:
            name = f"cache_gen_{table}_{event.lower()}"
            op.execute(f'DROP TRIGGER IF EXISTS {name} ON "{table}"' if postgres else f"DROP TRIGGER IF EXISTS {name}")
    if postgres:
        op.execute("DROP FUNCTION IF EXISTS cache_generation_bump()")
    op.drop_table('cache_generation')
