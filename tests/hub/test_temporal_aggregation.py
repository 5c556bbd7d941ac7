"""Aggregated temporal representation (clause 4.5.19) and history retention.

Aggregates are checked against values computed here from the same readings;
retention is run with a clock moved forward, and whole-hour aggregations must
keep answering from the hourly rollup once the raw instances are gone.
"""

from __future__ import annotations

import math
import random
import statistics
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from conftest import BASE
from dosi.hub.app import create_app
from dosi.hub.settings import HubSettings
from dosi.hub.state import HubState
from dosi.hub.temporal.params import calendar_edges, iso, parse_period
from dosi.hub.temporal.retention import DAY_MS, retain
from dosi.ngsi.errors import BadRequestData

TEMPORAL = f"{BASE}/temporal/entities"
HOUR = 3_600_000
T0 = 1_772_323_200_000  # 2026-03-01T00:00:00Z
SENSORS = ("urn:ngsi-ld:Sensor:a", "urn:ngsi-ld:Sensor:b")


@pytest.fixture
async def hub(settings: HubSettings) -> AsyncIterator[tuple[httpx.AsyncClient, Starlette]]:
    app = create_app(replace(settings, history_days=1, rollup_days=400))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
    ):
        yield http, app


def readings(seed: int) -> list[tuple[int, float]]:
    """(time, value): about 12 a hour for 6 hours, at random minutes."""
    rng = random.Random(seed)
    out = []
    for i in range(72):
        out.append((T0 + i * 300_000 + rng.randrange(0, 60_000), round(rng.uniform(-5, 35), 2)))
    return out


async def load(client: httpx.AsyncClient) -> dict[str, list[tuple[int, float]]]:
    data = {}
    for n, entity_id in enumerate(SENSORS):
        data[entity_id] = series = readings(n)
        instances = [{"type": "Property", "value": v, "observedAt": iso(t)} for t, v in series]
        # A string value and a repeated value: numeric methods skip the first, distinctCount
        # counts the second once.
        instances.append({"type": "Property", "value": "offline", "observedAt": iso(T0 + 10)})
        body = {"id": entity_id, "type": "Sensor", "temperature": instances}
        response = await client.post(TEMPORAL, json=body)
        assert response.status_code == 201, response.text
    return data


def expected(values: list[float], method: str) -> float | int:
    if method == "avg":
        return statistics.fmean(values)
    if method == "sum":
        return math.fsum(values)
    if method == "min":
        return min(values)
    if method == "max":
        return max(values)
    if method == "sumsq":
        return math.fsum(v * v for v in values)
    if method == "stddev":
        return statistics.stdev(values) if len(values) > 1 else 0.0
    raise AssertionError(method)


METHODS = ("avg", "sum", "min", "max", "sumsq", "stddev")


async def aggregate(client: httpx.AsyncClient, **params: str) -> list[dict[str, Any]]:
    query = {"type": "Sensor", "options": "aggregatedValues", **params}
    response = await client.get(TEMPORAL, params=query)
    assert response.status_code == 200, response.text
    body: list[dict[str, Any]] = response.json()
    return body


async def test_hourly_methods_match_values_computed_here(
    hub: tuple[httpx.AsyncClient, Starlette],
) -> None:
    client, _ = hub
    data = await load(client)
    body = await aggregate(
        client,
        aggrMethods=",".join((*METHODS, "totalCount", "distinctCount")),
        aggrPeriodDuration="PT1H",
        timerel="between",
        timeAt=iso(T0),
        endTimeAt=iso(T0 + 6 * HOUR),
    )
    assert [e["id"] for e in sorted(body, key=lambda e: e["id"])] == list(SENSORS)
    for entity in body:
        attr = entity["temperature"]
        assert attr["type"] == "Property"
        series = data[entity["id"]]
        for method in METHODS:
            periods = attr[method]
            assert [p[1] for p in periods] == [iso(T0 + h * HOUR) for h in range(6)]
            assert [p[2] for p in periods] == [iso(T0 + (h + 1) * HOUR) for h in range(6)]
            for hour, (value, _, _) in enumerate(periods):
                inside = [v for t, v in series if T0 + hour * HOUR <= t < T0 + (hour + 1) * HOUR]
                assert value == pytest.approx(expected(inside, method), rel=1e-9, abs=1e-9)
        counts = [p[0] for p in attr["totalCount"]]
        assert counts == [12 + (h == 0) for h in range(6)]  # the string reading is in hour 0
        distinct = attr["distinctCount"][0][0]
        hour0 = [v for t, v in series if t < T0 + HOUR]
        assert distinct == len(set(hour0)) + 1


