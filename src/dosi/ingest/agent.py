"""The IoT agent as a hub extension: provisioning API, HTTP and MQTT southbound, commands.

Started after the store opens and stopped before it closes (see
hub/extension.py): on stop it disconnects from the broker, writes every
measurement it had already received, and saves the command cursors, so a
graceful shutdown loses nothing that reached the process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from starlette.routing import BaseRoute

from dosi.hub.state import HubState
from dosi.ingest.api import IotApi, Parts
from dosi.ingest.batcher import Batcher
from dosi.ingest.commands import CommandSender
from dosi.ingest.mqtt import MqttLink
from dosi.ingest.registry import REFRESH_S, Registry
from dosi.ingest.southbound import Message, Southbound
from dosi.ingest.url import parse_broker_url

log = logging.getLogger("dosi.ingest")
MAX_RETRY = 10_000  # messages from unknown devices waiting for a registry refresh


class IotAgent:
    def __init__(self) -> None:
        self._api = IotApi()
        self._tasks: list[asyncio.Task[None]] = []
        self._retry: list[Message] = []
        self._retrying: asyncio.Task[None] | None = None
        self.link: MqttLink | None = None
        self.batcher: Batcher | None = None
        self.southbound: Southbound | None = None
        self.commands: CommandSender | None = None

    @property
    def routes(self) -> Sequence[BaseRoute]:
        return self._api.routes

    async def start(self, state: HubState) -> None:
        registry = Registry(state.store, state.contexts.core.expand)
        await registry.load()
        batcher = self.batcher = Batcher(state.store, state.metrics)
        southbound = self.southbound = Southbound(registry, batcher, state.metrics)
        if state.settings.mqtt_url:
            broker = parse_broker_url(state.settings.mqtt_url)
            self.link = MqttLink(
                broker,
                consume=self._consume,
                share_group=state.settings.mqtt_share_group,
                qos=state.settings.mqtt_qos,
            )
            batcher.on_room = self.link.resume
            self.link.start()
        self.commands = CommandSender(state.store, registry, batcher, state.metrics, self.link)
        self._api.parts = Parts(state.store, registry, southbound)
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self.commands.run(), name="iot-commands"),
            loop.create_task(self._refresh(registry), name="iot-registry"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            await _cancel(task)
        if self._retrying is not None:
            await _cancel(self._retrying)  # it settles what it held, as unknown
        if self.link is not None and self.southbound is not None:
            await self.link.stop()
            unknown = self.southbound.handle_mqtt(self.link.drain(), final=False)
            self.southbound.handle_mqtt(unknown + self._retry, final=True)
            self._retry = []
        if self.batcher is not None:
            await self.batcher.close()
        if self.commands is not None and self.commands.leading:
            await self.commands.save()
        self._api.parts = None

    def _consume(self, messages: list[Message]) -> None:
        """Messages from the MQTT thread (event loop side); pauses the link when full."""
        assert self.southbound is not None and self.batcher is not None
        unknown = self.southbound.handle_mqtt(messages, final=False)
        if unknown:
            room = MAX_RETRY - len(self._retry)
            self._retry += unknown[:room]
            if len(unknown) > room:
                self.southbound.handle_mqtt(unknown[room:], final=True)
            if self._retrying is None:
                self._retrying = asyncio.get_running_loop().create_task(self._retry_unknown())
        if self.batcher.full and self.link is not None:
            self.link.pause()

    async def _retry_unknown(self) -> None:
        """Devices just provisioned through another worker: refresh once, then decide."""
        assert self.southbound is not None
        try:
            await self.southbound.registry.refresh_on_miss()
        except Exception:
            log.exception("IoT registry refresh failed")
        finally:
            self._retrying = None
            batch, self._retry = self._retry, []
            if batch:
                self.southbound.handle_mqtt(batch, final=True)

    async def _refresh(self, registry: Registry) -> None:
        while True:
            await asyncio.sleep(REFRESH_S)
            try:
                await registry.refresh()
            except Exception:
                log.exception("IoT registry refresh failed")


async def _cancel(task: asyncio.Task[None]) -> None:
    """Cancel and wait, cancelling again if a cancellation got swallowed (Python 3.11's
    asyncio.wait_for can lose one when its inner wait completes at the same moment, and
    JournalFollower.wait uses it)."""
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=0.1)
    if not task.cancelled() and task.exception() is not None:
        log.error("IoT agent task failed", exc_info=task.exception())
