"""EventStore on the SQLite backend: tables in each tenant's database file.

The outbox is the notification queue: rows are inserted in the same
transaction that moves the notifier's journal cursor and deleted only once a
receiver acknowledged them, so neither a crash nor a restart can lose one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING

from dosi.hub.store.events import OutboxRow, SubscriptionRow
from dosi.ngsi.errors import AlreadyExists, BadRequestData, ResourceNotFound

if TYPE_CHECKING:
    from dosi.hub.store.sqlite import SqliteStore

# Extra tables this part needs, created with the rest of the schema.
DDL: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS subscriptions(
        id TEXT PRIMARY KEY, since INTEGER NOT NULL, doc BLOB NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS subscription_status(
        id TEXT PRIMARY KEY, doc BLOB NOT NULL) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS outbox(
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        sub TEXT NOT NULL, at INTEGER NOT NULL, data BLOB NOT NULL)""",
    """CREATE INDEX IF NOT EXISTS outbox_sub ON outbox(sub, seq)""",
    # 'cursor': journal seq the notifier has queued up to; 'rev': subscriptions revision.
    """CREATE TABLE IF NOT EXISTS notifier_state(
        key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID""",
)
_CHUNK = 500


def _bump(conn: sqlite3.Connection) -> None:
    conn.execute(
        "INSERT INTO notifier_state(key, value) VALUES('rev', 1) "
        "ON CONFLICT(key) DO UPDATE SET value = value + 1"
    )


def _state(conn: sqlite3.Connection, key: str) -> int:
    row = conn.execute("SELECT value FROM notifier_state WHERE key=?", (key,)).fetchone()
    return int(row[0]) if row else 0


