"""The row changes of one PostgreSQL write transaction, and how they are flushed.

Mirrors sqlite_schema.WritePlan (same side tables, same history and journal
rows from store/history.py and store/rows.py), flushed as one statement per
table over `unnest` of arrays: one round trip each, whatever the batch size.

Commit order of the journal: a bigserial alone is not commit order, since two
transactions may take seqs 5 and 6 and commit 6 first; a follower that read 6
would then skip 5 forever. So the journal rows are inserted last, after
`pg_advisory_xact_lock` on the tenant's journal key: the lock is held until
COMMIT (PostgreSQL makes the commit visible before it releases the lock), so
seqs are handed out and made visible strictly in order. Only this tail of a
transaction is serialised; everything before it runs concurrently.
"""

from __future__ import annotations

import math
import re
import struct
from collections import Counter
from typing import Any

import asyncpg
import shapely
from shapely.errors import GEOSException

from dosi.hub.store.base import Change
from dosi.hub.store.history import ChangeRecorder
from dosi.hub.store.postgres_schema import lock_key
from dosi.hub.store.rows import Shape, expand_shapes, indexed_numbers, pack
from dosi.ngsi.errors import BadRequestData
from dosi.ngsi.geojson import geometry_bbox, to_shape
from dosi.ngsi.model import ENTITY_RESERVED, Entity

GEO_SLOTS = 64  # GeoProperty instances one entity may carry (as on SQLite)
SRID = 4326
COPY_FROM = 64  # rows from which appends use COPY
_POINT_EWKB = struct.Struct("<BIIdd")
_EWKB_POINT_SRID = 0x20000001
# U+0000 cannot be stored in jsonb or text: a JSON escape not itself escaped.
_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def journal_channel(base: str) -> str:
    """The LISTEN/NOTIFY channel that tells other processes a journal grew."""
    return f"{base}_journal"


def point_ewkb(x: float, y: float) -> bytes:
    return _POINT_EWKB.pack(1, _EWKB_POINT_SRID, SRID, x, y)


def geometry_ewkb(value: dict[str, Any], bbox: tuple[float, float, float, float]) -> bytes:
    """EWKB of a GeoJSON geometry, 2-D; its bounding box if GEOS cannot build it.

    The box is all the prefilter and the `near` lower bound rely on, so the
    fallback stays correct, only less tight.
    """
    if value.get("type") == "Point":
        return point_ewkb(bbox[0], bbox[1])
    try:
        shape = shapely.set_srid(to_shape(value), SRID)
        return bytes(shapely.to_wkb(shape, include_srid=True))
    except (GEOSException, ValueError, TypeError, IndexError, KeyError):
        minx, miny, maxx, maxy = bbox
        box = shapely.set_srid(shapely.box(minx, miny, maxx, maxy), SRID)
        return bytes(shapely.to_wkb(box, include_srid=True))


def has_nul(doc: bytes) -> bool:
    return b"\\u0000" in doc and _NUL.search(doc) is not None


