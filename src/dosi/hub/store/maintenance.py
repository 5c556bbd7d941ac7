"""Operator tools' view of a hub's storage: versions, upgrades, a store to work on.

A *target* is a data directory (SQLite) or a postgresql:// URL. The tools
(`dosi db`, `dosi export`, `dosi import`) may run beside a live hub, so a
store opened here keeps the hub's settings that opening would otherwise
change: the attribute-value index is opened with the attributes it holds
(opening with another list rebuilds it, and the hub's q prefilter reads it).
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from dosi.hub.store.base import DEFAULT_TENANT, Store
from dosi.hub.store.migrations import LATEST, SchemaTooNew, postgres_version, sqlite_version

Target = str | Path
BASE_SCHEMA = "dosi"  # PostgresStore's default base schema


def is_url(target: Target) -> bool:
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


async def open_tool_store(target: Target, *, history: bool = True) -> Store:
    """An open store on `target` that leaves the hub's value index as it is.

    `history=False` records no history rows for entity writes (an import brings
    its own history); journal rows are still written, as for every change.
    """
    indexed = await stored_indexed(target)
    store: Store
    if is_url(target):
        from dosi.hub.store.postgres import PostgresStore

        store = PostgresStore(str(target), indexed_attributes=indexed, history=history)
    else:
        from dosi.hub.store.sqlite import SqliteStore

        store = SqliteStore(Path(target), indexed_attributes=indexed, history=history)
    await store.open()
    return store


async def versions(target: Target) -> dict[str, int]:
    """Schema version per tenant ("" is the default one); {} where nothing exists yet."""
    if is_url(target):
        return await _postgres_versions(str(target))
    return _sqlite_versions(Path(target))


async def upgrade(target: Target) -> tuple[int, int]:
    """Run pending migrations on every database of `target`: (oldest before, after).

    (0, LATEST) for storage created by this call. SchemaTooNew, touching
    nothing, if any database is newer than this code.
    """
    before = await versions(target)
    refuse_newer(before, target)
    store = await open_tool_store(target)
    await store.close()
    after = await versions(target)
    return min(before.values(), default=0), min(after.values(), default=LATEST)


def refuse_newer(found: dict[str, int], target: Target) -> None:
    for tenant, version in sorted(found.items()):
        if version > LATEST:
            which = f"tenant {tenant!r}" if tenant else "the default tenant"
            raise SchemaTooNew(
                f"{which} in {_shown(target)} has schema version {version}, newer than this "
                f"dosi knows ({LATEST}); run the dosi release that wrote it, or a newer one"
            )


def _shown(target: Target) -> str:
    if is_url(target):
        return str(target).split("@")[-1]  # no password in messages
    return str(target)


async def stored_indexed(target: Target) -> frozenset[str]:
    """The attributes the value index holds now (what `dosi up --index-attribute` chose)."""
    value: str | None = None
    if is_url(target):
        import asyncpg

        conn = await asyncpg.connect(str(target))
        try:
            if await conn.fetchval("SELECT to_regclass($1)", f"{BASE_SCHEMA}.meta") is not None:
                value = await conn.fetchval(
                    f"SELECT value FROM {BASE_SCHEMA}.meta WHERE key='indexed_attributes'"
                )
        finally:
            await conn.close()
    else:
        main = Path(target) / "dosi.sqlite"
        if main.exists():
            with closing(sqlite3.connect(main, timeout=10)) as conn:
                if _has_table(conn, "meta"):
                    row = conn.execute(
                        "SELECT value FROM meta WHERE key='indexed_attributes'"
                    ).fetchone()
                    value = row[0] if row else None
    return frozenset(v for v in (value or "").split(",") if v)


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,))
    return row.fetchone() is not None


def _sqlite_versions(data_dir: Path) -> dict[str, int]:
    main = data_dir / "dosi.sqlite"
    if not main.exists():
        return {}
    files = {DEFAULT_TENANT: main}
    with closing(sqlite3.connect(main, timeout=10)) as conn:
        found = {DEFAULT_TENANT: sqlite_version(conn)}
        if _has_table(conn, "tenants"):
            files.update((name, data_dir / file) for name, file in conn.execute(
                "SELECT name, file FROM tenants"
            ))  # fmt: skip
    for tenant, path in files.items():
        if tenant == DEFAULT_TENANT:
            continue
        if not path.exists():
            found[tenant] = 0  # registered, file not created yet
            continue
        with closing(sqlite3.connect(path, timeout=10)) as conn:
            found[tenant] = sqlite_version(conn)
    return found


async def _postgres_versions(url: str) -> dict[str, int]:
    import asyncpg

    from dosi.hub.store.postgres_schema import check_identifier

    conn = await asyncpg.connect(url)
    try:
        base = await postgres_version(conn, BASE_SCHEMA)
        if not base:
            return {}
        found = {DEFAULT_TENANT: base}
        if await conn.fetchval("SELECT to_regclass($1)", f"{BASE_SCHEMA}.tenants") is not None:
            for name, schema in await conn.fetch(f"SELECT name, schema FROM {BASE_SCHEMA}.tenants"):
                found[name] = await postgres_version(conn, check_identifier(schema))
        return found
    finally:
        await conn.close()
