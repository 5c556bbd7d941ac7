"""The twin's water network: EPANET (through WNTR) with SCADA sensors, AMR meters, valves, a pump.

`open_water(WaterConfig(), ctx)` loads L-Town (BattLeDIM 2020) for eco-delta; see
simulator.py for how the hydraulics are stepped and sensors.py for what is reported.
WNTR and numpy are only loaded when a simulation is opened, so reading a scenario
stays quick.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dosi.twin.model import SimContext
from dosi.twin.water.config import WaterConfig

if TYPE_CHECKING:
    from dosi.twin.water.simulator import WaterSimulator


def open_water(config: WaterConfig, ctx: SimContext) -> WaterSimulator:
    """The scenario's water network, loaded, prepared and solved at t = 0."""
    from dosi.twin.water.simulator import WaterSimulator

    return WaterSimulator(config, ctx)


__all__ = ["WaterConfig", "open_water"]
