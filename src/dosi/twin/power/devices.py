"""The grid's virtual meters, actuators and map assets, placed on the district.

Entity types follow Smart Data Models where one fits: every power meter (bus, line
and EV station) is a `ThreePhaseAcMeasurement`, a PV unit is `SolarEnergy`.
EV stations are metered as `ThreePhaseAcMeasurement` rather than `DeviceMeasurement`
so all grid power readings share one schema, units and unit codes (W per phase).
Ids: sensors `power.meter.bus<N>`, `power.meter.line<N>`, `power.pv.<N>`,
`power.ev.<station>`; actuators `power.storage.<N>`, `power.switch.<N>`; assets
`power.line.<N>`, `power.substation.<N>`, `power.trafo.<N>` (N: pandapower's row).
"""

from __future__ import annotations

from dosi.twin.geo import Placement
from dosi.twin.model import Actuator, Asset, Measure, Sensor
from dosi.twin.power.config import PowerConfig
from dosi.twin.power.grid import Grid, along, near

WATT, VOLT, AMPERE, HERTZ, PERCENT, ONE = "WTT", "VLT", "AMP", "HTZ", "P1", "C62"
KILOWATT, KILOWATT_HOUR = "KWT", "KWH"
VAR = None  # UN/CEFACT has kvar (KVR) but no plain var; the schema asks for VAr
FREQUENCY = 60.0  # Hz, the Korean grid

BUS_MEASURES = (
    Measure("phaseVoltage", VOLT),
    Measure("voltagePu", ONE),
    Measure("activePower", WATT),
    Measure("reactivePower", VAR),
    Measure("totalActivePower", WATT),
    Measure("totalReactivePower", VAR),
    Measure("frequency", HERTZ),
)
LINE_MEASURES = (
    Measure("current", AMPERE),
    Measure("loadingPercentage", PERCENT),
    Measure("totalActivePower", WATT),
    Measure("totalReactivePower", VAR),
)
PV_MEASURES = (
    Measure("totalActivePower", KILOWATT),
    Measure("totalEnergyGenerated", KILOWATT_HOUR),
)
EV_MEASURES = (Measure("activePower", WATT), Measure("totalActivePower", WATT))
PV_SLOT, EV_SLOT, STORAGE_SLOT = 0, 1, 3  # compass slots around a bus (see grid.near)


def bus_sensor_id(bus: int) -> str:
    return f"power.meter.bus{bus}"


def line_sensor_id(line: int) -> str:
    return f"power.meter.line{line}"


def pv_sensor_id(row: int) -> str:
    return f"power.pv.{row}"


def ev_sensor_id(name: str) -> str:
    return f"power.ev.{name}"


def storage_id(row: int) -> str:
    return f"power.storage.{row}"


def switch_id(row: int) -> str:
    return f"power.switch.{row}"


def build_sensors(grid: Grid, config: PowerConfig, place: Placement) -> list[Sensor]:
    net, xy, every = grid.net, grid.xy, config.intervals
    sensors = [
        Sensor(
            device_id=bus_sensor_id(int(b)),
            entity_type="ThreePhaseAcMeasurement",
            location=place.point(*xy[int(b)]),
            interval=every.bus,
            measures=BUS_MEASURES,
            controlled_property=("voltage", "power"),
            static={"name": str(net.bus.at[b, "name"]), "nominalVoltage": float(net.bus.vn_kv[b])},
        )
        for b in grid.buses
    ]
    for row in grid.lines:
        line = net.line.loc[row]
        ends = xy[int(line.from_bus)], xy[int(line.to_bus)]
        sensors.append(
            Sensor(
                device_id=line_sensor_id(int(row)),
                entity_type="ThreePhaseAcMeasurement",
                location=place.point(*along(*ends, 0.5)),
                interval=every.line,
                measures=LINE_MEASURES,
                controlled_property=("electricCurrent", "power"),
                static={
                    "name": str(line["name"]),
                    "maxCurrent": round(float(line.max_i_ka) * 1000, 1),
                },
            )
        )
    for row, peak in zip(grid.pv, grid.pv_peak, strict=True):
        sgen = net.sgen.iloc[row]
        sensors.append(
            Sensor(
                device_id=pv_sensor_id(int(row)),
                entity_type="SolarEnergy",
                location=place.point(*near(xy[int(sgen.bus)], PV_SLOT)),
                interval=every.pv,
                measures=PV_MEASURES,
                controlled_property=("solarRadiation", "power", "energy"),
                static={
                    "name": str(sgen["name"]),
                    "maxSolarPowerMeasure": round(float(peak) * 1000, 1),
                },
            )
        )
    for k, station in enumerate(config.ev.stations):
        sensors.append(
            Sensor(
                device_id=ev_sensor_id(station.name),
                entity_type="ThreePhaseAcMeasurement",
                location=place.point(*near(xy[station.bus], EV_SLOT + k % 2)),
                interval=every.ev,
                measures=EV_MEASURES,
                controlled_property=("power", "electricityConsumption"),
                static={
                    "name": f"EV charging {station.name}",
                    "chargers": station.count,
                    "maxPowerPerCharger": station.max_power_kw,
                },
            )
        )
    return sensors


