"""`dosi export` / `dosi import`: NDJSON round trips between data dirs and databases.

A source hub is filled through its HTTP API (entities, updates, a deleted
attribute and entity, temporal-API instances, a subscription, a hosted
@context, a second tenant), then its history is partly rolled up; the copy
must read back the same through the store interfaces.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import sys
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from dosi.cli.main import main
from dosi.hub.app import create_app
from dosi.hub.settings import HubSettings
from dosi.hub.store.base import Selection
from dosi.hub.store.dump import dump_of
from dosi.hub.store.maintenance import open_tool_store
from dosi.hub.store.temporal import TemporalSelection, TimeWindow
from dosi.hub.transfer import export

BASE = "/ngsi-ld/v1"
VOCAB = "https://uri.etsi.org/ngsi-ld/default-context/"
SPEED = VOCAB + "speed"
CAR = "urn:ngsi-ld:Car:"
T1 = {"NGSILD-Tenant": "t1"}


def at(minute: int) -> str:
    return f"2026-03-01T10:{minute:02d}:00Z"


def prop(value: Any, **extra: Any) -> dict[str, Any]:
    return {"type": "Property", "value": value, **extra}


def dosi(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().err


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dosi: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


async def _ok(response: httpx.Response, status: int = 201) -> None:
    assert response.status_code == status, response.text


async def populate(settings: HubSettings) -> None:
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://hub") as http,
    ):
        ctx = {"@context": {"speed": SPEED, "note": VOCAB + "note"}}
        await _ok(await http.post(f"{BASE}/jsonldContexts", json=ctx))
        car1 = {
            "id": CAR + "1",
            "type": "Car",
            "speed": prop(10, observedAt=at(0), unitCode="KMH"),
            "location": {
                "type": "GeoProperty",
                "value": {"type": "Point", "coordinates": [129, 35]},
            },
            "owner": {"type": "Relationship", "object": "urn:ngsi-ld:Person:1"},
        }
        await _ok(await http.post(f"{BASE}/entities", json=car1))
        for minute in range(1, 8):  # a series longer than one export line
            body = {"speed": prop(10 + minute, observedAt=at(minute))}
            await _ok(await http.patch(f"{BASE}/entities/{CAR}1/attrs", json=body), 204)
        note = {"note": prop("no observedAt: the recording time is its time")}
        await _ok(await http.post(f"{BASE}/entities/{CAR}1/attrs", json=note), 204)
        await _ok(await http.delete(f"{BASE}/entities/{CAR}1/attrs/owner"), 204)
        await _ok(await http.post(f"{BASE}/entities", json={"id": CAR + "2", "type": "Car"}))
        await _ok(await http.delete(f"{BASE}/entities/{CAR}2"), 204)
        temporal = {"id": CAR + "3", "type": "Car", "speed": [prop(5, observedAt=at(30))]}
        await _ok(await http.post(f"{BASE}/temporal/entities", json=temporal))
        for n in range(3):  # more entities than one export page
            body = {"id": f"{CAR}t{n}", "type": "Car", "speed": prop(n, observedAt=at(n))}
            await _ok(await http.post(f"{BASE}/entities", json=body, headers=T1))
        sub = {
            "type": "Subscription",
            "id": "urn:ngsi-ld:Subscription:s1",
            "entities": [{"type": "Car"}],
            "watchedAttributes": ["speed"],
            "notification": {"endpoint": {"uri": "http://127.0.0.1:9/notify"}},
        }
        await _ok(await http.post(f"{BASE}/subscriptions", json=sub))
    store = await open_tool_store(settings.data_dir)
    try:
        # Identical rows (same value, same times) must survive as two.
        twin = prop(7, observedAt=at(31))
        await store.temporal.upsert("", CAR + "3", [], None, [(SPEED, twin), (SPEED, twin)])
        await store.events.status_save("", [("urn:ngsi-ld:Subscription:s1", b'{"timesSent":3}')])
        assert await store.temporal.roll_up("t1", before_ms=2**62, limit=10_000) == 3
    finally:
        await store.close()


async def snapshot(target: str | Path) -> dict[str, Any]:
    """What the store interfaces read back, minus what a copy renumbers (instance ids)."""
    store = await open_tool_store(target)
    dump = dump_of(store)
    out: dict[str, Any] = {}
    try:
        for tenant in ["", *await store.tenants()]:
            page = await store.select(tenant, Selection(limit=1000))
            series: dict[str, Any] = {}
            for prop_name in ("observedAt", "createdAt"):  # ts, then the recording time
                selection = TemporalSelection(
                    window=TimeWindow(prop=prop_name), require_data=False, limit=1000
                )
                answer = await store.temporal.query(tenant, selection)
                for found in answer.entities:
                    series.setdefault(found.record["id"], [found.record]).append(
                        {s.attr: [(i.time, i.doc) for i in s.instances] for s in found.series}
                    )
            hourly = []
            for key, record in await dump.records(tenant, -(2**63), 1000):
                for one in await dump.series(tenant, key):
                    rows = await dump.hourly(tenant, key, one.key, -(2**63), 1000)
                    hourly.extend((record["id"], one.attr, row) for row in rows)
            subs, _ = await store.events.subscription_list(tenant, 0, 100)
            out[tenant] = {
                "entities": sorted(page.entities, key=lambda e: str(e["id"])),
                "history": series,
                "hourly": hourly,
                "subscriptions": [(s.id, orjson.loads(s.doc), s.status) for s in subs],
                "size": await store.temporal.size(tenant),
            }
        out["contexts"] = await store.kv_items("jsonldContexts")
    finally:
        await store.close()
    return out


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages and lines of a few rows, so the test data spans many of them."""
    monkeypatch.setattr(export, "ENTITY_PAGE", 2)
    monkeypatch.setattr(export, "RECORD_PAGE", 2)
    monkeypatch.setattr(export, "ROW_PAGE", 3)
    monkeypatch.setattr(export, "ROWS_PER_LINE", 2)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    data = tmp_path / "source"
    asyncio.run(populate(HubSettings(data_dir=data)))
    return data


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