async def test_whole_window_before_and_calendar_periods(
    hub: tuple[httpx.AsyncClient, Starlette],
) -> None:
    client, _ = hub
    data = await load(client)
    values = [v for _, v in data[SENSORS[0]]]
    whole = await aggregate(client, id=SENSORS[0], aggrMethods="avg,totalCount")
    (avg,) = whole[0]["temperature"]["avg"]
    assert avg[0] == pytest.approx(statistics.fmean(values))
    assert whole[0]["temperature"]["totalCount"][0][0] == len(values) + 1
    # before: periods end at timeAt.
    end = T0 + 5 * HOUR + 1_800_000
    before = await aggregate(
        client, id=SENSORS[0], aggrMethods="max", aggrPeriodDuration="PT2H",
        timerel="before", timeAt=iso(end),
    )  # fmt: skip
    periods = before[0]["temperature"]["max"]
    assert periods[-1][2] == iso(end)
    assert [p[1] for p in periods] == [iso(end - k * 2 * HOUR) for k in (3, 2, 1)]
    last = [v for t, v in data[SENSORS[0]] if end - 2 * HOUR <= t < end]
    assert periods[-1][0] == max(last)
    monthly = await aggregate(
        client, id=SENSORS[0], aggrMethods="sum", aggrPeriodDuration="P1M",
        timerel="after", timeAt="2026-01-15T00:00:00Z",
    )  # fmt: skip
    (period,) = monthly[0]["temperature"]["sum"]
    assert period[1:] == ["2026-02-15T00:00:00.000Z", "2026-03-15T00:00:00.000Z"]
    assert period[0] == pytest.approx(math.fsum(values))


async def test_retention_rolls_raw_into_hourly_and_queries_still_answer(
    hub: tuple[httpx.AsyncClient, Starlette],
) -> None:
    client, app = hub
    state: HubState = app.state.hub
    await load(client)
    params = {
        "aggrMethods": ",".join((*METHODS, "totalCount")),
        "aggrPeriodDuration": "PT2H",
        "timerel": "between",
        "timeAt": iso(T0),
        "endTimeAt": iso(T0 + 6 * HOUR),
    }
    before = await aggregate(client, **params)
    nothing = await retain(state)  # recorded just now: inside the 1 day kept raw
    assert nothing.rolled_up == 0
    # Raw instances go by recording time (just now), hourly aggregates by observation hour.
    report = await retain(state, now_ms=int(time.time() * 1000) + 2 * DAY_MS)
    assert report.rolled_up == 2 * 73 and report.pruned == 0
    raw = await client.get(TEMPORAL, params={"type": "Sensor"})
    assert [set(e) for e in raw.json()] == [{"id", "type"}] * 2, "raw instances are gone"
    after = await aggregate(client, **params)
    assert _by_id(after).keys() == _by_id(before).keys()
    for entity_id, attr in _by_id(before).items():
        for method in (*METHODS, "totalCount"):
            got = _by_id(after)[entity_id][method]
            assert [p[1:] for p in got] == [p[1:] for p in attr[method]]
            assert [p[0] for p in got] == pytest.approx([p[0] for p in attr[method]])
    # A period that is not a whole number of hours reads raw instances only: none left.
    assert await aggregate(client, **{**params, "aggrPeriodDuration": "PT90M"}) == []
    size = await state.store.temporal.size("")
    assert size.instances == 0 and size.rollup_rows == 2 * 6
    # Hourly aggregates expire too (rollup_days=400, by observation hour).
    pruned = await retain(state, now_ms=T0 + 400 * DAY_MS + 7 * HOUR)
    assert pruned.pruned == 2 * 6
    assert await aggregate(client, **params) == []


def _by_id(body: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["id"]: e["temperature"] for e in body}


async def test_retention_publishes_history_size(settings: HubSettings) -> None:
    app = create_app(replace(settings, retention_interval_s=0.05))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        body = {"id": SENSORS[0], "type": "Sensor", "t": [{"type": "Property", "value": 1}]}
        assert (await client.post(TEMPORAL, json=body)).status_code == 201
        for _ in range(100):
            text = (await client.get("/metrics")).text
            if "dosi_history_instances 1" in text:
                break
            await _sleep()
        assert "dosi_history_instances 1" in text
        assert "dosi_history_hourly_rows 0" in text


async def _sleep() -> None:
    import asyncio

    await asyncio.sleep(0.02)


# --- period parsing ------------------------------------------------------------------------


def test_periods() -> None:
    assert parse_period("PT1H") == (HOUR, None)
    assert parse_period("P1DT30M") == (24 * HOUR + 1_800_000, None)
    assert parse_period("PT0S") == (0, None)
    period, calendar = parse_period("P1Y2M")
    assert period == 0 and calendar is not None
    for bad in ("1h", "P", "-PT1H", "PT0.0001S", "P0.5M", "P" + "1" * 80 + "D"):
        with pytest.raises(BadRequestData):
            parse_period(bad)


def test_calendar_edges_follow_month_ends() -> None:
    _, month = parse_period("P1M")
    assert month is not None
    anchor = 1_769_817_600_000  # 2026-01-31T00:00:00Z
    edges = calendar_edges(month)(anchor, anchor + 40 * DAY_MS, anchor + 100 * DAY_MS, 10)
    assert [iso(e)[:10] for e in edges] == ["2026-02-28", "2026-03-31", "2026-04-30", "2026-05-31"]
    capped = calendar_edges(month)(anchor, anchor, anchor + 1000 * DAY_MS, 3)
    assert len(capped) == 4


def test_cli_retention_flags() -> None:
    from dosi.cli.main import build_parser

    args = build_parser().parse_args(["up", "--history-days", "7", "--rollup-days", "0"])
    assert (args.history, args.history_days, args.rollup_days) == (True, 7, 0)
    defaults = build_parser().parse_args(["up", "--no-history"])
    assert (defaults.history, defaults.history_days, defaults.rollup_days) == (False, 30, 400)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["up", "--history-days", "-1"])
