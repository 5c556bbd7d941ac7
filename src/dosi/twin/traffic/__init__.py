"""The traffic domain of the twin: Eclipse SUMO (libsumo) on the eco-delta road grid.

Induction loops report TrafficFlowObserved, emission cells AirQualityObserved, the
16 traffic lights obey TrafficSignal commands. libsumo (a quarter second to import)
is only loaded when a simulation is opened, so reading a scenario stays quick.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dosi.twin.model import SimContext
from dosi.twin.traffic.closures import list_closable_edges
from dosi.twin.traffic.config import TrafficConfig

if TYPE_CHECKING:
    from dosi.twin.traffic.simulator import TrafficSimulator


def open_traffic(config: TrafficConfig, ctx: SimContext) -> TrafficSimulator:
    """Start SUMO for this scenario (one traffic simulation per process at a time)."""
    from dosi.twin.traffic.simulator import TrafficSimulator

    return TrafficSimulator(config, ctx)


__all__ = ["TrafficConfig", "list_closable_edges", "open_traffic"]
