"""Reading the hub's detector and signal entities (NGSI-LD normalized form) for the brain.

Times are simulated ones: each reading's `observedAt` (the end of its interval) and each
state's `observedAt` (when the signal showed it), as POSIX seconds. Entities the brain
cannot use (no lane, a value of the wrong type) are skipped, never trusted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

LOOP_TYPE = "TrafficFlowObserved"
SIGNAL_TYPE = "TrafficSignal"
LOOP_ATTRS = ("intensity", "occupancy", "dateObservedFrom", "sumoLane", "refTrafficSignal")
SIGNAL_ATTRS = ("phase", "held", "program")
DEFAULT_INTERVAL = 60.0


def value(entity: dict[str, Any], name: str) -> Any:
    """An attribute's value (Property `value`, Relationship `object`), or None."""
    attr = entity.get(name)
    if isinstance(attr, list):  # several datasetIds: the default instance, else the first
        attr = next((a for a in attr if isinstance(a, dict) and "datasetId" not in a), None)
    if not isinstance(attr, dict):
        return attr  # keyValues form, or absent
    if "object" in attr:
        return attr["object"]
    inner = attr.get("value")
    if isinstance(inner, dict) and "@value" in inner:  # {"@type": "DateTime", "@value": ...}
        return inner["@value"]
    return inner


def timestamp(text: Any) -> float | None:
    """ISO 8601 date-time -> POSIX seconds (None when it is not one)."""
    if not isinstance(text, str) or len(text) > 40:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return round(moment.timestamp(), 3) if moment.tzinfo is not None else None


def observed_at(entity: dict[str, Any], name: str) -> float | None:
    attr = entity.get(name)
    return timestamp(attr.get("observedAt")) if isinstance(attr, dict) else None


def number(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
        return None
    return float(x)


@dataclass(frozen=True)
class LoopReading:
    entity_id: str
    lane: str
    signal: str
    at: float  # end of the interval
    interval: float | None  # None: not stated
    intensity: float
    occupancy: float


@dataclass(frozen=True)
class SignalState:
    entity_id: str
    phase: int
    held: bool
    at: float


def loop_lane(entity: dict[str, Any]) -> tuple[str, str] | None:
    """(lane, signal id) a loop entity measures, from its static attributes."""
    lane, signal = value(entity, "sumoLane"), value(entity, "refTrafficSignal")
    if isinstance(lane, str) and isinstance(signal, str) and lane and signal:
        return lane, signal
    return None


def loop_reading(entity: dict[str, Any], lane: str, signal: str) -> LoopReading | None:
    intensity = number(value(entity, "intensity"))
    occupancy = number(value(entity, "occupancy"))
    at = observed_at(entity, "intensity")
    if intensity is None or occupancy is None or at is None or intensity < 0:
        return None
    start = timestamp(value(entity, "dateObservedFrom"))
    interval = at - start if start is not None and 0 < at - start <= 3600 else None
    return LoopReading(str(entity["id"]), lane, signal, at, interval, intensity, occupancy)


def signal_state(entity: dict[str, Any]) -> SignalState | None:
    phase, held = value(entity, "phase"), value(entity, "held")
    at = observed_at(entity, "phase")
    if isinstance(phase, bool) or not isinstance(phase, int) or at is None:
        return None
    return SignalState(str(entity["id"]), phase, held is True, at)