@pytest.mark.usefixtures("small_pages")
def test_round_trip_into_a_fresh_data_dir_and_again_changes_nothing(
    source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dump = tmp_path / "hub.ndjson"
    code, err = dosi(capsys, "export", "--data", str(source), "-o", str(dump))
    assert code == 0, err
    assert "exported 4 entities, history of 6 entities (15 instances, 3 hourly rows)" in err
    lines = lines_of(dump)
    assert lines[0]["dosi"] == "export" and lines[0]["tenant"] is None
    assert lines[1]["kind"] == "context"
    # Per tenant: entities, then history, then subscriptions (not notified of the import).
    default = [line["kind"] for line in lines[2:] if line["tenant"] == ""]
    assert default == sorted(default, key=["entity", "history", "subscription"].index)
    assert default[-1] == "subscription"
    # Entity, history and subscription lines carry their tenant.
    assert {line["tenant"] for line in lines[1:] if "tenant" in line} == {"", "t1"}
    assert max(len(line.get("instances", [])) for line in lines) == 3  # twins kept together

    copy = tmp_path / "copy"
    code, err = dosi(capsys, "import", "--data", str(copy), str(dump))
    assert code == 0, err
    assert "imported 4 entities" in err and "(15 instances, 3 hourly rows)" in err
    expected = asyncio.run(snapshot(source))
    assert asyncio.run(snapshot(copy)) == expected
    assert expected["contexts"] and expected[""]["subscriptions"][0][2] == b'{"timesSent":3}'
    assert expected["t1"]["hourly"] and len(expected[""]["history"]) == 3

    code, err = dosi(capsys, "import", "--data", str(copy), str(dump))
    assert code == 0, err
    assert "imported 0 entities" in err and "(0 instances" in err
    assert "0 subscriptions, 0 @contexts" in err
    assert asyncio.run(snapshot(copy)) == expected


def test_round_trip_from_sqlite_through_postgres(
    source: Path,
    tmp_path: Path,
    postgres_db: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dump = tmp_path / "hub.ndjson.gz"
    code, err = dosi(capsys, "export", "--data", str(source), "-o", str(dump))
    assert code == 0, err
    assert gzip.decompress(dump.read_bytes()).startswith(b'{"dosi":"export"')
    code, err = dosi(capsys, "import", "--db", postgres_db, str(dump))
    assert code == 0, err
    assert asyncio.run(snapshot(postgres_db)) == asyncio.run(snapshot(source))
    code, err = dosi(capsys, "import", "--db", postgres_db, str(dump))
    assert code == 0 and "imported 0 entities" in err and "(0 instances" in err, err
    # And back out of PostgreSQL, in small pages, into a fresh data dir.
    monkeypatch.setattr(export, "ENTITY_PAGE", 2)
    monkeypatch.setattr(export, "RECORD_PAGE", 2)
    monkeypatch.setattr(export, "ROW_PAGE", 3)
    monkeypatch.setattr(export, "ROWS_PER_LINE", 2)
    again = tmp_path / "again.ndjson"
    code, err = dosi(capsys, "export", "--db", postgres_db, "-o", str(again))
    assert code == 0, err
    copy = tmp_path / "copy"
    code, err = dosi(capsys, "import", "--data", str(copy), str(again))
    assert code == 0, err
    assert asyncio.run(snapshot(copy)) == asyncio.run(snapshot(source))


def test_one_tenant_from_stdin(
    source: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dump = tmp_path / "t1.ndjson"
    code, err = dosi(capsys, "export", "--data", str(source), "--tenant", "t1", "-o", str(dump))
    assert code == 0, err
    lines = lines_of(dump)
    assert lines[0]["tenant"] == "t1"
    assert {line["tenant"] for line in lines[1:] if "tenant" in line} == {"t1"}
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(dump.read_bytes())))
    copy = tmp_path / "copy"
    code, err = dosi(capsys, "import", "--data", str(copy), "-")
    assert code == 0, err
    copied = asyncio.run(snapshot(copy))
    assert copied["t1"] == asyncio.run(snapshot(source))["t1"]
    assert copied[""]["entities"] == []
    code, err = dosi(capsys, "export", "--data", str(source), "--tenant", "nope", "-o", str(dump))
    assert_one_line_error(code, err, "tenant 'nope' does not exist")


HEADER = b'{"dosi":"export","version":1,"tenant":null,"exportedAt":"2026-03-01T00:00:00Z"}'
GOOD = {
    "kind": "entity",
    "tenant": "",
    "entity": {
        "id": "urn:ngsi-ld:Car:ok",
        "type": ["https://example.org/Car"],
        "createdAt": "2026-03-01T00:00:00Z",
        "modifiedAt": "2026-03-01T00:00:00Z",
        "https://example.org/speed": [{"type": "Property", "value": 1}],
    },
}


def _with(path: list[str], value: Any) -> bytes:
    line = orjson.loads(orjson.dumps(GOOD))
    target = line
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return orjson.dumps(line)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"kind": "spaceship"}', "unknown kind 'spaceship'"),
        (_with(["tenant"], "a b"), "tenant must be a tenant name"),
        (_with(["entity", "id"], "not a uri"), "entity id must be a URI"),
        (_with(["entity", "type"], []), "entity type must be a non-empty list"),
        (_with(["entity", "createdAt"], "yesterday"), "createdAt of urn:ngsi-ld:Car:ok"),
        (
            _with(["entity", "https://example.org/speed"], [{"type": "Property"}]),
            "has no value",
        ),
        (
            _with(
                ["entity", "https://example.org/where"],
                [{"type": "GeoProperty", "value": {"type": "Point", "coordinates": [1]}}],
            ),
            "Invalid GeoJSON",
        ),
        (
            orjson.dumps(
                {
                    "kind": "history",
                    "tenant": "",
                    "id": "urn:ngsi-ld:Car:ok",
                    "record": {"id": "urn:ngsi-ld:Car:ok", "type": ["https://example.org/Car"]},
                    "attr": "https://example.org/speed",
                    "instances": [{"ts": "noon", "recorded": 1, "doc": {"type": "Property"}}],
                }
            ),
            "has no value",
        ),
        (
            orjson.dumps({"kind": "subscription", "tenant": "", "id": "urn:x:1", "doc": {}}),
            "subscription doc must be an object",
        ),
    ],
)
def test_a_malformed_line_is_named_and_nothing_is_imported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bad: bytes, message: str
) -> None:
    dump = tmp_path / "bad.ndjson"
    dump.write_bytes(b"\n".join([HEADER, orjson.dumps(GOOD), bad, orjson.dumps(GOOD)]) + b"\n")
    copy = tmp_path / "copy"
    code, err = dosi(capsys, "import", "--data", str(copy), str(dump))
    assert_one_line_error(code, err, "line 3: ", message)
    assert not copy.exists()  # checked before the store was opened


