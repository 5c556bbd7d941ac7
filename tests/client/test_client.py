"""The SDK against the real hub: in-process (async and sync) and over HTTP to `dosi up`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette

import dosi
from dosi.client import AsyncNgsiClient, BatchResult, NgsiClient, NgsiClientError, calls
from dosi.hub.app import create_app
from dosi.hub.settings import HubSettings

ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"
CORE = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"


def sensor(n: int, *, lon: float = 128.93, lat: float = 35.15, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"urn:ngsi-ld:AirQualityObserved:{n}",
        "type": "AirQualityObserved",
        "no2": {"type": "Property", "value": 10 * n, "unitCode": "GQ"},
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}},
        **extra,
    }


def value(entity: dict[str, Any], attr: str) -> Any:
    return entity[attr]["value"]


@pytest.fixture
async def client(settings: HubSettings) -> AsyncIterator[AsyncNgsiClient]:
    """A fresh hub, its lifespan run by the client itself (`lifespan=True`)."""
    async with AsyncNgsiClient(app=create_app(settings), lifespan=True) as c:
        yield c


# -- request building (no hub) --------------------------------------------------------


def test_headers_link_when_plain_json_and_ld_json_when_body_carries_context() -> None:
    ctx = "https://example.org/ctx.jsonld"
    plain = calls.create_entity(sensor(1)).headers("city", ctx)
    assert plain["Content-Type"] == "application/json"
    assert plain["Link"].startswith(f"<{ctx}>;")
    assert plain["NGSILD-Tenant"] == "city"
    ld = calls.create_entity({**sensor(1), "@context": CORE}).headers(None, ctx)
    assert ld["Content-Type"] == "application/ld+json"
    assert "Link" not in ld and "NGSILD-Tenant" not in ld
    get = calls.get_entity("urn:x", attrs=None).headers(None, None)
    assert get == {"Accept": "application/json"}


def test_params_render_lists_coordinates_and_flags() -> None:
    call = calls.query_entities(
        {"type": ["A", "B"], "id_pattern": "urn:.*", "coordinates": [128.93, 35.15]},
        limit=5,
        offset=None,
        count=True,
    )
    assert call.params == {
        "type": "A,B",
        "idPattern": "urn:.*",
        "coordinates": "[128.93,35.15]",
        "limit": "5",
        "count": "true",
    }
    assert calls.delete_attr("urn:a/b", "x", None, True).path.endswith("urn:a%2Fb/attrs/x")


# -- entities -------------------------------------------------------------------------


async def test_entity_round_trip(client: AsyncNgsiClient) -> None:
    assert (await client.health())["status"] == "ok"
    assert await client.create_entity(sensor(1)) == "urn:ngsi-ld:AirQualityObserved:1"
    got = await client.get_entity("urn:ngsi-ld:AirQualityObserved:1")
    assert got["type"] == "AirQualityObserved" and value(got, "no2") == 10

    simple = await client.get_entity("urn:ngsi-ld:AirQualityObserved:1", format="simplified")
    assert simple["no2"] == 10
    only = await client.get_entity("urn:ngsi-ld:AirQualityObserved:1", attrs=["no2"])
    assert "location" not in only and "no2" in only

    await client.replace_entity(
        "urn:ngsi-ld:AirQualityObserved:1",
        {"type": "AirQualityObserved", "co": {"type": "Property", "value": 300}},
    )
    got = await client.get_entity("urn:ngsi-ld:AirQualityObserved:1")
    assert value(got, "co") == 300 and "no2" not in got

    await client.merge_entity(
        "urn:ngsi-ld:AirQualityObserved:1", {"no2": {"type": "Property", "value": 7}}
    )
    got = await client.get_entity("urn:ngsi-ld:AirQualityObserved:1")
    assert value(got, "co") == 300 and value(got, "no2") == 7

    await client.delete_entity("urn:ngsi-ld:AirQualityObserved:1")
    with pytest.raises(NgsiClientError) as caught:
        await client.get_entity("urn:ngsi-ld:AirQualityObserved:1")
    assert caught.value.status == 404


async def test_attribute_operations(client: AsyncNgsiClient) -> None:
    eid = "urn:ngsi-ld:AirQualityObserved:1"
    await client.create_entity(sensor(1))

    assert await client.append_attrs(eid, {"co": {"type": "Property", "value": 1}}) is None
    await client.append_attrs(eid, {"co": {"type": "Property", "value": 2}}, no_overwrite=True)
    assert value(await client.get_entity(eid), "co") == 1

    assert await client.update_attrs(eid, {"co": {"type": "Property", "value": 3}}) is None
    partial = await client.update_attrs(eid, {"nope": {"type": "Property", "value": 0}})
    assert partial is not None and partial["notUpdated"]

    await client.update_attr(eid, "co", {"value": 4})
    got = await client.get_entity(eid)
    assert value(got, "co") == 4

    await client.replace_attr(eid, "co", {"type": "Property", "value": 5, "unitCode": "GP"})
    got = await client.get_entity(eid)
    assert got["co"]["unitCode"] == "GP" and value(got, "co") == 5

    await client.append_attrs(
        eid, {"co": {"type": "Property", "value": 6, "datasetId": "urn:ngsi-ld:Dataset:b"}}
    )
    await client.delete_attr(eid, "co", dataset_id="urn:ngsi-ld:Dataset:b")
    assert value(await client.get_entity(eid), "co") == 5
    await client.delete_attr(eid, "co", delete_all=True)
    assert "co" not in await client.get_entity(eid)
    with pytest.raises(NgsiClientError) as caught:
        await client.delete_attr(eid, "co")
    assert caught.value.status == 404


# -- queries --------------------------------------------------------------------------


async def test_queries_pages_and_counts(client: AsyncNgsiClient) -> None:
    far = sensor(9, lon=129.10, lat=35.20)
    result = await client.batch_create([sensor(n, lon=128.93 + n / 10_000) for n in range(1, 6)])
    assert result == BatchResult([f"urn:ngsi-ld:AirQualityObserved:{n}" for n in range(1, 6)], [])
    await client.create_entity(far)

    page = await client.query_entities(type="AirQualityObserved", limit=2, count=True)
    assert len(page) == 2 and page.total == 6
    assert await client.count_entities(type="AirQualityObserved") == 6
    assert await client.count_entities(type="AirQualityObserved", q="no2>30") == 3

    ids = [e["id"] async for e in client.query_all(type="AirQualityObserved", page_size=2)]
    assert len(ids) == len(set(ids)) == 6

    near = await client.query_entities(
        type="AirQualityObserved",
        georel="near;maxDistance==2000",
        geometry="Point",
        coordinates=[128.93, 35.15],
    )
    assert {e["id"] for e in near} == {f"urn:ngsi-ld:AirQualityObserved:{n}" for n in range(1, 6)}

    picked = await client.query_entities(
        id=["urn:ngsi-ld:AirQualityObserved:1", far["id"]], attrs="no2", format="simplified"
    )
    assert sorted(e["no2"] for e in picked) == [10, 90]

    posted = await client.post_query(
        {"entities": [{"type": "AirQualityObserved"}], "q": "no2==20"}, count=True
    )
    assert [e["id"] for e in posted] == ["urn:ngsi-ld:AirQualityObserved:2"]
    assert posted.total == 1


# -- batch ----------------------------------------------------------------------------


async def test_batch_operations(client: AsyncNgsiClient) -> None:
    first, second = sensor(1), sensor(2)
    assert (await client.batch_create([first])).ok

    partial = await client.batch_create([first, second])
    assert partial.success == [second["id"]]
    assert [e["entityId"] for e in partial.errors] == [first["id"]]

    upserted = await client.batch_upsert(
        [sensor(2, co={"type": "Property", "value": 1}), sensor(3)]
    )
    assert upserted.success == [second["id"], sensor(3)["id"]] and upserted.ok
    await client.batch_upsert(
        [
            {
                "id": second["id"],
                "type": "AirQualityObserved",
                "o3": {"type": "Property", "value": 2},
            }
        ],
        options="update",
    )
    got = await client.get_entity(second["id"])
    assert value(got, "co") == 1 and value(got, "o3") == 2

    await client.batch_update(
        [
            {
                "id": second["id"],
                "type": "AirQualityObserved",
                "o3": {"type": "Property", "value": 3},
            }
        ],
        no_overwrite=True,
    )
    assert value(await client.get_entity(second["id"]), "o3") == 2
    updated = await client.batch_update(
        [{"id": second["id"], "type": "AirQualityObserved", "o3": {"type": "Property", "value": 4}}]
    )
    assert updated.ok and value(await client.get_entity(second["id"]), "o3") == 4

    merged = await client.batch_merge(
        [{"id": second["id"], "type": "AirQualityObserved", "o3": {"type": "Property", "value": 5}}]
    )
    assert merged.ok and value(await client.get_entity(second["id"]), "o3") == 5

    deleted = await client.batch_delete([first["id"], "urn:ngsi-ld:AirQualityObserved:missing"])
    assert deleted.success == [first["id"]]
    assert [e["entityId"] for e in deleted.errors] == ["urn:ngsi-ld:AirQualityObserved:missing"]
    assert await client.count_entities(type="AirQualityObserved") == 2


# -- discovery and @contexts ----------------------------------------------------------


async def test_types_and_attributes(client: AsyncNgsiClient) -> None:
    await client.batch_create([sensor(1), {"id": "urn:ngsi-ld:Device:1", "type": "Device"}])
    assert sorted((await client.types())["typeList"]) == ["AirQualityObserved", "Device"]
    detailed = await client.types(details=True)
    assert {t["typeName"] for t in detailed} == {"AirQualityObserved", "Device"}
    info = await client.type_info("AirQualityObserved")
    assert info["entityCount"] == 1

    assert {"no2", "location"} <= set((await client.attributes())["attributeList"])
    assert {a["attributeName"] for a in await client.attributes(details=True)} >= {"no2"}
    assert (await client.attribute_info("no2"))["attributeCount"] == 1


async def test_contexts_and_link_header(settings: HubSettings) -> None:
    app = create_app(settings)
    async with AsyncNgsiClient(app=app, lifespan=True) as plain:
        url = await plain.add_context(
            {
                "@context": {
                    "Sensor": "https://example.org/Sensor",
                    "level": "https://example.org/level",
                }
            }
        )
        assert url in await plain.list_contexts()
        assert (await plain.get_context(url))["@context"]["level"] == "https://example.org/level"

        scoped = AsyncNgsiClient(app=app, context=url)
        await scoped.create_entity(
            {
                "id": "urn:ngsi-ld:Sensor:1",
                "type": "Sensor",
                "level": {"type": "Property", "value": 1},
            }
        )
        assert (await scoped.get_entity("urn:ngsi-ld:Sensor:1"))["type"] == "Sensor"
        expanded = await plain.get_entity("urn:ngsi-ld:Sensor:1")
        assert expanded["type"] == "https://example.org/Sensor"
        assert "https://example.org/level" in expanded
        await scoped.aclose()

        await plain.delete_context(url)
        with pytest.raises(NgsiClientError) as caught:
            await plain.get_context(url)
        assert caught.value.status == 404


async def test_entity_carrying_context_goes_as_json_ld(client: AsyncNgsiClient) -> None:
    await client.create_entity({**sensor(1), "@context": CORE})
    assert value(await client.get_entity(sensor(1)["id"]), "no2") == 10


# -- tenants and errors ---------------------------------------------------------------


async def test_tenants_are_separate(settings: HubSettings) -> None:
    app = create_app(settings)
    async with (
        AsyncNgsiClient(app=app, lifespan=True, tenant="busan") as busan,
        AsyncNgsiClient(app=app, tenant="sejong") as sejong,
    ):
        await busan.create_entity(sensor(1))
        await sejong.create_entity(sensor(2))
        assert [e["id"] for e in await busan.query_entities(type="AirQualityObserved")] == [
            sensor(1)["id"]
        ]
        with pytest.raises(NgsiClientError):
            await sejong.get_entity(sensor(1)["id"])


async def test_errors_carry_problem_details(client: AsyncNgsiClient) -> None:
    with pytest.raises(NgsiClientError) as missing:
        await client.get_entity("urn:ngsi-ld:AirQualityObserved:none")
    err = missing.value
    assert (err.status, err.type) == (404, ERRORS + "ResourceNotFound")
    assert err.title and err.problem["status"] == 404
    assert str(err).startswith("404 ") and "\n" not in str(err)

    await client.create_entity(sensor(1))
    with pytest.raises(NgsiClientError) as twice:
        await client.create_entity(sensor(1))
    assert (twice.value.status, twice.value.type) == (409, ERRORS + "AlreadyExists")

    with pytest.raises(NgsiClientError) as bad:
        await client.create_entity({"id": "not a uri", "type": "AirQualityObserved"})
    assert bad.value.status == 400 and bad.value.type.startswith(ERRORS)
    assert bad.value.detail


async def test_lifespan_failure_is_raised_not_swallowed() -> None:
    @asynccontextmanager
    async def broken(app: Starlette) -> AsyncIterator[None]:
        raise OSError("disk on fire")
        yield

    with pytest.raises(RuntimeError, match="disk on fire"):
        async with AsyncNgsiClient(app=Starlette(lifespan=broken), lifespan=True):
            pass


def test_wait_ready_gives_up_with_timeout_error() -> None:
    with NgsiClient(f"http://127.0.0.1:{free_port()}") as client, pytest.raises(TimeoutError):
        client.wait_ready(within=0.3)


# -- the sync twin --------------------------------------------------------------------


def exercise_sync(client: NgsiClient) -> None:
    """The same calls, whichever way the sync client reaches the hub."""
    assert client.health()["status"] == "ok"
    assert client.batch_upsert([sensor(n) for n in range(1, 4)]).ok
    client.update_attr(sensor(1)["id"], "no2", {"value": 99})
    assert value(client.get_entity(sensor(1)["id"]), "no2") == 99
    assert len(list(client.query_all(type="AirQualityObserved", page_size=2))) == 3
    assert client.count_entities(type="AirQualityObserved") == 3
    assert client.types()["typeList"] == ["AirQualityObserved"]
    with pytest.raises(NgsiClientError) as caught:
        client.get_entity("urn:ngsi-ld:AirQualityObserved:none")
    assert caught.value.status == 404
    assert client.batch_delete([sensor(n)["id"] for n in range(1, 4)]).ok


def test_sync_client_in_process(settings: HubSettings) -> None:
    with NgsiClient(app=create_app(settings)) as client:
        exercise_sync(client)
        client.tenant = "other"  # takes effect on the next call
        assert client.create_entity(sensor(7)) == sensor(7)["id"]
    with NgsiClient(app=create_app(settings), tenant="other") as again:  # storage persisted
        assert again.get_entity(sensor(7)["id"])["id"] == sensor(7)["id"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def hub_url(tmp_path: Path) -> Iterator[str]:
    """A real `dosi up` subprocess on a free port (run from this checkout's sources)."""
    port = free_port()
    src = str(Path(dosi.__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    command = ["up", "--port", str(port), "--data", str(tmp_path / "d"), "--log-level", "warning"]
    proc = subprocess.Popen([sys.executable, "-m", "dosi.cli.main", *command], env=env)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0


def test_sync_client_over_http(hub_url: str) -> None:
    with NgsiClient(hub_url) as client:
        client.wait_ready(within=10)
        exercise_sync(client)
