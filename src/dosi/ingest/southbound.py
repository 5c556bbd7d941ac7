"""Device messages -> entity updates: topic/query, apikey and device checks, payload parsing.

MQTT and HTTP share this path. A message is resolved to its device binding,
parsed completely, and only then handed to the batcher, so a malformed
message writes nothing. Rejections are counted by reason in /metrics and
logged as one JSON line each (at most `LOG_PER_S` a second, then a summary).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from dosi.hub.metrics import Metrics
from dosi.hub.store.base import Outcome
from dosi.ingest.batcher import Batcher
from dosi.ingest.mapping import OK, Attrs, Binding
from dosi.ingest.registry import Registry
from dosi.ingest.ultralight import TIME_KEYS, parse_command_result, parse_measures
from dosi.ngsi.errors import BadRequestData, NgsiError, ResourceNotFound
from dosi.ngsi.values import now_iso, require_datetime

log = logging.getLogger("dosi.ingest")
MAX_PAYLOAD = 256 * 1024
MAX_JSON_MEASURES = 100
LOG_PER_S = 10
# Why a message was rejected: the label values of dosi_ingest_rejected_total.
UNKNOWN_APIKEY = "unknown_apikey"
UNKNOWN_DEVICE = "unknown_device"
BAD_APIKEY = "bad_apikey"
MALFORMED = "malformed"
UNKNOWN_COMMAND = "unknown_command"
BAD_TOPIC = "bad_topic"

# (topic, payload, arrival time as epoch seconds) as the MQTT thread hands it over.
Message = tuple[str, bytes, float]


class Rejected(Exception):
    def __init__(self, reason: str, error: NgsiError) -> None:
        super().__init__(error.detail)
        self.reason = reason
        self.error = error


@dataclass(frozen=True)
class Topic:
    apikey: str
    device_id: str
    kind: str  # "attrs" or "cmdexe"
    fmt: str | None  # "ul", "json", or None: the device's protocol decides
    attribute: str | None = None  # /<apikey>/<device>/attrs/<object_id>: a bare value


def parse_topic(topic: str) -> Topic | None:
    """`[/ul|/json]/<apikey>/<device>/attrs[/<object_id>]` or `.../cmdexe`; None otherwise."""
    parts = topic.split("/")
    if len(parts) < 4 or parts[0]:
        return None
    parts = parts[1:]
    fmt = None
    if parts[0] in ("ul", "json") and len(parts) >= 4:
        fmt, parts = parts[0], parts[1:]
    attribute = None
    if len(parts) == 4 and parts[2] == "attrs" and parts[3]:
        attribute = parts[3]
        parts = parts[:3]
    if len(parts) != 3 or parts[2] not in ("attrs", "cmdexe") or not parts[0] or not parts[1]:
        return None
    return Topic(parts[0], parts[1], parts[2], fmt, attribute)


class Southbound:
    def __init__(self, registry: Registry, batcher: Batcher, metrics: Metrics) -> None:
        self.registry = registry
        self.batcher = batcher
        self.metrics = metrics
        self._log_window = 0.0
        self._logged = 0
        self._suppressed = 0

    # -- MQTT ------------------------------------------------------------
    def handle_mqtt(self, messages: Iterable[Message], *, final: bool) -> list[Message]:
        """Apply what can be; return the messages from unknown devices or apikeys, unless
        `final` (then they are rejected): the caller refreshes the registry and retries."""
        now = now_iso()
        retry: list[Message] = []
        received = 0
        for message in messages:
            topic_text, payload, arrival = message
            if not final:
                received += 1
            try:
                topic = parse_topic(topic_text)
                if topic is None:
                    raise Rejected(BAD_TOPIC, BadRequestData(f"topic {topic_text!r} is not known"))
                binding = self._resolve(topic.apikey, topic.device_id, None)
                ul = topic.fmt == "ul" or (topic.fmt is None and binding.ultralight)
                if topic.kind == "attrs":
                    self._measure(binding, payload, ul, topic.attribute, arrival, now)
                else:
                    self._reply(binding, payload, ul, now)
            except Rejected as rejected:
                if not final and rejected.reason in (UNKNOWN_APIKEY, UNKNOWN_DEVICE):
                    retry.append(message)
                else:
                    self.reject(rejected, transport="mqtt", topic=topic_text[:200])
        self.metrics.ingest_received["mqtt"] += received
        return retry

    # -- HTTP ------------------------------------------------------------
    async def handle_http(
        self,
        apikey: str,
        device_id: str,
        payload: bytes,
        *,
        ul: bool,
        tenant: str | None,
        observed_at: str | None,
    ) -> int:
        """Apply one HTTP measurement and wait for its commit; raises the ProblemDetails."""
        self.metrics.ingest_received["http"] += 1
        try:
            try:
                binding = self._resolve(apikey, device_id, tenant)
            except Rejected as rejected:
                if rejected.reason not in (UNKNOWN_APIKEY, UNKNOWN_DEVICE):
                    raise
                await self.registry.refresh_on_miss()
                binding = self._resolve(apikey, device_id, tenant)
            now = now_iso()
            arrival = observed_at or _iso(time.time())
            measurements = self._parse(binding, payload, ul, None, arrival, now)
        except Rejected as rejected:
            self.reject(rejected, transport="http", device_id=device_id[:200])
            raise rejected.error from None
        while self.batcher.full:  # backpressure: HTTP devices wait, nothing piles up
            await self.batcher.room.wait()
        loop = asyncio.get_running_loop()
        waiters: list[asyncio.Future[Outcome]] = []
        for attrs in measurements:
            waiter: asyncio.Future[Outcome] = loop.create_future()
            self.batcher.add(
                binding.tenant, binding.entity_id, binding.upsert(attrs, now), waiter=waiter
            )
            waiters.append(waiter)
        for outcome in await asyncio.gather(*waiters):
            if outcome.error is not None:
                raise outcome.error
        return len(measurements)

    # -- shared ------------------------------------------------------------
    def _resolve(self, apikey: str, device_id: str, tenant: str | None) -> Binding:
        owner = self.registry.tenant_of_apikey(apikey)
        if owner is None or (tenant is not None and owner != tenant):
            raise Rejected(UNKNOWN_APIKEY, ResourceNotFound(f"no service for apikey {apikey!r}"))
        binding = self.registry.binding(owner, device_id)
        if binding is None:
            raise Rejected(UNKNOWN_DEVICE, ResourceNotFound(f"no device {device_id!r}"))
        if binding.apikey != apikey:
            # Same answer as an unknown device: an apikey does not reveal other devices.
            raise Rejected(BAD_APIKEY, ResourceNotFound(f"no device {device_id!r}"))
        return binding

    def _measure(
        self,
        binding: Binding,
        payload: bytes,
        ul: bool,
        attribute: str | None,
        arrival: float,
        now: str,
    ) -> None:
        measurements = self._parse(binding, payload, ul, attribute, _iso(arrival), now)
        for attrs in measurements:
            self.batcher.add(binding.tenant, binding.entity_id, binding.upsert(attrs, now))

    def _parse(
        self,
        binding: Binding,
        payload: bytes,
        ul: bool,
        attribute: str | None,
        arrival: str,
        now: str,
    ) -> list[Attrs]:
        """Every measurement of a payload, or Rejected: nothing is written from a bad one."""
        try:
            if len(payload) > MAX_PAYLOAD:
                raise BadRequestData(f"a device message holds at most {MAX_PAYLOAD} bytes")
            text = payload.decode()
            if attribute is not None:
                return [
                    binding.measurement(
                        [(attribute, text)], text=True, observed_at=arrival, now=now
                    )
                ]
            if ul:
                return [
                    binding.measurement(
                        m.pairs, text=True, observed_at=m.observed_at or arrival, now=now
                    )
                    for m in parse_measures(text)
                ]
            return [
                binding.measurement(values, text=False, observed_at=observed, now=now)
                for values, observed in _json_measures(payload, arrival)
            ]
        except UnicodeDecodeError:
            raise Rejected(MALFORMED, BadRequestData("a device message must be UTF-8")) from None
        except BadRequestData as exc:
            raise Rejected(MALFORMED, exc) from None

    def _reply(self, binding: Binding, payload: bytes, ul: bool, now: str) -> None:
        """A command result from the device: `<command>_status` OK, `<command>_info` the result."""
        try:
            if len(payload) > MAX_PAYLOAD:
                raise BadRequestData(f"a device message holds at most {MAX_PAYLOAD} bytes")
            if ul:
                device_id, name, result = parse_command_result(payload.decode())
                if device_id != binding.device_id:
                    raise BadRequestData(f"result of device {device_id!r} on another's topic")
                results: dict[str, Any] = {name: result}
            else:
                results = _json_object(payload)
        except (BadRequestData, UnicodeDecodeError) as exc:
            detail = exc.detail if isinstance(exc, BadRequestData) else "not UTF-8"
            raise Rejected(MALFORMED, BadRequestData(detail)) from None
        for name in results:
            if name not in binding.commands:
                raise Rejected(UNKNOWN_COMMAND, BadRequestData(f"no command {name!r}"))
        for name, result in results.items():
            command = binding.commands[name]
            self.batcher.add(
                binding.tenant,
                binding.entity_id,
                binding.command_status(command, OK, result, now),
                measurement=False,
            )
            self.metrics.ingest_commands["ok"] += 1

    def reject(self, rejected: Rejected, **fields: Any) -> None:
        self.metrics.ingest_rejected[rejected.reason] += 1
        moment = time.monotonic()
        if moment - self._log_window >= 1.0:
            if self._suppressed:
                log.warning(
                    "device messages rejected, not logged", extra={"count": self._suppressed}
                )
            self._log_window, self._logged, self._suppressed = moment, 0, 0
        if self._logged < LOG_PER_S:
            self._logged += 1
            log.warning(
                "device message rejected",
                extra={"reason": rejected.reason, "detail": rejected.error.detail, **fields},
            )
        else:
            self._suppressed += 1


def _json_object(payload: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise BadRequestData("the payload is not JSON") from None
    if not isinstance(data, dict):
        raise BadRequestData("the payload must be a JSON object")
    return data


def _json_measures(payload: bytes, arrival: str) -> list[tuple[list[tuple[str, Any]], str]]:
    """`{"t": 15, "TimeInstant": "..."}` or an array of such objects (several measurements)."""
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise BadRequestData("the payload is not JSON") from None
    items = data if isinstance(data, list) else [data]
    if not items or len(items) > MAX_JSON_MEASURES:
        raise BadRequestData(f"a payload holds 1 to {MAX_JSON_MEASURES} measurements")
    out: list[tuple[list[tuple[str, Any]], str]] = []
    for item in items:
        if not isinstance(item, dict):
            raise BadRequestData("a JSON measurement must be an object of object_id: value")
        observed = arrival
        values: list[tuple[str, Any]] = []
        for key, value in item.items():
            if key in TIME_KEYS:
                observed = require_datetime(value, key)
            elif value is None:
                raise BadRequestData(f"{key}: a measured value must not be null")
            else:
                values.append((key, value))
        out.append((values, observed))
    return out


_LAST_ISO: tuple[int, str] = (0, "")


def _iso(epoch: float) -> str:
    """Arrival time as observedAt, to the millisecond (cached: messages arrive in bursts)."""
    global _LAST_ISO
    ms = int(epoch * 1000)
    if _LAST_ISO[0] == ms:
        return _LAST_ISO[1]
    text = datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    _LAST_ISO = (ms, text)
    return text
