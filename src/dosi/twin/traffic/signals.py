"""Traffic lights as TrafficSignal actuators that services drive through the hub.

Commands:
- `commandedPhase` (int): go to that phase of the running program and hold it until
  the next command (a controller, not the fixed-time plan, now decides when to switch).
  From one green to another the signal first plays the program's own intergreen (the
  yellow and all-red phases after the current green, for their programmed durations),
  as a field controller keeps intergreens locally whatever the cloud asks: no command
  can show conflicting greens or skip a yellow. A command that arrives while the
  fixed-time plan plays its own yellow or all-red waits for them to end. Other
  commands apply at once.
- `commandedProgram` (str): switch to one of the junction's programs; this releases a
  hold, so "0" resumes netconvert's fixed-time plan from the current phase.
A hold is a phase duration far beyond any run, so SUMO keeps it without per-step work.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dosi.twin.geo import Placement
from dosi.twin.model import Actuator, CommandRejected, Value
from dosi.twin.traffic.roadnet import RoadNet

COMMANDS = ("commandedPhase", "commandedProgram")
HOLD_SECONDS = 10_000_000.0  # about 116 days: longer than any run
PREFIX = "tls-"


@dataclass
class Signal:
    tls_id: str
    programs: dict[str, tuple[str, ...]]  # program id -> phase states
    held: bool = False
    target: int | None = None  # the green to show once the intergreen in progress ends
    target_at: float = 0.0  # simulated time the intergreen ends


def is_green(state: str) -> bool:
    return ("G" in state or "g" in state) and "y" not in state and "Y" not in state


def intergreen(phases: tuple[str, ...], green: int) -> list[int]:
    """The phases after `green` up to the next green: its yellow and all-red."""
    out: list[int] = []
    index = (green + 1) % len(phases)
    while index != green and not is_green(phases[index]):
        out.append(index)
        index = (index + 1) % len(phases)
    return out


def _phase_index(value: Any) -> int:
    """An int, a whole float (JSON numbers) or a digit string (Ultralight payloads)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    raise CommandRejected(f"commandedPhase is a phase index (an integer), got {value!r}")


