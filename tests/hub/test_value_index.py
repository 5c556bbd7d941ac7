"""The attribute-value index (`--index-attribute`) narrows q queries but never changes answers."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dosi.hub.app import create_app
from dosi.hub.query import value_bounds
from dosi.hub.settings import HubSettings
from dosi.hub.store.base import Prefilter, Selection
from dosi.hub.store.sqlite_query import candidates_of
from dosi.ngsi.qlang import compile_q

BASE = "/ngsi-ld/v1"
VOCAB = "https://uri.etsi.org/ngsi-ld/default-context/"


def _value(rng: random.Random) -> Any:
    return rng.choice(
        [
            rng.randint(-5, 5),
            rng.uniform(-5, 5),
            rng.choice([True, False]),
            str(rng.randint(-5, 5)),
            [rng.randint(-5, 5), rng.randint(-5, 5)],
            {"@value": rng.randint(-5, 5)},
            {"nested": rng.randint(-5, 5)},
        ]
    )


def _entities(rng: random.Random, count: int) -> list[dict[str, Any]]:
    entities = []
    for i in range(count):
        entity: dict[str, Any] = {"id": f"urn:ngsi-ld:T:{i}", "type": "T"}
        kind = rng.randrange(5)
        if kind == 0:
            entity["n"] = {"type": "Property", "value": _value(rng)}
        elif kind == 1:  # multi-attribute: any instance may match
            entity["n"] = [
                {"type": "Property", "value": _value(rng)},
                {"type": "Property", "value": _value(rng), "datasetId": "urn:ngsi-ld:D:1"},
            ]
        elif kind == 2:
            entity["n"] = {"type": "Relationship", "object": "urn:ngsi-ld:X:1"}
        elif kind == 3:
            entity["n"] = {"type": "JsonProperty", "json": _value(rng)}
        entity["m"] = {"type": "Property", "value": rng.randint(0, 3)}
        entities.append(entity)
    return entities


def _queries(rng: random.Random, count: int) -> list[str]:
    ops = ["==", "!=", ">", ">=", "<", "<="]
    queries = []
    for _ in range(count):
        number = rng.choice([str(rng.randint(-5, 5)), f"{rng.uniform(-5, 5):.2f}"])
        term = f"n{rng.choice(ops)}{number}"
        shape = rng.randrange(4)
        if shape == 1:
            term = f"n=={rng.randint(-5, 0)}..{rng.randint(0, 5)}"
        elif shape == 2:
            term = f"{term};m=={rng.randint(0, 3)}"
        elif shape == 3:
            term = f"({term}|m==0)"
        queries.append(term)
    return queries


@pytest.fixture
async def hubs(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    plain = create_app(HubSettings(data_dir=tmp_path / "plain"))
    indexed = create_app(HubSettings(data_dir=tmp_path / "indexed", indexed_attributes=("n",)))
    async with (
        plain.router.lifespan_context(plain),
        indexed.router.lifespan_context(indexed),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=plain), base_url="http://a") as a,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=indexed), base_url="http://b") as b,
    ):
        yield a, b


async def _ids(client: httpx.AsyncClient, q: str) -> list[str]:
    response = await client.get(f"{BASE}/entities", params={"type": "T", "q": q, "limit": "1000"})
    assert response.status_code == 200, response.text
    return [e["id"] for e in response.json()]


async def test_indexed_answers_equal_unindexed(
    hubs: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    plain, indexed = hubs
    rng = random.Random(7)
    entities = _entities(rng, 300)
    for client in hubs:
        assert (
            await client.post(f"{BASE}/entityOperations/upsert", json=entities)
        ).status_code == 201
    # Change some entities afterwards: the index must follow updates and deletes.
    for i in range(0, 300, 7):
        patch = {"n": {"type": "Property", "value": rng.randint(-5, 5)}}
        for client in hubs:
            await client.patch(f"{BASE}/entities/urn:ngsi-ld:T:{i}/attrs", json=patch)
    for i in range(3, 300, 11):
        for client in hubs:
            await client.delete(f"{BASE}/entities/urn:ngsi-ld:T:{i}")
    nonempty = 0
    for q in _queries(rng, 120):
        expected = await _ids(plain, q)
        assert await _ids(indexed, q) == expected, q
        nonempty += bool(expected)
    assert nonempty > 60  # the comparison is not between empty answers


def test_value_bounds_take_top_level_numeric_terms_only() -> None:
    def bounds(q: str) -> tuple[tuple[str, str, float], ...]:
        return value_bounds(compile_q(q, lambda t: VOCAB + t), lambda t: VOCAB + t)

    assert bounds("n>5") == ((VOCAB + "n", ">=", 5.0),)
    assert bounds("n==1..3;m<=2") == (
        (VOCAB + "n", ">=", 1.0),
        (VOCAB + "n", "<=", 3.0),
        (VOCAB + "m", "<=", 2.0),
    )
    assert bounds("n>5|m<1") == ()  # an OR bounds nothing
    assert bounds("n!=5") == ()
    assert bounds('n=="5"') == ()
    assert bounds("n.observedAt>2020-01-01T00:00:00Z") == ()
    assert bounds("n[a]>1") == ()


async def test_index_is_built_for_existing_entities_on_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    entities = [
        {"id": f"urn:ngsi-ld:T:{i}", "type": "T", "n": {"type": "Property", "value": i}}
        for i in range(50)
    ]
    first = create_app(HubSettings(data_dir=data))
    async with (
        first.router.lifespan_context(first),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=first), base_url="http://a") as a,
    ):
        await a.post(f"{BASE}/entityOperations/upsert", json=entities)
    second = create_app(HubSettings(data_dir=data, indexed_attributes=("n",)))
    async with (
        second.router.lifespan_context(second),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=second), base_url="http://b") as b,
    ):
        assert len(await _ids(b, "n>=40")) == 10
    with sqlite3.connect(data / "dosi.sqlite") as conn:
        assert conn.execute("SELECT count(*) FROM attr_values").fetchone()[0] == 50
        plan = " ".join(
            str(row)
            for row in conn.execute(
                "EXPLAIN QUERY PLAN SELECT rid FROM attr_values WHERE attr = ? AND num >= ?",
                (VOCAB + "n", 40.0),
            )
        )
        assert "attr_values_num" in plan
        # The index narrows the candidates themselves (not only the final answer).
        selection = Selection(prefilter=Prefilter(values=((VOCAB + "n", ">=", 40.0),)))
        assert len(list(candidates_of(conn, selection, frozenset({VOCAB + "n"})))) == 10
        assert len(list(candidates_of(conn, selection, frozenset()))) == 50