@pytest.mark.parametrize(
    ("first", "message"),
    [
        (b'{"kind": "entity"}', "line 1: not a dosi export"),
        (b'{"dosi":"export","version":9}', "line 1: export format version 9 is newer"),
    ],
)
def test_a_file_without_a_usable_header_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], first: bytes, message: str
) -> None:
    dump = tmp_path / "bad.ndjson"
    dump.write_bytes(first + b"\n")
    code, err = dosi(capsys, "import", "--data", str(tmp_path / "copy"), str(dump))
    assert_one_line_error(code, err, message)
    empty = tmp_path / "empty.ndjson"
    empty.write_bytes(b"")
    code, err = dosi(capsys, "import", "--data", str(tmp_path / "copy"), str(empty))
    assert_one_line_error(code, err, "empty")


def test_an_entity_the_store_refuses_is_named_and_not_half_imported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    point = {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [1, 2]}}
    crowded = orjson.loads(orjson.dumps(GOOD))
    crowded["entity"]["id"] = "urn:ngsi-ld:Car:crowded"
    for n in range(65):  # one more GeoProperty than the store indexes per entity
        crowded["entity"][f"https://example.org/g{n}"] = [point]
    last = orjson.loads(orjson.dumps(GOOD))
    last["entity"]["id"] = "urn:ngsi-ld:Car:last"
    dump = tmp_path / "hub.ndjson"
    dump.write_bytes(
        b"\n".join([HEADER, orjson.dumps(GOOD), orjson.dumps(crowded), orjson.dumps(last)])
    )
    copy = tmp_path / "copy"
    code, err = dosi(capsys, "import", "--data", str(copy), str(dump))
    assert_one_line_error(code, err, "line 3: ", "GeoProperty")

    async def stored() -> list[str]:
        store = await open_tool_store(copy)
        try:
            page = await store.select("", Selection(limit=10))
            return [e["id"] for e in page.entities]
        finally:
            await store.close()

    assert asyncio.run(stored()) == ["urn:ngsi-ld:Car:ok"]


def test_export_of_missing_storage_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x.ndjson"
    code, err = dosi(capsys, "export", "--data", str(tmp_path / "none"), "-o", str(out))
    assert_one_line_error(code, err, "no dosi data")
    assert not out.exists() and not (tmp_path / "x.ndjson.partial").exists()
