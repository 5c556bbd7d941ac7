"""Reads on the PostgreSQL backend: the same contract as sqlite_query.py.

The prefilter is SQL the indexes answer (ids, types, GiST bounding-box overlap,
the attribute-value index); the exact predicate and the order key run in
Python on the candidates. Candidates stream through a server-side cursor in
growing chunks, so a page stops reading once it is full, and `near` reads
them nearest first (KNN `<->` on the GiST index) and stops as soon as no
unread candidate can beat the farthest match kept. Big chunks are decoded and
checked on a worker thread to keep the event loop responsive.
"""

from __future__ import annotations

import asyncio
import heapq
import math
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import asyncpg

from dosi.hub.store.base import Page, Prefilter, Selection
from dosi.hub.store.postgres_plan import lower_bound_factor, point_ewkb
from dosi.hub.store.rows import unpack
from dosi.ngsi.model import LOCATION, Entity

FIRST_CHUNK = 64
MAX_CHUNK = 4096
THREAD_CHUNK = 512  # rows decoded on a worker thread from this chunk size on
_SQL_OPS = frozenset({"=", "<", "<=", ">", ">="})

# (lower bound of the distance in metres, or 0.0; the entity, or None if the predicate
# refused it): candidates in index order.
Candidate = tuple[float, Entity | None]


@dataclass
class _Query:
    where: list[str]
    args: list[Any]
    source: str
    columns: str
    order: str
    factor: float = 0.0  # metres per degree of KNN distance (lower bound), 0: none

    def arg(self, value: Any) -> str:
        self.args.append(value)
        return f"${len(self.args)}"

    def sql(self, columns: str | None = None, *, ordered: bool = True) -> str:
        text = f"SELECT {columns or self.columns} FROM {self.source}"
        if self.where:
            text += " WHERE " + " AND ".join(self.where)
        if ordered:
            text += f" ORDER BY {self.order}"
        return text


def build_query(s: str, pre: Prefilter, indexed: frozenset[str]) -> _Query | None:
    """The candidate query of a prefilter; None when nothing can match."""
    q = _Query([], [], f"{s}.entities e", "e.rid, e.doc, 0.0::float8", "e.rid")
    if pre.bbox is not None:
        minx, miny, maxx, maxy = pre.bbox
        prop = pre.geo_property or LOCATION
        envelope = (
            f"ST_MakeEnvelope({q.arg(minx)}, {q.arg(miny)}, {q.arg(maxx)}, {q.arg(maxy)}, 4326)"
        )
        if pre.near is not None:
            # One row per geometry, nearest first; the caller keeps an entity's first.
            point = f"{q.arg(point_ewkb(*pre.near))}::geometry"
            q.source = f"{s}.geo g JOIN {s}.entities e ON e.rid = g.rid"
            q.columns = f"e.rid, e.doc, g.geom <-> {point}"
            q.order = f"g.geom <-> {point}"
            q.where += [f"g.geom && {envelope}", f"g.prop = {q.arg(prop)}"]
            q.factor = lower_bound_factor(pre.bbox)
        else:
            q.where.append(
                f"e.rid IN (SELECT g.rid FROM {s}.geo g "
                f"WHERE g.geom && {envelope} AND g.prop = {q.arg(prop)})"
            )
    for attr, op, number in pre.values:
        if attr in indexed and op in _SQL_OPS:
            q.where.append(
                f"e.rid IN (SELECT v.rid FROM {s}.attr_values v "
                f"WHERE v.attr = {q.arg(attr)} AND v.num {op} {q.arg(float(number))})"
            )
    if pre.ids is not None:
        if not pre.ids:
            return None
        q.where.append(f"e.id = ANY({q.arg(sorted(pre.ids))}::text[])")
    if pre.types is not None:
        if not pre.types:
            return None
        types = q.arg(sorted(pre.types))
        q.where.append(
            f"(e.type = ANY({types}::text[]) OR e.rid IN "
            f"(SELECT x.rid FROM {s}.extra_types x WHERE x.type = ANY({types}::text[])))"
        )
    return q


async def select(
    pool: asyncpg.Pool, s: str, selection: Selection, indexed: frozenset[str] = frozenset()
) -> Page:
    query = build_query(s, selection.prefilter, indexed)
    if query is None:
        return Page([], 0 if selection.count else None)
    if selection.predicate is None and selection.order_key is None:
        return await _sql_page(pool, query, selection)
    async with pool.acquire() as conn:
        if not selection.count:
            # Most pages (and `near` with its early stop) need only the first rows: one
            # statement, one round trip. If they were not enough, start over below.
            first = _FirstChunk(
                await conn.fetch(f"{query.sql()} LIMIT {FIRST_CHUNK}", *query.args),
                query.factor,
                selection.predicate,
            )
            async with aclosing(first.chunks()) as chunks:
                page = await _consume(chunks, selection)
            if not first.truncated:
                return page
        async with (
            conn.transaction(readonly=True),
            aclosing(_candidates(conn, query, selection.predicate)) as candidates,
        ):
            return await _consume(candidates, selection)


async def _consume(candidates: AsyncIterator[list[Candidate]], selection: Selection) -> Page:
    key = selection.order_key
    if key is not None and selection.prefilter.near is not None and not selection.count:
        return Page(await _nearest(candidates, selection, key), None)
    if key is not None:
        return await _ordered(candidates, selection, key)
    return await _in_index_order(candidates, selection)


