"""Aggregated periods of one attribute on SQLite: raw rows in SQL, plus hourly rollups.

For fixed periods the small `temporal_periods` table (0..PERIODS-1) drives
one range scan of the covering index history_series(entity, attr, ts, num)
per period, which needs no sort (a GROUP BY over a computed bucket sorts
every row); longer runs of periods fall back to GROUP BY, calendar periods
(months, years) to one range scan each. Hourly rollups of rows retention
folded away are added to the periods they fall in (whole-hour periods only).
"""

from __future__ import annotations

import sqlite3
from bisect import bisect_right
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from dosi.hub.store.temporal import HOUR_MS, Aggregation, Bucket, Stats, TimeWindow

PERIODS = 4096  # rows of temporal_periods (see sqlite_temporal.DDL)
# hour, n, n_num, total, sumsq, low, high: one row of history_hourly
Rolled = tuple[int, int, int, float, float, float | None, float | None]
# The value an instance holds, whatever its attribute type (distinctCount).
_VALUE = (
    "coalesce(h.num, "
    + ", ".join(
        f"json_extract(CAST(h.doc AS TEXT), '$.{key}')"
        for key in ("value", "object", "languageMap", "vocab", "valueList", "objectList", "json")
    )
    + ")"
)


@dataclass(frozen=True)
class Scan:
    """Which raw rows a query reads: its time column and window (a WHERE suffix)."""

    col: str  # h.ts or h.recorded
    where: str  # " AND ..." over history h
    params: tuple[Any, ...]


def aggregate(
    conn: sqlite3.Connection,
    scan: Scan,
    window: TimeWindow,
    agg: Aggregation,
    series: tuple[int, int],
    cap: int,
    rolled: list[Rolled],
) -> tuple[list[Bucket], bool]:
    """The periods (at most `cap`) of one (entity, attribute); True if more were left out."""
    return _Aggregator(conn, scan, window, agg, series, cap).run(rolled)


