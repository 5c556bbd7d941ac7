"""Provisioned service groups and devices: kept in the store's kv, cached in memory.

Every worker process holds the whole registry (a city's devices fit easily)
and resolves a measurement without I/O. A change bumps a per-tenant
generation in kv; the other workers notice it within a second (or at once
when a device they do not know speaks) and reload that tenant.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Container, Iterable
from dataclasses import dataclass, field

import orjson

from dosi.hub.store.base import Store
from dosi.ingest.mapping import Binding, Expand, bind
from dosi.ingest.model import Device, ServiceGroup, parse_device, parse_group
from dosi.ngsi.errors import AlreadyExists, NgsiError

log = logging.getLogger("dosi.ingest")
TENANTS_NS = "iot/tenants"
REFRESH_S = 1.0
MISS_REFRESH_S = 0.2  # at most this often when unknown devices speak


def _groups_ns(tenant: str) -> str:
    return f"iot/services/{tenant}"


def _devices_ns(tenant: str) -> str:
    return f"iot/devices/{tenant}"


@dataclass
class TenantRecords:
    generation: str = ""
    groups: dict[str, ServiceGroup] = field(default_factory=dict)  # by apikey
    devices: dict[str, Device] = field(default_factory=dict)  # by device_id
    bindings: dict[str, Binding] = field(default_factory=dict)  # by device_id
    by_entity: dict[str, str] = field(default_factory=dict)  # entity id -> device_id


class Registry:
    def __init__(self, store: Store, expand: Expand) -> None:
        self._store = store
        self._expand = expand
        self._tenants: dict[str, TenantRecords] = {}
        self._apikeys: dict[str, str] = {}  # apikey -> tenant (an apikey names one tenant)
        self.lock = asyncio.Lock()  # provisioning changes, one at a time per process
        self._last_refresh = 0.0
        self._miss_lock = asyncio.Lock()
        self._with_commands = False
        self.changed = asyncio.Event()  # set whenever a tenant's records are (re)installed

    # -- lookups (hot path, no I/O) -------------------------------------
    def tenant_of_apikey(self, apikey: str) -> str | None:
        return self._apikeys.get(apikey)

    def binding(self, tenant: str, device_id: str) -> Binding | None:
        records = self._tenants.get(tenant)
        return records.bindings.get(device_id) if records else None

    def binding_of_entity(self, tenant: str, entity_id: str) -> Binding | None:
        records = self._tenants.get(tenant)
        if records is None:
            return None
        device_id = records.by_entity.get(entity_id)
        return records.bindings.get(device_id) if device_id else None

    def any_commands(self) -> bool:
        """Whether some device of some tenant has commands (else no one follows the journal)."""
        return self._with_commands

    def groups(self, tenant: str) -> list[ServiceGroup]:
        records = self._tenants.get(tenant)
        return sorted(records.groups.values(), key=lambda g: g.apikey) if records else []

    def devices(self, tenant: str) -> list[Device]:
        records = self._tenants.get(tenant)
        return sorted(records.devices.values(), key=lambda d: d.device_id) if records else []

    def device(self, tenant: str, device_id: str) -> Device | None:
        records = self._tenants.get(tenant)
        return records.devices.get(device_id) if records else None

    def group(self, tenant: str, apikey: str) -> ServiceGroup | None:
        records = self._tenants.get(tenant)
        return records.groups.get(apikey) if records else None

    # -- loading and refreshing -----------------------------------------
    async def load(self) -> None:
        for tenant, generation in await self._store.kv_items(TENANTS_NS):
            await self._load_tenant(tenant, generation.decode())
        self._last_refresh = time.monotonic()

    async def refresh(self) -> None:
        """Reload the tenants whose generation changed in another process."""
        self._last_refresh = time.monotonic()
        for tenant, raw in await self._store.kv_items(TENANTS_NS):
            generation = raw.decode()
            current = self._tenants.get(tenant)
            if current is None or current.generation != generation:
                await self._load_tenant(tenant, generation)

    async def refresh_on_miss(self) -> None:
        """Refresh because an unknown device or apikey spoke, at most every MISS_REFRESH_S;
        callers arriving together share one refresh (a flood of unknown ids costs no more)."""
        asked = time.monotonic()
        async with self._miss_lock:
            if self._last_refresh >= asked:
                return  # a refresh began after this caller asked
            wait = self._last_refresh + MISS_REFRESH_S - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            await self.refresh()

    async def _load_tenant(self, tenant: str, generation: str) -> None:
        records = TenantRecords(generation=generation)
        for _, raw in await self._store.kv_items(_groups_ns(tenant)):
            try:
                group = parse_group(orjson.loads(raw))
            except (NgsiError, orjson.JSONDecodeError) as exc:
                log.error("skipping a stored service group", extra={"error": str(exc)})
                continue
            records.groups[group.apikey] = group
        for _, raw in await self._store.kv_items(_devices_ns(tenant)):
            try:
                device = parse_device(orjson.loads(raw))
            except (NgsiError, orjson.JSONDecodeError) as exc:
                log.error("skipping a stored device", extra={"error": str(exc)})
                continue
            records.devices[device.device_id] = device
        self._bind(tenant, records, records.devices)
        self._install(tenant, records)

    def _bind(
        self,
        tenant: str,
        records: TenantRecords,
        device_ids: Iterable[str],
        strict: Container[str] = (),
    ) -> None:
        """(Re)resolve these devices of `records`; a device in `strict` that cannot be
        resolved raises (it is being provisioned), any other is logged and left out."""
        for device_id in device_ids:
            device = records.devices.get(device_id)
            records.bindings.pop(device_id, None)
            if device is None:
                continue
            try:
                binding = bind(tenant, device, self._group_for(records, device), self._expand)
            except NgsiError as exc:
                if device_id in strict:
                    raise
                log.error(
                    "device cannot be resolved",
                    extra={"tenant": tenant, "device_id": device_id, "error": str(exc)},
                )
                continue
            records.bindings[device_id] = binding
        records.by_entity = {b.entity_id: d for d, b in records.bindings.items()}

    def _install(self, tenant: str, records: TenantRecords) -> None:
        """Use `records` (resolved) for `tenant` from now on, and index the apikeys."""
        self._tenants[tenant] = records
        self.changed.set()
        self._with_commands = any(
            b.commands for r in self._tenants.values() for b in r.bindings.values()
        )
        self._apikeys = {k: t for k, t in self._apikeys.items() if t != tenant}
        for apikey in self._apikeys_of(records):
            self._apikeys.setdefault(apikey, tenant)

    @staticmethod
    def _apikeys_of(records: TenantRecords) -> set[str]:
        keys = set(records.groups)
        keys.update(d.apikey for d in records.devices.values() if d.apikey)
        return keys

    @staticmethod
    def _group_for(records: TenantRecords, device: Device) -> ServiceGroup | None:
        if device.apikey is not None:
            return records.groups.get(device.apikey)
        if len(records.groups) == 1:
            return next(iter(records.groups.values()))
        return None

    # -- changes (callers hold `lock`) ------------------------------------
    def check_apikeys_free(self, tenant: str, apikeys: set[str]) -> None:
        for apikey in apikeys:
            owner = self._apikeys.get(apikey)
            if owner is not None and owner != tenant:
                raise AlreadyExists(f"apikey {apikey!r} is used by another tenant")

    def preview(
        self,
        tenant: str,
        *,
        groups: dict[str, ServiceGroup | None] | None = None,
        devices: dict[str, Device | None] | None = None,
    ) -> TenantRecords:
        """The tenant's records with these changes (None deletes), resolved; nothing stored.

        Raises BadRequestData if a changed device cannot be resolved (no entity type),
        AlreadyExists if an apikey belongs to another tenant."""
        current = self._tenants.get(tenant) or TenantRecords()
        records = TenantRecords(
            groups=dict(current.groups),
            devices=dict(current.devices),
            bindings=dict(current.bindings),
        )
        for apikey, group in (groups or {}).items():
            if group is None:
                records.groups.pop(apikey, None)
            else:
                records.groups[apikey] = group
        for device_id, device in (devices or {}).items():
            if device is None:
                records.devices.pop(device_id, None)
            else:
                records.devices[device_id] = device
        # A group change may change any device; a device change only that device.
        changed = records.devices.keys() | current.devices.keys() if groups else devices or {}
        self._bind(tenant, records, list(changed), strict=devices or {})
        self.check_apikeys_free(tenant, self._apikeys_of(records))
        return records

    async def commit(
        self,
        tenant: str,
        records: TenantRecords,
        *,
        groups: dict[str, ServiceGroup | None] | None = None,
        devices: dict[str, Device | None] | None = None,
    ) -> None:
        """Persist the changed records, bump the tenant's generation, use them here at once."""
        writes = []
        for apikey, group in (groups or {}).items():
            ns = _groups_ns(tenant)
            writes.append(
                self._store.kv_delete(ns, apikey)
                if group is None
                else self._store.kv_put(ns, apikey, orjson.dumps(group.to_json()))
            )
        for device_id, device in (devices or {}).items():
            ns = _devices_ns(tenant)
            writes.append(
                self._store.kv_delete(ns, device_id)
                if device is None
                else self._store.kv_put(ns, device_id, orjson.dumps(device.to_json()))
            )
        await asyncio.gather(*writes)
        generation = secrets.token_hex(8)
        await self._store.kv_put(TENANTS_NS, tenant, generation.encode())
        records.generation = generation
        self._install(tenant, records)