class PgWritePlan:
    """Row changes of one transaction, flushed with one statement per table."""

    def __init__(self, indexed: frozenset[str] = frozenset(), *, history: bool = True) -> None:
        self.indexed = indexed
        self.changes = ChangeRecorder(history=history)
        self.inserts: list[tuple[str, str, bytes, Entity]] = []  # id, type, doc, entity
        self.updates: list[tuple[int, str, bytes]] = []
        self.deletes: list[int] = []
        self.type_drops: list[int] = []
        self.type_adds: list[tuple[str, int]] = []
        self.geo_drops: list[int] = []
        self.geo_adds: list[tuple[int, int, str, bytes]] = []
        self.value_drops: list[int] = []
        self.value_adds: list[tuple[str, float, int]] = []
        self.stats: Counter[Shape] = Counter()

    # -- entities (rids of new entities are known only after their INSERT) --
    def insert(self, entity: Entity, doc: bytes) -> None:
        self.inserts.append((entity["id"], entity["type"][0], doc, entity))

    def _insert_sides(self, rid: int, entity: Entity) -> None:
        self.type_adds.extend((t, rid) for t in entity["type"][1:])
        self._add_geo(rid, entity)
        if self.indexed:
            self.value_adds.extend((a, n, rid) for a, n in indexed_numbers(entity, self.indexed))

    def update(self, rid: int, before: Entity, after: Entity, doc: bytes) -> None:
        types = after["type"]
        self.updates.append((rid, types[0], doc))
        if types[1:] != before["type"][1:]:
            self.type_drops.append(rid)
            self.type_adds.extend((t, rid) for t in types[1:])
        if _geometries(after) != _geometries(before):
            self.geo_drops.append(rid)
            self._add_geo(rid, after)
        if self.indexed:
            new_values = indexed_numbers(after, self.indexed)
            if new_values != indexed_numbers(before, self.indexed):
                self.value_drops.append(rid)
                self.value_adds.extend((a, n, rid) for a, n in new_values)

    def delete(self, rid: int, before: Entity) -> None:
        self.deletes.append(rid)
        if len(before["type"]) > 1:
            self.type_drops.append(rid)
        if _geometries(before):
            self.geo_drops.append(rid)
        if self.indexed and indexed_numbers(before, self.indexed):
            self.value_drops.append(rid)

    def _add_geo(self, rid: int, entity: Entity) -> None:
        geometries = _geometries(entity)
        if len(geometries) > GEO_SLOTS:
            raise BadRequestData(f"an entity carries at most {GEO_SLOTS} GeoProperty instances")
        for n, (prop, value) in enumerate(geometries):
            self.geo_adds.append((rid, n, prop, geometry_ewkb(value, geometry_bbox(value))))

    # -- history and journal (rows made by history.ChangeRecorder) -------------
    def record(self, change: Change, now: str, now_ms: int) -> None:
        self.changes.record(change, now, now_ms)

    # -- flush -----------------------------------------------------------------
    async def flush(self, conn: asyncpg.Connection, s: str) -> None:
        """Write everything; the journal last, under the tenant's journal lock."""
        if self.deletes:
            await conn.execute(
                f"DELETE FROM {s}.entities WHERE rid = ANY($1::bigint[])", self.deletes
            )
        for table, rids in (
            ("extra_types", self.type_drops),
            ("geo", self.geo_drops),
            ("attr_values", self.value_drops),
        ):
            if rids:
                await conn.execute(f"DELETE FROM {s}.{table} WHERE rid = ANY($1::bigint[])", rids)
        if self.updates:
            update_rids, update_types, update_docs = zip(*self.updates, strict=True)
            await conn.execute(
                f"UPDATE {s}.entities e SET type = u.type, doc = u.doc "
                "FROM unnest($1::bigint[], $2::text[], $3::jsonb[]) AS u(rid, type, doc) "
                "WHERE e.rid = u.rid",
                update_rids,
                update_types,
                update_docs,
            )
        if self.inserts:
            # In the order of the batch, like SQLite: rids are the default order of queries.
            ids = [row[0] for row in self.inserts]
            rows = await conn.fetch(
                f"INSERT INTO {s}.entities(id, type, doc) "
                "SELECT * FROM unnest($1::text[], $2::text[], $3::jsonb[]) RETURNING rid, id",
                ids,
                [row[1] for row in self.inserts],
                [row[2] for row in self.inserts],
            )
            rid_of = {eid: rid for rid, eid in rows}
            for eid, _, _, entity in self.inserts:
                self._insert_sides(rid_of[eid], entity)
        if self.type_adds:
            await unnest_insert(
                conn, s, "extra_types(type, rid)", ("text", "bigint"), self.type_adds, ignore=True
            )
        if self.geo_adds:
            await append_rows(
                conn,
                s,
                "geo(rid, n, prop, geom)",
                ("bigint", "int", "text", "geometry"),
                self.geo_adds,
            )
        if self.value_adds:
            await append_rows(
                conn,
                s,
                "attr_values(attr, num, rid)",
                ("text", "float8", "bigint"),
                self.value_adds,
            )
        await self._flush_history(conn, s)
        await self._flush_stats(conn, s)
        await self._flush_journal(conn, s)

    async def _flush_history(self, conn: asyncpg.Connection, s: str) -> None:
        changes = self.changes
        if changes.attr_names:
            await unnest_insert(
                conn,
                s,
                "history_attrs(key, name)",
                ("bigint", "text"),
                sorted(changes.attr_names.items()),
                ignore=True,
            )
        if changes.history:
            await append_rows(
                conn,
                s,
                "history(entity, attr, ts, recorded, num, doc)",
                ("bigint", "bigint", "bigint", "bigint", "float8", "bytea"),
                changes.history,
            )
        if changes.records:
            await unnest_insert(
                conn,
                s,
                "temporal_entities(key, id, type, doc)",
                ("bigint", "text", "text", "bytea"),
                changes.entity_rows(),
                conflict="(key) DO UPDATE SET type = excluded.type, doc = excluded.doc",
            )
            await unnest_insert(
                conn,
                s,
                "temporal_types(type, key)",
                ("text", "bigint"),
                changes.type_rows(),
                ignore=True,
            )

    async def _flush_stats(self, conn: asyncpg.Connection, s: str) -> None:
        # Sorted: every writer locks the shared counter rows in the same order.
        rows = sorted((t, a, at, n) for (t, a, at), n in expand_shapes(self.stats).items() if n)
        if not rows:
            return
        await unnest_insert(
            conn,
            s,
            "attr_stats(type, attr, attr_type, n)",
            ("text", "text", "text", "bigint"),
            rows,
            conflict="(type, attr, attr_type) DO UPDATE SET n = attr_stats.n + excluded.n",
        )
        fallen = [(t, a, at) for t, a, at, n in rows if n < 0]
        if fallen:
            await conn.execute(
                f"DELETE FROM {s}.attr_stats WHERE n <= 0 AND (type, attr, attr_type) IN "
                "(SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))",
                *zip(*fallen, strict=True),
            )

    async def _flush_journal(self, conn: asyncpg.Connection, s: str) -> None:
        if not self.changes.journal:
            return
        await conn.execute("SELECT pg_advisory_xact_lock($1)", lock_key("dosi-journal", s))
        await append_rows(conn, s, "journal(at, doc)", ("bigint", "bytea"), self.changes.journal)


