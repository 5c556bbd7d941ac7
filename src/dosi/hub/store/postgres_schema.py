"""PostgreSQL schema: one database schema per tenant, the same tables as SQLite.

The default tenant lives in the base schema (`dosi`), which also holds the
tenant registry and the hub's key/value rows; every other tenant gets a
schema of its own, named by a hash of the tenant so worker processes agree
on it without coordination. Tables and columns mirror sqlite_schema.py, so
history rows, journal records and statistics mean the same on both backends;
what differs is the spatial index (PostGIS geometries under a GiST index
instead of R*Trees) and the current entity documents, JSONB (so SQL can look
inside them). History, temporal records and the journal keep the orjson bytes
of store/history.py as bytea, like SQLite's blobs: they are only ever read
back whole, and skipping JSONB parsing makes history inserts ~40% cheaper.
Journal rows stay inline and uncompressed up to 8 KB (toast_tuple_target):
they are short-lived, and compressing them cost more than it saved.

DDL runs under a transaction-level advisory lock, so worker processes that
start together, or create the same tenant at once, never race on it.
"""

from __future__ import annotations

import hashlib
import re

import asyncpg

from dosi.hub.store.migrations import migrate_postgres
from dosi.hub.store.postgres_events_schema import events_ddl
from dosi.hub.store.rows import indexed_numbers, unpack

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,35}$")  # tenant schemas add 27: 63 in all


def lock_key(*parts: str) -> int:
    """A signed 64-bit advisory-lock key for a name (locks are database-wide)."""
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def check_identifier(name: str) -> str:
    """Schema names are built into SQL text: only plain lower-case identifiers pass."""
    if not _IDENT.match(name):
        raise ValueError(f"not a plain SQL identifier: {name!r}")
    return name


def tenant_schema(base: str, tenant: str) -> str:
    return f"{base}_t_{hashlib.sha256(tenant.encode()).hexdigest()[:24]}"


def tenant_ddl(s: str) -> tuple[str, ...]:
    """The tables of one tenant in schema `s` (see sqlite_schema.DDL for what each holds)."""
    return (
        f"CREATE SCHEMA IF NOT EXISTS {s}",
        f"CREATE TABLE IF NOT EXISTS {s}.meta(key text PRIMARY KEY, value text NOT NULL)",
        f"""CREATE TABLE IF NOT EXISTS {s}.entities(
            rid bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            id text NOT NULL UNIQUE,
            type text NOT NULL,
            doc jsonb NOT NULL)""",
        f"CREATE INDEX IF NOT EXISTS entities_type ON {s}.entities(type)",
        # Types beyond the first: most entities have one type, so this stays small.
        f"""CREATE TABLE IF NOT EXISTS {s}.extra_types(
            type text NOT NULL, rid bigint NOT NULL, PRIMARY KEY(type, rid))""",
        f"CREATE INDEX IF NOT EXISTS extra_types_rid ON {s}.extra_types(rid)",
        # One row per GeoProperty instance (n-th of the entity), the real geometry in
        # lon/lat; the GiST index answers bounding-box overlap (&&) and KNN order (<->).
        f"""CREATE TABLE IF NOT EXISTS {s}.geo(
            rid bigint NOT NULL, n integer NOT NULL, prop text NOT NULL,
            geom geometry(Geometry, 4326) NOT NULL, PRIMARY KEY(rid, n))""",
        f"CREATE INDEX IF NOT EXISTS geo_geom ON {s}.geo USING gist(geom)",
        f"""CREATE TABLE IF NOT EXISTS {s}.attr_stats(
            type text NOT NULL, attr text NOT NULL, attr_type text NOT NULL, n bigint NOT NULL,
            PRIMARY KEY(type, attr, attr_type))""",
        f"""CREATE TABLE IF NOT EXISTS {s}.attr_values(
            attr text NOT NULL, num double precision NOT NULL, rid bigint NOT NULL)""",
        f"CREATE INDEX IF NOT EXISTS attr_values_num ON {s}.attr_values(attr, num)",
        f"CREATE INDEX IF NOT EXISTS attr_values_rid ON {s}.attr_values(rid)",
        f"""CREATE TABLE IF NOT EXISTS {s}.history(
            seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            entity bigint NOT NULL,
            attr bigint NOT NULL,
            ts bigint NOT NULL,
            recorded bigint NOT NULL,
            num double precision,
            doc bytea NOT NULL)""",
        f"CREATE INDEX IF NOT EXISTS history_series ON {s}.history(entity, attr, ts, num)",
        f"""CREATE TABLE IF NOT EXISTS {s}.history_attrs(
            key bigint PRIMARY KEY, name text NOT NULL)""",
        f"""CREATE TABLE IF NOT EXISTS {s}.temporal_entities(
            key bigint PRIMARY KEY, id text NOT NULL UNIQUE, type text NOT NULL,
            doc bytea NOT NULL)""",
        f"""CREATE TABLE IF NOT EXISTS {s}.temporal_types(
            type text NOT NULL, key bigint NOT NULL, PRIMARY KEY(type, key))""",
        f"CREATE INDEX IF NOT EXISTS temporal_types_key ON {s}.temporal_types(key)",
        # Raw instances retention folded away, per entity, attribute and observation hour
        # (postgres_temporal.py): every aggregation method but distinctCount.
        f"""CREATE TABLE IF NOT EXISTS {s}.history_hourly(
            entity bigint NOT NULL, attr bigint NOT NULL, hour bigint NOT NULL,
            n bigint NOT NULL, n_num bigint NOT NULL, total double precision NOT NULL,
            sumsq double precision NOT NULL, low double precision, high double precision,
            PRIMARY KEY(entity, attr, hour))""",
        f"CREATE INDEX IF NOT EXISTS history_hourly_hour ON {s}.history_hourly(hour)",
        # Journal seqs come from a sequence that is only advanced under the tenant's
        # journal lock (see postgres_plan.flush), so seq order is commit order.
        f"CREATE SEQUENCE IF NOT EXISTS {s}.journal_seq",
        f"""CREATE TABLE IF NOT EXISTS {s}.journal(
            seq bigint PRIMARY KEY DEFAULT nextval('{s}.journal_seq'),
            at bigint NOT NULL,
            doc bytea NOT NULL) WITH (toast_tuple_target = 8160)""",
        *events_ddl(s),  # subscriptions and the notification outbox
    )