class _FirstChunk:
    """The first FIRST_CHUNK candidates; `truncated` once a reader wanted more than there
    were and more may exist."""

    def __init__(
        self,
        rows: list[Any],
        factor: float,
        predicate: Callable[[Entity], bool] | None,
    ) -> None:
        self.truncated = False
        self._full = len(rows) >= FIRST_CHUNK
        seen: set[int] = set()
        fresh: list[tuple[float, bytes]] = []
        for rid, doc, distance in rows:
            if rid not in seen:
                seen.add(rid)
                fresh.append((_lower_bound_m(distance, factor), doc))
        self._chunk = _decode(fresh, predicate)

    async def chunks(self) -> AsyncGenerator[list[Candidate], None]:
        yield self._chunk
        self.truncated = self._full


async def _sql_page(pool: asyncpg.Pool, query: _Query, selection: Selection) -> Page:
    """No Python check: PostgreSQL pages and counts by itself, in one statement (so the
    count and the page come from one snapshot)."""
    args = [*query.args, selection.offset, selection.limit]
    page = f"{query.sql('e.doc')} OFFSET ${len(args) - 1} LIMIT ${len(args)}"
    if not selection.count:
        rows = await pool.fetch(page, *args)
        return Page([unpack(row[0]) for row in rows], None)
    row = await pool.fetchrow(
        f"SELECT ({query.sql('count(*)', ordered=False)}), ARRAY({page})", *args
    )
    assert row is not None
    return Page([unpack(doc) for doc in row[1]], int(row[0]))


async def _candidates(
    conn: asyncpg.Connection, query: _Query, predicate: Callable[[Entity], bool] | None
) -> AsyncGenerator[list[Candidate], None]:
    """Chunks of candidates in index order; an entity with several geometries comes once."""
    seen: set[int] = set()
    factor = query.factor
    cursor = await conn.cursor(query.sql(), *query.args)
    size = FIRST_CHUNK
    while True:
        rows = await cursor.fetch(size)
        if not rows:
            return
        fresh: list[tuple[float, bytes]] = []
        for rid, doc, distance in rows:
            if rid in seen:
                continue
            seen.add(rid)
            fresh.append((_lower_bound_m(distance, factor), doc))
        if len(fresh) >= THREAD_CHUNK:
            yield await asyncio.to_thread(_decode, fresh, predicate)
        else:
            yield _decode(fresh, predicate)
        if len(rows) < size:
            return
        size = min(size * 4, MAX_CHUNK)


def _decode(
    rows: list[tuple[float, bytes]], predicate: Callable[[Entity], bool] | None
) -> list[Candidate]:
    out: list[Candidate] = []
    for bound, doc in rows:
        entity = unpack(doc)
        out.append((bound, entity if predicate is None or predicate(entity) else None))
    return out


def _lower_bound_m(distance_deg: float, factor: float) -> float:
    """Widened like the SQLite backend's: the local frame is approximate."""
    if not distance_deg or not factor:
        return 0.0
    return max(0.0, distance_deg * factor * 0.99 - 2.0)


async def _in_index_order(candidates: AsyncIterator[list[Candidate]], selection: Selection) -> Page:
    end = selection.offset + selection.limit
    page: list[Entity] = []
    total = 0
    async for chunk in candidates:
        for _, entity in chunk:
            if entity is None:
                continue
            if selection.offset <= total < end:
                page.append(entity)
            total += 1
            if total >= end and not selection.count:
                return Page(page, None)
    return Page(page, total if selection.count else None)


async def _ordered(
    candidates: AsyncIterator[list[Candidate]],
    selection: Selection,
    key: Callable[[Entity], float],
) -> Page:
    low, high = selection.key_range or (-math.inf, math.inf)
    keyed: list[tuple[float, int, Entity]] = []  # n breaks ties: entities are never compared
    n = 0
    async for chunk in candidates:
        for _, entity in chunk:
            if entity is None:
                continue
            k = key(entity)
            if _in_range(k, low, high):
                keyed.append((k, n, entity))
            n += 1
    end = selection.offset + selection.limit
    if selection.count:
        ordered = sorted(keyed, key=lambda item: item[:2])
        total: int | None = len(ordered)
    else:
        ordered = heapq.nsmallest(end, keyed, key=lambda item: item[:2])
        total = None
    return Page([e for _, _, e in ordered[selection.offset : end]], total)


async def _nearest(
    candidates: AsyncIterator[list[Candidate]],
    selection: Selection,
    key: Callable[[Entity], float],
) -> list[Entity]:
    """The offset+limit nearest matches, reading candidates nearest first and stopping
    once no unread candidate can be nearer than the farthest one kept (or in range)."""
    wanted = selection.offset + selection.limit
    if wanted == 0:
        return []
    low, high = selection.key_range or (-math.inf, math.inf)
    kept: list[tuple[float, int, Entity]] = []  # max-heap on distance (negated)
    order = 0
    async for chunk in candidates:
        for lower_bound, entity in chunk:
            if lower_bound > high or (len(kept) == wanted and lower_bound > -kept[0][0]):
                return _ranked(kept, selection.offset)
            order += 1
            if entity is None:
                continue
            distance = key(entity)
            if not _in_range(distance, low, high):
                continue
            if len(kept) < wanted:
                heapq.heappush(kept, (-distance, -order, entity))
            elif distance < -kept[0][0]:
                heapq.heapreplace(kept, (-distance, -order, entity))
    return _ranked(kept, selection.offset)


def _ranked(kept: list[tuple[float, int, Entity]], offset: int) -> list[Entity]:
    ranked = sorted(kept, key=lambda item: (-item[0], -item[1]))
    return [entity for _, _, entity in ranked][offset:]


def _in_range(key: float, low: float, high: float) -> bool:
    """An infinite key means "no geometry to measure": never a match."""
    return low <= key <= high and key != math.inf