class Signals:
    def __init__(self, net: RoadNet) -> None:
        self.net = net
        self.signals = {
            f"{PREFIX}{tls_id}": Signal(tls_id, programs)
            for tls_id, programs in sorted(net.programs.items())
        }

    def actuators(self, placement: Placement, sumo: Any) -> list[Actuator]:
        result = []
        for actuator_id, signal in self.signals.items():
            lanes = list(dict.fromkeys(sumo.trafficlight.getControlledLanes(signal.tls_id)))
            junction = self.net.junctions.get(signal.tls_id)
            # a signal of joined junctions has its own id: place it at its first stop line
            x, y = (junction.x, junction.y) if junction else self.net.lane(lanes[0]).shape[-1]
            program = sumo.trafficlight.getProgram(signal.tls_id)
            static: dict[str, Value] = {
                "name": f"Traffic signal {signal.tls_id}",
                "phases": list(signal.programs.get(program, ())),  # type: ignore[dict-item]
                # programmed seconds per phase: a service reads its intergreens from them
                "phaseDurations": self._durations(sumo, signal),  # type: ignore[dict-item]
                "programs": sorted(signal.programs),  # type: ignore[dict-item]
                "controlledLanes": lanes,  # type: ignore[dict-item]
                # per link index of the state strings: the lane it leaves and the one it enters,
                # so a service can tell which queues each phase serves
                "linkLanes": list(sumo.trafficlight.getControlledLanes(signal.tls_id)),
                "linkTargets": [
                    links[0][1] if links else ""
                    for links in sumo.trafficlight.getControlledLinks(signal.tls_id)
                ],
            }
            result.append(
                Actuator(
                    actuator_id=actuator_id,
                    entity_type="TrafficSignal",
                    location=placement.point(x, y),
                    commands=COMMANDS,
                    static=static,
                )
            )
        return result

    def _signal(self, actuator_id: str) -> Signal:
        try:
            return self.signals[actuator_id]
        except KeyError:
            raise KeyError(f"no traffic signal {actuator_id!r}") from None

    def apply(self, sumo: Any, actuator_id: str, command: str, value: Any) -> None:
        signal = self._signal(actuator_id)
        tls = sumo.trafficlight
        if command == "commandedPhase":
            phases = signal.programs.get(tls.getProgram(signal.tls_id), ())
            index = _phase_index(value)
            if not 0 <= index < len(phases):
                raise CommandRejected(
                    f"{actuator_id} has phases 0..{len(phases) - 1}, not {value!r}"
                )
            current = tls.getPhase(signal.tls_id)
            was_held, signal.held = signal.held, True
            if signal.target is not None and is_green(phases[index]):
                signal.target = index  # an intergreen is playing: end it at the new green
                return
            if not was_held and not is_green(phases[current]) and is_green(phases[index]):
                # The fixed plan is in its own yellow or all-red: let it finish them first.
                now = sumo.simulation.getTime()
                durations = self._durations(sumo, signal)
                after = intergreen(phases, current)  # the phases still to come before a green
                signal.target = index
                # the current phase still shows at its switch time; the next starts a step later
                end = (
                    tls.getNextSwitch(signal.tls_id)
                    + sumo.simulation.getDeltaT()
                    + sum(durations[i] for i in after)
                )
                signal.target_at = max(end, now)
                return
            between = intergreen(phases, current)
            if (
                is_green(phases[current])
                and is_green(phases[index])
                and index != current
                and between
            ):
                durations = self._durations(sumo, signal)
                signal.target = index
                signal.target_at = sumo.simulation.getTime() + sum(durations[i] for i in between)
                tls.setPhase(signal.tls_id, between[0])  # SUMO plays on through the all-red
                return
            signal.target = None
            tls.setPhase(signal.tls_id, index)
            tls.setPhaseDuration(signal.tls_id, HOLD_SECONDS)
        elif command == "commandedProgram":
            program = str(value)
            if program not in signal.programs:
                known = ", ".join(sorted(signal.programs))
                raise CommandRejected(f"{actuator_id} has programs {known}, not {value!r}")
            phase = tls.getPhase(signal.tls_id)
            signal.target = None
            tls.setProgram(signal.tls_id, program)
            # setPhase restarts the phase with its planned duration: this ends a hold
            tls.setPhase(signal.tls_id, phase if phase < len(signal.programs[program]) else 0)
            signal.held = False
        else:
            raise KeyError(f"{actuator_id} has no command {command!r} (commands: {COMMANDS})")

    def step(self, sumo: Any) -> None:
        """End the intergreens that are over (work only while a signal plays one)."""
        pending = [s for s in self.signals.values() if s.target is not None]
        if not pending:
            return
        now = sumo.simulation.getTime()
        for signal in pending:
            if signal.target is not None and now + 1e-6 >= signal.target_at:
                sumo.trafficlight.setPhase(signal.tls_id, signal.target)
                sumo.trafficlight.setPhaseDuration(signal.tls_id, HOLD_SECONDS)
                signal.target = None

    @staticmethod
    def _durations(sumo: Any, signal: Signal) -> list[float]:
        program = sumo.trafficlight.getProgram(signal.tls_id)
        for logic in sumo.trafficlight.getAllProgramLogics(signal.tls_id):
            if logic.programID == program:
                return [float(phase.duration) for phase in logic.phases]
        raise KeyError(f"{signal.tls_id} has no program {program!r}")

    def state(self, sumo: Any, actuator_id: str) -> dict[str, Value]:
        signal = self._signal(actuator_id)
        tls = sumo.trafficlight
        return {
            "phase": int(tls.getPhase(signal.tls_id)),
            "program": str(tls.getProgram(signal.tls_id)),
            "signalState": str(tls.getRedYellowGreenState(signal.tls_id)),
            "held": signal.held,
        }
