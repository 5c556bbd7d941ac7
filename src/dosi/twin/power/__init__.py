"""The power domain of the twin: the CIGRE MV grid on pandapower with PV, EVs and storage."""

from dosi.twin.power.config import PowerConfig
from dosi.twin.power.simulator import PowerSimulator, open_power

__all__ = ["PowerConfig", "PowerSimulator", "open_power"]
