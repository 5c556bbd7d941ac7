"""RESCO's per-run metrics: delay, trip time, waiting time (tripinfo) and queue length.

Trip metrics average SUMO's tripinfo records of the vehicles that arrived; queue length
is the mean, over sampled steps, of halting vehicles per controlled incoming lane and per
signalised intersection.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunMetrics:
    delay: float  # mean timeLoss, s
    trip_time: float  # mean duration, s
    waiting_time: float  # mean waitingTime, s
    queue_per_lane: float  # mean halting vehicles per controlled incoming lane
    queue_per_intersection: float  # mean halting vehicles per signal
    arrived: int
    teleports: int
    simulated_s: float
    wall_s: float

    @property
    def speed(self) -> float:
        """Simulated seconds per wall-clock second."""
        return self.simulated_s / self.wall_s if self.wall_s > 0 else float("inf")

    def as_dict(self) -> dict[str, float]:
        return {**{k: float(v) for k, v in asdict(self).items()}, "speed": self.speed}


class QueueSampler:
    """Accumulates halting counts sampled during the run."""

    def __init__(self, lanes: int, intersections: int) -> None:
        self.lanes, self.intersections = max(lanes, 1), max(intersections, 1)
        self.total, self.samples = 0.0, 0

    def add(self, halting: float) -> None:
        self.total += halting
        self.samples += 1

    def per_lane(self) -> float:
        return self.total / self.samples / self.lanes if self.samples else 0.0

    def per_intersection(self) -> float:
        return self.total / self.samples / self.intersections if self.samples else 0.0


def trip_means(tripinfo: Path) -> tuple[float, float, float, int]:
    """(mean timeLoss, mean duration, mean waitingTime, count) over the file's trips."""
    loss = duration = waiting = 0.0
    count = 0
    for _, el in ET.iterparse(tripinfo, events=("end",)):
        if el.tag == "tripinfo":
            loss += float(el.get("timeLoss", 0))
            duration += float(el.get("duration", 0))
            waiting += float(el.get("waitingTime", 0))
            count += 1
            el.clear()
    if count == 0:
        return 0.0, 0.0, 0.0, 0
    return loss / count, duration / count, waiting / count, count
