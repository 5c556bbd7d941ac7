"""The twin's things as NGSI-LD: ids, Device entities, IoT agent provisioning, measurements.

One naming rule for everything the twin puts in the hub:
`urn:ngsi-ld:<Type>:<scenario>:<local id>`. A sensor becomes two entities, as in
the FIWARE Smart Data Models: a `Device` (what it is, where, what it measures) and
its observation entity (`TrafficFlowObserved`, `DeviceMeasurement`, ...) that the
IoT agent updates with each measurement and that points back with `refDevice`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from dosi.twin.kpi import KPI_LABELS
from dosi.twin.model import Actuator, Asset, Reading, Sensor, Value

JsonObject = dict[str, Any]


def urn(entity_type: str, scenario: str, local_id: str) -> str:
    return f"urn:ngsi-ld:{entity_type}:{scenario}:{local_id}"


def observation_id(scenario: str, sensor: Sensor) -> str:
    return urn(sensor.entity_type, scenario, sensor.device_id)


def device_id(scenario: str, sensor: Sensor) -> str:
    return urn("Device", scenario, sensor.device_id)


def actuator_id(scenario: str, actuator: Actuator) -> str:
    return urn(actuator.entity_type, scenario, actuator.actuator_id)


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Clock:
    """Simulated seconds -> timestamps: t = 0 is the scenario's start on the run's date.

    The readings of one tick share a handful of times (their end, and end minus each
    sensor interval), so recent conversions are kept rather than formatted per reading."""

    CACHED = 64

    def __init__(self, epoch: datetime) -> None:
        self.epoch = epoch
        self._recent: dict[float, str] = {}

    def at(self, t: float) -> str:
        text = self._recent.get(t)
        if text is None:
            if len(self._recent) >= self.CACHED:
                self._recent.clear()
            text = self._recent[t] = iso(self.epoch + timedelta(seconds=t))
        return text


def _property(value: Value, observed_at: str | None = None, unit: str | None = None) -> JsonObject:
    attr: JsonObject = {"type": "Property", "value": value}
    if observed_at:
        attr["observedAt"] = observed_at
    if unit:
        attr["unitCode"] = unit
    return attr


def _is_reference(name: str, value: Value) -> bool:
    """`refX: "urn:..."` statics are links to other entities: Relationships, not Properties."""
    return name.startswith("ref") and isinstance(value, str) and value.startswith("urn:")


def _statics(static: Mapping[str, Value]) -> JsonObject:
    return {
        name: {"type": "Relationship", "object": value}
        if _is_reference(name, value)
        else _property(value)
        for name, value in static.items()
    }


def device_entity(scenario: str, sensor: Sensor) -> JsonObject:
    """The Smart Data Models `Device` describing a virtual sensor."""
    return {
        "id": device_id(scenario, sensor),
        "type": "Device",
        "deviceCategory": _property(["sensor"]),
        "controlledProperty": _property(list(sensor.controlled_property)),
        "deviceState": _property("ok"),
        "name": _property(str(sensor.static.get("name", sensor.device_id))),
        "location": {"type": "GeoProperty", "value": sensor.location},
        "refObservation": {"type": "Relationship", "object": observation_id(scenario, sensor)},
    }


def observation_entity(scenario: str, sensor: Sensor) -> JsonObject:
    """The observation entity with its static attributes only (measurements follow)."""
    entity: JsonObject = {
        "id": observation_id(scenario, sensor),
        "type": sensor.entity_type,
        "location": {"type": "GeoProperty", "value": sensor.location},
        "refDevice": {"type": "Relationship", "object": device_id(scenario, sensor)},
    }
    entity.update(_statics(sensor.static))
    return entity


def provisioning(scenario: str, sensor: Sensor) -> JsonObject:
    """The IoT agent device record: object ids are the attribute names, statics carried along."""
    attributes = [
        {"object_id": m.name, "name": m.name, "type": "Property"}
        | ({"unitCode": m.unit_code} if m.unit_code else {})
        for m in sensor.measures
    ]
    attributes += [
        {"object_id": name, "name": name, "type": "DateTime"}
        for name in ("dateObservedFrom", "dateObservedTo")
    ]
    statics = [
        {"name": "location", "type": "GeoProperty", "value": sensor.location},
        {"name": "refDevice", "type": "Relationship", "value": device_id(scenario, sensor)},
    ]
    statics += [
        {"name": k, "type": "Relationship" if _is_reference(k, v) else "Property", "value": v}
        for k, v in sensor.static.items()
    ]
    return {
        "device_id": sensor.device_id,
        "entity_name": observation_id(scenario, sensor),
        "entity_type": sensor.entity_type,
        "explicitAttrs": True,
        "attributes": attributes,
        "static_attributes": statics,
    }


def measurement(reading: Reading, interval: float, clock: Clock) -> JsonObject:
    """The JSON a field device would send for one reading (IoT agent JSON protocol)."""
    body: JsonObject = dict(reading.values)
    end = clock.at(reading.time)
    body["dateObservedFrom"] = clock.at(reading.time - interval)
    body["dateObservedTo"] = end
    body["TimeInstant"] = end
    return body


def observation_update(scenario: str, sensor: Sensor, reading: Reading, clock: Clock) -> JsonObject:
    """The same reading as an NGSI-LD entity fragment (the direct batch mode)."""
    observed = clock.at(reading.time)
    units = {m.name: m.unit_code for m in sensor.measures}
    entity: JsonObject = {"id": observation_id(scenario, sensor), "type": sensor.entity_type}
    for name, value in reading.values.items():
        entity[name] = _property(value, observed, units.get(name))
    for name, stamp in (
        ("dateObservedFrom", clock.at(reading.time - sensor.interval)),
        ("dateObservedTo", observed),
    ):
        entity[name] = _property({"@type": "DateTime", "@value": stamp}, observed)
    return entity


def actuator_entity(
    scenario: str, actuator: Actuator, state: Mapping[str, Value], observed_at: str
) -> JsonObject:
    """An actuator with its applied state; its command attributes start at that state so
    that services update (PATCH) existing attributes."""
    entity: JsonObject = {
        "id": actuator_id(scenario, actuator),
        "type": actuator.entity_type,
        "location": {"type": "GeoProperty", "value": actuator.location},
    }
    entity.update(_statics(actuator.static))
    entity.update(state_attrs(state, observed_at))
    for command in actuator.commands:
        entity[command] = _property(initial_command(command, state))
    return entity


def initial_command(command: str, state: Mapping[str, Value]) -> Value:
    """A command attribute's first value: the state it commands (commandedX -> x), else ''."""
    target = command.removeprefix("commanded")
    key = target[:1].lower() + target[1:]
    return state.get(key, "")


