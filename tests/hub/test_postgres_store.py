"""The PostgreSQL store itself: what the HTTP behaviour tests cannot see.

Two `PostgresStore`s on one database stand for two worker processes (or two
hubs): they race on the same ids, take turns on roles, and hear each other's
commits. Runs against a real PostgreSQL with PostGIS (see tests/servers.py).
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

import dosi
from dosi.hub.query import EntityFilter
from dosi.hub.store.base import DEFAULT_TENANT, Mutation, Prefilter, Selection
from dosi.hub.store.postgres import PostgresStore
from dosi.ngsi.errors import AlreadyExists, BadRequestData, NonexistentTenant
from dosi.ngsi.geo import haversine, parse_geoquery
from dosi.ngsi.model import LOCATION, Entity
from dosi.ngsi.values import now_iso

N = "https://example.org/n"
NAME = "https://example.org/name"
Opener = Callable[..., Awaitable[PostgresStore]]


def entity(eid: str, n: float = 0, lonlat: tuple[float, float] | None = None) -> Entity:
    now = now_iso()
    ent: Entity = {
        "id": eid,
        "type": ["https://example.org/Sensor"],
        "createdAt": now,
        "modifiedAt": now,
        N: [{"type": "Property", "value": n, "createdAt": now, "modifiedAt": now}],
    }
    if lonlat is not None:
        ent[LOCATION] = [
            {
                "type": "GeoProperty",
                "value": {"type": "Point", "coordinates": list(lonlat)},
                "createdAt": now,
                "modifiedAt": now,
            }
        ]
    return ent


def create(ent: Entity) -> Mutation:
    def run(current: Entity | None) -> Entity | None:
        if current is not None:
            raise AlreadyExists(f"{ent['id']} exists")
        return ent

    return run


def put(ent: Entity) -> Mutation:
    return lambda current: ent


def increment(current: Entity | None) -> Entity | None:
    assert current is not None
    value = current[N][0]["value"] + 1
    return {**current, N: [{**current[N][0], "value": value}]}


def refuse(current: Entity | None) -> Entity | None:
    raise BadRequestData("refused")


def delete(current: Entity | None) -> Entity | None:
    return None


@pytest.fixture
async def pg_url(postgres_db: str) -> str:
    return postgres_db


@pytest.fixture
async def open_store(pg_url: str) -> AsyncIterator[Opener]:
    """Opens stores on the test database (several: several processes); closes them after."""
    stores: list[PostgresStore] = []

    async def make(**options: Any) -> PostgresStore:
        store = PostgresStore(pg_url, **options)
        await store.open()
        stores.append(store)
        return store

    yield make
    for store in stores:
        await store.close()


@pytest.fixture
async def store(open_store: Opener) -> PostgresStore:
    return await open_store()


async def test_two_stores_creating_one_id_at_once(open_store: Opener) -> None:
    first, second = await open_store(), await open_store()
    for round_ in range(25):
        eid = f"urn:ngsi-ld:Sensor:race-{round_}"
        results = await asyncio.gather(
            first.apply("", [(eid, create(entity(eid, 1)))]),
            second.apply("", [(eid, create(entity(eid, 2)))]),
        )
        outcomes = [outcome for result in results for outcome in result]
        assert sum(o.change is not None for o in outcomes) == 1, outcomes
        assert sum(isinstance(o.error, AlreadyExists) for o in outcomes) == 1, outcomes
        stored = await first.get("", eid)
        winner = next(o for o in outcomes if o.change is not None)
        assert winner.change is not None
        assert stored == winner.change.after


async def test_concurrent_updates_of_one_entity_lose_nothing(open_store: Opener) -> None:
    first, second = await open_store(), await open_store()
    eid = "urn:ngsi-ld:Sensor:counter"
    await first.apply("", [(eid, create(entity(eid, 0)))])

    async def bump(store: PostgresStore, times: int) -> None:
        for _ in range(times):
            await store.apply("", [(eid, increment)])

    await asyncio.gather(bump(first, 40), bump(second, 40), bump(first, 20))
    stored = await second.get("", eid)
    assert stored is not None
    assert stored[N][0]["value"] == 100


async def test_a_refused_mutation_leaves_its_entity_and_the_rest_commits(
    store: PostgresStore,
) -> None:
    await store.apply("", [("urn:b", create(entity("urn:b", 7)))])
    last = await store.journal_last("")
    outcomes = await store.apply(
        "",
        [
            ("urn:a", create(entity("urn:a", 1))),
            ("urn:b", put(entity("urn:b", 8))),
            ("urn:b", refuse),
            ("urn:c", create(entity("urn:c", 3))),
            ("urn:d", refuse),
        ],
    )
    assert [type(o.error).__name__ if o.error else bool(o.change) for o in outcomes] == [
        True,
        True,
        "BadRequestData",
        True,
        "BadRequestData",
    ]
    got_b = await store.get("", "urn:b")
    assert got_b is not None and got_b[N][0]["value"] == 8  # the op before the refusal stands
    assert await store.get("", "urn:d") is None
    journal = await store.journal_read("", last, 100)
    assert [e.id for e in journal] == ["urn:a", "urn:b", "urn:c"]


async def test_a_write_that_cannot_be_stored_fails_whole_and_alone(open_store: Opener) -> None:
    """Past the GeoProperty cap the job fails as a whole; a job committed in the same
    group commit is not dragged down with it."""
    store = await open_store(writers=1)  # one writer: concurrent calls share a transaction
    too_many = entity("urn:geo", 0, (129.0, 35.0))
    for k in range(70):
        too_many[f"https://example.org/g{k}"] = too_many[LOCATION]
    bad = store.apply("", [("urn:ok-1", create(entity("urn:ok-1"))), ("urn:geo", put(too_many))])
    good = store.apply("", [("urn:ok-2", create(entity("urn:ok-2")))])
    results = await asyncio.gather(bad, good, return_exceptions=True)
    assert isinstance(results[0], BadRequestData)
    assert not isinstance(results[1], BaseException) and results[1][0].change is not None
    assert await store.get("", "urn:ok-1") is None  # all or nothing
    assert await store.get("", "urn:geo") is None
    assert await store.get("", "urn:ok-2") is not None
    stats = {(s.entity_type, s.attribute): s.count for s in await store.attribute_stats("")}
    assert stats[("https://example.org/Sensor", "")] == 1


async def test_a_call_cancelled_while_queued_writes_nothing(open_store: Opener) -> None:
    store = await open_store(writers=1)
    await store.apply("", [("urn:held", put(entity("urn:held")))])
    async with store.pool.acquire() as other, other.transaction():
        # Another session holds the row: the writer waits on it, the next call stays queued.
        await other.execute("SELECT 1 FROM dosi.entities WHERE id = 'urn:held' FOR UPDATE")
        blocked = asyncio.ensure_future(store.apply("", [("urn:held", increment)]))
        await asyncio.sleep(0.1)
        queued = asyncio.ensure_future(store.apply("", [("urn:never", put(entity("urn:never")))]))
        await asyncio.sleep(0.05)
        queued.cancel()
    assert (await blocked)[0].change is not None
    outcomes = await asyncio.wait_for(store.apply("", [("urn:later", put(entity("urn:later")))]), 5)
    assert outcomes[0].change is not None
    assert await store.get("", "urn:never") is None


async def test_nul_characters_are_refused_per_entity(open_store: Opener) -> None:
    store = await open_store(writers=1)  # one writer: concurrent calls share a transaction
    bad = entity("urn:nul")
    bad[NAME] = [{**bad[N][0], "value": "a\x00b"}]
    ok = entity("urn:fine")
    ok[NAME] = [{**ok[N][0], "value": "a\\u0000b"}]  # a backslash, not a NUL
    outcomes = await store.apply("", [("urn:nul", put(bad)), ("urn:fine", put(ok))])
    assert isinstance(outcomes[0].error, BadRequestData)
    assert outcomes[1].change is not None
    assert await store.get("", "urn:nul") is None
    assert await store.get("", "urn:fine") == ok
    # Grouped with another caller's write of the same entity, only the culprit fails.
    shared_ok, shared_bad = {**ok, "id": "urn:shared"}, {**bad, "id": "urn:shared"}
    first, second = await asyncio.gather(
        store.apply("", [("urn:shared", put(shared_ok))]),
        store.apply("", [("urn:shared", put(shared_bad))]),
    )
    assert first[0].change is not None
    assert isinstance(second[0].error, BadRequestData)
    assert await store.get("", "urn:shared") == shared_ok


async def test_journal_is_read_in_commit_order(open_store: Opener) -> None:
    """A follower polling while many transactions commit never skips a seq: seqs are
    handed out under the journal lock, so no later seq commits before an earlier one."""
    stores = [await open_store(writers=3), await open_store(writers=3)]
    done = asyncio.Event()
    seen: list[int] = []

    async def follow() -> None:
        cursor = 0
        while True:
            finished = done.is_set()
            entries = await stores[0].journal_read("", cursor, 500)
            seen.extend(e.seq for e in entries)
            if entries:
                cursor = entries[-1].seq
            elif finished:
                return
            await asyncio.sleep(0)

    async def write(store: PostgresStore, worker: int) -> None:
        # Updates that keep each entity's shape: no statistics row is touched, so
        # nothing but the journal lock orders these transactions.
        rng = random.Random(worker)
        for i in range(40):
            ids = [f"urn:w{worker}-{k}" for k in rng.sample(range(4), rng.randint(1, 3))]
            await store.apply("", [(eid, put(entity(eid, i))) for eid in ids])

    await stores[0].apply(
        "", [(f"urn:w{w}-{k}", put(entity(f"urn:w{w}-{k}"))) for w in range(8) for k in range(4)]
    )
    follower = asyncio.create_task(follow())
    await asyncio.gather(*(write(stores[w % 2], w) for w in range(8)))
    done.set()
    await follower
    async with stores[0].pool.acquire() as conn:
        everything = [r[0] for r in await conn.fetch("SELECT seq FROM dosi.journal ORDER BY seq")]
    assert seen == everything
    assert len(everything) == len(set(everything)) > 300


async def test_tenants_are_schemas(open_store: Opener) -> None:
    first, second = await open_store(), await open_store()
    with pytest.raises(NonexistentTenant):
        await first.get("acme", "urn:x")
    assert not await first.tenant_exists("acme")
    await first.apply("acme", [("urn:x", create(entity("urn:x", 5)))])
    assert await second.tenant_exists("acme")  # created by another process
    assert await second.tenants() == ["acme"]
    assert await second.get("acme", "urn:x") is not None
    assert await second.get(DEFAULT_TENANT, "urn:x") is None
    async with first.pool.acquire() as conn:
        schema = await conn.fetchval("SELECT schema FROM dosi.tenants WHERE name = 'acme'")
        assert schema.startswith("dosi_t_")
        tables = await conn.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1", schema
        )
        assert tables >= 10
        assert await conn.fetchval(f"SELECT count(*) FROM {schema}.entities") == 1
    with pytest.raises(BadRequestData):
        await first.apply("bad tenant!", [("urn:x", create(entity("urn:x")))])


def near(lon: float, lat: float, max_m: float, offset: int, limit: int) -> Selection:
    geo = parse_geoquery(f"near;maxDistance=={max_m}", "Point", f"[{lon},{lat}]")
    flt = EntityFilter(geo=geo)
    return Selection(
        prefilter=flt.prefilter(),
        predicate=flt.predicate(),
        order_key=flt.order_key(),
        key_range=flt.key_range(),
        offset=offset,
        limit=limit,
    )


@pytest.mark.parametrize("centre", [(128.93, 35.15), (179.995, 0.0)])
async def test_near_pages_come_nearest_first(
    store: PostgresStore, centre: tuple[float, float]
) -> None:
    """Pages of `near` equal brute force, also across the antimeridian, where planar
    distances in degrees say nothing about metres."""
    rng = random.Random(7)
    points: dict[str, tuple[float, float]] = {}
    ops = []
    for i in range(150):
        lon = centre[0] + rng.uniform(-0.02, 0.02)
        lon = (lon + 180.0) % 360.0 - 180.0
        lat = centre[1] + rng.uniform(-0.02, 0.02)
        points[f"urn:p:{i}"] = (lon, lat)
        ops.append((f"urn:p:{i}", put(entity(f"urn:p:{i}", i, (lon, lat)))))
    await store.apply("", ops)
    distances = {eid: haversine(*p, *centre) for eid, p in points.items()}
    expected = sorted((d, eid) for eid, d in distances.items() if d <= 1500)
    assert len(expected) > 30
    got: list[str] = []
    for offset in range(0, 30, 6):
        page = await store.select("", near(*centre, 1500, offset, 6))
        got += [e["id"] for e in page.entities]
    assert got == [eid for _, eid in expected][:30]


async def test_select_pages_in_sql_and_counts(store: PostgresStore) -> None:
    await store.apply("", [(f"urn:s:{i}", put(entity(f"urn:s:{i}", i))) for i in range(30)])
    types = frozenset({"https://example.org/Sensor"})
    page = await store.select("", Selection(Prefilter(types=types), offset=25, count=True))
    assert [e["id"] for e in page.entities] == [f"urn:s:{i}" for i in range(25, 30)]
    assert page.total == 30
    even = await store.select(
        "",
        Selection(
            Prefilter(types=types),
            predicate=lambda e: e[N][0]["value"] % 2 == 0,
            offset=2,
            limit=3,
            count=True,
        ),
    )
    assert [e["id"] for e in even.entities] == ["urn:s:4", "urn:s:6", "urn:s:8"]
    assert even.total == 15
    assert (await store.select("", Selection(Prefilter(ids=frozenset())))).entities == []


async def test_value_index_answers_and_follows_the_choice(
    open_store: Opener,
) -> None:
    plain = await open_store()
    await plain.apply("", [(f"urn:v:{i}", put(entity(f"urn:v:{i}", i))) for i in range(10)])
    await plain.close()
    indexed = await open_store(indexed_attributes=frozenset({N}))  # rebuilt on open
    at_least_7 = Selection(Prefilter(values=((N, ">=", 7.0),)), count=True)
    page = await indexed.select("", at_least_7)
    assert sorted(e["id"] for e in page.entities) == ["urn:v:7", "urn:v:8", "urn:v:9"]
    await indexed.apply("", [("urn:v:1", put(entity("urn:v:1", 50))), ("urn:v:9", delete)])
    page = await indexed.select("", at_least_7)
    assert sorted(e["id"] for e in page.entities) == ["urn:v:1", "urn:v:7", "urn:v:8"]


async def test_kv(store: PostgresStore) -> None:
    await store.kv_put("ns", "b", b"2")
    await store.kv_put("ns", "a", b"1")
    await store.kv_put("ns", "a", b"one")
    await store.kv_put("other", "z", b"9")
    assert await store.kv_items("ns") == [("a", b"one"), ("b", b"2")]
    await store.kv_delete("ns", "a")
    assert await store.kv_items("ns") == [("b", b"2")]


async def test_commits_of_other_processes_are_heard(open_store: Opener) -> None:
    first, second = await open_store(), await open_store()
    heard_first: list[str] = []
    heard_second: asyncio.Queue[str] = asyncio.Queue()
    first.add_commit_listener(heard_first.append)
    second.add_commit_listener(heard_second.put_nowait)
    await first.apply("acme", [("urn:x", create(entity("urn:x")))])
    assert await asyncio.wait_for(heard_second.get(), 5) == "acme"  # through NOTIFY
    await asyncio.sleep(0.1)
    assert heard_first == ["acme"]  # its own commit once, not again by its NOTIFY


async def test_roles_have_one_holder(open_store: Opener) -> None:
    first, second = await open_store(), await open_store()
    assert first.try_lead("notifier")
    assert first.try_lead("notifier")
    assert not second.try_lead("notifier")
    assert second.try_lead("retention")
    await first.close()
    assert second.try_lead("notifier")


async def test_journal_last_survives_pruning(store: PostgresStore) -> None:
    await store.apply("", [(f"urn:j:{i}", put(entity(f"urn:j:{i}"))) for i in range(3)])
    last = await store.journal_last("")
    assert last == 3
    assert await store.journal_prune("", last, 2**62) == 3
    assert await store.journal_read("", 0, 10) == []
    assert await store.journal_last("") == 3


async def test_history_rows_are_written_with_the_change(store: PostgresStore) -> None:
    await store.apply("", [("urn:h", put(entity("urn:h", 1, (129.0, 35.0))))])
    await store.apply("", [("urn:h", increment)])
    await store.apply("", [("urn:h", delete)])
    async with store.pool.acquire() as conn:
        nums = [r[0] for r in await conn.fetch("SELECT num FROM dosi.history ORDER BY seq")]
        temporal = await conn.fetchrow("SELECT id, doc FROM dosi.temporal_entities")
        geo = await conn.fetchval("SELECT count(*) FROM dosi.geo")
    assert nums[:3] == [1.0, None, 2.0]  # location has no number
    assert temporal["id"] == "urn:h" and b"deletedAt" in temporal["doc"]
    assert geo == 0
    assert math.isclose(len(await store.journal_read("", 0, 10)), 3)


async def test_unknown_database_fails_clearly(pg_url: str) -> None:
    store = PostgresStore(pg_url.rsplit("/", 1)[0] + "/no_such_database")
    with pytest.raises(asyncpg.InvalidCatalogNameError):
        await store.open()


def test_dosi_up_with_db_and_two_workers(pg_url: str, tmp_path: Path) -> None:
    """`dosi up --db URL --workers 2`: the supervisor creates the schema, both workers
    serve one database, and SIGTERM ends it cleanly."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    src = str(Path(dosi.__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    log = tmp_path / "hub.log"
    args = ["up", "--db", pg_url, "--port", str(port), "--data", str(tmp_path / "data")]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dosi.cli.main", *args, "--workers", "2"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 20
        while b"dosi hub:" not in log.read_bytes():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port}/ngsi-ld/v1"
        body = {
            "id": "urn:ngsi-ld:Sensor:1",
            "type": "Sensor",
            "n": {"type": "Property", "value": 1},
        }
        assert httpx.post(f"{base}/entities", json=body).status_code == 201
        tenant = {"NGSILD-Tenant": "acme"}
        assert httpx.post(f"{base}/entities", json=body, headers=tenant).status_code == 201
        for _ in range(4):  # new connections: both workers answer from the database
            got = httpx.get(f"{base}/entities/urn:ngsi-ld:Sensor:1", headers=tenant)
            assert got.status_code == 200 and got.json()["n"]["value"] == 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
