"""EventStore on PostgreSQL: subscriptions and the notification outbox in each tenant schema.

Same semantics as sqlite_events.py (tables in postgres_events_schema.py). What
PostgreSQL's concurrency changes:

- A new subscription's `since` is the journal's end read under the tenant's
  journal lock (shared), like `journal_last`: writers append journal rows last,
  under that lock held until COMMIT, so no change is half-committed around it.
- Every create, update and delete first bumps the 'rev' row: that row lock
  serialises the tenant's subscription writes across processes, so the cap
  holds under concurrent creates and every worker's registry sees the change
  on its next revision read.
- Outbox rows and the notifier's cursor are written in one transaction.

Only the holder of the "notifier" role (an advisory lock, postgres_lead.py)
reads and deletes outbox rows, so reads need no row locks: a `FOR UPDATE SKIP
LOCKED` here would be released at the end of the read, before the delivery,
and so would not keep a second reader from sending the same rows anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import asyncpg

from dosi.hub.store.events import OutboxRow, SubscriptionRow
from dosi.hub.store.postgres_plan import append_rows
from dosi.hub.store.postgres_schema import lock_key
from dosi.ngsi.errors import AlreadyExists, BadRequestData, ResourceNotFound

if TYPE_CHECKING:
    from dosi.hub.store.postgres import PostgresStore

_SUB_COLUMNS = "s.id, s.since, s.doc, t.doc"


def _sub_rows(records: Sequence[asyncpg.Record], offset: int = 0) -> list[SubscriptionRow]:
    """Rows of `_SUB_COLUMNS` starting at column `offset`; a NULL id is no row (see
    the one-snapshot reads below, which put a total in front)."""
    return [
        SubscriptionRow(
            r[offset],
            int(r[offset + 1]),
            bytes(r[offset + 2]),
            None if r[offset + 3] is None else bytes(r[offset + 3]),
        )
        for r in records
        if r[offset] is not None
    ]


async def _bump(conn: asyncpg.Connection, s: str) -> None:
    await conn.execute(
        f"INSERT INTO {s}.notifier_state(key, value) VALUES('rev', 1) "
        "ON CONFLICT (key) DO UPDATE SET value = notifier_state.value + 1"
    )


async def _state(conn: asyncpg.Connection, s: str, key: str) -> int:
    value = await conn.fetchval(f"SELECT value FROM {s}.notifier_state WHERE key = $1", key)
    return int(value) if value is not None else 0


async def _set_cursor(conn: asyncpg.Connection, s: str, cursor: int) -> None:
    await conn.execute(
        f"INSERT INTO {s}.notifier_state(key, value) VALUES('cursor', $1) "
        "ON CONFLICT (key) DO UPDATE SET value = greatest(notifier_state.value, excluded.value)",
        cursor,
    )


async def _journal_end(conn: asyncpg.Connection, s: str) -> int:
    """The last journal seq handed out, once no transaction is still appending (the
    shared lock is held to COMMIT, so later entries get higher seqs and commit after)."""
    await conn.execute("SELECT pg_advisory_xact_lock_shared($1)", lock_key("dosi-journal", s))
    value = await conn.fetchval(
        f"SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {s}.journal_seq"
    )
    return int(value)


class PostgresEvents:
    def __init__(self, store: PostgresStore) -> None:
        self._store = store

    # -- subscriptions ---------------------------------------------------
    async def subscription_create(self, tenant: str, sub_id: str, doc: bytes, cap: int) -> None:
        if "\x00" in sub_id:
            raise BadRequestData("a subscription id cannot contain the NUL character")

        async def run(conn: asyncpg.Connection, s: str) -> None:
            await _bump(conn, s)  # first: the row lock orders concurrent creates
            if await conn.fetchval(f"SELECT 1 FROM {s}.subscriptions WHERE id = $1", sub_id):
                raise AlreadyExists(f"subscription {sub_id} already exists")
            count = await conn.fetchval(f"SELECT count(*) FROM {s}.subscriptions")
            if count >= cap:
                raise BadRequestData(
                    f"this tenant already has {count} subscriptions, the hub's maximum"
                )
            await conn.execute(
                f"INSERT INTO {s}.subscriptions(id, since, doc) VALUES($1, $2, $3)",
                sub_id,
                await _journal_end(conn, s),
                doc,
            )

        await self._store.run_write(tenant, run)

    async def subscription_update(
        self, tenant: str, sub_id: str, expected: bytes, doc: bytes
    ) -> bool:
        await self._existing(tenant, sub_id)

        async def run(conn: asyncpg.Connection, s: str) -> bool:
            current = await conn.fetchval(
                f"SELECT doc FROM {s}.subscriptions WHERE id = $1 FOR UPDATE", sub_id
            )
            if current is None:
                raise ResourceNotFound(f"subscription {sub_id} does not exist")
            if bytes(current) != expected:
                return False
            await conn.execute(f"UPDATE {s}.subscriptions SET doc = $1 WHERE id = $2", doc, sub_id)
            await _bump(conn, s)
            return True

        return await self._store.run_write(tenant, run)

    async def subscription_delete(self, tenant: str, sub_id: str) -> None:
        await self._existing(tenant, sub_id)

        async def run(conn: asyncpg.Connection, s: str) -> None:
            status = await conn.execute(f"DELETE FROM {s}.subscriptions WHERE id = $1", sub_id)
            if status == "DELETE 0":
                raise ResourceNotFound(f"subscription {sub_id} does not exist")
            await conn.execute(f"DELETE FROM {s}.subscription_status WHERE id = $1", sub_id)
            await conn.execute(f"DELETE FROM {s}.outbox WHERE sub = $1", sub_id)
            await _bump(conn, s)

        await self._store.run_write(tenant, run)

    async def _existing(self, tenant: str, sub_id: str) -> None:
        """A tenant that does not exist has no subscription: say so without creating it
        (run_write would), so requests for made-up tenants leave no schema behind."""
        if not await self._store.tenant_exists(tenant):
            raise ResourceNotFound(f"subscription {sub_id} does not exist")

    async def subscription_get(self, tenant: str, sub_id: str) -> SubscriptionRow | None:
        async def run(conn: asyncpg.Connection, s: str) -> SubscriptionRow | None:
            found = _sub_rows(
                await conn.fetch(
                    f"SELECT {_SUB_COLUMNS} FROM {s}.subscriptions s "
                    f"LEFT JOIN {s}.subscription_status t ON t.id = s.id WHERE s.id = $1",
                    sub_id,
                )
            )
            return found[0] if found else None

        return await self._store.run_read(tenant, run)

    async def subscription_list(
        self, tenant: str, offset: int, limit: int
    ) -> tuple[list[SubscriptionRow], int]:
        async def run(conn: asyncpg.Connection, s: str) -> tuple[list[SubscriptionRow], int]:
            # One statement, one snapshot: the total and the page agree (the page is
            # joined to the one-row total, so an empty page still brings the total).
            records = await conn.fetch(
                f"SELECT n.total, p.* FROM (SELECT count(*) AS total FROM {s}.subscriptions) n "
                f"LEFT JOIN (SELECT s.ord, {_SUB_COLUMNS} FROM {s}.subscriptions s "
                f"LEFT JOIN {s}.subscription_status t ON t.id = s.id "
                "ORDER BY s.ord LIMIT $1 OFFSET $2) p ON true ORDER BY p.ord",
                limit,
                offset,
            )
            return _sub_rows(records, 2), int(records[0][0])

        return await self._store.run_read(tenant, run)

    async def subscriptions_revision(self, tenant: str) -> int:
        return await self._store.run_read(tenant, lambda conn, s: _state(conn, s, "rev"))

    async def subscriptions_all(self, tenant: str) -> tuple[int, list[SubscriptionRow]]:
        async def run(conn: asyncpg.Connection, s: str) -> tuple[int, list[SubscriptionRow]]:
            # The revision and the rows from one snapshot (one statement), as above.
            records = await conn.fetch(
                "SELECT coalesce(r.value, 0), p.* FROM (SELECT 1) one "
                f"LEFT JOIN {s}.notifier_state r ON r.key = 'rev' "
                f"LEFT JOIN (SELECT s.ord, {_SUB_COLUMNS} FROM {s}.subscriptions s "
                f"LEFT JOIN {s}.subscription_status t ON t.id = s.id) p ON true "
                "ORDER BY p.ord"
            )
            return int(records[0][0]), _sub_rows(records, 2)

        return await self._store.run_read(tenant, run)

    async def status_save(self, tenant: str, items: Sequence[tuple[str, bytes]]) -> None:
        if not items:
            return

        async def run(conn: asyncpg.Connection, s: str) -> None:
            ids, docs = zip(*items, strict=True)
            await conn.execute(
                f"INSERT INTO {s}.subscription_status(id, doc) "
                "SELECT i.id, i.doc FROM unnest($1::text[], $2::bytea[]) AS i(id, doc) "
                f"JOIN {s}.subscriptions s ON s.id = i.id "
                "ON CONFLICT (id) DO UPDATE SET doc = excluded.doc",
                list(ids),
                list(docs),
            )

        await self._store.run_write(tenant, run)

    # -- the notifier's cursor and outbox --------------------------------
    async def notifier_cursor(self, tenant: str) -> int:
        return await self._store.run_read(tenant, lambda conn, s: _state(conn, s, "cursor"))

    async def notifier_set_cursor(self, tenant: str, cursor: int) -> None:
        await self._store.run_write(tenant, lambda conn, s: _set_cursor(conn, s, cursor))

    async def outbox_add(
        self, tenant: str, rows: Sequence[tuple[str, int, bytes]], cursor: int | None
    ) -> None:
        if not rows and cursor is None:
            return

        async def run(conn: asyncpg.Connection, s: str) -> None:
            # One transaction: a crash leaves either both the rows and the cursor, or
            # neither (the journal entries are then matched again).
            if rows:
                types = ("text", "bigint", "bytea")
                await append_rows(conn, s, "outbox(sub, at, data)", types, list(rows))
            if cursor is not None:
                await _set_cursor(conn, s, cursor)

        await self._store.run_write(tenant, run)

    async def outbox_read(
        self, tenant: str, sub_id: str, after: int, limit: int
    ) -> list[OutboxRow]:
        async def run(conn: asyncpg.Connection, s: str) -> list[OutboxRow]:
            records = await conn.fetch(
                f"SELECT seq, at, data FROM {s}.outbox WHERE sub = $1 AND seq > $2 "
                "ORDER BY seq LIMIT $3",
                sub_id,
                after,
                limit,
            )
            return [OutboxRow(int(seq), int(at), bytes(data)) for seq, at, data in records]

        return await self._store.run_read(tenant, run)

    async def outbox_delete(self, tenant: str, seqs: Sequence[int]) -> None:
        if not seqs:
            return

        async def run(conn: asyncpg.Connection, s: str) -> None:
            await conn.execute(f"DELETE FROM {s}.outbox WHERE seq = ANY($1::bigint[])", list(seqs))

        await self._store.run_write(tenant, run)

    async def outbox_pending(self, tenant: str) -> list[str]:
        async def run(conn: asyncpg.Connection, s: str) -> list[str]:
            # One index probe per subscription (there are at most the cap) instead of a
            # scan of the outbox, however long the queue grew while receivers were down.
            records = await conn.fetch(
                f"SELECT s.id FROM {s}.subscriptions s "
                f"WHERE EXISTS (SELECT 1 FROM {s}.outbox o WHERE o.sub = s.id) ORDER BY s.ord"
            )
            return [str(r[0]) for r in records]

        return await self._store.run_read(tenant, run)