def state_attrs(state: Mapping[str, Value], observed_at: str) -> JsonObject:
    return {name: _property(value, observed_at) for name, value in state.items()}


def asset_entity(scenario: str, asset: Asset) -> JsonObject:
    entity: JsonObject = {
        "id": urn(asset.entity_type, scenario, asset.asset_id),
        "type": asset.entity_type,
        "location": {"type": "GeoProperty", "value": asset.location},
    }
    entity.update(_statics(asset.static))
    return entity


# The KPI labels' units as UN/CEFACT codes (unitCode); per-unit figures ("pu") have none.
KPI_UNIT_CODES = {"s": "SEC", "kg": "KGM", "m": "MTR", "m³": "MTQ", "%": "P1", "MWh": "MWH",
                  "km/h": "KMH"}  # fmt: skip


def kpi_id(scenario: str, key: str) -> str:
    return urn("KeyPerformanceIndicator", scenario, key)


def kpi_entity(
    scenario: str, key: str, value: float, since: str, observed_at: str, *, full: bool
) -> JsonObject:
    """A Smart Data Models `KeyPerformanceIndicator` holding a run's running value of one KPI.

    `full` adds the descriptive attributes (sent once; later updates carry only the value
    and the period, so the history holds what changes)."""
    kpi = KPI_LABELS.get(key)
    entity: JsonObject = {
        "id": kpi_id(scenario, key),
        "type": "KeyPerformanceIndicator",
        "kpiValue": _property(value, observed_at, KPI_UNIT_CODES.get(kpi.unit) if kpi else None),
        "calculationPeriod": _property({"from": since, "to": observed_at}),
    }
    if full:
        entity["name"] = _property(kpi.en if kpi else key)
        entity["alternateName"] = _property(kpi.ko if kpi else key)
        entity["description"] = _property(
            f"{scenario} digital twin: {kpi.en if kpi else key}, since the start of the run"
        )
        entity["category"] = _property(["quantitative"])
        entity["calculationMethod"] = _property("automatic")
        entity["areaServed"] = _property(scenario)
    return entity


def chunks(items: Iterable[JsonObject], size: int) -> Iterable[list[JsonObject]]:
    batch: list[JsonObject] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
