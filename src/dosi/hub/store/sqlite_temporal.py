"""TemporalStore on the SQLite backend: temporal-API writes, retention, and reads.

The normal write path records history (store/history.py); this adds what the
temporal API writes itself (instances added, corrected or deleted), the
hourly rollup retention folds old raw instances into, and the queries
(store/sqlite_temporal_read.py). Writes run in the writer's transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from dosi.hub.store.history import (
    added_rows,
    attr_series_key,
    merged_record,
    numeric,
    series_key,
    to_ms,
)
from dosi.hub.store.sqlite_temporal_aggregate import PERIODS
from dosi.hub.store.sqlite_temporal_read import run_query
from dosi.hub.store.temporal import (
    HOUR_MS,
    HistorySize,
    TemporalPage,
    TemporalSelection,
)
from dosi.ngsi.errors import BadRequestData, ResourceNotFound
from dosi.ngsi.model import Instance
from dosi.ngsi.values import now_iso

if TYPE_CHECKING:
    from dosi.hub.store.sqlite import SqliteStore

# Extra tables this part needs, created with the rest of the schema.
DDL: tuple[str, ...] = (
    # Raw instances retention has folded away, per entity, attribute and observation hour
    # (start, epoch ms): enough for every aggregation method but distinctCount.
    """CREATE TABLE IF NOT EXISTS history_hourly(
        entity INTEGER NOT NULL, attr INTEGER NOT NULL, hour INTEGER NOT NULL,
        n INTEGER NOT NULL, n_num INTEGER NOT NULL, total REAL NOT NULL, sumsq REAL NOT NULL,
        low REAL, high REAL,
        PRIMARY KEY(entity, attr, hour)) WITHOUT ROWID""",
    """CREATE INDEX IF NOT EXISTS history_hourly_hour ON history_hourly(hour)""",
    """CREATE INDEX IF NOT EXISTS temporal_types_key ON temporal_types(key)""",
    # 0..PERIODS-1: drives one index range scan per aggregation period (see the reader).
    """CREATE TABLE IF NOT EXISTS temporal_periods(i INTEGER PRIMARY KEY)""",
    f"""INSERT OR IGNORE INTO temporal_periods(i)
        WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i < {PERIODS - 1})
        SELECT i FROM k""",
)

_FLOOR_HOUR = f"ts - (((ts % {HOUR_MS}) + {HOUR_MS}) % {HOUR_MS})"
_ROLL_UP = f"""
    INSERT INTO history_hourly(entity, attr, hour, n, n_num, total, sumsq, low, high)
    SELECT entity, attr, {_FLOOR_HOUR} AS hour, count(*), count(num), total(num),
           total(num * num), min(num), max(num)
    FROM history WHERE seq <= ? GROUP BY entity, attr, hour
    ON CONFLICT(entity, attr, hour) DO UPDATE SET
        n = n + excluded.n, n_num = n_num + excluded.n_num,
        total = total + excluded.total, sumsq = sumsq + excluded.sumsq,
        low = CASE WHEN low IS NULL OR excluded.low < low THEN excluded.low ELSE low END,
        high = CASE WHEN high IS NULL OR excluded.high > high THEN excluded.high ELSE high END"""


class SqliteTemporal:
    def __init__(self, store: SqliteStore) -> None:
        self._store = store

    # -- reads ---------------------------------------------------------------------------
    async def query(self, tenant: str, selection: TemporalSelection) -> TemporalPage:
        return await self._store.run_read(tenant, lambda conn: run_query(conn, selection))

    async def size(self, tenant: str) -> HistorySize:
        def run(conn: sqlite3.Connection) -> HistorySize:
            raw = conn.execute("SELECT count(*) FROM history").fetchone()[0]
            rolled = conn.execute("SELECT count(*) FROM history_hourly").fetchone()[0]
            return HistorySize(int(raw), int(rolled))

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
        def run(conn: sqlite3.Connection) -> bool:
            now = now_iso()
            key = series_key(entity_id)
            record = _record(conn, key, entity_id)
            record, created = merged_record(
                record, entity_id, types, scope, must_exist=must_exist, now=now
            )
            _save_record(conn, key, record)
            names, rows = added_rows(key, instances, to_ms(now), orjson.dumps)
            conn.executemany(
                "INSERT OR IGNORE INTO history_attrs(key, name) VALUES(?,?)", list(names.items())
            )
            conn.executemany(
                "INSERT INTO history(entity, attr, ts, recorded, num, doc) VALUES(?,?,?,?,?,?)",
                rows,
            )
            return created

        return await self._store.run_write(tenant, run)

    async def delete_entity(self, tenant: str, entity_id: str) -> None:
        def run(conn: sqlite3.Connection) -> None:
            key = series_key(entity_id)
            if _record(conn, key, entity_id) is None:
                raise ResourceNotFound(f"entity {entity_id} has no temporal representation")
            conn.execute("DELETE FROM history WHERE entity=?", (key,))
            conn.execute("DELETE FROM history_hourly WHERE entity=?", (key,))
            conn.execute("DELETE FROM temporal_types WHERE key=?", (key,))
            conn.execute("DELETE FROM temporal_entities WHERE key=?", (key,))

        await self._store.run_write(tenant, run)

    async def delete_attribute(
        self, tenant: str, entity_id: str, attr: str, *, dataset_id: str | None, delete_all: bool
    ) -> None:
        def run(conn: sqlite3.Connection) -> None:
            key = _existing(conn, entity_id)
            attr_key = attr_series_key(attr)
            if delete_all:
                gone = conn.execute(
                    "DELETE FROM history WHERE entity=? AND attr=?", (key, attr_key)
                ).rowcount
                gone += conn.execute(
                    "DELETE FROM history_hourly WHERE entity=? AND attr=?", (key, attr_key)
                ).rowcount
            else:
                gone = conn.execute(
                    "DELETE FROM history WHERE entity=? AND attr=? "
                    "AND json_extract(CAST(doc AS TEXT), '$.datasetId') IS ?",
                    (key, attr_key, dataset_id),
                ).rowcount
            if not gone:
                which = f" with datasetId {dataset_id}" if dataset_id else ""
                raise ResourceNotFound(f"entity {entity_id} has no instances of {attr}{which}")
            _touch(conn, key)

        await self._store.run_write(tenant, run)

    async def update_instance(
        self,
        tenant: str,
        entity_id: str,
        attr: str,
        seq: int,
        patch: Callable[[Instance], Instance],
    ) -> None:
        def run(conn: sqlite3.Connection) -> None:
            key = _existing(conn, entity_id)
            row = conn.execute(
                "SELECT ts, doc FROM history WHERE seq=? AND entity=? AND attr=?",
                (seq, key, attr_series_key(attr)),
            ).fetchone()
            if row is None:
                raise ResourceNotFound(f"{attr} of {entity_id} has no such instance")
            old = orjson.loads(row[1])
            if "deletedAt" in old:
                raise BadRequestData("a deletion record cannot be changed")
            new = patch(old)
            observed = new.get("observedAt")
            ts = to_ms(observed) if observed else row[0]
            conn.execute(
                "UPDATE history SET ts=?, num=?, doc=? WHERE seq=?",
                (ts, numeric(new), orjson.dumps(new), seq),
            )
            _touch(conn, key)

        await self._store.run_write(tenant, run)

    async def delete_instance(self, tenant: str, entity_id: str, attr: str, seq: int) -> None:
        def run(conn: sqlite3.Connection) -> None:
            key = _existing(conn, entity_id)
            gone = conn.execute(
                "DELETE FROM history WHERE seq=? AND entity=? AND attr=?",
                (seq, key, attr_series_key(attr)),
            ).rowcount
            if not gone:
                raise ResourceNotFound(f"{attr} of {entity_id} has no such instance")
            _touch(conn, key)

        await self._store.run_write(tenant, run)

    # -- retention -----------------------------------------------------------------------
    async def roll_up(self, tenant: str, before_ms: int, limit: int) -> int:
        def run(conn: sqlite3.Connection) -> int:
            rows = conn.execute(
                "SELECT seq, recorded FROM history ORDER BY seq LIMIT ?", (limit,)
            ).fetchall()
            last = None
            for seq, recorded in rows:  # recording order: stop at the first recent row
                if recorded >= before_ms:
                    break
                last = seq
            if last is None:
                return 0
            conn.execute(_ROLL_UP, (last,))
            return int(conn.execute("DELETE FROM history WHERE seq <= ?", (last,)).rowcount)

        return await self._store.run_write(tenant, run)

    async def prune_rollup(self, tenant: str, before_ms: int, limit: int) -> int:
        def run(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(
                "DELETE FROM history_hourly WHERE (entity, attr, hour) IN "
                "(SELECT entity, attr, hour FROM history_hourly WHERE hour < ? LIMIT ?)",
                (before_ms, limit),
            )
            return int(cursor.rowcount)

        return await self._store.run_write(tenant, run)


def _record(conn: sqlite3.Connection, key: int, entity_id: str) -> dict[str, Any] | None:
    row = conn.execute("SELECT doc FROM temporal_entities WHERE key=?", (key,)).fetchone()
    if row is None:
        return None
    record: dict[str, Any] = orjson.loads(row[0])
    return record if record.get("id") == entity_id else None


def _existing(conn: sqlite3.Connection, entity_id: str) -> int:
    key = series_key(entity_id)
    if _record(conn, key, entity_id) is None:
        raise ResourceNotFound(f"entity {entity_id} has no temporal representation")
    return key


def _save_record(conn: sqlite3.Connection, key: int, record: dict[str, Any]) -> None:
    conn.execute(
        "INSERT INTO temporal_entities(key, id, type, doc) VALUES(?,?,?,?) "
        "ON CONFLICT(key) DO UPDATE SET type=excluded.type, doc=excluded.doc",
        (key, record["id"], record["type"][0], orjson.dumps(record)),
    )
    conn.executemany(
        "INSERT OR IGNORE INTO temporal_types(type, key) VALUES(?,?)",
        [(t, key) for t in record["type"]],
    )


def _touch(conn: sqlite3.Connection, key: int) -> None:
    row = conn.execute("SELECT doc FROM temporal_entities WHERE key=?", (key,)).fetchone()
    record = orjson.loads(row[0])
    record["modifiedAt"] = now_iso()
    conn.execute("UPDATE temporal_entities SET doc=? WHERE key=?", (orjson.dumps(record), key))
