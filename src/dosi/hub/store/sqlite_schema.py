"""SQLite schema and the statements that keep its indexes in step with entities."""

from __future__ import annotations

import sqlite3
from collections import Counter
from typing import Any

from dosi.hub.store.base import Change
from dosi.hub.store.history import ChangeRecorder
from dosi.hub.store.rows import (
    GeoEntry,
    Shape,
    expand_shapes,
    geo_entries,
    indexed_numbers,
    pack,
    unpack,
)
from dosi.ngsi.errors import BadRequestData
from dosi.ngsi.model import LOCATION

GEO_SLOTS = 64  # GeoProperty instances one entity may carry

PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    # NORMAL in WAL mode survives process crashes (SIGKILL); only an OS crash or
    # power cut can lose the last commits. `durable=True` switches to FULL.
    "PRAGMA synchronous=NORMAL",
    "PRAGMA temp_store=MEMORY",
    "PRAGMA cache_size=-65536",
    "PRAGMA mmap_size=17179869184",  # 16 GiB of address space: reads become memory loads
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
    # One R*Tree row per GeoProperty instance; gid = rid * GEO_SLOTS + n, so the rows
    # of an entity are found by rowid without a side table. `location` (what nearly
    # every geo-query asks about) has its own tree without the +prop column, which
    # makes its inserts about a third cheaper.
    """CREATE VIRTUAL TABLE IF NOT EXISTS geo_location USING rtree(gid, minx, maxx, miny, maxy)""",
    """CREATE VIRTUAL TABLE IF NOT EXISTS geo_other USING rtree(gid, minx, maxx, miny, maxy, +prop)""",
    """CREATE TABLE IF NOT EXISTS attr_stats(
        type TEXT NOT NULL, attr TEXT NOT NULL, attr_type TEXT NOT NULL, n INTEGER NOT NULL,
        PRIMARY KEY(type, attr, attr_type)) WITHOUT ROWID""",
    # Attribute-value index: numbers of the attributes an operator chose to index.
    """CREATE TABLE IF NOT EXISTS attr_values(
        attr TEXT NOT NULL, num REAL NOT NULL, rid INTEGER NOT NULL)""",
    """CREATE INDEX IF NOT EXISTS attr_values_num ON attr_values(attr, num)""",
    """CREATE INDEX IF NOT EXISTS attr_values_rid ON attr_values(rid)""",
    # History (the temporal API): one row per attribute instance ever stored, keyed by
    # hashes of entity id and attribute IRI (see store/history.py); `num` is the numeric
    # value aggregations use, in the series index so they never read the documents.
    """CREATE TABLE IF NOT EXISTS history(
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        entity INTEGER NOT NULL,
        attr INTEGER NOT NULL,
        ts INTEGER NOT NULL,
        recorded INTEGER NOT NULL,
        num REAL,
        doc BLOB NOT NULL)""",
    """CREATE INDEX IF NOT EXISTS history_series ON history(entity, attr, ts, num)""",
    """CREATE TABLE IF NOT EXISTS history_attrs(key INTEGER PRIMARY KEY, name TEXT NOT NULL)""",
    # Entities history knows of, deleted ones included (doc: types, scope, system times).
    """CREATE TABLE IF NOT EXISTS temporal_entities(
        key INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, type TEXT NOT NULL, doc BLOB NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS temporal_types(
        type TEXT NOT NULL, key INTEGER NOT NULL, PRIMARY KEY(type, key)) WITHOUT ROWID""",
    # The journal: every committed change, in commit order, for the followers that act on
    # changes (subscriptions, live streams, device commands). They prune what all have read.
    """CREATE TABLE IF NOT EXISTS journal(
        seq INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, doc BLOB NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS kv(
        ns TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,
        PRIMARY KEY(ns, key)) WITHOUT ROWID""",
)


