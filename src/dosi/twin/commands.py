"""Commands for the twin's actuators, heard on the hub's live stream.

The twin asks the stream for changes of its actuators' command attributes
(with `sysAttrs`) and turns each attribute whose `modifiedAt` moved into one
command, so a service's PATCH of `commandedPhase` does not re-apply an unchanged
`commandedProgram`. After a dropped connection it catches up from the entities'
current values, so a command written meanwhile is applied, not lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp
import orjson

from dosi.twin.entities import actuator_id
from dosi.twin.model import Actuator

log = logging.getLogger("dosi.twin.commands")
STREAM = "/ngsi-ld/v1/stream"
RETRY_S = 1.0

Emit = Callable[[str, str, Any], None]  # (actuator id, command attribute, value)


class CommandStream:
    def __init__(
        self,
        http: aiohttp.ClientSession,
        scenario: str,
        actuators: Sequence[Actuator],
        emit: Emit,
    ) -> None:
        self._http = http
        self._local = {actuator_id(scenario, a): a.actuator_id for a in actuators}
        self._commands = {actuator_id(scenario, a): a.commands for a in actuators}
        self._params = {
            "type": ",".join(sorted({a.entity_type for a in actuators})),
            "attrs": ",".join(sorted({c for a in actuators for c in a.commands})),
            "options": "sysAttrs",
        }
        self._seen: dict[tuple[str, str], tuple[str, Any]] = {}
        self._emit = emit
        self._task: asyncio.Task[None] | None = None
        self.received = 0

    async def start(self) -> None:
        """Note the current command values, then listen; returns once the stream is open."""
        await self._catch_up(apply=False)
        opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._listen(opened))
        await opened

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _listen(self, opened: asyncio.Future[None]) -> None:
        headers = {"accept": "text/event-stream"}
        forever = aiohttp.ClientTimeout(total=None, sock_read=None)
        while True:
            try:
                async with self._http.get(
                    STREAM, params=self._params, headers=headers, timeout=forever
                ) as response:
                    if response.status != 200:
                        body = (await response.read())[:300].decode(errors="replace")
                        raise RuntimeError(f"stream refused: {response.status} {body}")
                    if not opened.done():
                        opened.set_result(None)
                    else:
                        await self._catch_up(apply=True)
                    await self._read(response)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the hub restarts or the network drops: retry
                if not opened.done():
                    opened.set_exception(exc)
                    return
                log.warning("command stream lost (%s); reconnecting", exc)
            await asyncio.sleep(RETRY_S)

    async def _read(self, response: aiohttp.ClientResponse) -> None:
        data: list[bytes] = []
        async for raw in response.content:
            line = raw.rstrip(b"\r\n")
            if line.startswith(b"data:"):
                data.append(line[5:].strip())
            elif not line and data:
                self._handle(orjson.loads(b"\n".join(data)))
                data = []

    async def _catch_up(self, *, apply: bool) -> None:
        params = dict(self._params, limit="1000")
        offset = 0
        while True:
            async with self._http.get(
                "/ngsi-ld/v1/entities", params=dict(params, offset=str(offset))
            ) as response:
                response.raise_for_status()
                batch = orjson.loads(await response.read())
            for entity in batch:
                self._handle(entity, apply=apply)
            if len(batch) < 1000:
                return
            offset += len(batch)

    def _handle(self, entity: Any, *, apply: bool = True) -> None:
        if not isinstance(entity, dict):
            return
        entity_id = entity.get("id")
        if entity_id not in self._local:
            return
        changed: list[tuple[str, str, Any]] = []
        for command in self._commands[entity_id]:
            attr = entity.get(command)
            if not isinstance(attr, dict) or "value" not in attr:
                continue
            stamp, value = str(attr.get("modifiedAt", "")), attr["value"]
            previous = self._seen.get((entity_id, command))
            if previous is not None and (
                stamp < previous[0] or (stamp == previous[0] and value == previous[1])
            ):
                continue
            self._seen[(entity_id, command)] = (stamp, value)
            changed.append((stamp, command, value))
        if apply:
            for _, command, value in sorted(changed, key=lambda c: c[0]):
                self._emit(self._local[entity_id], command, value)
                self.received += 1
