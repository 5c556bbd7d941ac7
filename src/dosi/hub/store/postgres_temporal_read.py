"""Temporal queries on PostgreSQL: matching entities, then instances or aggregates per attribute.

The same answers as sqlite_temporal_read, in one REPEATABLE READ snapshot (so
retention moving rows from `history` into `history_hourly` can never make a
query count a row twice or miss it). SQLite runs one small statement per
entity and attribute, which is cheap in-process; here every step is one
round trip for a whole chunk of candidates: their records in key order
(stable pages; chunks grow until the page is full), which attributes have
data in the window (a loose index scan over history_series for the distinct
attributes, then one EXISTS seek each), the snapshots q and geo-queries
check, and finally the instances (one LATERAL ... LIMIT per series) or the
aggregates (postgres_temporal_aggregate) of the whole page.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncGenerator, MutableMapping
from contextlib import aclosing
from typing import Any

import asyncpg
import orjson

from dosi.hub.store.history import attr_series_key, series_key
from dosi.hub.store.postgres_temporal_aggregate import (
    SERIES,
    Args,
    SeriesKey,
    aggregate,
    rollup_where,
    series_args,
    time_column,
    window_where,
)
from dosi.hub.store.temporal import (
    HistoryInstance,
    Series,
    TemporalEntity,
    TemporalPage,
    TemporalSelection,
)
from dosi.ngsi.model import Entity

FIRST_CHUNK = 16
MAX_CHUNK = 1024
_SNAPSHOT_ROWS = 32  # newest rows read to find the latest instance of each datasetId
MAX_NAMES = 65_536  # attribute names cached per store (keys are hashes: never stale)

Record = dict[str, Any]


async def run_query(
    conn: asyncpg.Connection, s: str, selection: TemporalSelection, names: MutableMapping[int, str]
) -> TemporalPage:
    """One temporal query in one snapshot; `names` caches attribute IRIs by key."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        return await _Query(conn, s, selection, names).run()


