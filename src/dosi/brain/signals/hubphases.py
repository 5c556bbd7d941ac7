"""Phase sets from a hub's TrafficSignal entities: the same derivation as from a SUMO network.

A TrafficSignal entity carries its program's `phases` (SUMO state strings) and, per link
index of those strings, `linkLanes` (the lane it leaves) and `linkTargets` (the lane it
enters; "" where the index leads nowhere). That is all `derive_phase_set` needs, so a
service on the hub derives the greens, the transitions between them and the conflict
rule exactly as the offline benchmark does from libsumo, with no per-junction
configuration. Durations are not part of the entity unless it has `phaseDurations`:
without them yellows count `DEFAULT_YELLOW` and all-reds `DEFAULT_ALL_RED` seconds (the
twin plays the real ones itself; a controller only needs them as lost time).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dosi.brain.signals.phases import AMBER, GREEN, PhaseSet, derive_phase_set

DEFAULT_YELLOW = 4.0  # the longest common yellow: lost time is never undercounted
DEFAULT_ALL_RED = 2.0
DEFAULT_GREEN = 30.0
MAX_LINKS = 256  # a state string longer than this is not a real junction


class SignalEntityError(ValueError):
    """A TrafficSignal entity without a usable program (one line why)."""


def _strings(entity: Mapping[str, Any], name: str) -> list[str]:
    value = entity.get(name)
    if isinstance(value, dict):  # normalized form: {"type": "Property", "value": [...]}
        value = value.get("value")
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SignalEntityError(f"{entity.get('id')}: {name} is not a list of strings")
    return list(value)


def _durations(entity: Mapping[str, Any], states: Sequence[str]) -> list[float]:
    value = entity.get("phaseDurations")
    if isinstance(value, dict):
        value = value.get("value")
    if (
        isinstance(value, list)
        and len(value) == len(states)
        and all(isinstance(v, int | float) and 0 <= v < 1e6 for v in value)
    ):
        return [float(v) for v in value]
    out = []
    for state in states:
        if any(c in AMBER for c in state):
            out.append(DEFAULT_YELLOW)
        elif any(c in GREEN for c in state):
            out.append(DEFAULT_GREEN)
        else:
            out.append(DEFAULT_ALL_RED)
    return out


def phase_set_from_entity(entity: Mapping[str, Any]) -> PhaseSet:
    """A TrafficSignal entity (keyValues or normalized) -> its PhaseSet; the id is the entity's."""
    entity_id = entity.get("id")
    if not isinstance(entity_id, str):
        raise SignalEntityError("a TrafficSignal entity without an id")
    states = _strings(entity, "phases")
    lanes = _strings(entity, "linkLanes")
    targets = _strings(entity, "linkTargets")
    if not states:
        raise SignalEntityError(f"{entity_id}: no phases")
    width = max(len(s) for s in states)
    if width > MAX_LINKS or len(lanes) > MAX_LINKS or len(targets) > MAX_LINKS:
        raise SignalEntityError(f"{entity_id}: more than {MAX_LINKS} links")
    links: list[tuple[str, str] | None] = [
        (a, b) if a and b else None for a, b in zip(lanes, targets, strict=False)
    ]
    links += [None] * (width - len(links))
    program = entity.get("program")
    if isinstance(program, dict):
        program = program.get("value")
    phases = list(zip(states, _durations(entity, states), strict=True))
    return derive_phase_set(
        entity_id,
        str(program or "0"),
        phases,
        links,
        default_yellow=DEFAULT_YELLOW,
        default_all_red=DEFAULT_ALL_RED,
    )
