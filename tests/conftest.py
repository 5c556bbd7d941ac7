"""Shared fixtures: a hub on a fresh SQLite data dir, spoken to in-process over ASGI."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from dosi.hub.app import create_app
from dosi.hub.settings import HubSettings

BASE = "/ngsi-ld/v1"
CORE_LINK = (
    "<https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld>; "
    'rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
)


# Stores the hub tests run on: DOSI_TEST_BACKENDS=sqlite,postgres runs each test on both
# (postgres: a fresh PostGIS database per test, see servers.py).
BACKENDS = tuple(
    name.strip()
    for name in os.environ.get("DOSI_TEST_BACKENDS", "sqlite").split(",")
    if name.strip()
)
if not BACKENDS or not set(BACKENDS) <= {"sqlite", "postgres"}:
    raise pytest.UsageError(f"DOSI_TEST_BACKENDS: sqlite and/or postgres, not {BACKENDS!r}")


@pytest.fixture(params=BACKENDS if len(BACKENDS) > 1 else None)
def backend(request: pytest.FixtureRequest) -> str:
    """The store of the hub under test (one backend: no parameter, test ids unchanged)."""
    return str(getattr(request, "param", BACKENDS[0]))


@pytest.fixture
def settings(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> HubSettings:
    if backend == "postgres":
        url = request.getfixturevalue("postgres_db")
        return HubSettings(data_dir=tmp_path / "data", db_url=url)
    return HubSettings(data_dir=tmp_path / "data")


@pytest.fixture
async def client(settings: HubSettings) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client wired to a fresh hub (lifespan run, so storage is open)."""
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as http,
    ):
        yield http


pytest_plugins = ["servers"]
