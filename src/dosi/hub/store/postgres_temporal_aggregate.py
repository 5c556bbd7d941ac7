"""Aggregated periods on PostgreSQL: every series of a page in a few set-based statements.

Same answers as sqlite_temporal_aggregate (the same period edges, the same
merge of hourly rollups, the same caps), but where SQLite runs small
statements per series and period, here each step is one round trip for all
series of the page: their first and last time in the window, their hourly
rollups, then their statistics. Fixed periods are a GROUP BY over integer
division of the time per series (one index range scan of
history_series(entity, attr, ts, num) each, hashed, the first `cap + 1`
periods kept); whole-window and calendar periods are an explicit list of
(series, start, end) ranges, each one range scan. Also holds the SQL pieces
the reader shares (statement parameters, the window condition).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import asyncpg
import orjson

from dosi.hub.store.temporal import HOUR_MS, Aggregation, Bucket, Stats, TimeWindow

# hour, n, n_num, total, sumsq, low, high: one row of history_hourly
Rolled = tuple[int, int, int, float, float, float | None, float | None]
# (entity key, attribute key) of one series
SeriesKey = tuple[int, int]

# The value an instance holds, whatever its attribute type (distinctCount); the
# document is parsed only for non-numeric rows, once (OFFSET 0 keeps it one subquery).
_KEYS = ("value", "object", "languageMap", "vocab", "valueList", "objectList", "json")
_VALUE = (
    "coalesce(to_jsonb(h.num), (SELECT coalesce("
    + ", ".join(f"d -> '{key}'" for key in _KEYS)
    + ") FROM (SELECT convert_from(h.doc, 'UTF8')::jsonb AS d OFFSET 0) AS parsed))"
)


class Args:
    """The positional parameters ($1, $2, ...) of one statement, numbered as added."""

    def __init__(self, *values: Any) -> None:
        self.values: list[Any] = list(values)

    def __call__(self, value: Any, cast: str) -> str:
        self.values.append(value)
        return f"${len(self.values)}::{cast}"


def time_column(window: TimeWindow, alias: str = "h") -> str:
    """observedAt and deletedAt select on `ts`, createdAt and modifiedAt on `recorded`."""
    return f"{alias}.recorded" if window.prop in ("createdAt", "modifiedAt") else f"{alias}.ts"


def window_where(window: TimeWindow, args: Args, alias: str = "h") -> str:
    """The window as ` AND ...` conditions over history rows `alias`."""
    col = time_column(window, alias)
    conds: list[str] = []
    if window.start is not None:
        conds.append(f"{col} {'>' if window.start_open else '>='} {args(window.start, 'bigint')}")
    if window.end is not None:
        conds.append(f"{col} < {args(window.end, 'bigint')}")
    if window.prop == "deletedAt":
        # Deletion records hold no value; the byte test spares parsing most documents.
        conds.append(
            f"{alias}.num IS NULL AND position('\"deletedAt\"'::bytea IN {alias}.doc) > 0 "
            f"AND convert_from({alias}.doc, 'UTF8')::jsonb ? 'deletedAt'"
        )
    return "".join(f" AND {c}" for c in conds)


def rollup_where(window: TimeWindow, args: Args, alias: str = "r") -> str:
    """Hourly aggregates of hours lying wholly inside the window (` AND ...`)."""
    conds = ""
    if window.start is not None:  # an hour rolled up counts whole, also for `after`
        conds += f" AND {alias}.hour >= {args(-((-window.start) // HOUR_MS) * HOUR_MS, 'bigint')}"
    if window.end is not None:
        conds += f" AND {alias}.hour <= {args(window.end - HOUR_MS, 'bigint')}"
    return conds


def series_args(series: Sequence[SeriesKey]) -> Args:
    """$1, $2: the entity and attribute keys of `series`, for `unnest(...) WITH ORDINALITY`."""
    return Args([e for e, _ in series], [a for _, a in series])


SERIES = "unnest($1::bigint[], $2::bigint[]) WITH ORDINALITY AS q(e, a, i)"


@dataclass
class _Plan:
    """One series: its raw extent and rollups in, its periods out (as _Aggregator on SQLite)."""

    raw: tuple[int, int] | None
    rolled: list[Rolled]
    attr_type: str = "Property"
    buckets: dict[int, Stats] = field(default_factory=dict)
    ends: dict[int, int] = field(default_factory=dict)
    edges: list[int] = field(default_factory=list)
    origin: int = 0
    truncated: bool = False

    def add(self, start: int, stats: Stats) -> None:
        known = self.buckets.get(start)
        if known is None:
            self.buckets[start] = stats
        else:
            known.merge(stats)


async def aggregate(
    conn: asyncpg.Connection,
    s: str,
    window: TimeWindow,
    agg: Aggregation,
    series: Sequence[SeriesKey],
    cap: int,
    rollup: bool,
) -> list[tuple[str, list[Bucket], bool]]:
    """(attribute type, periods (at most `cap`), whether more were left out) per series."""
    if not series:
        return []
    plans = await _extents(conn, s, window, series)
    if rollup:
        for i, row in await _rollups(conn, s, window, series):
            plans[i].rolled.append(row)
    ranges: list[tuple[int, int, int, int]] = []  # plan, bucket start, lo, hi
    fixed: list[int] = []
    for i, plan in enumerate(plans):
        raw, rolled = plan.raw, plan.rolled
        if raw is None and not rolled:
            continue
        lows = [raw[0]] if raw else []
        highs = [raw[1] + 1] if raw else []
        if rolled:
            lows.append(rolled[0][0])
            highs.append(rolled[-1][0] + HOUR_MS)
        lo, hi = min(lows), max(highs)
        if agg.edges is not None:
            plan.edges = edges = agg.edges(agg.anchor, lo, hi, cap)
            plan.truncated = edges[-1] < hi
            plan.ends = dict(pairwise(edges))
            if raw:
                ranges.extend(
                    (i, start, max(start, raw[0]), min(end, raw[1] + 1))
                    for start, end in pairwise(edges)
                    if start <= raw[1] and end > raw[0]
                )
        elif agg.period_ms == 0:
            start = window.start if window.start is not None else lo
            plan.ends = {start: window.end if window.end is not None else hi}
            if raw:
                ranges.append((i, start, raw[0], raw[1] + 1))
        else:
            plan.origin = agg.anchor + ((lo - agg.anchor) // agg.period_ms) * agg.period_ms
            if raw:
                fixed.append(i)
    columns = _stat_columns(agg.methods)
    if ranges:
        await _range_stats(conn, s, window, columns, series, plans, ranges)
    if fixed:
        await _fixed_stats(conn, s, window, columns, series, plans, fixed, agg.period_ms, cap)
    return [_finish(plan, window, agg, cap) for plan in plans]


async def _extents(
    conn: asyncpg.Connection, s: str, window: TimeWindow, series: Sequence[SeriesKey]
) -> list[_Plan]:
    """First and last time of each series' raw rows in the window, and its attribute type
    (that of its latest instance, whatever the window)."""
    args = series_args(series)
    col = time_column(window)
    where = window_where(window, args)
    one = f"FROM {s}.history h WHERE h.entity = q.e AND h.attr = q.a"
    rows = await conn.fetch(
        f"SELECT (SELECT {col} {one}{where} ORDER BY {col} LIMIT 1), "
        f"(SELECT {col} {one}{where} ORDER BY {col} DESC LIMIT 1), "
        f"(SELECT h.doc {one} ORDER BY h.ts DESC LIMIT 1) "
        f"FROM {SERIES} ORDER BY q.i",
        *args.values,
    )
    plans = []
    for first, last, doc in rows:
        plan = _Plan(None if first is None else (int(first), int(last)), [])
        if doc is not None:
            plan.attr_type = orjson.loads(doc).get("type", "Property")
        plans.append(plan)
    return plans


async def _rollups(
    conn: asyncpg.Connection, s: str, window: TimeWindow, series: Sequence[SeriesKey]
) -> list[tuple[int, Rolled]]:
    args = series_args(series)
    rows = await conn.fetch(
        "SELECT q.i - 1, r.hour, r.n, r.n_num, r.total, r.sumsq, r.low, r.high "
        f"FROM {SERIES} JOIN {s}.history_hourly r ON r.entity = q.e AND r.attr = q.a"
        f"{rollup_where(window, args)} ORDER BY q.i, r.hour",
        *args.values,
    )
    return [(int(row[0]), tuple(row[1:])) for row in rows]  # type: ignore[misc]


async def _range_stats(
    conn: asyncpg.Connection,
    s: str,
    window: TimeWindow,
    columns: str,
    series: Sequence[SeriesKey],
    plans: list[_Plan],
    ranges: list[tuple[int, int, int, int]],
) -> None:
    """Statistics of explicit time ranges, one index range scan each."""
    col = time_column(window)
    args = Args(
        [series[i][0] for i, _, _, _ in ranges],
        [series[i][1] for i, _, _, _ in ranges],
        [lo for _, _, lo, _ in ranges],
        [hi for _, _, _, hi in ranges],
    )
    where = window_where(window, args)
    rows = await conn.fetch(
        f"SELECT q.k - 1, st.* FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], "
        "$4::bigint[]) WITH ORDINALITY AS q(e, a, lo, hi, k) CROSS JOIN LATERAL "
        f"(SELECT {columns} FROM {s}.history h WHERE h.entity = q.e AND h.attr = q.a{where} "
        f"AND {col} >= q.lo AND {col} < q.hi) AS st",
        *args.values,
    )
    for k, *values in rows:
        i, start, _, _ = ranges[k]
        plans[i].add(start, _stats(values))


async def _fixed_stats(
    conn: asyncpg.Connection,
    s: str,
    window: TimeWindow,
    columns: str,
    series: Sequence[SeriesKey],
    plans: list[_Plan],
    fixed: list[int],
    period: int,
    cap: int,
) -> None:
    """Fixed periods: GROUP BY period number per series, the first cap + 1 of them."""
    col = time_column(window)
    args = Args(
        [series[i][0] for i in fixed],
        [series[i][1] for i in fixed],
        [plans[i].origin for i in fixed],
    )
    size = args(period, "bigint")
    limit = args(cap + 1, "bigint")
    where = window_where(window, args)
    rows = await conn.fetch(
        "SELECT q.i - 1, g.* FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) "
        "WITH ORDINALITY AS q(e, a, origin, i) CROSS JOIN LATERAL "
        f"(SELECT ({col} - q.origin) / {size} AS b, {columns} FROM {s}.history h "
        f"WHERE h.entity = q.e AND h.attr = q.a{where} GROUP BY 1 ORDER BY 1 LIMIT {limit}) AS g",
        *args.values,
    )
    for n, b, *values in rows:
        plan = plans[fixed[n]]
        plan.add(plan.origin + int(b) * period, _stats(values))


def _finish(
    plan: _Plan, window: TimeWindow, agg: Aggregation, cap: int
) -> tuple[str, list[Bucket], bool]:
    if plan.raw is None and not plan.rolled:
        return plan.attr_type, [], False
    if agg.edges is not None:
        edges = plan.edges
        for row in plan.rolled:
            i = bisect_right(edges, row[0]) - 1
            if 0 <= i < len(edges) - 1:
                plan.add(edges[i], _rolled(row))
    elif agg.period_ms == 0:
        (start,) = plan.ends
        stats = plan.buckets.setdefault(start, Stats())
        for row in plan.rolled:
            stats.merge(_rolled(row))
    else:
        period, origin = agg.period_ms, plan.origin
        for row in plan.rolled:
            plan.add(origin + ((row[0] - origin) // period) * period, _rolled(row))
        plan.ends = {start: start + period for start in plan.buckets}
    out = []
    for start in sorted(plan.buckets):
        stats = plan.buckets[start]
        if stats.count == 0:
            continue
        end = plan.ends[start]
        if window.end is not None:
            end = min(end, window.end)
        out.append(Bucket(start, end, stats))
    if len(out) > cap:
        plan.truncated = True
        del out[cap:]
    return plan.attr_type, out, plan.truncated


def _stat_columns(methods: tuple[str, ...]) -> str:
    wanted = set(methods)
    return ", ".join(
        (
            "count(*)",
            "count(h.num)",
            "sum(h.num)" if wanted & {"sum", "avg", "stddev"} else "NULL::float8",
            "sum(h.num * h.num)" if wanted & {"stddev", "sumsq"} else "NULL::float8",
            "min(h.num)" if "min" in wanted else "NULL::float8",
            "max(h.num)" if "max" in wanted else "NULL::float8",
            f"count(DISTINCT {_VALUE})" if "distinctCount" in wanted else "NULL::bigint",
        )
    )


def _stats(row: Sequence[Any]) -> Stats:
    count, numbers, total, sumsq, low, high, distinct = row
    return Stats(count, numbers, total or 0.0, sumsq or 0.0, low, high, distinct)


def _rolled(row: Rolled) -> Stats:
    _, n, n_num, total, sumsq, low, high = row
    return Stats(n, n_num, total, sumsq, low, high, None)