def build_actuators(grid: Grid, place: Placement) -> list[Actuator]:
    net, xy = grid.net, grid.xy
    actuators = []
    for row, capacity in zip(grid.storage, grid.storage_capacity, strict=True):
        unit = net.storage.iloc[row]
        actuators.append(
            Actuator(
                actuator_id=storage_id(int(row)),
                entity_type="EnergyStorage",
                location=place.point(*near(xy[int(unit.bus)], STORAGE_SLOT)),
                commands=("commandedActivePower",),
                static={
                    "name": str(unit["name"]),
                    "ratedPower": round(float(unit.max_p_mw) * 1000, 1),  # kW
                    "capacity": round(float(capacity) * 1000, 1),  # kWh
                    "description": "commandedActivePower in kW: + discharges, - charges",
                },
            )
        )
    for row in grid.switches:
        switch = net.switch.iloc[row]
        line = net.line.loc[int(switch.element)]
        bus = int(switch.bus)
        other = int(line.to_bus) if int(line.from_bus) == bus else int(line.from_bus)
        name = switch["name"] if isinstance(switch["name"], str) else f"{line['name']} @ {bus}"
        actuators.append(
            Actuator(
                actuator_id=switch_id(int(row)),
                entity_type="Switch",
                location=place.point(*along(xy[bus], xy[other], 0.15)),
                commands=("commandedState",),
                static={
                    "name": name,
                    "line": str(line["name"]),
                    "normallyOpen": not bool(switch.closed),
                },
            )
        )
    return actuators


def build_assets(grid: Grid, place: Placement) -> list[Asset]:
    net, xy = grid.net, grid.xy
    assets = []
    for row in grid.lines:
        line = net.line.loc[row]
        a, b = int(line.from_bus), int(line.to_bus)
        assets.append(
            Asset(
                asset_id=f"power.line.{int(row)}",
                entity_type="PowerLine",
                location=place.line([xy[a], xy[b]]),
                static={
                    "name": str(line["name"]),
                    "length": round(float(line.length_km) * 1000, 1),  # m, electrical
                    "maxCurrent": round(float(line.max_i_ka) * 1000, 1),  # A
                    "nominalVoltage": float(net.bus.vn_kv[a]),  # kV
                },
            )
        )
    primary = set(net.trafo.hv_bus.astype(int)) | set(net.trafo.lv_bus.astype(int))
    for b in grid.buses:
        assets.append(
            Asset(
                asset_id=f"power.substation.{int(b)}",
                entity_type="Substation",
                location=place.point(*xy[int(b)]),
                static={
                    "name": str(net.bus.at[b, "name"]),
                    "nominalVoltage": float(net.bus.vn_kv[b]),
                    "category": "primary" if int(b) in primary else "secondary",
                },
            )
        )
    for row in range(len(net.trafo)):
        trafo = net.trafo.iloc[row]
        assets.append(
            Asset(
                asset_id=f"power.trafo.{row}",
                entity_type="PowerTransformer",
                location=place.point(*along(xy[int(trafo.hv_bus)], xy[int(trafo.lv_bus)], 0.25)),
                static={
                    "name": str(trafo["name"]),
                    "ratedPower": float(trafo.sn_mva) * 1000,  # kVA
                    "primaryVoltage": float(trafo.vn_hv_kv),
                    "secondaryVoltage": float(trafo.vn_lv_kv),
                },
            )
        )
    return assets
