"""HTTP routes of the IoT agent: the provisioning API (/iot/services, /iot/devices) and the
HTTP southbound (/iot/json, /iot/d), after the FIWARE IoT Agent API.

Differences from FIWARE: the tenant is the NGSILD-Tenant header (no
fiware-service headers), errors are NGSI-LD ProblemDetails, and an apikey
belongs to one tenant (MQTT topics carry no tenant).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dosi import __version__
from dosi.hub.http import json_response, read_body, tenant_of
from dosi.hub.store.base import Store
from dosi.ingest.model import Device, ServiceGroup, list_of, parse_device, parse_group
from dosi.ingest.registry import Registry
from dosi.ingest.southbound import MAX_PAYLOAD, Southbound
from dosi.ngsi.errors import (
    AlreadyExists,
    BadRequestData,
    InternalError,
    PayloadTooLarge,
    ResourceNotFound,
)
from dosi.ngsi.values import now_iso, require_datetime

_TENANT = re.compile(r"^[A-Za-z0-9_.:/\-]{0,128}$")
MAX_ITEMS = 10_000
DEFAULT_LIMIT = 20
MAX_LIMIT = 1000


@dataclass
class Parts:
    store: Store
    registry: Registry
    southbound: Southbound


class IotApi:
    """The routes; `parts` is set once the agent has started (503 before)."""

    def __init__(self) -> None:
        self.parts: Parts | None = None
        self.routes = [
            Route("/iot/about", self.about, methods=["GET"]),
            Route("/iot/services", self.create_groups, methods=["POST"]),
            Route("/iot/services", self.list_groups, methods=["GET"]),
            Route("/iot/services", self.update_group, methods=["PUT"]),
            Route("/iot/services", self.delete_group, methods=["DELETE"]),
            Route("/iot/devices", self.create_devices, methods=["POST"]),
            Route("/iot/devices", self.list_devices, methods=["GET"]),
            Route("/iot/devices/{device_id}", self.get_device, methods=["GET"]),
            Route("/iot/devices/{device_id}", self.update_device, methods=["PUT"]),
            Route("/iot/devices/{device_id}", self.delete_device, methods=["DELETE"]),
            Route("/iot/json", self.measure_json, methods=["POST"]),
            Route("/iot/d", self.measure_ul, methods=["POST"]),
        ]

    def _parts(self) -> Parts:
        if self.parts is None:
            raise InternalError("the IoT agent is not running")
        return self.parts

    async def about(self, request: Request) -> Response:
        return json_response({"libVersion": __version__, "version": __version__, "api": "dosi"})

    # -- service groups ----------------------------------------------------
    async def create_groups(self, request: Request) -> Response:
        parts = self._parts()
        tenant = _tenant(request)
        body, _ = await read_body(request)
        groups = [parse_group(item) for item in _items(body, "services")]
        changes: dict[str, ServiceGroup | None] = {}
        for group in groups:
            if group.apikey in changes:
                raise AlreadyExists(f"apikey {group.apikey!r} is given twice")
            changes[group.apikey] = group
        registry = parts.registry
        async with registry.lock:
            await registry.refresh()
            for apikey in changes:
                if registry.group(tenant, apikey) is not None:
                    raise AlreadyExists(f"a service group with apikey {apikey!r} exists")
            records = registry.preview(tenant, groups=changes)
            await registry.commit(tenant, records, groups=changes)
        return Response(status_code=201)

    async def list_groups(self, request: Request) -> Response:
        registry = self._parts().registry
        groups = registry.groups(_tenant(request))
        apikey = request.query_params.get("apikey")
        if apikey is not None:
            groups = [g for g in groups if g.apikey == apikey]
        return _listing(request, "services", [g.to_json() for g in groups])

    async def update_group(self, request: Request) -> Response:
        parts = self._parts()
        tenant = _tenant(request)
        apikey = _required_param(request, "apikey")
        body, _ = await read_body(request)
        if not isinstance(body, dict):
            raise BadRequestData("the request body must be a JSON object of fields to change")
        if body.get("apikey", apikey) != apikey:
            raise BadRequestData("the apikey of a service group cannot change")
        registry = parts.registry
        async with registry.lock:
            await registry.refresh()
            current = _existing_group(registry, tenant, request, apikey)
            changes: dict[str, ServiceGroup | None] = {
                apikey: parse_group({**current.to_json(), **body})
            }
            records = registry.preview(tenant, groups=changes)
            await registry.commit(tenant, records, groups=changes)
        return Response(status_code=204)

    async def delete_group(self, request: Request) -> Response:
        parts = self._parts()
        tenant = _tenant(request)
        apikey = _required_param(request, "apikey")
        registry = parts.registry
        async with registry.lock:
            await registry.refresh()
            _existing_group(registry, tenant, request, apikey)
            changes: dict[str, ServiceGroup | None] = {apikey: None}
            records = registry.preview(tenant, groups=changes)
            await registry.commit(tenant, records, groups=changes)
        return Response(status_code=204)

    # -- devices -------------------------------------------------------------
    async def create_devices(self, request: Request) -> Response:
        parts = self._parts()
        tenant = _tenant(request)
        body, _ = await read_body(request)
        devices = [parse_device(item) for item in _items(body, "devices")]
        changes: dict[str, Device | None] = {}
        for device in devices:
            if device.device_id in changes:
                raise AlreadyExists(f"device {device.device_id!r} is given twice")
            changes[device.device_id] = device
        registry = parts.registry
        async with registry.lock:
            await registry.refresh()
            for device_id in changes:
                if registry.device(tenant, device_id) is not None:
                    raise AlreadyExists(f"device {device_id!r} exists")
            await self._provision(parts, tenant, changes)
        return Response(status_code=201)

    async def list_devices(self, request: Request) -> Response:
        registry = self._parts().registry
        devices = [d.to_json() for d in registry.devices(_tenant(request))]
        return _listing(request, "devices", devices)

    async def get_device(self, request: Request) -> Response:
        registry = self._parts().registry
        return json_response(_existing_device(registry, request).to_json())

    async def update_device(self, request: Request) -> Response:
        parts = self._parts()
        body, _ = await read_body(request)
        if not isinstance(body, dict):
            raise BadRequestData("the request body must be a JSON object of fields to change")
        device_id = request.path_params["device_id"]
        if body.get("device_id", device_id) != device_id:
            raise BadRequestData("the device_id of a device cannot change")
        registry = parts.registry
        async with registry.lock:
            await registry.refresh()
            current = _existing_device(registry, request)
            device = parse_device({**current.to_json(), **body})
            await self._provision(parts, _tenant(request), {device_id: device})
        return Response(status_code=204)

    async def delete_device(self, request: Request) -> Response:
        parts = self._parts()
        registry = parts.registry
        tenant = _tenant(request)
        async with registry.lock:
            await registry.refresh()
            device = _existing_device(registry, request)
            changes: dict[str, Device | None] = {device.device_id: None}
            records = registry.preview(tenant, devices=changes)
            await registry.commit(tenant, records, devices=changes)
        return Response(status_code=204)

    async def _provision(
        self, parts: Parts, tenant: str, changes: dict[str, Device | None]
    ) -> None:
        """Create or refresh the devices' entities, then store the devices that succeeded."""
        registry = parts.registry
        records = registry.preview(tenant, devices=changes)
        bindings = [records.bindings[device_id] for device_id in changes]
        now = now_iso()
        outcomes = await parts.store.apply(
            tenant, [(b.entity_id, b.provision(now)) for b in bindings]
        )
        errors = {o.id: o.error for o in outcomes if o.error is not None}
        good = {
            device_id: device
            for (device_id, device), binding in zip(changes.items(), bindings, strict=True)
            if binding.entity_id not in errors
        }
        if good:
            records = registry.preview(tenant, devices=good) if errors else records
            await registry.commit(tenant, records, devices=good)
        if errors:
            entity_id, error = next(iter(errors.items()))
            raise type(error)(f"entity {entity_id}: {error.detail}")

    # -- HTTP southbound ----------------------------------------------------
    async def measure_json(self, request: Request) -> Response:
        return await self._measure(request, ul=False)

    async def measure_ul(self, request: Request) -> Response:
        return await self._measure(request, ul=True)

    async def _measure(self, request: Request, *, ul: bool) -> Response:
        parts = self._parts()
        apikey = _required_param(request, "k")
        device_id = _required_param(request, "i")
        stamp = request.query_params.get("t")
        observed_at = require_datetime(stamp, "t") if stamp is not None else None
        payload = await _raw_body(request)
        header = request.headers.get("ngsild-tenant")
        await parts.southbound.handle_http(
            apikey,
            device_id,
            payload,
            ul=ul,
            tenant=_tenant(request) if header is not None else None,
            observed_at=observed_at,
        )
        return Response(status_code=200)


