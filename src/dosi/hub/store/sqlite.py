"""The embedded SQLite backend: one database file per tenant, WAL, group commit.

All writes go through one writer thread that batches whatever is queued into
a single transaction (group commit) and resolves each caller only after the
COMMIT, so "acknowledged" always means "on disk". Reads run on a small
thread pool with per-thread connections, which WAL lets proceed alongside
the writer.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import queue
import re
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from dosi.hub.store.base import (
    DEFAULT_TENANT,
    AttributeStat,
    JournalEntry,
    Mutation,
    Outcome,
    Page,
    Prefilter,
    Selection,
)
from dosi.hub.store.history import journal_entry
from dosi.hub.store.rows import unpack
from dosi.hub.store.sqlite_apply import apply_ops
from dosi.hub.store.sqlite_events import SqliteEvents
from dosi.hub.store.sqlite_query import select
from dosi.hub.store.sqlite_schema import connect, create_schema, sync_value_index
from dosi.hub.store.sqlite_temporal import SqliteTemporal
from dosi.ngsi.errors import BadRequestData, InternalError, NgsiError, NonexistentTenant
from dosi.ngsi.model import LOCATION, Entity

T = TypeVar("T")
_TENANT_NAME = re.compile(r"^[A-Za-z0-9_.:/\-]{1,128}$")
_MAX_GROUP = 512
CHECKPOINT_INTERVAL_S = 0.5
WAL_LIMIT_BYTES = 64 * 1024 * 1024
INLINE_CANDIDATES = 2_000  # reads bounded by this many index hits run on the event loop


class _Job:
    __slots__ = ("fn", "future", "tenant")

    def __init__(self, tenant: str, fn: Callable[[sqlite3.Connection], Any]) -> None:
        self.tenant = tenant
        self.fn = fn
        self.future: Future[Any] = Future()


class SqliteStore:
    """`Store` on SQLite files under `data_dir`."""

    def __init__(
        self,
        data_dir: Path,
        *,
        durable: bool = False,
        readers: int = 4,
        indexed_attributes: frozenset[str] = frozenset(),
        history: bool = True,
    ) -> None:
        self._dir = Path(data_dir)
        self._history = history
        self._indexed = indexed_attributes
        self._durable = durable
        self._readers = ThreadPoolExecutor(max_workers=readers, thread_name_prefix="dosi-read")
        self._local = threading.local()
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._writer_conns: dict[str, sqlite3.Connection] = {}
        self._tenant_files: dict[str, str] = {}
        self._lock = threading.Lock()
        self._dirty: set[str] = set()
        self._stopping = threading.Event()
        self._checkpointer: threading.Thread | None = None
        self._write_lock: int | None = None
        self._commit_listeners: list[Callable[[str], None]] = []
        self.temporal = SqliteTemporal(self)
        self.events = SqliteEvents(self)
        self._roles: dict[str, int] = {}

    # -- lifecycle -------------------------------------------------------
    async def open(self) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        (self._dir / "tenants").mkdir(exist_ok=True)
        self._write_lock = os.open(self._dir / "write.lock", os.O_RDWR | os.O_CREAT, 0o644)
        main = connect(str(self._dir / "dosi.sqlite"), durable=self._durable, writer=True)
        create_schema(main)
        main.execute(
            "CREATE TABLE IF NOT EXISTS tenants(name TEXT PRIMARY KEY, file TEXT NOT NULL)"
        )
        for name, file in main.execute("SELECT name, file FROM tenants"):
            self._tenant_files[name] = file
        self._tenant_files[DEFAULT_TENANT] = "dosi.sqlite"
        sync_value_index(main, self._indexed)
        self._writer_conns[DEFAULT_TENANT] = main
        for tenant in list(self._tenant_files):
            self._writer_conn(tenant)  # brings each tenant's value index up to date
        self._writer = threading.Thread(target=self._write_loop, name="dosi-write", daemon=True)
        self._writer.start()
        self._stopping.clear()
        self._checkpointer = threading.Thread(
            target=self._checkpoint_loop, name="dosi-checkpoint", daemon=True
        )
        self._checkpointer.start()

    async def close(self) -> None:
        """Finish every queued write, then close (graceful shutdown loses nothing)."""
        if self._writer is not None:
            self._queue.put(None)
            await asyncio.to_thread(self._writer.join)
            self._writer = None
        if self._checkpointer is not None:
            self._stopping.set()
            await asyncio.to_thread(self._checkpointer.join)
            self._checkpointer = None
        for conn in self._writer_conns.values():
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        if self._write_lock is not None:
            os.close(self._write_lock)
            self._write_lock = None
        for fd in self._roles.values():
            os.close(fd)
        self._roles.clear()
        self._readers.shutdown(wait=True)
        for conn in self._writer_conns.values():
            conn.close()
        self._writer_conns.clear()

    def add_commit_listener(self, listener: Callable[[str], None]) -> None:
        self._commit_listeners.append(listener)

    def try_lead(self, role: str) -> bool:
        if role in self._roles:
            return True
        fd = os.open(self._dir / f"{role}.lead", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._roles[role] = fd
        return True

    # -- tenants ---------------------------------------------------------
    async def tenant_exists(self, tenant: str) -> bool:
        return self._tenant_file(tenant) is not None

    async def tenants(self) -> list[str]:
        self._refresh_tenants()
        return sorted(t for t in self._tenant_files if t != DEFAULT_TENANT)

    def _tenant_file(self, tenant: str) -> str | None:
        file = self._tenant_files.get(tenant)
        if file is None:
            # Another worker process may have created it since we last looked.
            self._refresh_tenants()
            file = self._tenant_files.get(tenant)
        return file

    def _refresh_tenants(self) -> None:
        conn = sqlite3.connect(str(self._dir / "dosi.sqlite"), timeout=10)
        try:
            rows = conn.execute("SELECT name, file FROM tenants").fetchall()
        finally:
            conn.close()
        with self._lock:
            self._tenant_files.update(rows)

    def _path(self, tenant: str) -> str:
        file = self._tenant_file(tenant)
        if file is None:
            raise NonexistentTenant(f"tenant {tenant!r} does not exist")
        return str(self._dir / file)

    def _writer_conn(self, tenant: str) -> sqlite3.Connection:
        conn = self._writer_conns.get(tenant)
        if conn is not None:
            return conn
        if tenant not in self._tenant_files:
            self._create_tenant(tenant)
        conn = connect(self._path(tenant), durable=self._durable, writer=True)
        create_schema(conn)
        sync_value_index(conn, self._indexed)
        self._writer_conns[tenant] = conn
        return conn

    def _create_tenant(self, tenant: str) -> None:
        if not _TENANT_NAME.match(tenant):
            raise BadRequestData(f"tenant name {tenant!r} is not allowed")
        main = self._writer_conns[DEFAULT_TENANT]
        # Named by a hash of the tenant, so worker processes agree without coordination.
        file = f"tenants/{hashlib.sha256(tenant.encode()).hexdigest()[:24]}.sqlite"
        main.execute("INSERT OR IGNORE INTO tenants(name, file) VALUES(?, ?)", (tenant, file))
        with self._lock:
            self._tenant_files[tenant] = file

    # -- writes ----------------------------------------------------------
    async def apply(self, tenant: str, ops: Sequence[tuple[str, Mutation]]) -> list[Outcome]:
        if not ops:
            return []
        result: list[Outcome] = await self._submit(
            tenant, lambda conn: apply_ops(conn, ops, self._indexed, self._history)
        )
        return result

    async def run_write(self, tenant: str, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(conn)` inside the writer's transaction (group commit, savepoint per call).

        For the SQLite parts of other features (history, subscriptions); an exception
        rolls back just this call's changes. Resolves after the COMMIT.
        """
        return await self._submit(tenant, fn)

    async def run_read(
        self, tenant: str, fn: Callable[[sqlite3.Connection], T], *, inline: bool = False
    ) -> T:
        """Run `fn(conn)` on a read-only connection (inline: on the event loop, for tiny reads)."""
        return await self._read(tenant, fn, inline=inline)

    async def _submit(self, tenant: str, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._writer is None:
            raise InternalError("the store is closed")
        job = _Job(tenant, fn)
        self._queue.put(job)
        return await asyncio.wrap_future(job.future)  # type: ignore[no-any-return]

    def _write_loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            jobs = [first]
            stop = False
            while len(jobs) < _MAX_GROUP:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                jobs.append(nxt)
            by_tenant: dict[str, list[_Job]] = {}
            for job in jobs:
                by_tenant.setdefault(job.tenant, []).append(job)
            for tenant, group in by_tenant.items():
                self._run_group(tenant, group)
            if stop:
                return

    def _run_group(self, tenant: str, group: list[_Job]) -> None:
        # Worker processes take turns through a blocking file lock: SQLite's own busy
        # handler would poll with sleeps of up to 100 ms and leave the disk idle.
        assert self._write_lock is not None
        fcntl.flock(self._write_lock, fcntl.LOCK_EX)
        try:
            self._run_group_locked(tenant, group)
        finally:
            fcntl.flock(self._write_lock, fcntl.LOCK_UN)

    def _run_group_locked(self, tenant: str, group: list[_Job]) -> None:
        # A caller cancelled while its job waited in the queue gets nothing written;
        # the others are marked running, so a late cancel can no longer race the result.
        group = [job for job in group if job.future.set_running_or_notify_cancel()]
        if not group:
            return
        try:
            conn = self._writer_conn(tenant)
            # The tenant registry row lives in the main database: commit it first.
            conn.execute("BEGIN IMMEDIATE")
        except BaseException as exc:  # an unusable tenant fails its jobs, not the loop
            for job in group:
                job.future.set_exception(_as_ngsi(exc))
            return
        results: list[tuple[_Job, Any, BaseException | None]] = []
        for job in group:
            conn.execute("SAVEPOINT job")
            try:
                value = job.fn(conn)
                conn.execute("RELEASE job")
                results.append((job, value, None))
            except BaseException as exc:
                conn.execute("ROLLBACK TO job")
                conn.execute("RELEASE job")
                results.append((job, None, exc))
        try:
            conn.execute("COMMIT")
        except BaseException as exc:
            conn.execute("ROLLBACK")
            for job, _, _ in results:
                job.future.set_exception(_as_ngsi(exc))
            return
        with self._lock:
            self._dirty.add(tenant)
        for listener in self._commit_listeners:
            listener(tenant)
        for job, value, error in results:
            if error is None:
                job.future.set_result(value)
            else:
                job.future.set_exception(_as_ngsi(error))

    def _checkpoint_loop(self) -> None:
        """Copy the WAL back into the database off the writer's path.

        PASSIVE never blocks the writer, but under sustained writes it never
        catches up either, and the WAL would grow without bound; past
        WAL_LIMIT_BYTES a TRUNCATE checkpoint briefly holds the writer back
        and resets the file.
        """
        conns: dict[str, sqlite3.Connection] = {}
        try:
            while not self._stopping.wait(CHECKPOINT_INTERVAL_S):
                with self._lock:
                    dirty, self._dirty = self._dirty, set()
                for tenant in dirty:
                    conn = conns.get(tenant)
                    if conn is None:
                        conn = conns[tenant] = connect(self._path(tenant))
                    _, frames, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
                    if frames * page_size > WAL_LIMIT_BYTES:
                        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            for conn in conns.values():
                conn.close()

    # -- reads -----------------------------------------------------------
    def _reader(self, tenant: str) -> sqlite3.Connection:
        conns: dict[str, sqlite3.Connection] | None = getattr(self._local, "conns", None)
        if conns is None:
            conns = self._local.conns = {}
        conn = conns.get(tenant)
        if conn is None:
            conn = conns[tenant] = connect(self._path(tenant), readonly=True)
        return conn

    async def _read(
        self, tenant: str, fn: Callable[[sqlite3.Connection], T], *, inline: bool = False
    ) -> T:
        """Run a read on the pool, or right here when it is known to be small.

        A thread hop costs more than a key lookup, and reader threads doing Python
        work fight the event loop for the GIL, so bounded reads stay inline.
        """
        self._path(tenant)  # NonexistentTenant before any thread hop
        if inline:
            return fn(self._reader(tenant))
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, lambda: fn(self._reader(tenant)))

    async def get(self, tenant: str, entity_id: str) -> Entity | None:
        def run(conn: sqlite3.Connection) -> Entity | None:
            row = conn.execute("SELECT doc FROM entities WHERE id=?", (entity_id,)).fetchone()
            return unpack(row[0]) if row else None

        return await self._read(tenant, run, inline=True)

    async def select(self, tenant: str, selection: Selection) -> Page:
        small = self._is_small(tenant, selection.prefilter)
        return await self._read(
            tenant, lambda conn: select(conn, selection, self._indexed), inline=small
        )

    def _is_small(self, tenant: str, pre: Prefilter) -> bool:
        """At most INLINE_CANDIDATES rows can come out of the index (an R*Tree count is ~10 µs)."""
        if pre.ids is not None:
            return len(pre.ids) <= INLINE_CANDIDATES
        if pre.bbox is None:
            return False
        tree = "geo_location" if pre.geo_property in (None, LOCATION) else "geo_other"
        minx, miny, maxx, maxy = pre.bbox
        row = (
            self._reader(tenant)
            .execute(
                f"SELECT count(*) FROM (SELECT 1 FROM {tree} WHERE minx <= ? AND maxx >= ? "
                f"AND miny <= ? AND maxy >= ? LIMIT {INLINE_CANDIDATES + 1})",
                (maxx, minx, maxy, miny),
            )
            .fetchone()
        )
        return int(row[0]) <= INLINE_CANDIDATES

    async def attribute_stats(self, tenant: str) -> list[AttributeStat]:
        def run(conn: sqlite3.Connection) -> list[AttributeStat]:
            rows = conn.execute("SELECT type, attr, attr_type, n FROM attr_stats WHERE n > 0")
            return [AttributeStat(*row) for row in rows]

        return await self._read(tenant, run)

    # -- journal ---------------------------------------------------------
    async def journal_read(self, tenant: str, after: int, limit: int) -> list[JournalEntry]:
        def run(conn: sqlite3.Connection) -> list[JournalEntry]:
            rows = conn.execute(
                "SELECT seq, at, doc FROM journal WHERE seq > ? ORDER BY seq LIMIT ?",
                (after, limit),
            ).fetchall()
            return [journal_entry(seq, at, doc) for seq, at, doc in rows]

        return await self._read(tenant, run, inline=limit <= 64)

    async def journal_last(self, tenant: str) -> int:
        def run(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT max(seq) FROM journal").fetchone()
            if row[0] is not None:
                return int(row[0])
            # Pruned empty: AUTOINCREMENT remembers the last seq handed out.
            row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name='journal'").fetchone()
            return int(row[0]) if row else 0

        return await self._read(tenant, run, inline=True)

    async def journal_prune(self, tenant: str, upto: int, before_ms: int) -> int:
        def run(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(
                "DELETE FROM journal WHERE seq <= ? AND at < ?", (upto, before_ms)
            )
            return int(cursor.rowcount)

        self._path(tenant)
        return await self._submit(tenant, run)

    # -- key/value for hub metadata (hosted contexts, ...) ----------------
    async def kv_put(self, namespace: str, key: str, value: bytes) -> None:
        def run(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO kv(ns, key, value) VALUES(?,?,?) "
                "ON CONFLICT(ns, key) DO UPDATE SET value=excluded.value",
                (namespace, key, value),
            )

        await self._submit(DEFAULT_TENANT, run)

    async def kv_delete(self, namespace: str, key: str) -> None:
        await self._submit(
            DEFAULT_TENANT,
            lambda conn: conn.execute("DELETE FROM kv WHERE ns=? AND key=?", (namespace, key)),
        )

    async def kv_items(self, namespace: str) -> list[tuple[str, bytes]]:
        def run(conn: sqlite3.Connection) -> list[tuple[str, bytes]]:
            rows = conn.execute("SELECT key, value FROM kv WHERE ns=? ORDER BY key", (namespace,))
            return [(str(k), bytes(v)) for k, v in rows]

        return await self._read(DEFAULT_TENANT, run)


def _as_ngsi(exc: BaseException) -> BaseException:
    if isinstance(exc, NgsiError):
        return exc
    return InternalError(f"storage failure: {type(exc).__name__}: {exc}")
