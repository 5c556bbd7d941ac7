"""Temporal queries on SQLite: matching entities, then instances or aggregates per attribute.

Everything runs in one read transaction, so retention moving rows from
`history` into `history_hourly` can never make a query count a row twice or
miss it. Candidates come in entity-key order from temporal_types (or the id
list), so pages are stable; each is checked on its record, then on whether
it has data in the window (one index seek per attribute), then on q and
geo-queries. Aggregation is in sqlite_temporal_aggregate.
"""

from __future__ import annotations

import heapq
import sqlite3
from collections.abc import Iterator
from typing import Any

import orjson

from dosi.hub.store.history import attr_series_key, series_key
from dosi.hub.store.sqlite_temporal_aggregate import Rolled, Scan, aggregate
from dosi.hub.store.temporal import (
    HOUR_MS,
    HistoryInstance,
    Series,
    TemporalEntity,
    TemporalPage,
    TemporalSelection,
)
from dosi.ngsi.model import Entity

_CHUNK = 256
_SNAPSHOT_ROWS = 32  # newest rows read to find the latest instance of each datasetId
_DELETION = "h.num IS NULL AND json_extract(CAST(h.doc AS TEXT), '$.deletedAt') IS NOT NULL"


def run_query(conn: sqlite3.Connection, selection: TemporalSelection) -> TemporalPage:
    conn.execute("BEGIN")
    try:
        return _Query(conn, selection).run()
    finally:
        conn.execute("COMMIT")


