"""TemporalStore on PostgreSQL: temporal-API writes, retention, and reads.

The mirror of sqlite_temporal.py: every PostgreSQL write transaction already
records history (postgres_plan); this adds what the temporal API writes itself
(instances added, corrected or deleted), the hourly rollup retention folds old
raw instances into (table `history_hourly`, created with the tenant's schema
in postgres_schema.py), and the queries (postgres_temporal_read.py). Writes
run through `PostgresStore.run_write`, which may rerun them on a conflict,
so each one reads what it changes inside its own transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import asyncpg
import orjson

from dosi.hub.store.history import (
    added_rows,
    attr_series_key,
    merged_record,
    numeric,
    series_key,
    to_ms,
)
from dosi.hub.store.postgres_plan import append_rows, has_nul, unnest_insert
from dosi.hub.store.postgres_temporal_read import run_query
from dosi.hub.store.temporal import HOUR_MS, HistorySize, TemporalPage, TemporalSelection
from dosi.ngsi.errors import BadRequestData, ResourceNotFound
from dosi.ngsi.model import Instance
from dosi.ngsi.values import now_iso

if TYPE_CHECKING:
    from dosi.hub.store.postgres import PostgresStore

_FLOOR_HOUR = f"ts - (((ts % {HOUR_MS}) + {HOUR_MS}) % {HOUR_MS})"
# One statement, so one snapshot: the rows folded are exactly the rows deleted, even
# while other transactions commit (their seqs are not in commit order). The chunk is
# the oldest `limit` rows by seq, cut before the first one recorded since `before`.
_ROLL_UP = """
    WITH chunk AS (SELECT seq, recorded FROM {s}.history ORDER BY seq LIMIT $1),
    cut AS (SELECT max(seq) AS last FROM chunk WHERE seq < coalesce(
        (SELECT min(seq) FROM chunk WHERE recorded >= $2), 9223372036854775807)),
    gone AS (DELETE FROM {s}.history h USING cut WHERE h.seq <= cut.last
             RETURNING h.entity, h.attr, h.ts, h.num),
    rolled AS (
        INSERT INTO {s}.history_hourly AS r(entity, attr, hour, n, n_num, total, sumsq, low, high)
        SELECT entity, attr, {floor} AS hour, count(*), count(num), coalesce(sum(num), 0),
               coalesce(sum(num * num), 0), min(num), max(num)
        FROM gone GROUP BY entity, attr, hour
        ON CONFLICT (entity, attr, hour) DO UPDATE SET
            n = r.n + excluded.n, n_num = r.n_num + excluded.n_num,
            total = r.total + excluded.total, sumsq = r.sumsq + excluded.sumsq,
            low = least(r.low, excluded.low), high = greatest(r.high, excluded.high))
    SELECT count(*) FROM gone"""


class PostgresTemporal:
    def __init__(self, store: PostgresStore) -> None:
        self._store = store
        self._names: dict[int, str] = {}  # attribute IRIs by key, shared by the tenants

    # -- reads ---------------------------------------------------------------------------
    async def query(self, tenant: str, selection: TemporalSelection) -> TemporalPage:
        return await self._store.run_read(
            tenant, lambda conn, s: run_query(conn, s, selection, self._names)
        )

    async def size(self, tenant: str) -> HistorySize:
        async def run(conn: asyncpg.Connection, s: str) -> HistorySize:
            row = await conn.fetchrow(
                f"SELECT (SELECT count(*) FROM {s}.history), "
                f"(SELECT count(*) FROM {s}.history_hourly)"
            )
            assert row is not None
            return HistorySize(int(row[0]), int(row[1]))

        return await self._store.run_read(tenant, run)

    # -- temporal-API writes ---------------------------------------------------------------
    async def upsert(
        self,
        tenant: str,
        entity_id: str,
        types: Sequence[str],
        scope: Sequence[str] | None,
        instances: Sequence[tuple[str, Instance]],
        *,
        must_exist: bool = False,
    ) -> bool:
        async def run(conn: asyncpg.Connection, s: str) -> bool:
            now = now_iso()
            key = series_key(entity_id)
            record = await _record(conn, s, key, entity_id)
            record, created = merged_record(
                record, entity_id, types, scope, must_exist=must_exist, now=now
            )
            await _save_record(conn, s, key, record)
            names, rows = added_rows(key, instances, to_ms(now), _dumps)
            if names:
                await unnest_insert(
                    conn, s, "history_attrs(key, name)", ("bigint", "text"),
                    sorted(names.items()), ignore=True,
                )  # fmt: skip
            if rows:
                await append_rows(
                    conn, s, "history(entity, attr, ts, recorded, num, doc)",
                    ("bigint", "bigint", "bigint", "bigint", "float8", "bytea"), rows,
                )  # fmt: skip
            return created

        return await self._store.run_write(tenant, run)

    async def delete_entity(self, tenant: str, entity_id: str) -> None:
        async def run(conn: asyncpg.Connection, s: str) -> None:
            key = await _existing(conn, s, entity_id)
            for table, column in (
                ("history", "entity"),
                ("history_hourly", "entity"),
                ("temporal_types", "key"),
                ("temporal_entities", "key"),
            ):
                await conn.execute(f"DELETE FROM {s}.{table} WHERE {column} = $1", key)

        await self._store.run_write(tenant, run)

    async def delete_attribute(
        self, tenant: str, entity_id: str, attr: str, *, dataset_id: str | None, delete_all: bool
    ) -> None:
        async def run(conn: asyncpg.Connection, s: str) -> None:
            key = await _existing(conn, s, entity_id)
            attr_key = attr_series_key(attr)
            if delete_all:
                gone = 0
                for table in ("history", "history_hourly"):
                    status = await conn.execute(
                        f"DELETE FROM {s}.{table} WHERE entity = $1 AND attr = $2", key, attr_key
                    )
                    gone += _rowcount(status)
            else:
                status = await conn.execute(
                    f"DELETE FROM {s}.history WHERE entity = $1 AND attr = $2 AND "
                    "(convert_from(doc, 'UTF8')::jsonb ->> 'datasetId') "
                    "IS NOT DISTINCT FROM $3::text",
                    key,
                    attr_key,
                    dataset_id,
                )
                gone = _rowcount(status)
            if not gone:
                which = f" with datasetId {dataset_id}" if dataset_id else ""
                raise ResourceNotFound(f"entity {entity_id} has no instances of {attr}{which}")
            await _touch(conn, s, key)

        await self._store.run_write(tenant, run)

    async def update_instance(
        self,
        tenant: str,
        entity_id: str,
        attr: str,
        seq: int,
        patch: Callable[[Instance], Instance],
    ) -> None:
        async def run(conn: asyncpg.Connection, s: str) -> None:
            key = await _existing(conn, s, entity_id)
            row = await conn.fetchrow(
                f"SELECT ts, doc FROM {s}.history WHERE seq = $1 AND entity = $2 AND attr = $3 "
                "FOR UPDATE",
                seq,
                key,
                attr_series_key(attr),
            )
            if row is None:
                raise ResourceNotFound(f"{attr} of {entity_id} has no such instance")
            old = orjson.loads(row[1])
            if "deletedAt" in old:
                raise BadRequestData("a deletion record cannot be changed")
            new = patch(old)
            observed = new.get("observedAt")
            ts = to_ms(observed) if observed else int(row[0])
            await conn.execute(
                f"UPDATE {s}.history SET ts = $1, num = $2, doc = $3 WHERE seq = $4",
                ts,
                numeric(new),
                _dumps(new),
                seq,
            )
            await _touch(conn, s, key)

        await self._store.run_write(tenant, run)

    async def delete_instance(self, tenant: str, entity_id: str, attr: str, seq: int) -> None:
        async def run(conn: asyncpg.Connection, s: str) -> None:
            key = await _existing(conn, s, entity_id)
            status = await conn.execute(
                f"DELETE FROM {s}.history WHERE seq = $1 AND entity = $2 AND attr = $3",
                seq,
                key,
                attr_series_key(attr),
            )
            if not _rowcount(status):
                raise ResourceNotFound(f"{attr} of {entity_id} has no such instance")
            await _touch(conn, s, key)

        await self._store.run_write(tenant, run)

    # -- retention -----------------------------------------------------------------------
    async def roll_up(self, tenant: str, before_ms: int, limit: int) -> int:
        async def run(conn: asyncpg.Connection, s: str) -> int:
            sql = _ROLL_UP.format(s=s, floor=_FLOOR_HOUR)
            return int(await conn.fetchval(sql, limit, before_ms))

        return await self._store.run_write(tenant, run)

    async def prune_rollup(self, tenant: str, before_ms: int, limit: int) -> int:
        async def run(conn: asyncpg.Connection, s: str) -> int:
            status = await conn.execute(
                f"DELETE FROM {s}.history_hourly WHERE (entity, attr, hour) IN "
                f"(SELECT entity, attr, hour FROM {s}.history_hourly WHERE hour < $1 LIMIT $2)",
                before_ms,
                limit,
            )
            return _rowcount(status)

        return await self._store.run_write(tenant, run)


def _dumps(inst: Instance) -> bytes:
    """An instance document; refused if it holds U+0000, which PostgreSQL's jsonb (used to
    look inside documents) cannot read, as the current-state write path refuses it."""
    doc = orjson.dumps(inst)
    if has_nul(doc):
        raise BadRequestData("text containing the NUL character (U+0000) cannot be stored")
    return doc


def _rowcount(status: str) -> int:
    return int(status.split()[-1])


async def _record(
    conn: asyncpg.Connection, s: str, key: int, entity_id: str
) -> dict[str, Any] | None:
    """The entity's temporal record, its row locked until the transaction ends."""
    doc = await conn.fetchval(
        f"SELECT doc FROM {s}.temporal_entities WHERE key = $1 FOR UPDATE", key
    )
    if doc is None:
        return None
    record: dict[str, Any] = orjson.loads(doc)
    return record if record.get("id") == entity_id else None


