"""Temporal store behaviour the API tests leave to small data: paging over many candidates,
deletion records told from look-alike values, and rollups answering calendar and
whole-window aggregations. Run on every backend under test (DOSI_TEST_BACKENDS):
PostgreSQL reads candidates in growing chunks, SQLite one by one, and both must agree.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from helpers import assert_problem, attr_url, create, prop
from starlette.applications import Starlette

from conftest import BASE
from dosi.hub.app import create_app
from dosi.hub.settings import HubSettings
from dosi.hub.temporal.params import iso
from dosi.hub.temporal.retention import DAY_MS, retain

TEMPORAL = f"{BASE}/temporal/entities"
T0 = 1_772_323_200_000  # 2026-03-01T00:00:00Z
HOUR = 3_600_000


async def test_pages_over_many_candidates_are_stable_and_complete(
    client: httpx.AsyncClient,
) -> None:
    for n in range(45):
        kind = "Car" if n % 9 == 0 else "Sensor"
        body = {"id": f"urn:ngsi-ld:{kind}:{n}", "type": kind, "level": prop(n % 2)}
        assert (await client.post(TEMPORAL, json=body)).status_code == 201
    seen: list[str] = []
    for offset in range(0, 50, 7):
        params = {"type": "Sensor,Car", "limit": "7", "offset": str(offset), "count": "true"}
        response = await client.get(TEMPORAL, params=params)
        assert response.status_code == 200, response.text
        assert response.headers["ngsild-results-count"] == "45"
        seen.extend(e["id"] for e in response.json())
    assert len(seen) == len(set(seen)) == 45
    again = await client.get(TEMPORAL, params={"type": "Sensor,Car", "limit": "7"})
    assert [e["id"] for e in again.json()] == seen[:7], "the same order every time"
    # q is checked on each candidate's snapshot: half of them match, so a page needs
    # more candidates than it holds (PostgreSQL: more, growing chunks).
    expected = sorted(f"urn:ngsi-ld:Sensor:{n}" for n in range(45) if n % 9 and n % 2)
    odd = await client.get(TEMPORAL, params={"type": "Sensor", "q": "level==1", "count": "true"})
    assert odd.headers["ngsild-results-count"] == str(len(expected))
    paged: list[str] = []
    for offset in range(0, 24, 4):
        params = {"type": "Sensor", "q": "level==1", "limit": "4", "offset": str(offset)}
        paged.extend(e["id"] for e in (await client.get(TEMPORAL, params=params)).json())
    assert sorted(paged) == expected and len(paged) == len(expected)


async def test_deletion_records_are_not_confused_with_values_naming_deleted_at(
    client: httpx.AsyncClient,
) -> None:
    sensor = "urn:ngsi-ld:Sensor:look-alike"
    await create(
        client,
        {
            "id": sensor,
            "type": "Sensor",
            "note": prop({"deletedAt": "2026-03-01T00:00:00Z"}),
            "gone": prop(1),
        },
    )
    assert (await client.delete(attr_url(sensor, "gone"))).status_code == 204
    response = await client.get(
        f"{TEMPORAL}/{sensor}", params={"timeproperty": "deletedAt", "timerel": "after",
                                        "timeAt": "2000-01-01T00:00:00Z"},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    body = response.json()
    assert "note" not in body
    assert [i["value"] for i in body["gone"]] == ["urn:ngsi-ld:null"]


@pytest.fixture
async def hub(settings: HubSettings) -> AsyncIterator[tuple[httpx.AsyncClient, Starlette]]:
    app = create_app(replace(settings, history_days=1, rollup_days=400))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
    ):
        yield http, app


async def _aggregate(client: httpx.AsyncClient, **params: str) -> dict[str, Any]:
    query = {"type": "Meter", "options": "aggregatedValues", "aggrMethods": "sum,totalCount"}
    response = await client.get(TEMPORAL, params={**query, **params})
    assert response.status_code == 200, response.text
    (entity,) = response.json()
    power: dict[str, Any] = entity["power"]
    return power


async def test_rollups_answer_calendar_and_whole_window_periods(
    hub: tuple[httpx.AsyncClient, Starlette],
) -> None:
    client, app = hub
    # Three days of hourly readings, two a hour.
    readings = [
        prop(float(h % 5), observedAt=iso(T0 + h * HOUR + m * 60_000))
        for h in range(72)
        for m in (10, 40)
    ]
    body = {"id": "urn:ngsi-ld:Meter:1", "type": "Meter", "power": readings}
    assert (await client.post(TEMPORAL, json=body)).status_code == 201
    windows = {
        "daily": {"aggrPeriodDuration": "P1D", "timerel": "after", "timeAt": iso(T0 - DAY_MS)},
        "whole": {"timerel": "between", "timeAt": iso(T0), "endTimeAt": iso(T0 + 3 * DAY_MS)},
        "fixed": {"aggrPeriodDuration": "PT5H", "timerel": "before", "timeAt": iso(T0 + DAY_MS)},
    }
    before = {name: await _aggregate(client, **w) for name, w in windows.items()}
    assert [p[0] for p in before["daily"]["totalCount"]] == [48, 48, 48]
    assert before["whole"]["sum"][0][0] == pytest.approx(sum(h % 5 for h in range(72)) * 2)
    report = await retain(app.state.hub, now_ms=int(time.time() * 1000) + 2 * DAY_MS)
    assert report.rolled_up == 144
    for name, window in windows.items():
        assert await _aggregate(client, **window) == before[name], name


async def test_text_with_nul_is_refused_where_it_cannot_be_read_back(
    client: httpx.AsyncClient, backend: str
) -> None:
    meter = "urn:ngsi-ld:Meter:nul"
    body = {"id": meter, "type": "Meter", "power": [prop(1.0), prop("a\u0000b")]}
    response = await client.post(TEMPORAL, json=body)
    if backend == "postgres":  # jsonb cannot hold U+0000: refused whole, nothing stored
        assert_problem(response, 400, "BadRequestData")
        assert_problem(await client.get(f"{TEMPORAL}/{meter}"), 404, "ResourceNotFound")
        return
    assert response.status_code == 201, response.text
    stored = await client.get(f"{TEMPORAL}/{meter}", params={"options": "temporalValues"})
    values = [v for v, _ in stored.json()["power"]["values"]]
    assert sorted(values, key=repr) == sorted([1.0, "a\u0000b"], key=repr)
