"""Numbered schema migrations for both backends, run whenever a store opens.

Every database (a SQLite file, a PostgreSQL schema; one per tenant) records
its version in `meta.schema_version` and the migrations it went through in
`schema_migrations`. The *baseline* (the `CREATE ... IF NOT EXISTS` statements
in sqlite_schema.py / postgres_schema.py) always describes the newest schema:

- a database without a version is new: it gets the baseline and the newest
  version, and no migration runs;
- an older database runs each pending migration in order, then the baseline
  (which adds tables that appeared in it since), and records the new version;
- a database newer than this code is refused (`SchemaTooNew`): code that does
  not know its tables could damage them.

All of it happens in one transaction (both backends have transactional DDL),
under the writer lock (SQLite) or the DDL advisory lock (PostgreSQL), so
worker processes starting together never race and a failed migration leaves
the database as it was. A change to an existing table or to stored data is a
new migration here *and* the new shape in the baseline.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dosi.ngsi.values import now_iso

if TYPE_CHECKING:
    import asyncpg


class SchemaTooNew(RuntimeError):
    """The database was written by a newer dosi; this one must not touch it."""


@dataclass(frozen=True)
class Migration:
    version: int
    summary: str
    sqlite: Callable[[sqlite3.Connection], None]
    postgres: Callable[[asyncpg.Connection, str], Awaitable[None]]  # (conn, schema)


# -- the version tables (part of every baseline) -------------------------------------------
_SQLITE_LOG = """CREATE TABLE IF NOT EXISTS schema_migrations(
    version INTEGER PRIMARY KEY, summary TEXT NOT NULL, applied_at TEXT)"""
SQLITE_VERSION_DDL = (
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    _SQLITE_LOG,
)


def _pg_log(s: str) -> str:
    return f"""CREATE TABLE IF NOT EXISTS {s}.schema_migrations(
        version integer PRIMARY KEY, summary text NOT NULL, applied_at text)"""


def postgres_version_ddl(s: str) -> tuple[str, ...]:
    return (
        f"CREATE SCHEMA IF NOT EXISTS {s}",
        f"CREATE TABLE IF NOT EXISTS {s}.meta(key text PRIMARY KEY, value text NOT NULL)",
        _pg_log(s),
    )


# -- the migrations ----------------------------------------------------------------------------
def _sqlite_nothing(conn: sqlite3.Connection) -> None:
    """Version 1 is the baseline as first released: nothing to change."""


async def _postgres_nothing(conn: asyncpg.Connection, schema: str) -> None:
    """Version 1 is the baseline as first released: nothing to change."""


def _sqlite_log(conn: sqlite3.Connection) -> None:
    conn.execute(_SQLITE_LOG)
    conn.execute(
        "INSERT OR IGNORE INTO schema_migrations(version, summary, applied_at) VALUES(1, ?, NULL)",
        (MIGRATIONS[0].summary,),
    )


async def _postgres_log(conn: asyncpg.Connection, schema: str) -> None:
    await conn.execute(_pg_log(schema))
    await conn.execute(
        f"INSERT INTO {schema}.schema_migrations(version, summary, applied_at) "
        "VALUES(1, $1, NULL) ON CONFLICT (version) DO NOTHING",
        MIGRATIONS[0].summary,
    )


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "baseline schema", _sqlite_nothing, _postgres_nothing),
    # applied_at NULL marks version 1 as older than the log.
    Migration(2, "schema_migrations: when each migration ran", _sqlite_log, _postgres_log),
)
LATEST = MIGRATIONS[-1].version
assert [m.version for m in MIGRATIONS] == list(range(1, LATEST + 1))


def _plan(current: int, where: str) -> list[Migration]:
    """The migrations a database at `current` needs (none for a new one)."""
    if current > LATEST:
        raise SchemaTooNew(
            f"{where} has schema version {current}, newer than this dosi knows ({LATEST}); "
            "run the dosi release that wrote it, or a newer one"
        )
    return [m for m in MIGRATIONS if m.version > current] if current else []


def _log_rows(current: int, pending: list[Migration]) -> list[tuple[int, str, str]]:
    now = now_iso()
    done = pending if current else list(MIGRATIONS)  # a new database starts with them all
    return [(m.version, m.summary, now) for m in done]


# -- SQLite ----------------------------------------------------------------------------------
def sqlite_version(conn: sqlite3.Connection) -> int:
    """The database's schema version; 0 for a new (or non-dosi) database."""
    table = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'")
    if table.fetchone() is None:
        return 0
    row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    return int(row[0]) if row else 0


def migrate_sqlite(conn: sqlite3.Connection, baseline: Sequence[str]) -> tuple[int, int]:
    """Bring one SQLite database to LATEST; (version before, version after)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = sqlite_version(conn)
        where = conn.execute("PRAGMA database_list").fetchone()[2] or "the database"
        pending = _plan(current, where)
        for migration in pending:
            migration.sqlite(conn)
        for statement in (*SQLITE_VERSION_DDL, *baseline):
            conn.execute(statement)
        if current != LATEST:
            conn.executemany(
                "INSERT OR REPLACE INTO schema_migrations(version, summary, applied_at) "
                "VALUES(?,?,?)",
                _log_rows(current, pending),
            )
            conn.execute(
                "INSERT INTO meta(key, value) VALUES('schema_version', ?) "
                "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (str(LATEST),),
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return current, LATEST


# -- PostgreSQL ------------------------------------------------------------------------------
async def postgres_version(conn: asyncpg.Connection, schema: str) -> int:
    """The schema version of PostgreSQL schema `schema`; 0 if it has none yet."""
    if await conn.fetchval("SELECT to_regclass($1)", f"{schema}.meta") is None:
        return 0
    value = await conn.fetchval(f"SELECT value FROM {schema}.meta WHERE key='schema_version'")
    return int(value) if value is not None else 0


async def migrate_postgres(
    conn: asyncpg.Connection, schema: str, baseline: Sequence[str]
) -> tuple[int, int]:
    """Bring one tenant schema to LATEST; the caller holds a transaction and the DDL lock."""
    current = await postgres_version(conn, schema)
    pending = _plan(current, f"PostgreSQL schema {schema}")
    for migration in pending:
        await migration.postgres(conn, schema)
    for statement in (*postgres_version_ddl(schema), *baseline):
        await conn.execute(statement)
    if current != LATEST:
        await conn.executemany(
            f"INSERT INTO {schema}.schema_migrations(version, summary, applied_at) "
            "VALUES($1, $2, $3) ON CONFLICT (version) DO UPDATE SET "
            "summary = excluded.summary, applied_at = excluded.applied_at",
            _log_rows(current, pending),
        )
        await conn.execute(
            f"INSERT INTO {schema}.meta(key, value) VALUES('schema_version', $1) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            str(LATEST),
        )
    return current, LATEST
