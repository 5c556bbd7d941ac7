"""dosi.web against a real hub: the pass-through, the live stream, config and what-if jobs."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest
from webhelpers import free_port, in_process, on_port

from dosi.twin.hubproc import EmbeddedHub
from dosi.twin.kpi import KPI_LABELS
from dosi.web.app import create_web_app
from dosi.web.district import load_district
from dosi.web.settings import WebSettings

API = "/ngsi-ld/v1"
NOWHERE = "http://127.0.0.1:9"  # nothing listens on the discard port


def weather(n: int, temperature: float = 20.0) -> dict[str, Any]:
    return {
        "id": f"urn:ngsi-ld:WeatherObserved:web-test:{n}",
        "type": "WeatherObserved",
        "temperature": {"type": "Property", "value": temperature},
    }


async def test_config_describes_the_district_and_its_what_if_targets() -> None:
    async with in_process(WebSettings(hub_url=NOWHERE)) as web:
        response = await web.get("/api/config")
    assert response.status_code == 200
    config = response.json()
    assert config["scenario"] == "eco-delta"
    assert config["origin"] == [128.905, 35.135] and config["timezone"] == "Asia/Seoul"
    assert config["hub"] == NOWHERE
    what_if = config["whatIf"]
    assert what_if["kinds"] == ["road-closure", "pipe-burst", "pv-drop", "demand-surge"]
    assert "B2-C2" in what_if["roads"] and len(what_if["roads"]) >= 20
    district = load_district("eco-delta")
    assert 1 <= len(what_if["junctions"]) <= 6
    assert set(what_if["junctions"]) <= district.junctions
    assert set(config["kpis"]) == set(KPI_LABELS)
    assert config["kpis"]["traffic.mean_speed"] == {
        "en": "Mean trip speed",
        "ko": "평균 통행 속도",
        "unit": "km/h",
        "lowerIsBetter": False,
        "digits": 1,
    }
    assert config["kpis"]["traffic.mean_delay"]["lowerIsBetter"] is True


async def test_front_end_files_and_how_long_browsers_keep_them(built: Path) -> None:
    async with in_process(WebSettings(hub_url=NOWHERE, static_dir=built)) as web:
        index = await web.get("/")
        bundle = await web.get("/assets/index-3f2a1b.js")
        icon = await web.get("/favicon.svg")
        missing = await web.get("/assets/index-000000.js")
        escape = await web.get("/assets/..%2F..%2Findex.html")
        api = await web.get("/api/nothing")
    assert index.status_code == 200 and "<title>dosi</title>" in index.text
    assert index.headers["cache-control"] == "no-cache"
    assert index.headers["content-type"].startswith("text/html")
    assert bundle.status_code == 200 and bundle.text == "console.log(1)"
    assert bundle.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert icon.status_code == 200 and icon.headers["cache-control"] == "no-cache"
    assert missing.status_code == 404 and escape.status_code == 404
    assert api.status_code == 404 and api.headers["content-type"] == "application/problem+json"


async def test_without_a_built_front_end_the_page_says_how_to_build_it(tmp_path: Path) -> None:
    async with in_process(WebSettings(hub_url=NOWHERE, static_dir=tmp_path / "none")) as web:
        index = await web.get("/")
        bundle = await web.get("/assets/index-3f2a1b.js")
        config = await web.get("/api/config")
    assert index.status_code == 503 and "run make web" in index.text
    assert bundle.status_code == 404
    assert config.status_code == 200  # the API works without the front end


async def test_the_proxy_passes_entities_both_ways(web_hub: EmbeddedHub) -> None:
    entity = weather(1)
    path = f"{API}/entities/{quote(entity['id'], safe='')}"
    async with (
        in_process(WebSettings(hub_url=web_hub.url)) as web,
        httpx.AsyncClient(base_url=web_hub.url) as hub,
    ):
        created = await web.post(f"{API}/entities", json=entity)
        assert created.status_code == 201, created.text
        location = created.headers["location"]
        assert location.startswith(f"{API}/entities/"), location  # relative: stays on the proxy
        through = await web.get(path)
        direct = await hub.get(path)
        assert through.status_code == 200 and through.json() == direct.json()
        queried = await web.get(
            f"{API}/entities",
            params={"type": "WeatherObserved", "q": "temperature>19", "count": "true"},
        )
        assert queried.status_code == 200 and queried.headers["ngsild-results-count"] == "1"
        assert [e["id"] for e in queried.json()] == [entity["id"]]
        patched = await web.patch(
            f"{path}/attrs", json={"temperature": {"type": "Property", "value": 25.5}}
        )
        assert patched.status_code == 204, patched.text
        stored = (await hub.get(path, params={"options": "keyValues"})).json()
        assert stored["temperature"] == 25.5
        unknown = await web.get(f"{API}/entities/urn:ngsi-ld:WeatherObserved:nope")
        assert unknown.status_code == 404
        assert unknown.json()["type"] == "https://uri.etsi.org/ngsi-ld/errors/ResourceNotFound"
        huge = weather(1, 99.0) | {"note": {"type": "Property", "value": "x" * 1_000_001}}
        refused = await web.post(f"{API}/entityOperations/upsert", json=[huge])
        assert refused.status_code == 413
        assert refused.headers["content-type"] == "application/problem+json"
        after = (await hub.get(path, params={"options": "keyValues"})).json()
        assert after["temperature"] == 25.5  # the refused body never reached the hub
        slashed = {**weather(3), "id": "urn:ngsi-ld:WeatherObserved:web-test:a/b"}
        assert (await web.post(f"{API}/entities", json=slashed)).status_code == 201
        again = await web.get(f"{API}/entities/{quote(slashed['id'], safe='')}")
        assert again.status_code == 200 and again.json()["id"] == slashed["id"]
        health = await web.get("/health")
        assert health.json() == {"status": "ok", "hub": "ok"}


async def next_change(lines: AsyncIterator[str]) -> dict[str, Any]:
    """The data of the next `change` event of a server-sent event stream."""
    event = ""
    async for line in lines:
        if line.startswith("event:"):
            event = line.partition(":")[2].strip()
        elif line.startswith("data:") and event == "change":
            data: dict[str, Any] = orjson.loads(line.partition(":")[2])
            return data
    raise AssertionError("the stream ended")


async def test_the_live_stream_arrives_event_by_event_and_ends_with_the_server(
    web_hub: EmbeddedHub,
) -> None:
    entity = weather(2)
    attrs = f"{API}/entities/{quote(entity['id'], safe='')}/attrs"
    async with contextlib.AsyncExitStack() as stack:
        hub = await stack.enter_async_context(httpx.AsyncClient(base_url=web_hub.url))
        assert (await hub.post(f"{API}/entities", json=entity)).status_code == 201
        server = on_port(WebSettings(hub_url=web_hub.url))
        url = await server.__aenter__()
        try:
            http = await stack.enter_async_context(httpx.AsyncClient(base_url=url, timeout=10))
            stream = await stack.enter_async_context(
                http.stream(
                    "GET",
                    f"{API}/stream",
                    params={"type": "WeatherObserved", "options": "keyValues"},
                    headers={"Accept": "text/event-stream"},
                )
            )
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.aiter_lines()
            # Each change must come through before the next one is made: nothing buffers.
            for value in (21.0, 22.0, 23.0):
                await hub.patch(attrs, json={"temperature": {"type": "Property", "value": value}})
                change = await asyncio.wait_for(next_change(lines), 5)
                assert change["id"] == entity["id"] and change["temperature"] == value
            metrics = (await http.get("/metrics")).text
            assert "dosi_web_streams_open 1" in metrics
        finally:
            started = time.monotonic()
            await server.__aexit__(None, None, None)
        assert time.monotonic() - started < 5  # the open stream did not hold the shutdown
        with pytest.raises((AssertionError, httpx.HTTPError)):
            await asyncio.wait_for(next_change(lines), 5)


async def test_a_hub_that_is_down_is_a_502_problem_and_health_says_so() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    async with in_process(WebSettings(hub_url=dead)) as web:
        response = await web.get(f"{API}/entities", params={"type": "WeatherObserved"})
        health = await web.get("/health")
        metrics = (await web.get("/metrics")).text
    assert response.status_code == 502
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 502 and dead in problem["detail"]
    assert health.status_code == 200 and health.json() == {"status": "ok", "hub": "unreachable"}
    assert "dosi_web_hub_failures_total 1" in metrics
    assert 'dosi_web_requests_total{kind="proxy",method="GET",status="502"} 1' in metrics


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"event": "flood:everywhere", "hours": 0.05}, 400),
        ({"event": "road-closure:NOPE", "hours": 0.05}, 400),
        ({"event": "pipe-burst:no-such-node", "hours": 0.05}, 400),
        ({"event": "road-closure:B2-C2@30m", "hours": 0.05}, 400),  # after the run's end
        ({"event": "road-closure:B2-C2", "hours": 3}, 400),
        ({"event": "road-closure:B2-C2", "hours": 0}, 400),
        ({"event": "road-closure:B2-C2", "hours": True}, 400),
        ({"event": "road-closure:B2-C2", "hours": "1"}, 400),
        ({"event": 5}, 400),
        (["road-closure:B2-C2"], 400),
    ],
)
async def test_a_bad_what_if_is_refused_at_once(body: Any, status: int) -> None:
    async with in_process(WebSettings(hub_url=NOWHERE)) as web:
        response = await web.post("/api/whatif", json=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"


async def test_a_what_if_request_must_be_json() -> None:
    async with in_process(WebSettings(hub_url=NOWHERE)) as web:
        wrong_type = await web.post("/api/whatif", content=b"road-closure:B2-C2")
        broken = await web.post(
            "/api/whatif", content=b"{", headers={"content-type": "application/json"}
        )
        unknown = await web.get("/api/whatif/0123456789abcdef")
    assert wrong_type.status_code == 415
    assert broken.status_code == 400
    assert unknown.status_code == 404


def group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
async def test_a_what_if_job_runs_to_its_comparison_one_at_a_time() -> None:
    app = create_web_app(WebSettings(hub_url=NOWHERE))
    jobs = app.state.jobs
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://web") as web,
    ):
        started = await web.post("/api/whatif", json={"event": "road-closure:B2-C2", "hours": 0.05})
        assert started.status_code == 202, started.text
        job = started.json()
        assert job["status"] == "running" and job["event"] == "road-closure:B2-C2"
        assert job["description"] == "road B2-C2 closed"
        busy = await web.post("/api/whatif", json={"event": "pv-drop", "hours": 0.05})
        assert busy.status_code == 409 and job["id"] in busy.json()["detail"]
        deadline = time.monotonic() + 240
        while (state := (await web.get(f"/api/whatif/{job['id']}")).json())["status"] == "running":
            assert time.monotonic() < deadline, state
            await asyncio.sleep(0.5)
        assert state["status"] == "done", state
        assert state["progress"] == {"baseline": 1.0, "variant": 1.0}
        rows = {row["key"]: row for row in state["kpis"]}
        travel = rows["traffic.mean_travel_time"]
        assert travel["en"] == "Mean travel time" and travel["ko"] == "평균 통행 시간"
        assert travel["baseline"] > 0 and travel["variant"] > 0 and travel["unit"] == "s"
        assert {"water.min_pressure", "power.max_line_loading"} <= set(rows)
        # A second, long job is stopped with all its processes when the server stops.
        second = await web.post("/api/whatif", json={"event": "pv-drop:0.5", "hours": 2})
        assert second.status_code == 202, second.text
        second_id = second.json()["id"]
        deadline = time.monotonic() + 120
        while jobs.get(second_id).progress["baseline"] == 0:  # simulating, workers running
            assert time.monotonic() < deadline
            await asyncio.sleep(0.2)
        group = jobs.process_group
        assert group is not None and group_alive(group)
    assert not group_alive(group)
    stopped = jobs.get(second_id)
    assert stopped.status == "failed" and "shut down" in stopped.error
    metrics = app.state.proxy.metrics.render()
    assert 'dosi_web_whatif_jobs_total{outcome="done"} 1' in metrics
    assert 'dosi_web_whatif_jobs_total{outcome="cancelled"} 1' in metrics