class _Aggregator:
    def __init__(
        self,
        conn: sqlite3.Connection,
        scan: Scan,
        window: TimeWindow,
        agg: Aggregation,
        series: tuple[int, int],
        cap: int,
    ) -> None:
        self.conn = conn
        self.scan = scan
        self.window = window
        self.agg = agg
        self.entity, self.attr = series
        self.cap = cap
        self.columns = _stat_columns(agg.methods)
        self.buckets: dict[int, Stats] = {}
        self.truncated = False

    def run(self, rolled: list[Rolled]) -> tuple[list[Bucket], bool]:
        first = self._edge("ASC")
        last = self._edge("DESC")
        raw = None if first is None or last is None else (first, last)
        if raw is None and not rolled:
            return [], False
        lows: list[int] = []
        highs: list[int] = []
        if raw is not None:
            lows.append(raw[0])
            highs.append(raw[1] + 1)
        if rolled:
            lows.append(rolled[0][0])
            highs.append(rolled[-1][0] + HOUR_MS)
        lo, hi = min(lows), max(highs)
        window = self.window
        agg = self.agg
        if agg.edges is not None:
            edges = agg.edges(agg.anchor, lo, hi, self.cap)
            self._calendar(edges, raw, rolled)
            if edges[-1] < hi:
                self.truncated = True
            ends = dict(pairwise(edges))
        elif agg.period_ms == 0:
            stats = self._range(raw[0], raw[1] + 1) if raw else Stats()
            for row in rolled:
                stats.merge(_rolled(row))
            start = window.start if window.start is not None else lo
            self.buckets = {start: stats}
            ends = {start: window.end if window.end is not None else hi}
        else:
            period = agg.period_ms
            origin = agg.anchor + ((lo - agg.anchor) // period) * period
            if raw:
                self._fixed(origin, period, raw)
            for row in rolled:
                self._add(origin + ((row[0] - origin) // period) * period, _rolled(row))
            ends = {s: s + period for s in self.buckets}
        out = []
        for start in sorted(self.buckets):
            stats = self.buckets[start]
            if stats.count == 0:
                continue
            end = ends[start]
            if window.end is not None:
                end = min(end, window.end)
            out.append(Bucket(start, end, stats))
        if len(out) > self.cap:
            self.truncated = True
            del out[self.cap :]
        return out, self.truncated

    def _edge(self, order: str) -> int | None:
        """The first or last time of the raw rows in the window."""
        q = self.scan
        row = self.conn.execute(
            f"SELECT {q.col} FROM history h WHERE h.entity=? AND h.attr=?{q.where} "
            f"ORDER BY {q.col} {order} LIMIT 1",
            (self.entity, self.attr, *q.params),
        ).fetchone()
        return None if row is None else int(row[0])

    def _add(self, start: int, stats: Stats) -> None:
        known = self.buckets.get(start)
        if known is None:
            self.buckets[start] = stats
        else:
            known.merge(stats)

    def _range(self, lo: int, hi: int) -> Stats:
        """Statistics of the raw rows with time in [lo, hi) inside the window."""
        q = self.scan
        row = self.conn.execute(
            f"SELECT {self.columns} FROM history h WHERE h.entity=? AND h.attr=?{q.where} "
            f"AND {q.col} >= ? AND {q.col} < ?",
            (self.entity, self.attr, *q.params, lo, hi),
        ).fetchone()
        return _stats(row)

    def _fixed(self, origin: int, period: int, raw: tuple[int, int]) -> None:
        q = self.scan
        first = (raw[0] - origin) // period
        count = (raw[1] - origin) // period - first + 1
        base = origin + first * period
        if self.window.prop == "observedAt" and count <= PERIODS:
            # One index range scan per period, driven by temporal_periods: no sort.
            rows = self.conn.execute(
                f"SELECT p.i, {self.columns} FROM temporal_periods p JOIN history h "
                "ON h.entity=?1 AND h.attr=?2 AND h.ts >= max(?3, ?4 + p.i * ?5) "
                "AND h.ts < min(?6, ?4 + (p.i + 1) * ?5) WHERE p.i < ?7 GROUP BY p.i",
                (self.entity, self.attr, raw[0], base, period, raw[1] + 1, count),
            )
            for i, *values in rows:
                self._add(base + i * period, _stats(values))
            return
        rows = self.conn.execute(
            f"SELECT ({q.col} - ?) / ? AS b, {self.columns} FROM history h "
            f"WHERE h.entity=? AND h.attr=?{q.where} GROUP BY b ORDER BY b LIMIT ?",
            (origin, period, self.entity, self.attr, *q.params, self.cap + 1),
        )
        for b, *values in rows:
            self._add(origin + b * period, _stats(values))

    def _calendar(
        self,
        edges: list[int],
        raw: tuple[int, int] | None,
        rolled: list[Rolled],
    ) -> None:
        for start, end in pairwise(edges):
            if raw and start <= raw[1] and end > raw[0]:
                self._add(start, self._range(max(start, raw[0]), min(end, raw[1] + 1)))
        for row in rolled:
            i = bisect_right(edges, row[0]) - 1
            if 0 <= i < len(edges) - 1:
                self._add(edges[i], _rolled(row))


def _stat_columns(methods: tuple[str, ...]) -> str:
    wanted = set(methods)
    return ", ".join(
        (
            "count(*)",
            "count(h.num)",
            "total(h.num)" if wanted & {"sum", "avg", "stddev"} else "NULL",
            "total(h.num * h.num)" if wanted & {"stddev", "sumsq"} else "NULL",
            "min(h.num)" if "min" in wanted else "NULL",
            "max(h.num)" if "max" in wanted else "NULL",
            f"count(DISTINCT {_VALUE})" if "distinctCount" in wanted else "NULL",
        )
    )


def _stats(row: Any) -> Stats:
    count, numbers, total, sumsq, low, high, distinct = row
    return Stats(count, numbers, total or 0.0, sumsq or 0.0, low, high, distinct)


def _rolled(row: Rolled) -> Stats:
    _, n, n_num, total, sumsq, low, high = row
    return Stats(n, n_num, total, sumsq, low, high, None)
