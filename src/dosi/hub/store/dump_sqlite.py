"""Dump access on the SQLite backend (see dump.py): keyset pages and history writes."""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

import orjson

from dosi.hub.store.dump import Hourly, RawInstance, Record, Series, merged_record, missing
from dosi.hub.store.history import attr_series_key, numeric, series_key
from dosi.hub.store.rows import unpack
from dosi.ngsi.model import Entity

if TYPE_CHECKING:
    from dosi.hub.store.sqlite import SqliteStore

_TS_CHUNK = 500  # distinct times per lookup of already stored rows


class SqliteDump:
    """Reads run inline: the tools are the only work of their process, and a page or a
    series lookup costs less than the hop to a reader thread."""

    def __init__(self, store: SqliteStore) -> None:
        self._store = store

    async def counts(self, tenant: str) -> tuple[int, int]:
        def run(conn: sqlite3.Connection) -> tuple[int, int]:
            entities = conn.execute("SELECT count(*) FROM entities").fetchone()[0]
            records = conn.execute("SELECT count(*) FROM temporal_entities").fetchone()[0]
            return int(entities), int(records)

        return await self._store.run_read(tenant, run, inline=True)

    async def entities(self, tenant: str, after: int, limit: int) -> list[tuple[int, Entity]]:
        def run(conn: sqlite3.Connection) -> list[tuple[int, Entity]]:
            rows = conn.execute(
                "SELECT rid, doc FROM entities WHERE rid > ? ORDER BY rid LIMIT ?", (after, limit)
            )
            return [(int(rid), unpack(doc)) for rid, doc in rows]

        return await self._store.run_read(tenant, run, inline=True)

    async def records(self, tenant: str, after: int, limit: int) -> list[tuple[int, Record]]:
        def run(conn: sqlite3.Connection) -> list[tuple[int, Record]]:
            rows = conn.execute(
                "SELECT key, doc FROM temporal_entities WHERE key > ? ORDER BY key LIMIT ?",
                (after, limit),
            )
            return [(int(key), orjson.loads(doc)) for key, doc in rows]

        return await self._store.run_read(tenant, run, inline=True)

    async def series(self, tenant: str, entity: int) -> list[Series]:
        def run(conn: sqlite3.Connection) -> list[Series]:
            raw = set(_distinct(conn, "history", entity))
            rolled = set(_distinct(conn, "history_hourly", entity))
            out = []
            for key in sorted(raw | rolled):
                row = conn.execute("SELECT name FROM history_attrs WHERE key=?", (key,)).fetchone()
                if row is not None:  # every writer names its series in the same transaction
                    out.append(Series(key, str(row[0]), key in raw, key in rolled))
            return out

        return await self._store.run_read(tenant, run, inline=True)

    async def instances(
        self, tenant: str, entity: int, attr: int, after: tuple[int, int], limit: int
    ) -> list[tuple[int, int, RawInstance]]:
        def run(conn: sqlite3.Connection) -> list[tuple[int, int, RawInstance]]:
            rows = conn.execute(
                "SELECT ts, seq, recorded, doc FROM history WHERE entity=? AND attr=? "
                "AND (ts, seq) > (?, ?) ORDER BY ts, seq LIMIT ?",
                (entity, attr, *after, limit),
            )
            return [
                (int(ts), int(seq), RawInstance(int(ts), int(recorded), bytes(doc)))
                for ts, seq, recorded, doc in rows
            ]

        return await self._store.run_read(tenant, run, inline=True)

    async def hourly(
        self, tenant: str, entity: int, attr: int, after: int, limit: int
    ) -> list[Hourly]:
        def run(conn: sqlite3.Connection) -> list[Hourly]:
            rows = conn.execute(
                "SELECT hour, n, n_num, total, sumsq, low, high FROM history_hourly "
                "WHERE entity=? AND attr=? AND hour > ? ORDER BY hour LIMIT ?",
                (entity, attr, after, limit),
            )
            return [Hourly(*row) for row in rows]

        return await self._store.run_read(tenant, run, inline=True)

    async def write_history(
        self,
        tenant: str,
        record: Record,
        attr: str | None,
        instances: Sequence[RawInstance],
        hourly: Sequence[Hourly],
    ) -> int:
        def run(conn: sqlite3.Connection) -> int:
            key = series_key(record["id"])
            row = conn.execute("SELECT doc FROM temporal_entities WHERE key=?", (key,)).fetchone()
            saved = merged_record(record, orjson.loads(row[0]) if row else None)
            conn.execute(
                "INSERT INTO temporal_entities(key, id, type, doc) VALUES(?,?,?,?) "
                "ON CONFLICT(key) DO UPDATE SET type=excluded.type, doc=excluded.doc",
                (key, saved["id"], saved["type"][0], orjson.dumps(saved)),
            )
            conn.executemany(
                "INSERT OR IGNORE INTO temporal_types(type, key) VALUES(?,?)",
                [(t, key) for t in saved["type"]],
            )
            if attr is None:
                return 0
            attr_key = attr_series_key(attr)
            conn.execute(
                "INSERT OR IGNORE INTO history_attrs(key, name) VALUES(?,?)", (attr_key, attr)
            )
            new = missing(instances, _stored(conn, key, attr_key, instances))
            conn.executemany(
                "INSERT INTO history(entity, attr, ts, recorded, num, doc) VALUES(?,?,?,?,?,?)",
                [(key, attr_key, i.ts, i.recorded, _num(i.doc), i.doc) for i in new],
            )
            conn.executemany(
                "INSERT INTO history_hourly(entity, attr, hour, n, n_num, total, sumsq, low, high) "
                "VALUES(?,?,?,?,?,?,?,?,?) ON CONFLICT(entity, attr, hour) DO UPDATE SET "
                "n=excluded.n, n_num=excluded.n_num, total=excluded.total, "
                "sumsq=excluded.sumsq, low=excluded.low, high=excluded.high",
                [
                    (key, attr_key, h.hour, h.n, h.numbers, h.total, h.sumsq, h.low, h.high)
                    for h in hourly
                ],
            )
            return len(new)

        return await self._store.run_write(tenant, run)


def _num(doc: bytes) -> float | None:
    return numeric(orjson.loads(doc))


def _stored(
    conn: sqlite3.Connection, entity: int, attr: int, instances: Sequence[RawInstance]
) -> Counter[tuple[int, int, bytes]]:
    """Rows of the series already stored at the times the instances have."""
    times = sorted({i.ts for i in instances})
    found: Counter[tuple[int, int, bytes]] = Counter()
    for start in range(0, len(times), _TS_CHUNK):
        chunk = times[start : start + _TS_CHUNK]
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            f"SELECT ts, recorded, doc FROM history WHERE entity=? AND attr=? AND ts IN ({marks})",
            (entity, attr, *chunk),
        )
        found.update((int(ts), int(rec), bytes(doc)) for ts, rec, doc in rows)
    return found


def _distinct(conn: sqlite3.Connection, table: str, entity: int) -> list[int]:
    """Attribute keys of one entity, one index seek each (skipping through the index)."""
    keys: list[int] = []
    last = -(2**63)
    while True:
        row = conn.execute(
            f"SELECT attr FROM {table} WHERE entity=? AND attr > ? ORDER BY attr LIMIT 1",
            (entity, last),
        ).fetchone()
        if row is None:
            return keys
        last = row[0]
        keys.append(int(row[0]))
