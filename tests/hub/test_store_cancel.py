"""Regression: a write whose caller was cancelled while queued must not kill the writer."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

from dosi.hub.store.sqlite import SqliteStore


async def test_cancelled_queued_write_is_skipped_and_the_writer_lives_on(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "data")
    await store.open()
    try:
        running = threading.Event()
        release = threading.Event()

        def slow(conn: sqlite3.Connection) -> None:
            running.set()
            release.wait(5)  # holds the writer so the next job stays queued

        def write(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO kv(ns, key, value) VALUES('t', 'cancelled', x'00')")

        blocker = asyncio.ensure_future(store.run_write("", slow))
        assert await asyncio.to_thread(running.wait, 5)
        queued = asyncio.ensure_future(store.run_write("", write))
        await asyncio.sleep(0.05)
        queued.cancel()
        release.set()
        await blocker
        # The writer survived: a later write is acknowledged, and the cancelled one never ran.
        await asyncio.wait_for(store.kv_put("t", "after", b"1"), 5)
        assert dict(await store.kv_items("t")) == {"after": b"1"}
    finally:
        await store.close()
