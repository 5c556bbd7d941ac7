"""Lane readings for controllers and metrics, through libsumo lane subscriptions.

One subscription per lane (vehicle count, halting count, vehicle ids) makes a step's
readings one batched call; vehicle positions, for the near-stop-line count, are only
asked at decision steps.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from dosi.brain.signals.controller import Observation, SignalDriver
from dosi.brain.signals.phases import PhaseSet

VEHICLES = 0x10  # libsumo.constants.LAST_STEP_VEHICLE_NUMBER
VEHICLE_IDS = 0x12  # LAST_STEP_VEHICLE_ID_LIST
HALTING = 0x14  # LAST_STEP_VEHICLE_HALTING_NUMBER


class Observer:
    def __init__(
        self, sumo: Any, phases: Mapping[str, PhaseSet], *, near_distance: float = 50.0
    ) -> None:
        self.sumo, self.phases, self.near_distance = sumo, dict(phases), near_distance
        self.in_lanes = sorted({lane for ps in phases.values() for lane in ps.in_lanes})
        lanes = sorted(set(self.in_lanes) | {ln for ps in phases.values() for ln in ps.out_lanes})
        for lane in lanes:
            sumo.lane.subscribe(lane, (VEHICLES, VEHICLE_IDS, HALTING))
        self.length = {lane: float(sumo.lane.getLength(lane)) for lane in self.in_lanes}
        self._seen: dict[str, frozenset[str]] = {}

    def _results(self) -> dict[str, dict[int, Any]]:
        return dict(self.sumo.lane.getAllSubscriptionResults())

    def halting_total(self) -> tuple[float, int]:
        """(halting vehicles on all controlled incoming lanes, number of such lanes)."""
        res = self._results()
        return float(sum(res.get(lane, {}).get(HALTING, 0) for lane in self.in_lanes)), len(
            self.in_lanes
        )

    def observe(self, driver: SignalDriver | None) -> dict[str, Observation]:
        res = self._results()
        pos = self.sumo.vehicle.getLanePosition
        near: dict[str, int] = {}
        entered: dict[str, int] = {}
        for lane in self.in_lanes:
            ids = frozenset(res.get(lane, {}).get(VEHICLE_IDS, ()))
            limit = self.length[lane] - self.near_distance
            near[lane] = sum(1 for v in ids if pos(v) >= limit)
            entered[lane] = len(ids - self._seen.get(lane, frozenset()))
            self._seen[lane] = ids
        out: dict[str, Observation] = {}
        for tls_id, ps in self.phases.items():
            if driver is not None:
                green, in_green, moving = driver.current(tls_id)
            else:
                green, in_green, moving = 0, 0.0, False

            def arr(lanes: tuple[str, ...], var: int) -> Any:
                return np.array([res.get(ln, {}).get(var, 0) for ln in lanes], dtype=float)

            out[tls_id] = Observation(
                tls_id=tls_id,
                phases=ps,
                green=green,
                time_in_green=in_green,
                in_transition=moving,
                vehicles=arr(ps.in_lanes, VEHICLES),
                halting=arr(ps.in_lanes, HALTING),
                near=np.array([near[ln] for ln in ps.in_lanes], dtype=float),
                entered=np.array([entered[ln] for ln in ps.in_lanes], dtype=float),
                out_vehicles=arr(ps.out_lanes, VEHICLES),
            )
        return out
