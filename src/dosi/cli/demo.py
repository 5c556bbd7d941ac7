"""`dosi demo`: seed sample Busan Eco Delta City entities through the SDK and say what to try.

Seeding goes over HTTP through `AsyncNgsiClient`, exactly as an outside service
would, so the demo also proves the running hub answers. A batch upsert keeps
re-runs on the same data dir harmless.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import httpx
from rich.console import Console

from dosi.client import AsyncNgsiClient, NgsiClientError

API = "/ngsi-ld/v1"


def demo_entities() -> list[dict[str, Any]]:
    """Every entity in `demo_data/*.json`, in file-name order (devices before their users)."""
    folder = resources.files("dosi.cli") / "demo_data"
    entities: list[dict[str, Any]] = []
    for item in sorted(folder.iterdir(), key=lambda f: f.name):
        if item.name.endswith(".json"):
            entities.extend(json.loads(item.read_text(encoding="utf-8")))
    return entities


async def seed(base_url: str) -> list[str]:
    """Upsert the demo entities; returns their ids, or raises with a one-line reason."""
    try:
        async with AsyncNgsiClient(base_url) as client:
            result = await client.batch_upsert(demo_entities())
    except (NgsiClientError, httpx.HTTPError) as exc:
        raise RuntimeError(f"demo seeding failed: {exc}") from None
    if not result.ok:
        first = result.errors[0]
        raise RuntimeError(f"demo seeding failed for {len(result.errors)} entities, e.g. {first}")
    return result.success


async def seed_and_announce(base_url: str) -> None:
    ids = await seed(base_url)
    api = base_url + API
    console = Console(soft_wrap=True, highlight=False)
    console.print(
        f"\n[bold green]dosi demo[/] — {len(ids)} sample entities in the hub at {base_url}"
    )
    console.print(f"  entities  {api}/entities?type=AirQualityObserved")
    console.print(f"  types     {api}/types")
    console.print(f"  health    {base_url}/health      metrics  {base_url}/metrics")
    console.print("\n[bold]Try:[/]")
    for example in (
        f"curl '{api}/entities?type=TrafficFlowObserved&options=keyValues'",
        f"curl '{api}/entities/{ids[0]}'",
        f"curl -g '{api}/entities?type=AirQualityObserved&georel=near;maxDistance==1500"
        "&geometry=Point&coordinates=[128.93,35.15]'",
        f"curl '{api}/temporal/entities/{ids[0]}'",
        f"curl -N -H 'Accept: text/event-stream' '{api}/stream?type=AirQualityObserved'",
    ):
        console.print(f"  {example}", markup=False, highlight=False)
    console.print("\nServing until Ctrl-C.\n")