class _Query:
    """One query: match entities and page them, then read each attribute's data."""

    def __init__(self, conn: sqlite3.Connection, sel: TemporalSelection) -> None:
        self.conn = conn
        self.sel = sel
        window = sel.window
        self.col = "h.recorded" if window.prop in ("createdAt", "modifiedAt") else "h.ts"
        conds: list[str] = []
        params: list[int] = []
        if window.start is not None:
            conds.append(f"{self.col} {'>' if window.start_open else '>='} ?")
            params.append(window.start)
        if window.end is not None:
            conds.append(f"{self.col} < ?")
            params.append(window.end)
        if window.prop == "deletedAt":
            conds.append(_DELETION)
        self.where = "".join(f" AND {c}" for c in conds)
        self.params = params
        self.scan = Scan(self.col, self.where, tuple(params))
        agg = sel.aggregation
        # Hourly rollups hold observation hours; they answer only for whole-hour periods.
        self.rollup = agg is not None and agg.hour_aligned and window.prop == "observedAt"
        self.names: dict[int, str] = {}
        if sel.attrs is not None:
            self.names.update((attr_series_key(a), a) for a in sel.attrs)

    # -- matching ------------------------------------------------------------------------
    def run(self) -> TemporalPage:
        sel = self.sel
        matched: list[tuple[int, dict[str, Any], list[int]]] = []
        total = 0
        end = sel.offset + sel.limit
        need_data = sel.require_data and (sel.attrs is not None or sel.window.bounded)
        for key, record in self._candidates():
            if sel.record_check is not None and not sel.record_check(record):
                continue
            attrs = self._series_keys(key)
            if need_data and not attrs:
                continue
            if sel.snapshot_check is not None and not sel.snapshot_check(
                self._snapshot(key, record)
            ):
                continue
            if sel.offset <= total < end:
                matched.append((key, record, attrs))
            total += 1
            if total >= end and not sel.count:
                break
        n_series = sum(len(attrs) for _, _, attrs in matched)
        cap = max(1, min(sel.max_instances, sel.max_total // max(1, n_series)))
        entities = [
            TemporalEntity(record, [self._series(key, attr, cap) for attr in attrs])
            for key, record, attrs in matched
        ]
        return TemporalPage(entities, total if sel.count else None)

    def _candidates(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """Entity records in key order (stable paging), narrowed by ids or types."""
        sel = self.sel
        if sel.ids is not None:
            keys = sorted({series_key(i) for i in sel.ids})
            for start in range(0, len(keys), _CHUNK):
                for key, record in self._records(keys[start : start + _CHUNK]):
                    if record["id"] in sel.ids:
                        yield key, record
            return
        if sel.types is not None:
            streams = [
                _keyset(self.conn, "SELECT key FROM temporal_types WHERE type=? AND key > ?", [t])
                for t in sorted(sel.types)
            ]
            merged = heapq.merge(*streams) if len(streams) > 1 else streams[0]
            chunk: list[int] = []
            last = None
            for (key,) in merged:
                if key == last:
                    continue
                last = key
                chunk.append(key)
                if len(chunk) == _CHUNK:
                    yield from self._records(chunk)
                    chunk = []
            yield from self._records(chunk)
            return
        sql = "SELECT key, doc FROM temporal_entities WHERE key > ?"
        for key, doc in _keyset(self.conn, sql, []):
            yield key, orjson.loads(doc)

    def _records(self, keys: list[int]) -> Iterator[tuple[int, dict[str, Any]]]:
        if not keys:
            return
        marks = ",".join("?" * len(keys))
        rows = self.conn.execute(
            f"SELECT key, doc FROM temporal_entities WHERE key IN ({marks})", keys
        ).fetchall()
        docs = dict(rows)
        for key in keys:
            doc = docs.get(key)
            if doc is not None:
                yield key, orjson.loads(doc)

    def _series_keys(self, entity: int) -> list[int]:
        """The entity's attributes (those asked for) with data in the window, by IRI."""
        if self.sel.attrs is not None:
            keys = list(self.names)
        else:
            keys = _distinct_attrs(self.conn, "history", entity)
            if self.rollup:
                keys = sorted(set(keys) | set(_distinct_attrs(self.conn, "history_hourly", entity)))
        found = [k for k in keys if self._has_data(entity, k)]
        return sorted(found, key=self._name)

    def _name(self, attr: int) -> str:
        name = self.names.get(attr)
        if name is None:
            row = self.conn.execute(
                "SELECT name FROM history_attrs WHERE key=?", (attr,)
            ).fetchone()
            name = self.names[attr] = row[0] if row else str(attr)
        return name

    def _has_data(self, entity: int, attr: int) -> bool:
        row = self.conn.execute(
            f"SELECT 1 FROM history h WHERE h.entity=? AND h.attr=?{self.where} LIMIT 1",
            (entity, attr, *self.params),
        ).fetchone()
        if row is not None:
            return True
        return self.rollup and bool(self._rollup_rows(entity, attr, limit=1))

    def _snapshot(self, entity: int, record: dict[str, Any]) -> Entity:
        """The entity as it was at the end of the window, for q and geo-queries."""
        snapshot: Entity = {k: v for k, v in record.items() if k != "deletedAt"}
        for attr in self.sel.snapshot_attrs:
            rows = self.conn.execute(
                f"SELECT h.doc FROM history h WHERE h.entity=? AND h.attr=?{self.where} "
                f"ORDER BY {self.col} DESC LIMIT {_SNAPSHOT_ROWS}",
                (entity, attr_series_key(attr), *self.params),
            )
            seen: set[Any] = set()
            latest = []
            for (doc,) in rows:
                inst = orjson.loads(doc)
                dataset = inst.get("datasetId")
                if dataset in seen:
                    continue
                seen.add(dataset)
                if "deletedAt" not in inst:
                    latest.append(inst)
            if latest:
                snapshot[attr] = latest
        return snapshot

    # -- per attribute -------------------------------------------------------------------
    def _series(self, entity: int, attr: int, cap: int) -> Series:
        series = Series(self._name(attr))
        if self.sel.aggregation is None:
            self._instances(entity, attr, cap, series)
        else:
            row = self.conn.execute(
                "SELECT doc FROM history WHERE entity=? AND attr=? ORDER BY ts DESC LIMIT 1",
                (entity, attr),
            ).fetchone()
            if row is not None:
                series.attr_type = orjson.loads(row[0]).get("type", "Property")
            assert self.sel.aggregation is not None
            rolled = self._rollup_rows(entity, attr) if self.rollup else []
            series.buckets, series.truncated = aggregate(
                self.conn, self.scan, self.sel.window, self.sel.aggregation,
                (entity, attr), cap, rolled,
            )  # fmt: skip
        return series

    def _instances(self, entity: int, attr: int, cap: int, series: Series) -> None:
        last_n = self.sel.last_n
        limit = min(cap, last_n) if last_n is not None else cap
        order = "DESC" if last_n is not None else "ASC"
        rows = self.conn.execute(
            f"SELECT h.seq, {self.col}, h.doc FROM history h WHERE h.entity=? AND h.attr=?"
            f"{self.where} ORDER BY {self.col} {order} LIMIT ?",
            (entity, attr, *self.params, limit + 1),
        ).fetchall()
        if len(rows) > limit:
            series.truncated = True
            del rows[limit:]
        if last_n is not None:
            rows.reverse()
        series.instances = [HistoryInstance(seq, t, orjson.loads(doc)) for seq, t, doc in rows]

    def _rollup_rows(self, entity: int, attr: int, limit: int = -1) -> list[Rolled]:
        """Hourly aggregates of hours lying wholly inside the window."""
        window = self.sel.window
        sql = (
            "SELECT hour, n, n_num, total, sumsq, low, high FROM history_hourly "
            "WHERE entity=? AND attr=?"
        )
        params: list[int] = [entity, attr]
        if window.start is not None:  # an hour rolled up counts whole, also for `after`
            sql += " AND hour >= ?"
            params.append(-((-window.start) // HOUR_MS) * HOUR_MS)
        if window.end is not None:
            sql += " AND hour <= ?"
            params.append(window.end - HOUR_MS)
        sql += " ORDER BY hour LIMIT ?"
        return self.conn.execute(sql, (*params, limit)).fetchall()


def _distinct_attrs(conn: sqlite3.Connection, table: str, entity: int) -> list[int]:
    """Attribute keys of one entity by skipping through the index (one seek per attribute)."""
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


def _keyset(conn: sqlite3.Connection, sql: str, params: list[Any]) -> Iterator[tuple[Any, ...]]:
    """Rows of `sql` (its last parameter is `key > ?`) in key order, a chunk at a time,
    so no statement stays open while the caller runs others."""
    last: Any = -(2**63)
    while True:
        rows = conn.execute(f"{sql} ORDER BY key LIMIT {_CHUNK}", (*params, last)).fetchall()
        yield from rows
        if len(rows) < _CHUNK:
            return
        last = rows[-1][0]
