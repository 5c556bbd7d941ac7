"""Tables of the PostgreSQL event store, in each tenant's schema (see postgres_events.py).

They mirror sqlite_events.DDL; `subscriptions.ord` keeps creation order
(SQLite's rowid). A module of its own so that postgres_schema can create them
with the rest of a tenant without importing the store.
"""

from __future__ import annotations


def events_ddl(s: str) -> tuple[str, ...]:
    return (
        f"""CREATE TABLE IF NOT EXISTS {s}.subscriptions(
            ord bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
            id text PRIMARY KEY,
            since bigint NOT NULL,
            doc bytea NOT NULL)""",
        f"""CREATE TABLE IF NOT EXISTS {s}.subscription_status(
            id text PRIMARY KEY, doc bytea NOT NULL)""",
        # A queue: every row is deleted soon after it is inserted, so autovacuum is told
        # to come by long before the default 20% of the table is dead.
        f"""CREATE TABLE IF NOT EXISTS {s}.outbox(
            seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            sub text NOT NULL,
            at bigint NOT NULL,
            data bytea NOT NULL) WITH (autovacuum_vacuum_scale_factor = 0.01)""",
        f"CREATE INDEX IF NOT EXISTS outbox_sub ON {s}.outbox(sub, seq)",
        # 'cursor': journal seq the notifier has queued up to; 'rev': subscriptions revision.
        f"""CREATE TABLE IF NOT EXISTS {s}.notifier_state(
            key text PRIMARY KEY, value bigint NOT NULL)""",
    )
