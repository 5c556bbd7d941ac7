"""The IoT agent as a hub extension: provisioning API, HTTP and MQTT southbound (stub)."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.routing import BaseRoute

from dosi.hub.state import HubState


class IotAgent:
    routes: Sequence[BaseRoute] = ()

    async def start(self, state: HubState) -> None:
        return None

    async def stop(self) -> None:
        return None