def connect(
    path: str, *, durable: bool = False, readonly: bool = False, writer: bool = False
) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    for pragma in PRAGMAS:
        conn.execute(pragma)
    if writer:
        # The store's checkpoint thread does this work; the writer only appends to the WAL.
        conn.execute("PRAGMA wal_autocheckpoint=0")
    if durable:
        conn.execute("PRAGMA synchronous=FULL")
    if readonly:
        conn.execute("PRAGMA query_only=1")
    return conn


def create_schema(conn: sqlite3.Connection) -> None:
    """Create the tables of a new database, or migrate an older one (store/migrations.py)."""
    # Imported here: those modules import the store, which imports this one.
    from dosi.hub.store import sqlite_events, sqlite_temporal
    from dosi.hub.store.migrations import migrate_sqlite

    migrate_sqlite(conn, (*DDL, *sqlite_temporal.DDL, *sqlite_events.DDL))


class WritePlan:
    """Row changes of one transaction, flushed with executemany per table."""

    def __init__(self, indexed: frozenset[str] = frozenset(), *, history: bool = True) -> None:
        self.indexed = indexed
        self.changes = ChangeRecorder(history=history)
        self.value_drops: list[tuple[int]] = []
        self.value_adds: list[tuple[str, float, int]] = []
        self.inserts: list[tuple[int, str, str, bytes]] = []
        self.updates: list[tuple[str, bytes, int]] = []
        self.deletes: list[tuple[int]] = []
        self.type_drops: list[tuple[int]] = []
        self.type_adds: list[tuple[str, int]] = []
        self.location_drops: list[tuple[int]] = []
        self.location_adds: list[tuple[int, float, float, float, float]] = []
        self.other_drops: list[tuple[int]] = []
        self.other_adds: list[tuple[int, float, float, float, float, str]] = []
        self.stats: Counter[Shape] = Counter()

    def insert(self, rid: int, entity: dict[str, Any]) -> None:
        types = entity["type"]
        self.inserts.append((rid, entity["id"], types[0], pack(entity)))
        self.type_adds.extend((t, rid) for t in types[1:])
        self._add_geo(rid, geo_entries(entity))
        if self.indexed:
            self.value_adds.extend((a, n, rid) for a, n in indexed_numbers(entity, self.indexed))

    def update(self, rid: int, before: dict[str, Any], after: dict[str, Any]) -> None:
        types = after["type"]
        self.updates.append((types[0], pack(after), rid))
        if types[1:] != before["type"][1:]:
            self.type_drops.append((rid,))
            self.type_adds.extend((t, rid) for t in types[1:])
        new_geo = geo_entries(after)
        old_geo = geo_entries(before)
        if new_geo != old_geo:
            self._drop_geo(rid, old_geo)
            self._add_geo(rid, new_geo)
        if self.indexed:
            new_values = indexed_numbers(after, self.indexed)
            if new_values != indexed_numbers(before, self.indexed):
                self.value_drops.append((rid,))
                self.value_adds.extend((a, n, rid) for a, n in new_values)

    def delete(self, rid: int, before: dict[str, Any]) -> None:
        self.deletes.append((rid,))
        if len(before["type"]) > 1:
            self.type_drops.append((rid,))
        self._drop_geo(rid, geo_entries(before))
        if self.indexed and indexed_numbers(before, self.indexed):
            self.value_drops.append((rid,))

    def record(self, change: Change, now: str, now_ms: int) -> None:
        """History rows and the journal record of one committed change."""
        self.changes.record(change, now, now_ms)

    def _add_geo(self, rid: int, entries: list[GeoEntry]) -> None:
        if len(entries) > GEO_SLOTS:
            raise BadRequestData(f"an entity carries at most {GEO_SLOTS} GeoProperty instances")
        base = rid * GEO_SLOTS
        for n, (prop, (minx, miny, maxx, maxy)) in enumerate(entries):
            if prop == LOCATION:
                self.location_adds.append((base + n, minx, maxx, miny, maxy))
            else:
                self.other_adds.append((base + n, minx, maxx, miny, maxy, prop))

    def _drop_geo(self, rid: int, entries: list[GeoEntry]) -> None:
        base = rid * GEO_SLOTS
        for n, (prop, _) in enumerate(entries):
            target = self.location_drops if prop == LOCATION else self.other_drops
            target.append((base + n,))

    def flush(self, conn: sqlite3.Connection) -> None:
        if self.deletes:
            conn.executemany("DELETE FROM entities WHERE rid=?", self.deletes)
        if self.type_drops:
            conn.executemany("DELETE FROM extra_types WHERE rid=?", self.type_drops)
        if self.value_drops:
            conn.executemany("DELETE FROM attr_values WHERE rid=?", self.value_drops)
        if self.value_adds:
            conn.executemany(
                "INSERT INTO attr_values(attr, num, rid) VALUES(?,?,?)", self.value_adds
            )
        if self.location_drops:
            conn.executemany("DELETE FROM geo_location WHERE gid=?", self.location_drops)
        if self.other_drops:
            conn.executemany("DELETE FROM geo_other WHERE gid=?", self.other_drops)
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
        if self.location_adds:
            conn.executemany(
                "INSERT INTO geo_location(gid, minx, maxx, miny, maxy) VALUES(?,?,?,?,?)",
                self.location_adds,
            )
        if self.other_adds:
            conn.executemany(
                "INSERT INTO geo_other(gid, minx, maxx, miny, maxy, prop) VALUES(?,?,?,?,?,?)",
                self.other_adds,
            )
        self._flush_stats(conn)
        self._flush_history(conn)

    def _flush_history(self, conn: sqlite3.Connection) -> None:
        changes = self.changes
        if changes.journal:
            conn.executemany("INSERT INTO journal(at, doc) VALUES(?,?)", changes.journal)
        if changes.attr_names:
            conn.executemany(
                "INSERT OR IGNORE INTO history_attrs(key, name) VALUES(?,?)",
                list(changes.attr_names.items()),
            )
        if changes.history:
            conn.executemany(
                "INSERT INTO history(entity, attr, ts, recorded, num, doc) VALUES(?,?,?,?,?,?)",
                changes.history,
            )
        if changes.records:
            conn.executemany(
                "INSERT INTO temporal_entities(key, id, type, doc) VALUES(?,?,?,?) "
                "ON CONFLICT(key) DO UPDATE SET type=excluded.type, doc=excluded.doc",
                changes.entity_rows(),
            )
            conn.executemany(
                "INSERT OR IGNORE INTO temporal_types(type, key) VALUES(?,?)", changes.type_rows()
            )

    def _flush_stats(self, conn: sqlite3.Connection) -> None:
        rows = [(t, a, at, n) for (t, a, at), n in expand_shapes(self.stats).items() if n]
        if not rows:
            return
        conn.executemany(
            "INSERT INTO attr_stats(type, attr, attr_type, n) VALUES(?,?,?,?) "
            "ON CONFLICT(type, attr, attr_type) DO UPDATE SET n = n + excluded.n",
            rows,
        )
        conn.execute("DELETE FROM attr_stats WHERE n <= 0")


def sync_value_index(conn: sqlite3.Connection, indexed: frozenset[str]) -> None:
    """Rebuild the attribute-value index when the operator's choice of attributes changed."""
    wanted = ",".join(sorted(indexed))
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute("SELECT value FROM meta WHERE key='indexed_attributes'").fetchone()
        if (row[0] if row else "") != wanted:
            conn.execute("DELETE FROM attr_values")
            if indexed:
                for rid, doc in conn.execute("SELECT rid, doc FROM entities").fetchall():
                    rows = indexed_numbers(unpack(doc), indexed)
                    conn.executemany(
                        "INSERT INTO attr_values(attr, num, rid) VALUES(?,?,?)",
                        [(a, n, rid) for a, n in rows],
                    )
            conn.execute(
                "INSERT INTO meta(key, value) VALUES('indexed_attributes', ?) "
                "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (wanted,),
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
