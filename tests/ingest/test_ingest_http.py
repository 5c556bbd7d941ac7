"""HTTP southbound (/iot/json, /iot/d): measurements become partial entity updates.

Object ids map to attribute names with their types and unitCode; observedAt
is the payload's TimeInstant, or the arrival time. Unknown devices, bad
apikeys and malformed payloads are 4xx ProblemDetails, counted in /metrics,
and leave the stored entity as it was.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from iot_helpers import (
    APIKEY,
    device,
    entity,
    entity_id,
    iot,
    metric,
    metrics,
    provision,
)

__all__ = ["iot"]

EID = entity_id("dev1")


async def send_json(http: httpx.AsyncClient, body: object, **params: str) -> httpx.Response:
    query = {"k": APIKEY, "i": "dev1", **params}
    return await http.post("/iot/json", params=query, json=body)


async def send_ul(http: httpx.AsyncClient, text: str, **params: str) -> httpx.Response:
    query = {"k": APIKEY, "i": "dev1", **params}
    return await http.post("/iot/d", params=query, content=text.encode())


async def test_json_measurement_updates_mapped_attributes(iot: httpx.AsyncClient) -> None:
    await provision(iot, device("dev1"))
    before = datetime.now(UTC) - timedelta(seconds=1)
    response = await send_json(iot, {"t": 21.5, "h": 40, "wind": "calm"})
    assert response.status_code == 200, response.text
    stored = await entity(iot, EID)
    assert stored["temperature"]["value"] == 21.5
    assert stored["temperature"]["unitCode"] == "CEL"
    assert stored["relativeHumidity"] == {
        "type": "Property",
        "value": 40,
        "unitCode": "P1",
        "observedAt": stored["relativeHumidity"]["observedAt"],
    }
    # No mapping: the object id is the attribute name, the value as sent.
    assert stored["wind"]["value"] == "calm"
    observed = datetime.fromisoformat(stored["temperature"]["observedAt"].replace("Z", "+00:00"))
    assert before <= observed <= datetime.now(UTC) + timedelta(seconds=1)
    # Static attributes stay; the update was partial.
    assert stored["district"]["value"] == "EcoDelta"


async def test_json_time_instant_is_observed_at(iot: httpx.AsyncClient) -> None:
    await provision(iot, device("dev1"))
    stamp = "2026-11-25T08:00:00.000Z"
    assert (await send_json(iot, {"t": "17", "TimeInstant": stamp})).status_code == 200
    stored = await entity(iot, EID)
    assert stored["temperature"]["observedAt"] == stamp
    assert stored["temperature"]["value"] == 17  # "Number" converts text
    assert "TimeInstant" not in stored


async def test_ultralight_measurement(iot: httpx.AsyncClient) -> None:
    await provision(iot, device("dev1"))
    assert (await send_ul(iot, "t|15|h|70\n")).status_code == 200
    stored = await entity(iot, EID)
    assert stored["temperature"]["value"] == 15
    assert stored["relativeHumidity"]["value"] == 70
    assert stored["relativeHumidity"]["unitCode"] == "P1"


async def test_ultralight_multi_measure_and_timestamps(iot: httpx.AsyncClient) -> None:
    await provision(iot, device("dev1"))
    text = (
        "2026-11-25T08:00:00Z|t|15#2026-11-25T08:01:00Z|t|16#t|17|TimeInstant|2026-11-25T08:02:00Z"
    )
    assert (await send_ul(iot, text)).status_code == 200
    stored = await entity(iot, EID)
    # Three measurements, applied in order: the entity shows the last one.
    assert stored["temperature"]["value"] == 17
    assert stored["temperature"]["observedAt"] == "2026-11-25T08:02:00Z"
    # ...and history keeps each of them at its own time.
    history = await iot.get(f"/ngsi-ld/v1/temporal/entities/{EID}", params={"attrs": "temperature"})
    assert history.status_code == 200, history.text
    instances = history.json()["temperature"]
    assert [(i["value"], i["observedAt"]) for i in instances] == [
        (15, "2026-11-25T08:00:00Z"),
        (16, "2026-11-25T08:01:00Z"),
        (17, "2026-11-25T08:02:00Z"),
    ]


async def test_http_timestamp_parameter(iot: httpx.AsyncClient) -> None:
    await provision(iot, device("dev1"))
    stamp = "2026-11-25T09:00:00Z"
    assert (await send_ul(iot, "t|1", t=stamp)).status_code == 200
    assert (await entity(iot, EID))["temperature"]["observedAt"] == stamp


async def test_explicit_attrs_drop_unmapped(iot: httpx.AsyncClient) -> None:
    await provision(iot, device("dev1", explicitAttrs=True))
    assert (await send_json(iot, {"t": 3, "noise": 1})).status_code == 200
    stored = await entity(iot, EID)
    assert stored["temperature"]["value"] == 3
    assert "noise" not in stored


async def test_measurement_recreates_a_deleted_entity(iot: httpx.AsyncClient) -> None:
    await provision(iot, device("dev1"))
    assert (await iot.delete(f"/ngsi-ld/v1/entities/{EID}")).status_code == 204
    assert (await send_ul(iot, "t|9")).status_code == 200
    stored = await entity(iot, EID)
    assert stored["temperature"]["value"] == 9
    assert stored["district"]["value"] == "EcoDelta"


@pytest.mark.parametrize(
    ("params", "status", "reason"),
    [
        ({"k": "wrong"}, 404, "unknown_apikey"),
        ({"i": "ghost"}, 404, "unknown_device"),
    ],
)
async def test_unknown_device_or_apikey_rejected(
    iot: httpx.AsyncClient, params: dict[str, str], status: int, reason: str
) -> None:
    await provision(iot, device("dev1"))
    assert (await send_ul(iot, "t|1")).status_code == 200
    before = await entity(iot, EID)
    response = await send_ul(iot, "t|99", **params)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"].endswith("ResourceNotFound")
    assert await entity(iot, EID) == before
    text = await metrics(iot)
    assert metric(text, f'dosi_ingest_rejected_total{{reason="{reason}"}}') == 1


async def test_apikey_of_another_group_rejected(iot: httpx.AsyncClient) -> None:
    from iot_helpers import group

    await provision(iot, device("dev1"), groups=[group(), group(apikey="k2")])
    response = await iot.post("/iot/d", params={"k": "k2", "i": "dev1"}, content=b"t|5")
    assert response.status_code == 404
    assert metric(await metrics(iot), 'dosi_ingest_rejected_total{reason="bad_apikey"}') == 1
    assert "temperature" not in await entity(iot, EID)


@pytest.mark.parametrize(
    ("ul", "payload"),
    [
        (False, b"{not json"),
        (False, b"[1, 2]"),
        (False, b'{"t": "warm"}'),  # "Number" attribute
        (False, b'{"t": 1, "TimeInstant": "yesterday"}'),
        (False, b'{"t": null}'),
        (False, b'{"bad name": 1}'),
        (False, b'{"id": "urn:x:y"}'),
        (False, b"{}"),
        (False, b"\xff\xfe"),
        (True, b"t|15|h"),  # odd count and "t" is no timestamp
        (True, b"t|15#|x"),
        (True, b"|15"),
        (True, b""),
        (True, b"t|warm"),
        (True, b"t|1|h|2\xff"),
    ],
)
async def test_malformed_payload_rejected_entity_untouched(
    iot: httpx.AsyncClient, ul: bool, payload: bytes
) -> None:
    await provision(iot, device("dev1"))
    assert (await send_ul(iot, "t|1|h|2")).status_code == 200
    before = await entity(iot, EID)
    path = "/iot/d" if ul else "/iot/json"
    response = await iot.post(path, params={"k": APIKEY, "i": "dev1"}, content=payload)
    assert response.status_code == 400, response.text
    assert response.json()["type"].endswith("BadRequestData")
    # Nothing of a bad message is written, not even its good attributes.
    assert await entity(iot, EID) == before
    assert metric(await metrics(iot), 'dosi_ingest_rejected_total{reason="malformed"}') == 1


async def test_missing_query_parameters(iot: httpx.AsyncClient) -> None:
    response = await iot.post("/iot/d", params={"k": APIKEY}, content=b"t|1")
    assert response.status_code == 400
    response = await iot.post("/iot/d", params={"k": APIKEY, "i": "d", "t": "x"}, content=b"t|1")
    assert response.status_code == 400


async def test_payload_size_limit(iot: httpx.AsyncClient) -> None:
    await provision(iot, device("dev1"))
    response = await send_ul(iot, "t|" + "1" * 300_000)
    assert response.status_code == 413


async def test_measurement_cannot_set_a_command(iot: httpx.AsyncClient) -> None:
    """A device writing its own command attribute would have the hub send it back."""
    await provision(iot, device("dev1", commands=[{"name": "switch"}]))
    assert (
        await send_json(iot, {"t": 1, "switch": "on", "switch_status": "OK"})
    ).status_code == 200
    stored = await entity(iot, EID)
    assert stored["switch"]["value"] == ""
    assert stored["switch_status"]["value"] == "UNKNOWN"


async def test_tenant_header_must_match_the_apikey(iot: httpx.AsyncClient) -> None:
    await provision(iot, device("dev1"))
    response = await iot.post(
        "/iot/d",
        params={"k": APIKEY, "i": "dev1"},
        content=b"t|1",
        headers={"NGSILD-Tenant": "elsewhere"},
    )
    assert response.status_code == 404


async def test_metrics_count_received_and_stored(iot: httpx.AsyncClient) -> None:
    await provision(iot, device("dev1"))
    for i in range(3):
        assert (await send_ul(iot, f"t|{i}#t|{i + 1}")).status_code == 200
    text = await metrics(iot)
    assert metric(text, 'dosi_ingest_measurements_total{transport="http"}') == 3
    assert metric(text, "dosi_ingest_stored_total") == 6