def _geometries(entity: Entity) -> list[tuple[str, Any]]:
    """(property, GeoJSON value) of every GeoProperty instance, in rows.geo_entries' order."""
    return [
        (key, inst["value"])
        for key, instances in entity.items()
        if key not in ENTITY_RESERVED
        for inst in instances
        if inst.get("type") == "GeoProperty"
    ]


async def append_rows(
    conn: asyncpg.Connection, s: str, target: str, types: tuple[str, ...], rows: list[Any]
) -> None:
    """Rows for a table without conflicts: binary COPY (~40% cheaper than unnest for
    thousands of rows), or unnest for a few, where COPY's extra round trip dominates."""
    if len(rows) < COPY_FROM:
        await unnest_insert(conn, s, target, types, rows)
        return
    table, _, columns = target.partition("(")
    await conn.copy_records_to_table(
        table,
        records=rows,
        columns=[c.strip() for c in columns.rstrip(")").split(",")],
        schema_name=s,
    )


async def unnest_insert(
    conn: asyncpg.Connection,
    s: str,
    target: str,
    types: tuple[str, ...],
    rows: list[Any],
    *,
    ignore: bool = False,
    conflict: str | None = None,
) -> None:
    """INSERT ... SELECT FROM unnest(arrays): many rows, one statement, one round trip."""
    columns = list(zip(*rows, strict=True))
    args = ", ".join(f"${i + 1}::{t}[]" for i, t in enumerate(types))
    sql = f"INSERT INTO {s}.{target} SELECT * FROM unnest({args})"
    if conflict is not None:
        sql += f" ON CONFLICT {conflict}"
    elif ignore:
        sql += " ON CONFLICT DO NOTHING"
    await conn.execute(sql, *columns)


def lower_bound_factor(bbox: tuple[float, float, float, float]) -> float:
    """Metres per degree of planar distance, never more than the truth inside `bbox`.

    A degree of latitude is at least 110,574 m; one of longitude 111,320·cos φ at
    the box edge farthest from the equator. 0 when the box spans every longitude
    (the antimeridian or a pole): planar distances then say nothing.
    """
    if bbox[2] - bbox[0] >= 360.0:
        return 0.0
    polar = min(max(abs(bbox[1]), abs(bbox[3])), 90.0)
    return min(110_574.0, 111_320.0 * math.cos(math.radians(polar)))


def pack_checked(entity: Entity) -> bytes:
    """The stored document (rows.pack), refused if PostgreSQL cannot hold it."""
    doc = pack(entity)
    if has_nul(doc):
        raise BadRequestData("text containing the NUL character (U+0000) cannot be stored")
    return doc
