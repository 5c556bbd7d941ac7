"""SQLite schema and the statements that keep its indexes in step with entities."""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterable
from typing import Any

import orjson

from dosi.hub.store.rows import GeoEntry, geo_entries

SCHEMA_VERSION = 1

PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    # NORMAL in WAL mode survives process crashes (SIGKILL); only an OS crash or
    # power cut can lose the last commits. `durable=True` switches to FULL.
    "PRAGMA synchronous=NORMAL",
    "PRAGMA temp_store=MEMORY",
    "PRAGMA cache_size=-65536",
    "PRAGMA mmap_size=268435456",
    "PRAGMA busy_timeout=10000",
)

DDL = (
    """CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS entities(
        rid INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        type TEXT NOT NULL,
        doc BLOB NOT NULL)""",
    """CREATE INDEX IF NOT EXISTS entities_type ON entities(type)""",
    # Types beyond the first: most entities have one type, so this stays small.
    """CREATE TABLE IF NOT EXISTS extra_types(
        type TEXT NOT NULL, rid INTEGER NOT NULL, PRIMARY KEY(type, rid)) WITHOUT ROWID""",
    """CREATE INDEX IF NOT EXISTS extra_types_rid ON extra_types(rid)""",
    """CREATE TABLE IF NOT EXISTS geo_keys(
        gid INTEGER PRIMARY KEY, rid INTEGER NOT NULL, prop TEXT NOT NULL)""",
    """CREATE INDEX IF NOT EXISTS geo_keys_rid ON geo_keys(rid)""",
    """CREATE VIRTUAL TABLE IF NOT EXISTS geo USING rtree(gid, minx, maxx, miny, maxy)""",
    """CREATE TABLE IF NOT EXISTS attr_stats(
        type TEXT NOT NULL, attr TEXT NOT NULL, attr_type TEXT NOT NULL, n INTEGER NOT NULL,
        PRIMARY KEY(type, attr, attr_type)) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS kv(
        ns TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,
        PRIMARY KEY(ns, key)) WITHOUT ROWID""",
)


def connect(path: str, *, durable: bool = False, readonly: bool = False) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    for pragma in PRAGMAS:
        conn.execute(pragma)
    if durable:
        conn.execute("PRAGMA synchronous=FULL")
    if readonly:
        conn.execute("PRAGMA query_only=1")
    return conn


def create_schema(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in DDL:
            conn.execute(statement)
        conn.execute(
            "INSERT OR IGNORE INTO meta(key, value) VALUES('schema_version', ?)",
            (str(SCHEMA_VERSION),),
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


class WritePlan:
    """Row changes of one transaction, flushed with executemany per table."""

    def __init__(self) -> None:
        self.inserts: list[tuple[int, str, str, bytes]] = []
        self.updates: list[tuple[str, bytes, int]] = []
        self.deletes: list[tuple[int]] = []
        self.type_drops: list[tuple[int]] = []
        self.type_adds: list[tuple[str, int]] = []
        self.geo_drops: list[int] = []
        self.geo_adds: list[tuple[int, GeoEntry]] = []
        self.stats: Counter[Any] = Counter()

    def insert(self, rid: int, entity: dict[str, Any]) -> None:
        types = entity["type"]
        self.inserts.append((rid, entity["id"], types[0], orjson.dumps(entity)))
        self.type_adds.extend((t, rid) for t in types[1:])
        self.geo_adds.extend((rid, entry) for entry in geo_entries(entity))

    def update(self, rid: int, before: dict[str, Any], after: dict[str, Any]) -> None:
        types = after["type"]
        self.updates.append((types[0], orjson.dumps(after), rid))
        if types[1:] != before["type"][1:]:
            self.type_drops.append((rid,))
            self.type_adds.extend((t, rid) for t in types[1:])
        new_geo = geo_entries(after)
        if new_geo != geo_entries(before):
            self.geo_drops.append(rid)
            self.geo_adds.extend((rid, entry) for entry in new_geo)

    def delete(self, rid: int) -> None:
        self.deletes.append((rid,))
        self.type_drops.append((rid,))
        self.geo_drops.append(rid)

    def flush(self, conn: sqlite3.Connection) -> None:
        if self.deletes:
            conn.executemany("DELETE FROM entities WHERE rid=?", self.deletes)
        if self.type_drops:
            conn.executemany("DELETE FROM extra_types WHERE rid=?", self.type_drops)
        if self.geo_drops:
            _drop_geo(conn, self.geo_drops)
        if self.inserts:
            conn.executemany(
                "INSERT INTO entities(rid, id, type, doc) VALUES(?,?,?,?)", self.inserts
            )
        if self.updates:
            conn.executemany("UPDATE entities SET type=?, doc=? WHERE rid=?", self.updates)
        if self.type_adds:
            conn.executemany(
                "INSERT OR IGNORE INTO extra_types(type, rid) VALUES(?,?)", self.type_adds
            )
        if self.geo_adds:
            _add_geo(conn, self.geo_adds)
        self._flush_stats(conn)

    def _flush_stats(self, conn: sqlite3.Connection) -> None:
        rows = [(t, a, at, n) for (t, a, at), n in self.stats.items() if n]
        if not rows:
            return
        conn.executemany(
            "INSERT INTO attr_stats(type, attr, attr_type, n) VALUES(?,?,?,?) "
            "ON CONFLICT(type, attr, attr_type) DO UPDATE SET n = n + excluded.n",
            rows,
        )
        conn.execute("DELETE FROM attr_stats WHERE n <= 0")


def _drop_geo(conn: sqlite3.Connection, rids: Iterable[int]) -> None:
    gids: list[tuple[int]] = []
    for rid in rids:
        gids.extend(conn.execute("SELECT gid FROM geo_keys WHERE rid=?", (rid,)).fetchall())
    if gids:
        conn.executemany("DELETE FROM geo WHERE gid=?", gids)
        conn.executemany("DELETE FROM geo_keys WHERE gid=?", gids)


def _add_geo(conn: sqlite3.Connection, adds: list[tuple[int, GeoEntry]]) -> None:
    row = conn.execute("SELECT coalesce(max(gid), 0) FROM geo_keys").fetchone()
    next_gid = int(row[0]) + 1
    keys: list[tuple[int, int, str]] = []
    boxes: list[tuple[int, float, float, float, float]] = []
    for rid, (prop, (minx, miny, maxx, maxy)) in adds:
        keys.append((next_gid, rid, prop))
        boxes.append((next_gid, minx, maxx, miny, maxy))
        next_gid += 1
    conn.executemany("INSERT INTO geo_keys(gid, rid, prop) VALUES(?,?,?)", keys)
    conn.executemany("INSERT INTO geo(gid, minx, maxx, miny, maxy) VALUES(?,?,?,?,?)", boxes)
