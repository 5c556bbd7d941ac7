"""The PostgreSQL event store: what the HTTP notification tests cannot see.

Two `PostgresStore`s (or two hubs) on one database stand for two worker
processes. Runs against a real PostgreSQL with PostGIS (see tests/servers.py).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import asyncpg
import httpx
import pytest
from test_notifications_receiver import SUBSCRIPTIONS, running

from dosi.hub.app import create_app
from dosi.hub.settings import HubSettings
from dosi.hub.store.base import DEFAULT_TENANT
from dosi.hub.store.postgres import PostgresStore
from dosi.ngsi.errors import AlreadyExists, BadRequestData, NonexistentTenant, ResourceNotFound

Opener = Callable[..., Awaitable[PostgresStore]]
T = DEFAULT_TENANT


@pytest.fixture
async def open_store(postgres_db: str) -> AsyncIterator[Opener]:
    stores: list[PostgresStore] = []

    async def make() -> PostgresStore:
        store = PostgresStore(postgres_db)
        await store.open()
        stores.append(store)
        return store

    yield make
    for store in stores:
        await store.close()


async def test_subscription_records(open_store: Opener) -> None:
    events = (await open_store()).events
    for n in range(5):
        await events.subscription_create(T, f"urn:s:{n}", b"doc%d" % n, cap=10)
    with pytest.raises(AlreadyExists):
        await events.subscription_create(T, "urn:s:1", b"again", cap=10)
    page, total = await events.subscription_list(T, offset=1, limit=2)
    assert [row.id for row in page] == ["urn:s:1", "urn:s:2"] and total == 5
    page, total = await events.subscription_list(T, offset=9, limit=2)
    assert page == [] and total == 5

    assert not await events.subscription_update(T, "urn:s:0", b"stale", b"new")
    assert await events.subscription_update(T, "urn:s:0", b"doc0", b"new")
    row = await events.subscription_get(T, "urn:s:0")
    assert row is not None and row.doc == b"new" and row.status is None

    await events.status_save(T, [("urn:s:0", b"counters"), ("urn:s:gone", b"x")])
    row = await events.subscription_get(T, "urn:s:0")
    assert row is not None and row.status == b"counters"
    await events.subscription_delete(T, "urn:s:0")
    assert await events.subscription_get(T, "urn:s:0") is None
    for missing in (
        events.subscription_delete(T, "urn:s:0"),
        events.subscription_update(T, "urn:s:0", b"new", b"x"),
        events.subscription_delete("no-such-tenant", "urn:s:0"),
    ):
        with pytest.raises(ResourceNotFound):
            await missing
    with pytest.raises(NonexistentTenant):
        await events.subscription_get("no-such-tenant", "urn:s:0")
    # Re-creating a deleted id starts afresh: no counters left behind.
    await events.subscription_create(T, "urn:s:0", b"doc0", cap=10)
    row = await events.subscription_get(T, "urn:s:0")
    assert row is not None and row.status is None
    revision, rows = await events.subscriptions_all(T)
    assert [r.id for r in rows] == [f"urn:s:{n}" for n in (1, 2, 3, 4, 0)]
    assert revision == await events.subscriptions_revision(T)


async def test_outbox_queue(open_store: Opener) -> None:
    events = (await open_store()).events
    for sub in ("urn:a", "urn:b", "urn:idle"):
        await events.subscription_create(T, sub, b"{}", cap=10)
    assert await events.outbox_pending(T) == []
    rows = [("urn:a" if n % 2 else "urn:b", n, b"%d" % n) for n in range(300)]
    await events.outbox_add(T, rows, cursor=7)
    assert await events.notifier_cursor(T) == 7
    await events.notifier_set_cursor(T, 3)  # a cursor never goes back
    assert await events.notifier_cursor(T) == 7
    assert sorted(await events.outbox_pending(T)) == ["urn:a", "urn:b"]

    first = await events.outbox_read(T, "urn:a", 0, 100)
    assert [r.at for r in first] == list(range(1, 200, 2))
    rest = await events.outbox_read(T, "urn:a", first[-1].seq, 1000)
    assert [r.at for r in rest] == list(range(201, 300, 2)) and rest[0].data == b"201"
    await events.outbox_delete(T, [r.seq for r in first + rest])
    assert await events.outbox_read(T, "urn:a", 0, 1000) == []
    assert await events.outbox_pending(T) == ["urn:b"]
    # Deleting a subscription drops what it still had queued.
    await events.subscription_delete(T, "urn:b")
    assert await events.outbox_pending(T) == []
    assert await events.outbox_read(T, "urn:b", 0, 1000) == []
    # Periodic notifications queue rows without moving the cursor.
    await events.outbox_add(T, [("urn:idle", 1, b"p")], cursor=None)
    assert await events.notifier_cursor(T) == 7
    assert await events.outbox_pending(T) == ["urn:idle"]


async def test_a_crash_between_outbox_rows_and_cursor_loses_nothing(
    open_store: Opener, postgres_db: str
) -> None:
    """The notifier's transaction dies after inserting rows, before moving the cursor:
    neither survives, so the journal entries are matched again from the old cursor."""
    events = (await open_store()).events
    await events.subscription_create(T, "urn:s", b"{}", cap=10)
    await events.notifier_set_cursor(T, 10)
    blocker = await asyncpg.connect(postgres_db)
    try:
        holding = blocker.transaction()
        await holding.start()
        await blocker.execute("SELECT * FROM dosi.notifier_state WHERE key='cursor' FOR UPDATE")
        add = asyncio.create_task(events.outbox_add(T, [("urn:s", 1, b"x")] * 50, cursor=20))
        victim = None
        for _ in range(200):  # the outbox_add transaction, waiting at the cursor row
            # (pg_stat_activity keeps one snapshot per transaction: clear it each time)
            await blocker.execute("SELECT pg_stat_clear_snapshot()")
            victim = await blocker.fetchval(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database() AND query LIKE '%notifier_state%'"
            )
            if victim is not None:
                break
            await asyncio.sleep(0.01)
        assert victim is not None, "outbox_add never reached the cursor"
        await blocker.execute("SELECT pg_terminate_backend($1)", victim)
        with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, OSError)):
            await add
        await holding.rollback()
    finally:
        await blocker.close()
    assert await events.notifier_cursor(T) == 10
    assert await events.outbox_read(T, "urn:s", 0, 100) == []
    assert await events.outbox_pending(T) == []
    await events.outbox_add(T, [("urn:s", 1, b"x")] * 50, cursor=20)
    assert await events.notifier_cursor(T) == 20
    assert len(await events.outbox_read(T, "urn:s", 0, 100)) == 50


async def test_another_store_sees_every_revision(open_store: Opener) -> None:
    first, second = await open_store(), await open_store()
    seen = {await second.events.subscriptions_revision(T)}
    steps = [
        first.events.subscription_create(T, "urn:s", b"1", cap=10),
        first.events.subscription_update(T, "urn:s", b"1", b"2"),
        first.events.subscription_delete(T, "urn:s"),
        first.events.subscription_create(T, "urn:s", b"1", cap=10),
    ]
    for step in steps:
        await step
        revision, rows = await second.events.subscriptions_all(T)
        assert revision not in seen
        assert revision == await second.events.subscriptions_revision(T)
        seen.add(revision)
    assert [(r.id, r.doc) for r in rows] == [("urn:s", b"1")]
    # A tenant created by one worker is found by the other.
    await first.events.subscription_create("city", "urn:c", b"c", cap=10)
    found = await second.events.subscription_get("city", "urn:c")
    assert found is not None and found.doc == b"c"


async def test_cap_and_ids_hold_across_stores_racing(open_store: Opener) -> None:
    first, second = await open_store(), await open_store()
    results = await asyncio.gather(
        *(
            (first if n % 2 else second).events.subscription_create(T, f"urn:s:{n}", b"", cap=3)
            for n in range(12)
        ),
        return_exceptions=True,
    )
    assert sum(r is None for r in results) == 3, results
    assert all(isinstance(r, BadRequestData) for r in results if r is not None)
    assert (await first.events.subscription_list(T, 0, 100))[1] == 3
    results = await asyncio.gather(
        first.events.subscription_create("t", "urn:same", b"1", cap=3),
        second.events.subscription_create("t", "urn:same", b"2", cap=3),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["AlreadyExists", "NoneType"]


async def test_a_new_subscription_starts_at_the_journal_end(open_store: Opener) -> None:
    from test_postgres_store import entity, put

    store = await open_store()
    await store.events.subscription_create(T, "urn:before", b"", cap=10)
    for n in range(3):
        await store.apply(T, [(f"urn:e:{n}", put(entity(f"urn:e:{n}", n)))])
    await store.events.subscription_create(T, "urn:after", b"", cap=10)
    before = await store.events.subscription_get(T, "urn:before")
    after = await store.events.subscription_get(T, "urn:after")
    assert before is not None and after is not None
    assert before.since == 0
    assert after.since == await store.journal_last(T) > 0


# -- two hubs on one database ------------------------------------------------


class Hub:
    """A hub over ASGI that a test starts and stops by hand."""

    def __init__(self, settings: HubSettings) -> None:
        self.app = create_app(settings)
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://hub"
        )
        self._life = self.app.router.lifespan_context(self.app)

    async def __aenter__(self) -> Hub:
        await self._life.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()
        await self._life.__aexit__(None, None, None)

    @property
    def sent(self) -> int:
        return int(self.app.state.hub.metrics.notifications_sent)

    async def write(self, version: int) -> None:
        for n in range(20):
            meter = {"id": f"urn:m:{n}", "type": "Meter", "v": version * 100 + n}
            response = await self.http.post("/ngsi-ld/v1/entityOperations/upsert", json=[meter])
            assert response.status_code in (201, 204), response.text


async def test_two_hubs_deliver_each_notification_once(postgres_db: str, tmp_path: Any) -> None:
    """Only the holder of the notifier role delivers, whichever hub the changes and the
    subscription came through; when it stops, the other takes over from its cursor."""
    settings = HubSettings(data_dir=tmp_path / "d", db_url=postgres_db)
    async with running() as receiver, AsyncExitStack() as stack:
        hubs = [await stack.enter_async_context(Hub(settings)) for _ in range(2)]
        body = {
            "type": "Subscription",
            "entities": [{"type": "Meter"}],
            "notification": {"endpoint": {"uri": receiver.url}, "format": "keyValues"},
        }
        response = await hubs[1].http.post(SUBSCRIPTIONS, json=body)
        assert response.status_code == 201, response.text
        await asyncio.gather(hubs[0].write(1), hubs[1].write(2))
        await receiver.wait_for(40)
        leader, other = sorted(hubs, key=lambda hub: hub.sent, reverse=True)
        assert other.sent == 0 and leader.sent > 0

        await leader.__aexit__(None, None, None)
        stack.pop_all()
        stack.push_async_exit(other)
        await other.write(3)  # found by `other` once it took the role (within ~1 s)
        await receiver.wait_for(60)
        await asyncio.sleep(0.3)  # nothing more comes
        assert other.sent > 0
        expected = {v * 100 + n: 1 for v in (1, 2, 3) for n in range(20)}
        assert Counter(e["v"] for e in receiver.entities) == expected