def _journal_end(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name='journal'").fetchone()
    return int(row[0]) if row else 0


def _rows(conn: sqlite3.Connection, where: str, args: tuple[object, ...]) -> list[SubscriptionRow]:
    cursor = conn.execute(
        "SELECT s.id, s.since, s.doc, t.doc FROM subscriptions s "
        f"LEFT JOIN subscription_status t ON t.id = s.id {where}",
        args,
    )
    return [SubscriptionRow(i, since, bytes(doc), status) for i, since, doc, status in cursor]


class SqliteEvents:
    def __init__(self, store: SqliteStore) -> None:
        self._store = store

    # -- subscriptions ---------------------------------------------------
    async def subscription_create(self, tenant: str, sub_id: str, doc: bytes, cap: int) -> None:
        def run(conn: sqlite3.Connection) -> None:
            if conn.execute("SELECT 1 FROM subscriptions WHERE id=?", (sub_id,)).fetchone():
                raise AlreadyExists(f"subscription {sub_id} already exists")
            (count,) = conn.execute("SELECT count(*) FROM subscriptions").fetchone()
            if count >= cap:
                raise BadRequestData(
                    f"this tenant already has {count} subscriptions, the hub's maximum"
                )
            conn.execute(
                "INSERT INTO subscriptions(id, since, doc) VALUES(?,?,?)",
                (sub_id, _journal_end(conn), doc),
            )
            _bump(conn)

        await self._store.run_write(tenant, run)

    async def subscription_update(
        self, tenant: str, sub_id: str, expected: bytes, doc: bytes
    ) -> bool:
        def run(conn: sqlite3.Connection) -> bool:
            row = conn.execute("SELECT doc FROM subscriptions WHERE id=?", (sub_id,)).fetchone()
            if row is None:
                raise ResourceNotFound(f"subscription {sub_id} does not exist")
            if bytes(row[0]) != expected:
                return False
            conn.execute("UPDATE subscriptions SET doc=? WHERE id=?", (doc, sub_id))
            _bump(conn)
            return True

        return await self._store.run_write(tenant, run)

    async def subscription_delete(self, tenant: str, sub_id: str) -> None:
        def run(conn: sqlite3.Connection) -> None:
            if conn.execute("DELETE FROM subscriptions WHERE id=?", (sub_id,)).rowcount == 0:
                raise ResourceNotFound(f"subscription {sub_id} does not exist")
            conn.execute("DELETE FROM subscription_status WHERE id=?", (sub_id,))
            conn.execute("DELETE FROM outbox WHERE sub=?", (sub_id,))
            _bump(conn)

        await self._store.run_write(tenant, run)

    async def subscription_get(self, tenant: str, sub_id: str) -> SubscriptionRow | None:
        def run(conn: sqlite3.Connection) -> SubscriptionRow | None:
            found = _rows(conn, "WHERE s.id=?", (sub_id,))
            return found[0] if found else None

        return await self._store.run_read(tenant, run, inline=True)

    async def subscription_list(
        self, tenant: str, offset: int, limit: int
    ) -> tuple[list[SubscriptionRow], int]:
        def run(conn: sqlite3.Connection) -> tuple[list[SubscriptionRow], int]:
            (total,) = conn.execute("SELECT count(*) FROM subscriptions").fetchone()
            page = _rows(conn, "ORDER BY s.rowid LIMIT ? OFFSET ?", (limit, offset))
            return page, int(total)

        return await self._store.run_read(tenant, run)

    async def subscriptions_revision(self, tenant: str) -> int:
        return await self._store.run_read(tenant, lambda c: _state(c, "rev"), inline=True)

    async def subscriptions_all(self, tenant: str) -> tuple[int, list[SubscriptionRow]]:
        def run(conn: sqlite3.Connection) -> tuple[int, list[SubscriptionRow]]:
            conn.execute("BEGIN")  # one snapshot for the revision and the rows
            try:
                return _state(conn, "rev"), _rows(conn, "ORDER BY s.rowid", ())
            finally:
                conn.execute("COMMIT")

        return await self._store.run_read(tenant, run)

    async def status_save(self, tenant: str, items: Sequence[tuple[str, bytes]]) -> None:
        def run(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT INTO subscription_status(id, doc) SELECT ?1, ?2 "
                "WHERE EXISTS (SELECT 1 FROM subscriptions WHERE id=?1) "
                "ON CONFLICT(id) DO UPDATE SET doc=excluded.doc",
                items,
            )

        if items:
            await self._store.run_write(tenant, run)

    # -- the notifier's cursor and outbox --------------------------------
    async def notifier_cursor(self, tenant: str) -> int:
        return await self._store.run_read(tenant, lambda c: _state(c, "cursor"), inline=True)

    async def notifier_set_cursor(self, tenant: str, cursor: int) -> None:
        await self._store.run_write(tenant, lambda conn: _set_cursor(conn, cursor))

    async def outbox_add(
        self, tenant: str, rows: Sequence[tuple[str, int, bytes]], cursor: int | None
    ) -> None:
        def run(conn: sqlite3.Connection) -> None:
            conn.executemany("INSERT INTO outbox(sub, at, data) VALUES(?,?,?)", rows)
            if cursor is not None:
                _set_cursor(conn, cursor)

        await self._store.run_write(tenant, run)

    async def outbox_read(
        self, tenant: str, sub_id: str, after: int, limit: int
    ) -> list[OutboxRow]:
        def run(conn: sqlite3.Connection) -> list[OutboxRow]:
            cursor = conn.execute(
                "SELECT seq, at, data FROM outbox WHERE sub=? AND seq>? ORDER BY seq LIMIT ?",
                (sub_id, after, limit),
            )
            return [OutboxRow(seq, at, bytes(data)) for seq, at, data in cursor]

        return await self._store.run_read(tenant, run, inline=limit <= 16)

    async def outbox_delete(self, tenant: str, seqs: Sequence[int]) -> None:
        def run(conn: sqlite3.Connection) -> None:
            for start in range(0, len(seqs), _CHUNK):
                chunk = seqs[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                conn.execute(f"DELETE FROM outbox WHERE seq IN ({marks})", chunk)

        if seqs:
            await self._store.run_write(tenant, run)

    async def outbox_pending(self, tenant: str) -> list[str]:
        def run(conn: sqlite3.Connection) -> list[str]:
            return [str(r[0]) for r in conn.execute("SELECT DISTINCT sub FROM outbox")]

        return await self._store.run_read(tenant, run)


def _set_cursor(conn: sqlite3.Connection, cursor: int) -> None:
    conn.execute(
        "INSERT INTO notifier_state(key, value) VALUES('cursor', ?) "
        "ON CONFLICT(key) DO UPDATE SET value = max(value, excluded.value)",
        (cursor,),
    )
