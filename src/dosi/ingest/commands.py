"""Commands: a write to a device's command attribute is sent to the device over MQTT.

Exactly one process of the hub sends commands: the holder of the store's
`iot-commands` role (tried every second, so another worker takes over when
the holder dies). It follows the journal, so it sees writes made by any
worker, and saves its journal cursors in kv (every few seconds and after
each command), so a new holder resumes where the old one stopped. A command
older than `MAX_AGE_S` when found is not sent (its status says why).

Sending sets `<command>_status` to PENDING (committed before the message
leaves), or ERROR with `<command>_info` when it cannot be sent; the device's
reply on `/<apikey>/<device>/cmdexe` sets OK (southbound.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import Any

import orjson

from dosi.hub.journal import JournalFollower
from dosi.hub.metrics import Metrics
from dosi.hub.store.base import DEFAULT_TENANT, JournalEntry, Outcome, Store
from dosi.ingest.batcher import Batcher
from dosi.ingest.mapping import ERROR, PENDING, Binding, Command
from dosi.ingest.mqtt import MqttLink
from dosi.ingest.registry import Registry
from dosi.ingest.ultralight import format_command
from dosi.ngsi.values import now_iso

log = logging.getLogger("dosi.ingest")
ROLE = "iot-commands"
CURSORS_NS = "iot/command-cursors"
LEAD_RETRY_S = 1.0
SAVE_EVERY_S = 5.0
MAX_AGE_S = 60.0
IDLE_LAG = 2


def command_topic(binding: Binding) -> str:
    return f"/{binding.apikey}/{binding.device_id}/cmd"


def command_payload(binding: Binding, command: Command, value: Any) -> bytes:
    if binding.ultralight:
        return format_command(binding.device_id, command.name, value).encode()
    return orjson.dumps({command.name: value})


class RoleLost(Exception):
    """This process no longer holds the role it was working under."""


class CommandSender:
    def __init__(
        self,
        store: Store,
        registry: Registry,
        batcher: Batcher,
        metrics: Metrics,
        link: MqttLink | None,
    ) -> None:
        self._store = store
        self._registry = registry
        self._batcher = batcher
        self._metrics = metrics
        self._link = link
        self._follower: JournalFollower | None = None
        self._saved_at = 0.0
        self.leading = False

    async def run(self) -> None:
        while True:
            while not self._store.try_lead(ROLE):  # noqa: ASYNC110 - a lock, not an event
                await asyncio.sleep(LEAD_RETRY_S)
            self.leading = True
            await self._lead()
            self.leading = False

    async def _lead(self) -> None:
        """Send commands until the role is lost (or the task is cancelled)."""
        start = await self._idle_until_commands()
        follower = self._follower = JournalFollower(self._store, start=start)
        log.info("sending device commands from this process")
        while True:
            try:
                await self._step(follower)
            except RoleLost:
                log.warning("device command role lost; standing by")
                return
            except Exception:  # a storage hiccup must not end command delivery for good
                log.exception("command delivery failed; retrying")
                await asyncio.sleep(LEAD_RETRY_S)

    async def _step(self, follower: JournalFollower) -> None:
        found = await follower.wait()
        if not self._store.try_lead(ROLE):
            # The role was lost (its database connection dropped) and another process may
            # hold it: stop rather than send commands twice.
            raise RoleLost(ROLE)
        sent = 0
        for tenant, entries in found:
            for entry in entries:
                sent += await self._entry(tenant, entry)
            follower.advance(tenant, entries[-1].seq)
        if sent or time.monotonic() - self._saved_at >= SAVE_EVERY_S:
            await self.save()

    async def save(self) -> None:
        if self._follower is None:
            return
        self._saved_at = time.monotonic()
        cursors = self._follower.cursors
        await asyncio.gather(
            *(self._store.kv_put(CURSORS_NS, t, str(seq).encode()) for t, seq in cursors.items())
        )

    async def _idle_until_commands(self) -> dict[str, int]:
        """Wait until some device has commands; where to start following the journal then.

        Reading every journal entry costs a few percent of a process under heavy
        ingestion, for nothing while no device can take a command. Meanwhile the
        journal's end is noted every second, and following starts from the note
        taken `IDLE_LAG` ticks before the first command device appeared (a device
        provisioned by another worker reaches this one's registry within a second).
        """
        saved = {t: int(v) for t, v in await self._store.kv_items(CURSORS_NS)}
        notes: deque[dict[str, int]] = deque(maxlen=IDLE_LAG + 1)
        while True:
            ends = {t: await self._store.journal_last(t) for t in await self._all_tenants()}
            notes.append({t: saved.get(t, end) for t, end in ends.items()})
            if self._registry.any_commands():
                return notes[0]
            saved = {}  # saved cursors matter only when commands wait at start-up
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(LEAD_RETRY_S):
                    await self._registry.changed.wait()
            self._registry.changed.clear()

    async def _all_tenants(self) -> list[str]:
        return [DEFAULT_TENANT, *await self._store.tenants()]

    async def _entry(self, tenant: str, entry: JournalEntry) -> int:
        """Send the commands one journal entry carries; how many."""
        if entry.before is None or entry.after is None:
            return 0  # creating an entity (provisioning) or deleting one sends nothing
        binding = self._registry.binding_of_entity(tenant, entry.id)
        if binding is None or not binding.commands:
            return 0
        sent = 0
        for iri in entry.changed:
            command = binding.command_by_iri.get(iri)
            instances = entry.after.get(iri)
            if command is None or not instances or iri not in entry.before:
                continue  # not a command, removed, or just created by provisioning
            value = _default_value(instances)
            await self._send(binding, command, value, age_s=time.time() - entry.at / 1000)
            sent += 1
        return sent

    async def _send(self, binding: Binding, command: Command, value: Any, *, age_s: float) -> None:
        extra = {"tenant": binding.tenant, "device_id": binding.device_id, "command": command.name}
        if age_s > MAX_AGE_S:
            await self._status(binding, command, ERROR, f"expired: written {age_s:.0f} s ago")
            self._metrics.ingest_commands["expired"] += 1
            log.warning("command expired before it could be sent", extra=extra)
            return
        if self._link is None:
            await self._status(
                binding, command, ERROR, "the hub has no MQTT broker (dosi up --mqtt)"
            )
            self._metrics.ingest_commands["error"] += 1
            log.warning("command not sent: no MQTT broker", extra=extra)
            return
        await self._status(binding, command, PENDING, None)
        if self._link.publish(command_topic(binding), command_payload(binding, command, value)):
            self._metrics.ingest_commands["sent"] += 1
            log.info("command sent", extra=extra)
        else:
            await self._status(binding, command, ERROR, "the MQTT broker is not connected")
            self._metrics.ingest_commands["error"] += 1
            log.warning("command not sent: MQTT broker not connected", extra=extra)

    async def _status(self, binding: Binding, command: Command, status: str, info: Any) -> None:
        waiter: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._batcher.add(
            binding.tenant,
            binding.entity_id,
            binding.command_status(command, status, info, now_iso()),
            waiter=waiter,
            measurement=False,
        )
        with contextlib.suppress(Exception):
            outcome = await waiter
            if outcome.error is not None:
                log.error("command status not stored", extra={"error": str(outcome.error)})


def _default_value(instances: list[dict[str, Any]]) -> Any:
    for inst in instances:
        if "datasetId" not in inst:
            return inst.get("value", inst.get("object", inst.get("json")))
    return instances[0].get("value")
