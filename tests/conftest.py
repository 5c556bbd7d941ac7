"""Shared fixtures: a hub on a fresh SQLite data dir, spoken to in-process over ASGI."""

from __future__ import annotations

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


@pytest.fixture
def settings(tmp_path: Path) -> HubSettings:
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