def _tenant(request: Request) -> str:
    tenant = tenant_of(request)
    if not _TENANT.match(tenant):
        raise BadRequestData(f"tenant name {tenant!r} is not allowed")
    return tenant


def _items(body: Any, key: str) -> list[Any]:
    items = list_of(body, key)
    if len(items) > MAX_ITEMS:
        raise BadRequestData(f"at most {MAX_ITEMS} {key} per request")
    return items


def _required_param(request: Request, name: str) -> str:
    value = request.query_params.get(name)
    if not value:
        raise BadRequestData(f"query parameter {name!r} is required")
    return value


def _existing_group(registry: Registry, tenant: str, request: Request, apikey: str) -> ServiceGroup:
    group = registry.group(tenant, apikey)
    resource = request.query_params.get("resource")
    if group is None or (resource is not None and resource != group.resource):
        raise ResourceNotFound(f"no service group with apikey {apikey!r}")
    return group


def _existing_device(registry: Registry, request: Request) -> Device:
    device_id = request.path_params["device_id"]
    device = registry.device(_tenant(request), device_id)
    if device is None:
        raise ResourceNotFound(f"no device {device_id!r}")
    return device


def _listing(request: Request, key: str, items: list[dict[str, Any]]) -> Response:
    limit = _int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    offset = _int_param(request, "offset", 0, 0, 10**9)
    return json_response({"count": len(items), key: items[offset : offset + limit]})


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query_params.get(name)
    if text is None:
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise BadRequestData(f"{name} must be an integer from {low} to {high}")
    return int(text)


async def _raw_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_PAYLOAD:
        raise PayloadTooLarge(f"a device message holds at most {MAX_PAYLOAD} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_PAYLOAD:
            raise PayloadTooLarge(f"a device message holds at most {MAX_PAYLOAD} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
