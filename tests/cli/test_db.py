"""`dosi db upgrade` / `dosi db version` and the migrations every store runs when it opens."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from dosi.cli.main import main
from dosi.hub.store import migrations
from dosi.hub.store.maintenance import open_tool_store, versions
from dosi.hub.store.migrations import LATEST, Migration, SchemaTooNew
from dosi.hub.store.sqlite import SqliteStore

ENTITY = {
    "id": "urn:ngsi-ld:Sensor:1",
    "type": ["https://example.org/Sensor"],
    "createdAt": "2026-01-01T00:00:00.000000Z",
    "modifiedAt": "2026-01-01T00:00:00.000000Z",
    "https://example.org/level": [
        {
            "type": "Property",
            "value": 3,
            "createdAt": "2026-01-01T00:00:00.000000Z",
            "modifiedAt": "2026-01-01T00:00:00.000000Z",
        }
    ],
}


def dosi(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dosi: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


async def seed(target: str | Path) -> None:
    """Storage with an entity in the default tenant and in tenant t1."""
    store = await open_tool_store(target)
    try:
        for tenant in ("", "t1"):
            outcomes = await store.apply(tenant, [(ENTITY["id"], lambda current: ENTITY)])
            assert outcomes[0].error is None
    finally:
        await store.close()


def sqlite_files(data: Path) -> list[Path]:
    return [data / "dosi.sqlite", *sorted((data / "tenants").glob("*.sqlite"))]


def set_version_sqlite(data: Path, version: int, *, drop_log: bool = False) -> None:
    for path in sqlite_files(data):
        with closing(sqlite3.connect(path)) as conn, conn:
            conn.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(version),))
            if drop_log:  # what a data dir of the first release looks like
                conn.execute("DROP TABLE schema_migrations")


def migration_log(path: Path) -> list[tuple[int, bool]]:
    with closing(sqlite3.connect(path)) as conn:
        rows = conn.execute("SELECT version, applied_at FROM schema_migrations ORDER BY version")
        return [(int(v), at is not None) for v, at in rows]


def test_upgrade_creates_a_fresh_data_dir_and_rerunning_is_a_no_op(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    code, out, _ = dosi(capsys, "db", "upgrade", "--data", str(data))
    assert code == 0 and out.strip() == f"created schema version {LATEST} in data dir '{data}'"
    assert migration_log(data / "dosi.sqlite") == [(v, True) for v in range(1, LATEST + 1)]
    code, out, _ = dosi(capsys, "db", "upgrade", "--data", str(data))
    assert code == 0 and "nothing to do" in out
    code, out, _ = dosi(capsys, "db", "version", "--data", str(data))
    assert code == 0
    assert out.splitlines() == [
        f"this dosi: schema version {LATEST}",
        f"default tenant: schema version {LATEST}",
    ]


def test_upgrade_migrates_every_tenant_of_an_existing_data_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    asyncio.run(seed(data))
    set_version_sqlite(data, 1, drop_log=True)
    code, out, _ = dosi(capsys, "db", "version", "--data", str(data))
    assert "tenant t1: schema version 1 (upgrade pending: dosi db upgrade)" in out
    code, out, _ = dosi(capsys, "db", "upgrade", "--data", str(data))
    assert code == 0
    assert out.strip() == f"upgraded data dir '{data}' from schema version 1 to {LATEST}"
    assert asyncio.run(versions(data)) == {"": LATEST, "t1": LATEST}
    for path in sqlite_files(data):
        # Version 1 came before the log: no time recorded for it.
        assert migration_log(path) == [(1, False), *((v, True) for v in range(2, LATEST + 1))]
    code, out, _ = dosi(capsys, "db", "upgrade", "--data", str(data))
    assert "nothing to do" in out

    async def entity_still_there() -> None:
        store = await open_tool_store(data)
        try:
            assert await store.get("t1", ENTITY["id"]) == ENTITY
        finally:
            await store.close()

    asyncio.run(entity_still_there())


async def test_opening_a_store_runs_pending_migrations(tmp_path: Path) -> None:
    data = tmp_path / "data"
    await seed(data)
    set_version_sqlite(data, 1, drop_log=True)
    store = SqliteStore(data)
    await store.open()
    await store.close()
    assert await versions(data) == {"": LATEST, "t1": LATEST}


def test_a_newer_schema_is_refused_and_left_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    asyncio.run(seed(data))
    tenant_file = sqlite_files(data)[1]
    with closing(sqlite3.connect(tenant_file)) as conn, conn:
        conn.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    with closing(sqlite3.connect(data / "dosi.sqlite")) as conn, conn:
        conn.execute("UPDATE meta SET value='1' WHERE key='schema_version'")
    code, _, err = dosi(capsys, "db", "upgrade", "--data", str(data))
    assert_one_line_error(code, err, "tenant 't1'", "schema version 99", f"({LATEST})")
    # Nothing ran: not even the default tenant's pending migration.
    assert asyncio.run(versions(data)) == {"": 1, "t1": 99}
    code, out, _ = dosi(capsys, "db", "version", "--data", str(data))
    assert "tenant t1: schema version 99 (newer than this dosi)" in out
    code, _, err = dosi(capsys, "export", "--data", str(data), "-o", str(tmp_path / "x.ndjson"))
    assert_one_line_error(code, err, "schema version 99")
    assert not (tmp_path / "x.ndjson").exists()

    async def hub_refuses() -> None:
        store = SqliteStore(data)
        with pytest.raises(SchemaTooNew, match="schema version 99"):
            await store.open()

    asyncio.run(hub_refuses())
    code, _, err = dosi(capsys, "up", "--data", str(data), "--port", "0")
    assert_one_line_error(code, err, "schema version 99")


def test_version_of_missing_storage_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = dosi(capsys, "db", "version", "--data", str(tmp_path / "nothing"))
    assert_one_line_error(code, err, "no dosi data")
    assert not (tmp_path / "nothing").exists()


def test_data_and_db_are_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["db", "upgrade", "--data", "x", "--db", "postgresql://h/db"])
    assert exc.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


async def test_a_migration_runs_once_and_a_failing_one_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    await seed(data)
    ran: list[str] = []

    def add_column(conn: sqlite3.Connection) -> None:
        ran.append(conn.execute("PRAGMA database_list").fetchone()[2])
        conn.execute("ALTER TABLE entities ADD COLUMN note TEXT")

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE half_done(x)")
        raise RuntimeError("migration 4 failed")

    async def not_for_postgres(conn: object, schema: str) -> None:
        raise AssertionError("SQLite only")

    step3 = Migration(3, "a note column", add_column, not_for_postgres)
    monkeypatch.setattr(migrations, "MIGRATIONS", (*migrations.MIGRATIONS, step3))
    monkeypatch.setattr(migrations, "LATEST", 3)
    store = SqliteStore(data)
    await store.open()
    await store.close()
    assert len(ran) == 2  # once per tenant database
    again = SqliteStore(data)
    await again.open()
    await again.close()
    assert len(ran) == 2  # not again
    assert await versions(data) == {"": 3, "t1": 3}

    step4 = Migration(4, "broken", broken, not_for_postgres)
    monkeypatch.setattr(migrations, "MIGRATIONS", (*migrations.MIGRATIONS, step4))
    monkeypatch.setattr(migrations, "LATEST", 4)
    with pytest.raises(RuntimeError, match="migration 4 failed"):
        await SqliteStore(data).open()
    with closing(sqlite3.connect(data / "dosi.sqlite")) as conn:
        version = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        assert version == ("3",)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        assert "half_done" not in tables


# -- PostgreSQL -------------------------------------------------------------------------------
async def _pg_set_version(url: str, version: int, *, drop_log: bool) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        schemas = ["dosi", *[r[0] for r in await conn.fetch("SELECT schema FROM dosi.tenants")]]
        for schema in schemas:
            await conn.execute(
                f"UPDATE {schema}.meta SET value = $1 WHERE key = 'schema_version'", str(version)
            )
            if drop_log:
                await conn.execute(f"DROP TABLE {schema}.schema_migrations")
    finally:
        await conn.close()


def test_postgres_upgrade_fresh_existing_and_newer(
    postgres_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = dosi(capsys, "db", "upgrade", "--db", postgres_db)
    assert code == 0 and out.startswith(f"created schema version {LATEST} in database ")
    asyncio.run(seed(postgres_db))
    asyncio.run(_pg_set_version(postgres_db, 1, drop_log=True))
    assert asyncio.run(versions(postgres_db)) == {"": 1, "t1": 1}
    code, out, _ = dosi(capsys, "db", "upgrade", "--db", postgres_db)
    assert code == 0 and f"from schema version 1 to {LATEST}" in out
    assert asyncio.run(versions(postgres_db)) == {"": LATEST, "t1": LATEST}
    code, out, _ = dosi(capsys, "db", "upgrade", "--db", postgres_db)
    assert "nothing to do" in out
    asyncio.run(_pg_set_version(postgres_db, 42, drop_log=False))
    code, _, err = dosi(capsys, "db", "upgrade", "--db", postgres_db)
    assert_one_line_error(code, err, "schema version 42")
    assert asyncio.run(versions(postgres_db)) == {"": 42, "t1": 42}


def test_the_tools_leave_the_hubs_value_index_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Opening a store with another list of indexed attributes rebuilds the index; the
    tools run beside a hub started with --index-attribute and must not drop it."""
    data = tmp_path / "data"
    level = "https://example.org/level"

    async def hub_with_index() -> None:
        store = SqliteStore(data, indexed_attributes=frozenset({level}))
        await store.open()
        try:
            await store.apply("", [(ENTITY["id"], lambda current: ENTITY)])
        finally:
            await store.close()

    def indexed() -> list[tuple[str, float]]:
        with closing(sqlite3.connect(data / "dosi.sqlite")) as conn:
            return conn.execute("SELECT attr, num FROM attr_values").fetchall()

    asyncio.run(hub_with_index())
    assert indexed() == [(level, 3.0)]
    assert dosi(capsys, "db", "upgrade", "--data", str(data))[0] == 0
    out = tmp_path / "x.ndjson"
    assert dosi(capsys, "export", "--data", str(data), "-o", str(out))[0] == 0
    assert dosi(capsys, "import", "--data", str(data), str(out))[0] == 0
    assert indexed() == [(level, 3.0)]