class _Query:
    def __init__(
        self,
        conn: asyncpg.Connection,
        s: str,
        sel: TemporalSelection,
        names: MutableMapping[int, str],
    ) -> None:
        self.conn = conn
        self.s = s
        self.sel = sel
        self.col = time_column(sel.window)
        agg = sel.aggregation
        # Hourly rollups hold observation hours; they answer only for whole-hour periods.
        self.rollup = agg is not None and agg.hour_aligned and sel.window.prop == "observedAt"
        # This query's names; the shared cache may be cleared by another query meanwhile.
        self.names: dict[int, str] = {}
        self.cache = names
        if len(names) > MAX_NAMES:
            names.clear()
        if sel.attrs is not None:
            self.names.update((attr_series_key(a), a) for a in sel.attrs)

    # -- matching ------------------------------------------------------------------------
    async def run(self) -> TemporalPage:
        sel = self.sel
        matched: list[tuple[int, Record, list[int]]] = []
        total = 0
        end = sel.offset + sel.limit
        need_data = sel.require_data and (sel.attrs is not None or sel.window.bounded)
        first = MAX_CHUNK if sel.count else min(MAX_CHUNK, max(FIRST_CHUNK, end))
        async with aclosing(self._candidates(first)) as chunks:
            async for chunk in chunks:
                if sel.record_check is not None:
                    chunk = [(k, r) for k, r in chunk if sel.record_check(r)]
                if not chunk:
                    continue
                attrs = await self._series_keys([k for k, _ in chunk])
                if need_data:
                    chunk = [(k, r) for k, r in chunk if k in attrs]
                if sel.snapshot_check is not None and chunk:
                    snapshots = await self._snapshots(chunk)
                    chunk = [(k, r) for k, r in chunk if sel.snapshot_check(snapshots[k])]
                for key, record in chunk:
                    if sel.offset <= total < end:
                        matched.append((key, record, attrs.get(key, [])))
                    total += 1
                    if total >= end and not sel.count:
                        break
                if total >= end and not sel.count:
                    break
        n_series = sum(len(attrs) for _, _, attrs in matched)
        cap = max(1, min(sel.max_instances, sel.max_total // max(1, n_series)))
        series = [(key, attr) for key, _, attrs in matched for attr in attrs]
        if sel.aggregation is None:
            filled = await self._instances(series, cap)
        else:
            filled = []
            answers = await aggregate(
                self.conn, self.s, sel.window, sel.aggregation, series, cap, self.rollup
            )
            for (_, attr), (attr_type, buckets, truncated) in zip(series, answers, strict=True):
                filled.append(Series(self.names[attr], attr_type, [], buckets, truncated))
        out = iter(filled)
        entities = [
            TemporalEntity(record, [next(out) for _ in attrs]) for _, record, attrs in matched
        ]
        return TemporalPage(entities, total if sel.count else None)

    async def _candidates(self, first: int) -> AsyncGenerator[list[tuple[int, Record]], None]:
        """Entity records in key order (stable paging), narrowed by ids or types, in chunks
        growing from `first` to MAX_CHUNK."""
        sel, s = self.sel, self.s
        size = first
        if sel.ids is not None:
            keys = sorted({series_key(i) for i in sel.ids})
            for start in range(0, len(keys), MAX_CHUNK):
                rows = await self.conn.fetch(
                    f"SELECT key, doc FROM {s}.temporal_entities WHERE key = ANY($1::bigint[]) "
                    "ORDER BY key",
                    keys[start : start + MAX_CHUNK],
                )
                records = [(int(k), orjson.loads(doc)) for k, doc in rows]
                yield [(k, r) for k, r in records if r["id"] in sel.ids]
            return
        last = -(2**63)
        while True:
            if sel.types is not None:
                # The first `size` keys after `last` of each type, merged: an index range
                # scan of temporal_types per type, whatever the number of entities.
                rows = await self.conn.fetch(
                    "WITH k AS (SELECT DISTINCT x.key FROM unnest($1::text[]) AS t(type) "
                    "CROSS JOIN LATERAL (SELECT tt.key FROM "
                    f"{s}.temporal_types tt WHERE tt.type = t.type AND tt.key > $2 "
                    "ORDER BY tt.key LIMIT $3) AS x ORDER BY x.key LIMIT $3) "
                    f"SELECT k.key, e.doc FROM k LEFT JOIN {s}.temporal_entities e "
                    "ON e.key = k.key ORDER BY k.key",
                    sorted(sel.types),
                    last,
                    size,
                )
            else:
                rows = await self.conn.fetch(
                    f"SELECT key, doc FROM {s}.temporal_entities WHERE key > $1 "
                    "ORDER BY key LIMIT $2",
                    last,
                    size,
                )
            if rows:
                last = int(rows[-1][0])
            yield [(int(k), orjson.loads(doc)) for k, doc in rows if doc is not None]
            if len(rows) < size:
                return
            size = min(MAX_CHUNK, size * 2)

    async def _series_keys(self, entities: list[int]) -> dict[int, list[int]]:
        """Attributes (those asked for) with data in the window, per entity, by IRI."""
        s = self.s
        args = Args(entities)
        # Scalar subqueries in index order, not EXISTS: PostgreSQL would turn EXISTS into
        # a semi-join, or scan the table for LIMIT 1 (rows of one series lie together,
        # not spread as it assumes); these stay one index seek per pair.
        raw = f"(SELECT true FROM {s}.history h WHERE h.entity = x.e AND h.attr = x.a"
        raw += window_where(self.sel.window, args) + " ORDER BY h.ts LIMIT 1)"
        if self.rollup:
            raw += f" OR (SELECT true FROM {s}.history_hourly r WHERE r.entity = x.e AND "
            raw += f"r.attr = x.a{rollup_where(self.sel.window, args)} ORDER BY r.hour LIMIT 1)"
        if self.sel.attrs is not None:
            wanted = args(sorted(attr_series_key(a) for a in self.sel.attrs), "bigint[]")
            rows = await self.conn.fetch(
                "SELECT x.e, x.a FROM (SELECT ex.e, ax.a FROM unnest($1::bigint[]) AS ex(e) "
                f"CROSS JOIN unnest({wanted}) AS ax(a)) AS x WHERE {raw}",
                *args.values,
            )
        else:
            sources = [f"{s}.history", *([f"{s}.history_hourly"] if self.rollup else [])]
            ctes = ", ".join(_distinct_attrs(f"d{n}", table) for n, table in enumerate(sources))
            union = " UNION ".join(f"SELECT e, a FROM d{n}" for n in range(len(sources)))
            rows = await self.conn.fetch(
                f"WITH RECURSIVE {ctes} SELECT x.e, x.a FROM ({union}) AS x "
                f"WHERE x.a IS NOT NULL AND ({raw})",
                *args.values,
            )
        found: dict[int, list[int]] = defaultdict(list)
        for entity, attr in rows:
            found[int(entity)].append(int(attr))
        await self._resolve_names({a for attrs in found.values() for a in attrs})
        return {e: sorted(attrs, key=self.names.__getitem__) for e, attrs in found.items()}

    async def _resolve_names(self, keys: set[int]) -> None:
        unknown = []
        for key in keys - self.names.keys():
            name = self.cache.get(key)
            if name is None:
                unknown.append(key)
            else:
                self.names[key] = name
        if not unknown:
            return
        rows = await self.conn.fetch(
            f"SELECT key, name FROM {self.s}.history_attrs WHERE key = ANY($1::bigint[])", unknown
        )
        found = {int(k): str(n) for k, n in rows}
        self.cache.update(found)
        self.names.update(found)
        for key in unknown:
            self.names.setdefault(key, str(key))

    async def _snapshots(self, chunk: list[tuple[int, Record]]) -> dict[int, Entity]:
        """Each entity as it was at the end of the window, for q and geo-queries."""
        snapshots: dict[int, Entity] = {
            k: {n: v for n, v in r.items() if n != "deletedAt"} for k, r in chunk
        }
        attrs = {attr_series_key(a): a for a in self.sel.snapshot_attrs}
        if not attrs:
            return snapshots
        args = Args([k for k, _ in chunk], list(attrs))
        where = window_where(self.sel.window, args)
        rows = await self.conn.fetch(
            "SELECT ex.e, ax.a, y.doc FROM unnest($1::bigint[]) AS ex(e) "
            "CROSS JOIN unnest($2::bigint[]) AS ax(a) CROSS JOIN LATERAL "
            f"(SELECT h.doc, {self.col} AS t FROM {self.s}.history h WHERE h.entity = ex.e "
            f"AND h.attr = ax.a{where} ORDER BY {self.col} DESC LIMIT {_SNAPSHOT_ROWS}) AS y "
            "ORDER BY ex.e, ax.a, y.t DESC",
            *args.values,
        )
        seen: dict[tuple[int, int], set[Any]] = defaultdict(set)
        for entity, attr, doc in rows:
            inst = orjson.loads(doc)
            dataset = inst.get("datasetId")
            if dataset in seen[entity, attr]:
                continue
            seen[entity, attr].add(dataset)
            if "deletedAt" not in inst:
                snapshots[entity].setdefault(attrs[attr], []).append(inst)
        return snapshots

    # -- per attribute -------------------------------------------------------------------
    async def _instances(self, series: list[SeriesKey], cap: int) -> list[Series]:
        """Instances of every series of the page (oldest first), each cut at `cap` or lastN."""
        out = [Series(self.names[attr]) for _, attr in series]
        if not series:
            return out
        last_n = self.sel.last_n
        limit = min(cap, last_n) if last_n is not None else cap
        order = "DESC" if last_n is not None else ""
        # Equal times come in index order (ts, num) like on SQLite, recording times by seq.
        ties = "" if self.col == "h.ts" else f", h.seq {order}"
        args = series_args(series)
        where = window_where(self.sel.window, args)
        rows = await self.conn.fetch(
            f"SELECT q.i - 1, y.seq, y.t, y.doc FROM {SERIES} CROSS JOIN LATERAL "
            f"(SELECT h.seq, {self.col} AS t, h.doc FROM {self.s}.history h WHERE "
            f"h.entity = q.e AND h.attr = q.a{where} ORDER BY {self.col} {order}{ties} "
            f"LIMIT {args(limit + 1, 'bigint')}) AS y",
            *args.values,
        )
        for i, seq, t, doc in rows:
            target = out[i]
            if len(target.instances) == limit:
                target.truncated = True
                continue
            target.instances.append(HistoryInstance(int(seq), int(t), orjson.loads(doc)))
        if last_n is not None:
            for target in out:
                target.instances.reverse()
        return out


def _distinct_attrs(name: str, table: str) -> str:
    """A recursive CTE `name(e, a)`: the distinct attribute keys of each entity in $1,
    by skipping through the index (one seek per attribute)."""
    return (
        f"{name}(e, a) AS (SELECT ex.e, (SELECT h.attr FROM {table} h WHERE h.entity = ex.e "
        "ORDER BY h.attr LIMIT 1) FROM unnest($1::bigint[]) AS ex(e) UNION ALL "
        f"SELECT d.e, (SELECT h.attr FROM {table} h WHERE h.entity = d.e AND h.attr > d.a "
        f"ORDER BY h.attr LIMIT 1) FROM {name} d WHERE d.a IS NOT NULL)"
    )
