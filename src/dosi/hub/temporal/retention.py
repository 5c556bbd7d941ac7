"""History retention: raw instances for a while, then hourly aggregates (stub)."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.routing import BaseRoute

from dosi.hub.state import HubState


class Retention:
    routes: Sequence[BaseRoute] = ()

    async def start(self, state: HubState) -> None:
        return None

    async def stop(self) -> None:
        return None
