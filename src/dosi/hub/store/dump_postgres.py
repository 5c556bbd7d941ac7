"""Dump access on the PostgreSQL backend (see dump.py): keyset pages and history writes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

import asyncpg
import orjson

from dosi.hub.store.dump import Hourly, RawInstance, Record, Series, merged_record, missing
from dosi.hub.store.history import attr_series_key, numeric, series_key
from dosi.hub.store.rows import unpack
from dosi.ngsi.model import Entity

if TYPE_CHECKING:
    from dosi.hub.store.postgres import PostgresStore


class PostgresDump:
    def __init__(self, store: PostgresStore) -> None:
        self._store = store

    async def counts(self, tenant: str) -> tuple[int, int]:
        async def run(conn: asyncpg.Connection, s: str) -> tuple[int, int]:
            entities = await conn.fetchval(f"SELECT count(*) FROM {s}.entities")
            records = await conn.fetchval(f"SELECT count(*) FROM {s}.temporal_entities")
            return int(entities), int(records)

        return await self._store.run_read(tenant, run)

    async def entities(self, tenant: str, after: int, limit: int) -> list[tuple[int, Entity]]:
        async def run(conn: asyncpg.Connection, s: str) -> list[tuple[int, Entity]]:
            rows = await conn.fetch(
                f"SELECT rid, doc FROM {s}.entities WHERE rid > $1 ORDER BY rid LIMIT $2",
                after,
                limit,
            )
            return [(int(rid), unpack(doc)) for rid, doc in rows]

        return await self._store.run_read(tenant, run)

    async def records(self, tenant: str, after: int, limit: int) -> list[tuple[int, Record]]:
        async def run(conn: asyncpg.Connection, s: str) -> list[tuple[int, Record]]:
            rows = await conn.fetch(
                f"SELECT key, doc FROM {s}.temporal_entities WHERE key > $1 ORDER BY key LIMIT $2",
                after,
                limit,
            )
            return [(int(key), orjson.loads(doc)) for key, doc in rows]

        return await self._store.run_read(tenant, run)

    async def series(self, tenant: str, entity: int) -> list[Series]:
        async def run(conn: asyncpg.Connection, s: str) -> list[Series]:
            # Skip through the (entity, attr, ...) indexes: one seek per attribute.
            rows = await conn.fetch(
                f"""WITH RECURSIVE raw(attr) AS (
                      (SELECT attr FROM {s}.history WHERE entity = $1 ORDER BY attr LIMIT 1)
                      UNION ALL
                      SELECT (SELECT h.attr FROM {s}.history h
                              WHERE h.entity = $1 AND h.attr > raw.attr ORDER BY h.attr LIMIT 1)
                      FROM raw WHERE raw.attr IS NOT NULL)
                    SELECT k.attr, n.name, bool_or(k.raw), bool_or(NOT k.raw) FROM (
                      SELECT attr, true AS raw FROM raw WHERE attr IS NOT NULL
                      UNION ALL SELECT DISTINCT attr, false FROM {s}.history_hourly
                      WHERE entity = $1) k
                    JOIN {s}.history_attrs n ON n.key = k.attr
                    GROUP BY k.attr, n.name ORDER BY k.attr""",
                entity,
            )
            return [Series(int(a), str(name), raw, hourly) for a, name, raw, hourly in rows]

        return await self._store.run_read(tenant, run)

    async def instances(
        self, tenant: str, entity: int, attr: int, after: tuple[int, int], limit: int
    ) -> list[tuple[int, int, RawInstance]]:
        async def run(conn: asyncpg.Connection, s: str) -> list[tuple[int, int, RawInstance]]:
            rows = await conn.fetch(
                f"SELECT ts, seq, recorded, doc FROM {s}.history WHERE entity = $1 AND attr = $2 "
                "AND (ts, seq) > ($3, $4) ORDER BY ts, seq LIMIT $5",
                entity,
                attr,
                after[0],
                after[1],
                limit,
            )
            return [
                (int(ts), int(seq), RawInstance(int(ts), int(recorded), bytes(doc)))
                for ts, seq, recorded, doc in rows
            ]

        return await self._store.run_read(tenant, run)

    async def hourly(
        self, tenant: str, entity: int, attr: int, after: int, limit: int
    ) -> list[Hourly]:
        async def run(conn: asyncpg.Connection, s: str) -> list[Hourly]:
            rows = await conn.fetch(
                f"SELECT hour, n, n_num, total, sumsq, low, high FROM {s}.history_hourly "
                "WHERE entity = $1 AND attr = $2 AND hour > $3 ORDER BY hour LIMIT $4",
                entity,
                attr,
                after,
                limit,
            )
            return [Hourly(*row) for row in rows]

        return await self._store.run_read(tenant, run)

    async def write_history(
        self,
        tenant: str,
        record: Record,
        attr: str | None,
        instances: Sequence[RawInstance],
        hourly: Sequence[Hourly],
    ) -> int:
        key = series_key(record["id"])
        attr_key = attr_series_key(attr) if attr is not None else 0

        # Rerun from the start on a conflict (run_write): it reads what it changes.
        async def run(conn: asyncpg.Connection, s: str) -> int:
            doc = await conn.fetchval(
                f"SELECT doc FROM {s}.temporal_entities WHERE key = $1 FOR UPDATE", key
            )
            saved = merged_record(record, orjson.loads(doc) if doc is not None else None)
            await conn.execute(
                f"INSERT INTO {s}.temporal_entities(key, id, type, doc) VALUES($1, $2, $3, $4) "
                "ON CONFLICT (key) DO UPDATE SET type = excluded.type, doc = excluded.doc",
                key,
                saved["id"],
                saved["type"][0],
                orjson.dumps(saved),
            )
            await conn.execute(
                f"INSERT INTO {s}.temporal_types(type, key) SELECT unnest($1::text[]), $2 "
                "ON CONFLICT DO NOTHING",
                saved["type"],
                key,
            )
            if attr is None:
                return 0
            await conn.execute(
                f"INSERT INTO {s}.history_attrs(key, name) VALUES($1, $2) ON CONFLICT DO NOTHING",
                attr_key,
                attr,
            )
            stored = await conn.fetch(
                f"SELECT ts, recorded, doc FROM {s}.history WHERE entity = $1 AND attr = $2 "
                "AND ts = ANY($3::bigint[])",
                key,
                attr_key,
                sorted({i.ts for i in instances}),
            )
            new = missing(instances, Counter((int(t), int(r), bytes(d)) for t, r, d in stored))
            if new:
                await conn.execute(
                    f"INSERT INTO {s}.history(entity, attr, ts, recorded, num, doc) "
                    "SELECT $1, $2, * FROM unnest($3::bigint[], $4::bigint[], "
                    "$5::float8[], $6::bytea[])",
                    key,
                    attr_key,
                    [i.ts for i in new],
                    [i.recorded for i in new],
                    [numeric(orjson.loads(i.doc)) for i in new],
                    [i.doc for i in new],
                )
            if hourly:
                await conn.executemany(
                    f"INSERT INTO {s}.history_hourly"
                    "(entity, attr, hour, n, n_num, total, sumsq, low, high) "
                    "VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9) "
                    "ON CONFLICT (entity, attr, hour) DO UPDATE SET n = excluded.n, "
                    "n_num = excluded.n_num, total = excluded.total, sumsq = excluded.sumsq, "
                    "low = excluded.low, high = excluded.high",
                    [
                        (key, attr_key, h.hour, h.n, h.numbers, h.total, h.sumsq, h.low, h.high)
                        for h in hourly
                    ],
                )
            return len(new)

        return await self._store.run_write(tenant, run)
