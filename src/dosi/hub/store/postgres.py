"""The PostgreSQL + PostGIS backend: the `Store` of a hub at city scale.

Same contract as the SQLite backend (store/base.py), so the same behaviour
tests pass on both; tables and rows mirror it (postgres_schema.py). Tenants are
PostgreSQL schemas. Writes are queued to a few writer tasks, each of which
takes every queued apply() of a tenant into one transaction (group commit,
postgres_writer.py): it locks the rows of the ids involved (`SELECT ... FOR
UPDATE`, in id order), runs the mutations in Python (postgres_write.py), and
writes the plan (postgres_plan.py). Two
hubs, or two worker processes, that create the same id at once meet on the
unique index; the loser's transaction is rerun from the start (mutations are
pure), as are deadlock and serialisation failures.

Processes learn of each other's commits through LISTEN/NOTIFY: a transaction
that wrote journal rows sends `NOTIFY <schema>_journal, '<tenant>'`, which
PostgreSQL delivers at commit; every store LISTENs on a connection of its own
and calls its commit listeners for notifications from other sessions, so
journal followers wake at once instead of waiting for their next poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg

from dosi.hub.store.base import (
    DEFAULT_TENANT,
    AttributeStat,
    JournalEntry,
    Mutation,
    Outcome,
    Page,
    Selection,
)
from dosi.hub.store.history import journal_entry
from dosi.hub.store.postgres_events import PostgresEvents
from dosi.hub.store.postgres_lead import LeadLocks
from dosi.hub.store.postgres_plan import journal_channel
from dosi.hub.store.postgres_query import select
from dosi.hub.store.postgres_schema import (
    check_identifier,
    create_tenant_schema,
    ensure_postgis,
    lock_key,
    tenant_schema,
)
from dosi.hub.store.postgres_temporal import PostgresTemporal
from dosi.hub.store.postgres_write import apply_ops
from dosi.hub.store.postgres_writer import GroupWriter, transact
from dosi.hub.store.rows import unpack
from dosi.ngsi.errors import BadRequestData, InternalError, NonexistentTenant
from dosi.ngsi.model import Entity

if TYPE_CHECKING:
    from dosi.hub.store.events import EventStore
    from dosi.hub.store.temporal import TemporalStore

T = TypeVar("T")
log = logging.getLogger("dosi.hub.store")
_TENANT_NAME = re.compile(r"^[A-Za-z0-9_.:/\-]{1,128}$")


class PostgresStore:
    """`Store` on a PostgreSQL database with PostGIS (`url`: postgresql://user@host/db)."""

    def __init__(
        self,
        url: str,
        *,
        indexed_attributes: frozenset[str] = frozenset(),
        history: bool = True,
        schema: str = "dosi",
        pool_min: int = 2,
        pool_max: int = 10,
        writers: int = 2,
    ) -> None:
        self._url = url
        self._indexed = indexed_attributes
        self._history = history
        self._base = check_identifier(schema)
        self._pool_min = pool_min
        self._pool_max = max(pool_max, pool_min, writers + 1)
        self._pool: asyncpg.Pool | None = None
        self._postgis = "public"
        self._schemas: dict[str, str] = {DEFAULT_TENANT: self._base}
        self._writer = GroupWriter(self._write_ops, writers)
        self._listen: asyncpg.Connection | None = None
        self._own_pids: set[int] = set()
        self._commit_listeners: list[Callable[[str], None]] = []
        self._lead = LeadLocks(url, self._base)
        self._temporal = PostgresTemporal(self)
        self._events = PostgresEvents(self)

    @property
    def temporal(self) -> TemporalStore:
        return self._temporal

    @property
    def events(self) -> EventStore:
        return self._events

    # -- lifecycle -------------------------------------------------------
    async def open(self) -> None:
        boot = await asyncpg.connect(self._url)
        try:
            self._postgis = await ensure_postgis(boot)
            await _register_codecs(boot, self._postgis)
            await create_tenant_schema(boot, self._base, self._indexed, base=True)
            for name, schema in await boot.fetch(f"SELECT name, schema FROM {self._base}.tenants"):
                # Brings each tenant's tables and value index up to date.
                await create_tenant_schema(boot, check_identifier(schema), self._indexed)
                self._schemas[name] = schema
        finally:
            await boot.close()
        self._pool = await asyncpg.create_pool(
            self._url,
            min_size=self._pool_min,
            max_size=self._pool_max,
            init=self._init_connection,
            # Sessions keep no state of ours (no SET, LISTEN or session locks on pooled
            # connections), so the reset query asyncpg runs on every release is skipped.
            reset=_keep_session,
            server_settings={"application_name": "dosi", "jit": "off"},
        )
        self._listen = await asyncpg.connect(self._url)
        await self._listen.add_listener(journal_channel(self._base), self._notified)
        self._listen.add_termination_listener(_listen_lost)
        self._writer.start()

    async def _init_connection(self, conn: asyncpg.Connection) -> None:
        await _register_codecs(conn, self._postgis)
        self._own_pids.add(conn.get_server_pid())

    async def close(self) -> None:
        """Finish every queued write, then close (graceful shutdown loses nothing)."""
        await self._writer.stop()
        if self._listen is not None:
            listen, self._listen = self._listen, None
            listen.remove_termination_listener(_listen_lost)
            with contextlib.suppress(Exception):
                await listen.close(timeout=5)
        await asyncio.to_thread(self._lead.close)
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise InternalError("the store is closed")
        return self._pool

    # -- commits of this process and of others ---------------------------------
    def add_commit_listener(self, listener: Callable[[str], None]) -> None:
        self._commit_listeners.append(listener)

    def _committed(self, tenant: str) -> None:
        for listener in self._commit_listeners:
            try:
                listener(tenant)
            except Exception:  # after COMMIT nothing may fail the write
                log.exception("commit listener failed")

    def _notified(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        if pid not in self._own_pids:  # our own commits were announced already
            self._committed(payload)

    def try_lead(self, role: str) -> bool:
        return self._lead.try_lead(role)

    # -- tenants ---------------------------------------------------------
    async def tenant_exists(self, tenant: str) -> bool:
        return await self._schema(tenant, must_exist=False) is not None

    async def tenants(self) -> list[str]:
        rows = await self.pool.fetch(f"SELECT name, schema FROM {self._base}.tenants")
        self._schemas.update((name, schema) for name, schema in rows)
        return sorted(name for name, _ in rows if name != DEFAULT_TENANT)

    async def _schema(self, tenant: str, *, must_exist: bool = True) -> str | None:
        schema = self._schemas.get(tenant)
        if schema is None:
            # Another process may have created it since we last looked.
            schema = await self.pool.fetchval(
                f"SELECT schema FROM {self._base}.tenants WHERE name = $1", tenant
            )
            if schema is not None:
                self._schemas[tenant] = schema
            elif must_exist:
                raise NonexistentTenant(f"tenant {tenant!r} does not exist")
        return schema

    async def schema_of(self, tenant: str) -> str:
        """The schema of an existing tenant (NonexistentTenant otherwise)."""
        schema = await self._schema(tenant)
        assert schema is not None
        return schema

    async def _writable_schema(self, tenant: str) -> str:
        """The tenant's schema, created on its first write."""
        schema = await self._schema(tenant, must_exist=False)
        if schema is not None:
            return schema
        if not _TENANT_NAME.match(tenant):
            raise BadRequestData(f"tenant name {tenant!r} is not allowed")
        schema = tenant_schema(self._base, tenant)
        async with self.pool.acquire() as conn:
            await create_tenant_schema(conn, schema, self._indexed)
            await conn.execute(
                f"INSERT INTO {self._base}.tenants(name, schema) VALUES($1, $2) "
                "ON CONFLICT (name) DO NOTHING",
                tenant,
                schema,
            )
        self._schemas[tenant] = schema
        return schema

    # -- writes ----------------------------------------------------------
    async def apply(self, tenant: str, ops: Sequence[tuple[str, Mutation]]) -> list[Outcome]:
        if not ops:
            return []
        return await self._writer.submit(tenant, ops)

    async def _write_ops(
        self, tenant: str, ops: Sequence[tuple[str, Mutation]], strict: bool
    ) -> list[Outcome]:
        schema = await self._writable_schema(tenant)
        channel = journal_channel(self._base)

        async def run(conn: asyncpg.Connection) -> list[Outcome]:
            return await apply_ops(
                conn,
                schema,
                ops,
                tenant,
                channel,
                indexed=self._indexed,
                history=self._history,
                strict=strict,
            )

        outcomes = await transact(self.pool, run)
        self._committed(tenant)
        return outcomes

    async def run_write(
        self, tenant: str, fn: Callable[[asyncpg.Connection, str], Awaitable[T]]
    ) -> T:
        """Run `fn(conn, schema)` in a transaction of its own (the tenant created if new),
        rerun on conflicts, so it must be safe to repeat; resolves after the COMMIT.

        For the PostgreSQL parts of other features (history, subscriptions).
        """
        schema = await self._writable_schema(tenant)
        result = await transact(self.pool, lambda conn: fn(conn, schema))
        self._committed(tenant)
        return result

    async def run_read(
        self, tenant: str, fn: Callable[[asyncpg.Connection, str], Awaitable[T]]
    ) -> T:
        """Run `fn(conn, schema)` on a pooled connection (NonexistentTenant if unknown)."""
        schema = await self.schema_of(tenant)
        async with self.pool.acquire() as conn:
            return await fn(conn, schema)

    # -- reads -----------------------------------------------------------
    async def get(self, tenant: str, entity_id: str) -> Entity | None:
        schema = await self.schema_of(tenant)
        doc = await self.pool.fetchval(
            f"SELECT doc FROM {schema}.entities WHERE id = $1", entity_id
        )
        return unpack(doc) if doc is not None else None

    async def select(self, tenant: str, selection: Selection) -> Page:
        schema = await self.schema_of(tenant)
        return await select(self.pool, schema, selection, self._indexed)

    async def attribute_stats(self, tenant: str) -> list[AttributeStat]:
        schema = await self.schema_of(tenant)
        rows = await self.pool.fetch(
            f"SELECT type, attr, attr_type, n FROM {schema}.attr_stats WHERE n > 0"
        )
        return [AttributeStat(t, a, at, int(n)) for t, a, at, n in rows]

    # -- journal ---------------------------------------------------------
    async def journal_read(self, tenant: str, after: int, limit: int) -> list[JournalEntry]:
        schema = await self.schema_of(tenant)
        rows = await self.pool.fetch(
            f"SELECT seq, at, doc FROM {schema}.journal WHERE seq > $1 ORDER BY seq LIMIT $2",
            after,
            limit,
        )
        return [journal_entry(seq, at, doc) for seq, at, doc in rows]

    async def journal_last(self, tenant: str) -> int:
        schema = await self.schema_of(tenant)
        async with self.pool.acquire() as conn:
            last = await conn.fetchval(f"SELECT max(seq) FROM {schema}.journal")
            if last is not None:
                return int(last)
            async with conn.transaction():
                # Pruned empty: the sequence remembers the last seq handed out; wait for
                # the transaction that took it (it holds the journal lock) to finish.
                await conn.execute(
                    "SELECT pg_advisory_xact_lock_shared($1)", lock_key("dosi-journal", schema)
                )
                value = await conn.fetchval(
                    f"SELECT CASE WHEN is_called THEN last_value ELSE 0 END "
                    f"FROM {schema}.journal_seq"
                )
            return int(value)

    async def journal_prune(self, tenant: str, upto: int, before_ms: int) -> int:
        schema = await self.schema_of(tenant)
        status = await self.pool.execute(
            f"DELETE FROM {schema}.journal WHERE seq <= $1 AND at < $2", upto, before_ms
        )
        return int(status.split()[-1])

    # -- key/value for hub metadata (hosted contexts, ...) ----------------
    async def kv_put(self, namespace: str, key: str, value: bytes) -> None:
        await self.pool.execute(
            f"INSERT INTO {self._base}.kv(ns, key, value) VALUES($1, $2, $3) "
            "ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value",
            namespace,
            key,
            value,
        )

    async def kv_delete(self, namespace: str, key: str) -> None:
        await self.pool.execute(
            f"DELETE FROM {self._base}.kv WHERE ns = $1 AND key = $2", namespace, key
        )

    async def kv_items(self, namespace: str) -> list[tuple[str, bytes]]:
        rows = await self.pool.fetch(
            f"SELECT key, value FROM {self._base}.kv WHERE ns = $1 ORDER BY key", namespace
        )
        return [(str(k), bytes(v)) for k, v in rows]


async def _register_codecs(conn: asyncpg.Connection, postgis: str) -> None:
    """jsonb and geometry travel as bytes: the store packs and unpacks them itself
    (orjson documents, EWKB geometries), so asyncpg never parses them."""
    await conn.set_type_codec(
        "jsonb",
        schema="pg_catalog",
        encoder=_jsonb_encode,
        decoder=_jsonb_decode,
        format="binary",
    )
    await conn.set_type_codec(
        "geometry", schema=postgis, encoder=bytes, decoder=bytes, format="binary"
    )


def _listen_lost(conn: Any) -> None:
    log.warning("lost the LISTEN connection: other processes' commits are now found by polling")


async def _keep_session(conn: asyncpg.Connection) -> None:
    return None


def _jsonb_encode(doc: bytes) -> bytes:
    return b"\x01" + doc  # jsonb's binary format: a version byte, then the JSON text


def _jsonb_decode(data: bytes) -> bytes:
    return data[1:]
