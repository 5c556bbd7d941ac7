"""The network's actuators: pressure valves and pumps, commanded through the hub.

Commands go into EPANET at once (ENsetlinkvalue), so `state()`, read back from EPANET,
shows them immediately; the simulator re-solves the hydraulics at the current second
before its next step, so they act from that moment.

- Valve (PRV, PSV, PBV): `commandedSetting` (m, > 0) and `commandedStatus` ("active":
  regulate to the setting, "open": fixed fully open, "closed"). A setting sent while the
  valve is fixed open or closed is kept for when it is made active again.
- Pump: `commandedStatus` ("on"/"off") and `commandedSpeed` (relative speed, 0 < s <= 2).
  A speed sent while the pump is off is kept for when it is switched on. The network's
  own controls still act: L-Town switches PUMP_1 by tank T1's level and restarts it at
  speed 1, and `state()` then shows what EPANET actually does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from dosi.twin.geo import Placement
from dosi.twin.model import Actuator, CommandRejected, Value
from dosi.twin.water.network import Network
from dosi.twin.water.toolkit import SETTING, STATUS, Toolkit

PRESSURE_VALVES = ("PRV", "PSV", "PBV")  # settings in metres
MAX_VALVE_SETTING = 200.0  # m
MAX_PUMP_SPEED = 2.0
VALVE_COMMANDS = ("commandedSetting", "commandedStatus")
PUMP_COMMANDS = ("commandedStatus", "commandedSpeed")


@dataclass
class _Link:
    actuator: Actuator
    link: str
    pump: bool
    index: int = 0
    remembered: float = 0.0  # valve setting (m) or pump speed kept while fixed/off
    last_state: dict[str, Value] = field(default_factory=dict)  # what state() said last


def _number(command: str, value: Any, low: float, high: float, unit: str) -> float:
    """A finite number in (low, high]; numeric strings are accepted as well."""
    try:
        number = float(value) if isinstance(value, (int, float, str)) else math.nan
    except ValueError:
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number):
        raise CommandRejected(f"{command} takes a number ({unit}), got {value!r}")
    if not low < number <= high:
        raise CommandRejected(f"{command} must be > {low:g} and <= {high:g} {unit}, got {number:g}")
    return number


def _word(command: str, value: Any, allowed: tuple[str, ...]) -> str:
    word = value.strip().lower() if isinstance(value, str) else None
    if word not in allowed:
        raise CommandRejected(f"{command} must be one of {', '.join(allowed)}, got {value!r}")
    return word


class Controls:
    """The actuators of one network and the EPANET calls behind their commands."""

    def __init__(self, net: Network, placement: Placement) -> None:
        self._links: dict[str, _Link] = {}
        wn = net.wn
        for name in wn.valve_name_list:
            valve = wn.get_link(name)
            if valve.valve_type not in PRESSURE_VALVES:
                continue  # flow and throttle valves have no setting in metres: not actuated
            self._add(
                net,
                placement,
                name,
                "Valve",
                VALVE_COMMANDS,
                valveType=valve.valve_type,
                diameter=round(float(valve.diameter), 4),
            )
        for name in wn.pump_name_list:
            self._add(net, placement, name, "Pump", PUMP_COMMANDS)

    def _add(
        self,
        net: Network,
        placement: Placement,
        name: str,
        kind: str,
        commands: tuple[str, ...],
        **extra: Value,
    ) -> None:
        link = net.wn.get_link(name)
        actuator = Actuator(
            actuator_id=net.ids(f"water-{kind.lower()}", name),
            entity_type=kind,
            location=placement.point(*net.link_midpoint(name)),
            commands=commands,
            static={
                "name": name,
                "startNode": link.start_node_name,
                "endNode": link.end_node_name,
                **extra,
            },
        )
        self._links[actuator.actuator_id] = _Link(actuator, name, kind == "Pump")

    @property
    def actuators(self) -> list[Actuator]:
        return [link.actuator for link in self._links.values()]

    def bind(self, toolkit: Toolkit) -> None:
        """Look up the links in the open EPANET project and note their initial settings."""
        for link in self._links.values():
            link.index = toolkit.link_index(link.link)
            setting = toolkit.link(link.index, SETTING)
            link.remembered = setting if setting > 0 else (1.0 if link.pump else 0.0)

    def _get(self, actuator_id: str) -> _Link:
        link = self._links.get(actuator_id)
        if link is None:
            raise KeyError(actuator_id)
        return link

    def apply(self, toolkit: Toolkit, actuator_id: str, command: str, value: Any) -> None:
        """Validate and hand one command to EPANET (raises CommandRejected / KeyError)."""
        link = self._get(actuator_id)
        if command not in link.actuator.commands:
            raise KeyError(command)
        if link.pump:
            self._pump(toolkit, link, command, value)
        else:
            self._valve(toolkit, link, command, value)

    def _valve(self, toolkit: Toolkit, link: _Link, command: str, value: Any) -> None:
        active = toolkit.link(link.index, SETTING) > 0  # fixed open/closed reads back 0
        if command == "commandedSetting":
            link.remembered = _number(command, value, 0.0, MAX_VALVE_SETTING, "m")
            if active:
                toolkit.set_link(link.index, SETTING, link.remembered)
            return
        status = _word(command, value, ("active", "open", "closed"))
        if status == "active":
            if link.remembered <= 0:
                raise CommandRejected(f"{link.link} has no setting yet: send commandedSetting")
            toolkit.set_link(link.index, SETTING, link.remembered)
        else:
            toolkit.set_link(link.index, STATUS, 1.0 if status == "open" else 0.0)

    def _pump(self, toolkit: Toolkit, link: _Link, command: str, value: Any) -> None:
        running = toolkit.link(link.index, STATUS) > 0
        if command == "commandedSpeed":
            link.remembered = _number(command, value, 0.0, MAX_PUMP_SPEED, "relative speed")
            if running:
                toolkit.set_link(link.index, SETTING, link.remembered)
            return
        if _word(command, value, ("on", "off")) == "on":
            toolkit.set_link(link.index, STATUS, 1.0)  # EPANET restarts a pump at speed 1
            toolkit.set_link(link.index, SETTING, link.remembered)
        else:
            toolkit.set_link(link.index, STATUS, 0.0)

    def state(self, toolkit: Toolkit | None, actuator_id: str) -> dict[str, Value]:
        """Setting and status as EPANET has them (the last known state once closed)."""
        link = self._get(actuator_id)
        if toolkit is None:
            return dict(link.last_state)
        setting = toolkit.link(link.index, SETTING)
        status = toolkit.link(link.index, STATUS) > 0
        state: dict[str, Value]
        if link.pump:
            if status and setting > 0:
                link.remembered = setting  # a control may have restarted it at speed 1
            state = {"status": "on" if status else "off", "speed": round(link.remembered, 3)}
        elif setting > 0:
            link.remembered = setting
            state = {"status": "active", "setting": round(setting, 3)}
        else:
            state = {"status": "open" if status else "closed", "setting": round(link.remembered, 3)}
        link.last_state = state
        return state
