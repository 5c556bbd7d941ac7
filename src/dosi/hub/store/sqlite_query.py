"""Reads on the SQLite backend: index prefilter in SQL, exact predicate and order in Python."""

from __future__ import annotations

import heapq
import itertools
import math
import sqlite3
from collections.abc import Callable, Iterator
from typing import Any

from dosi.hub.store.base import Page, Selection
from dosi.hub.store.rows import unpack
from dosi.hub.store.sqlite_schema import GEO_SLOTS
from dosi.ngsi.model import LOCATION, Entity


def candidates_of(
    conn: sqlite3.Connection, selection: Selection, indexed: frozenset[str] = frozenset()
) -> Iterator[tuple[float, Entity]]:
    """(lower bound of the distance to `near` in metres, or 0.0; entity), in index order.

    With `near` set the rows come nearest first, so `select` can stop early.
    """
    pre = selection.prefilter
    where: list[str] = []
    args: list[Any] = []
    columns = "e.rid, e.doc, 0.0"
    order = "e.rid"
    if pre.bbox is not None:
        # CROSS JOIN pins the join order: the R*Tree drives, the type check only filters.
        minx, miny, maxx, maxy = pre.bbox
        tree = "geo_location" if pre.geo_property in (None, LOCATION) else "geo_other"
        source = f"{tree} g CROSS JOIN entities e"
        if pre.near is not None:
            columns = f"e.rid, e.doc, {_BOX_DISTANCE_SQ}"
            order = "3"
            args += _box_distance_args(pre.near, pre.bbox)
        where += ["g.minx <= ?", "g.maxx >= ?", "g.miny <= ?", "g.maxy >= ?"]
        args += [maxx, minx, maxy, miny]
        where.append(f"e.rid = g.gid / {GEO_SLOTS}")
        if tree == "geo_other":
            where.append("g.prop = ?")
            args.append(pre.geo_property)
        type_column = "+e.type"
    else:
        source = "entities e"
        type_column = "e.type"
    for attr, op, number in pre.values:
        if attr in indexed:
            where.append(f"e.rid IN (SELECT rid FROM attr_values WHERE attr = ? AND num {op} ?)")
            args += [attr, number]
    if pre.ids is not None:
        ids = sorted(pre.ids)
        if not ids:
            return
        where.append(f"e.id IN ({','.join('?' * len(ids))})")
        args += ids
    if pre.types is not None:
        types = sorted(pre.types)
        if not types:
            return
        marks = ",".join("?" * len(types))
        where.append(
            f"({type_column} IN ({marks}) OR "
            f"e.rid IN (SELECT rid FROM extra_types WHERE type IN ({marks})))"
        )
        args += types + types
    sql = f"SELECT {columns} FROM {source}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY {order}"
    seen: set[int] = set()
    for rid, doc, distance_sq in conn.execute(sql, args):
        if pre.bbox is not None:
            # An entity with several geometries in the box comes once (the nearest first).
            if rid in seen:
                continue
            seen.add(rid)
        yield _lower_bound_m(distance_sq), unpack(doc)


# Squared metres from the reference point to an R*Tree box, never more than the truth:
# degrees of latitude are at least 110,574 m; degrees of longitude are scaled by the
# cosine of the box edge farthest from the equator (passed in as a parameter).
_BOX_DISTANCE_SQ = (
    "(max(g.minx - ?, 0, ? - g.maxx) * ?) * (max(g.minx - ?, 0, ? - g.maxx) * ?)"
    " + (max(g.miny - ?, 0, ? - g.maxy) * 110574.0) * (max(g.miny - ?, 0, ? - g.maxy) * 110574.0)"
)


def _box_distance_args(
    near: tuple[float, float], bbox: tuple[float, float, float, float]
) -> list[float]:
    x, y = near
    polar = max(abs(bbox[1]), abs(bbox[3]))
    metres_per_lon = 111_320.0 * math.cos(math.radians(min(polar, 90.0)))
    return [x, x, metres_per_lon, x, x, metres_per_lon, y, y, y, y]


def _lower_bound_m(distance_sq: float) -> float:
    """R*Tree boxes are float32 (~1 m here) and the local frame is approximate: widen."""
    return max(0.0, math.sqrt(distance_sq) * 0.99 - 2.0) if distance_sq else 0.0


def select(
    conn: sqlite3.Connection, selection: Selection, indexed: frozenset[str] = frozenset()
) -> Page:
    predicate = selection.predicate
    candidates = candidates_of(conn, selection, indexed)
    key = selection.order_key
    if key is not None and selection.prefilter.near is not None and not selection.count:
        return Page(_nearest(candidates, selection, key), None)
    matches = (e for _, e in candidates if predicate is None or predicate(e))
    if key is not None:
        low, high = selection.key_range or (-math.inf, math.inf)
        keyed = (
            (k, n, e) for n, e in enumerate(matches) if _in_range(k := key(e), low, high)
        )  # n breaks ties, so entities themselves are never compared
        end = selection.offset + selection.limit
        if selection.count:
            ordered = sorted(keyed, key=lambda item: item[:2])
            total: int | None = len(ordered)
        else:
            ordered = heapq.nsmallest(end, keyed, key=lambda item: item[:2])
            total = None
        return Page([e for _, _, e in ordered[selection.offset : end]], total)
    end = selection.offset + selection.limit
    if not selection.count:
        return Page(list(itertools.islice(matches, selection.offset, end)), None)
    page_list: list[Entity] = []
    total = 0
    for entity in matches:
        if selection.offset <= total < end:
            page_list.append(entity)
        total += 1
    return Page(page_list, total)


def _nearest(
    candidates: Iterator[tuple[float, Entity]],
    selection: Selection,
    key: Callable[[Entity], float],
) -> list[Entity]:
    """The offset+limit nearest matches, reading candidates nearest first and stopping
    once no unread candidate can be nearer than the farthest one kept (or in range)."""
    wanted = selection.offset + selection.limit
    predicate = selection.predicate
    low, high = selection.key_range or (-math.inf, math.inf)
    kept: list[tuple[float, int, Entity]] = []  # max-heap on distance (negated)
    for order, (lower_bound, entity) in enumerate(candidates):
        if lower_bound > high or (len(kept) == wanted and lower_bound > -kept[0][0]):
            break
        if predicate is not None and not predicate(entity):
            continue
        distance = key(entity)
        if not _in_range(distance, low, high):
            continue
        if len(kept) < wanted:
            heapq.heappush(kept, (-distance, -order, entity))
        elif distance < -kept[0][0]:
            heapq.heapreplace(kept, (-distance, -order, entity))
    ranked = sorted(kept, key=lambda item: (-item[0], -item[1]))
    return [entity for _, _, entity in ranked][selection.offset :]


def _in_range(key: float, low: float, high: float) -> bool:
    """An infinite key means "no geometry to measure": never a match."""
    return low <= key <= high and key != math.inf