def base_ddl(s: str) -> tuple[str, ...]:
    """What only the base schema holds: the tenant registry and hub metadata."""
    return (
        f"""CREATE TABLE IF NOT EXISTS {s}.tenants(
            name text PRIMARY KEY, schema text NOT NULL UNIQUE)""",
        f"""CREATE TABLE IF NOT EXISTS {s}.kv(
            ns text NOT NULL, key text NOT NULL, value bytea NOT NULL, PRIMARY KEY(ns, key))""",
    )


async def ensure_postgis(conn: asyncpg.Connection) -> str:
    """Create PostGIS if it is missing; the schema that holds it (for search_path)."""
    found = await _postgis_schema(conn)
    if found is None:
        try:
            await conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        except asyncpg.PostgresError as exc:
            raise RuntimeError(
                "PostGIS is not installed in this database and could not be created "
                f"({exc}); run CREATE EXTENSION postgis as a superuser"
            ) from None
        found = await _postgis_schema(conn)
    assert found is not None
    return found


async def _postgis_schema(conn: asyncpg.Connection) -> str | None:
    value = await conn.fetchval(
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
        "WHERE e.extname = 'postgis'"
    )
    return str(value) if value is not None else None


async def create_tenant_schema(
    conn: asyncpg.Connection, schema: str, indexed: frozenset[str], *, base: bool = False
) -> None:
    """Tables of one tenant (and of the base schema), then the value index; in one
    transaction under the DDL lock."""
    check_identifier(schema)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", lock_key("dosi-ddl"))
        # New schemas get these tables; older ones are migrated first (store/migrations.py).
        await migrate_postgres(
            conn, schema, (*tenant_ddl(schema), *(base_ddl(schema) if base else ()))
        )
        await sync_value_index(conn, schema, indexed)


async def sync_value_index(conn: asyncpg.Connection, schema: str, indexed: frozenset[str]) -> None:
    """Rebuild the attribute-value index when the operator's choice of attributes changed
    (call inside a transaction)."""
    wanted = ",".join(sorted(indexed))
    current = await conn.fetchval(f"SELECT value FROM {schema}.meta WHERE key='indexed_attributes'")
    if (current or "") == wanted:
        return
    await conn.execute(f"DELETE FROM {schema}.attr_values")
    if indexed:
        async for rid, doc in conn.cursor(f"SELECT rid, doc FROM {schema}.entities"):
            rows = indexed_numbers(unpack(doc), indexed)
            if rows:
                await conn.executemany(
                    f"INSERT INTO {schema}.attr_values(attr, num, rid) VALUES($1, $2, $3)",
                    [(a, n, rid) for a, n in rows],
                )
    await conn.execute(
        f"INSERT INTO {schema}.meta(key, value) VALUES('indexed_attributes', $1) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        wanted,
    )