async def _existing(conn: asyncpg.Connection, s: str, entity_id: str) -> int:
    key = series_key(entity_id)
    if await _record(conn, s, key, entity_id) is None:
        raise ResourceNotFound(f"entity {entity_id} has no temporal representation")
    return key


async def _save_record(conn: asyncpg.Connection, s: str, key: int, record: dict[str, Any]) -> None:
    await conn.execute(
        f"INSERT INTO {s}.temporal_entities(key, id, type, doc) VALUES($1, $2, $3, $4) "
        "ON CONFLICT (key) DO UPDATE SET type = excluded.type, doc = excluded.doc",
        key,
        record["id"],
        record["type"][0],
        orjson.dumps(record),
    )
    await conn.execute(
        f"INSERT INTO {s}.temporal_types(type, key) SELECT unnest($1::text[]), $2::bigint "
        "ON CONFLICT DO NOTHING",
        record["type"],
        key,
    )


async def _touch(conn: asyncpg.Connection, s: str, key: int) -> None:
    doc = await conn.fetchval(f"SELECT doc FROM {s}.temporal_entities WHERE key = $1", key)
    record = orjson.loads(doc)
    record["modifiedAt"] = now_iso()
    await conn.execute(
        f"UPDATE {s}.temporal_entities SET doc = $1 WHERE key = $2", orjson.dumps(record), key
    )
