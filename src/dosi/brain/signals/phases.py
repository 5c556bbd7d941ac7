"""Phase sets derived from a network's own signal programs (no per-junction config).

A green phase is a program state with a G/g and no y/u that lets some lane move. Between any two greens the
transition is the program's own sequence of intermediate phases when the program goes
from one to the other directly and shows a yellow before every red; otherwise it is synthesised: links that lose their green
show y for the program's yellow time, then r for its all-red time (when it has one).
Which links may be green together comes from the program too: two links conflict when
no phase of the program shows both green, which is what the safety checks test against.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations, pairwise
from typing import Any

GREEN = frozenset("Gg")
AMBER = frozenset("yu")
DEFAULT_YELLOW = 3.0
DEFAULT_ALL_RED = 0.0

Segment = tuple[str, float]  # (SUMO state string, seconds)


def is_green_state(state: str) -> bool:
    return any(c in GREEN for c in state) and not any(c in AMBER for c in state)


def green_links(state: str) -> frozenset[int]:
    return frozenset(i for i, c in enumerate(state) if c in GREEN)


@dataclass(frozen=True)
class GreenPhase:
    index: int  # position in PhaseSet.greens
    program_index: int  # position in the network's program
    state: str
    duration: float  # the program's own duration for this green
    links: frozenset[int]  # link indices shown green
    in_lanes: tuple[str, ...]  # incoming lanes with at least one green link
    movements: tuple[tuple[str, str], ...]  # distinct (incoming, outgoing) lane pairs served


@dataclass(frozen=True)
class PhaseSet:
    tls_id: str
    program_id: str
    links: tuple[tuple[str, str] | None, ...]  # link index -> (incoming, outgoing) lane
    greens: tuple[GreenPhase, ...]
    transitions: dict[tuple[int, int], tuple[Segment, ...]]
    yellow_time: float
    all_red_time: float
    compatible: frozenset[tuple[int, int]]  # link pairs some program phase shows green together
    in_lanes: tuple[str, ...] = field(default=())
    out_lanes: tuple[str, ...] = field(default=())

    def transition(self, src: int, dst: int) -> tuple[Segment, ...]:
        return () if src == dst else self.transitions[(src, dst)]

    def conflicts(self, state: str) -> list[tuple[int, int]]:
        """Pairs of links green in `state` that no phase of the program shows green together."""
        return [
            pair
            for pair in combinations(sorted(green_links(state)), 2)
            if pair not in self.compatible
        ]


def _yellow_first(states: list[str]) -> bool:
    """Whether every green in the sequence turns yellow before it turns anything else."""
    for before, after in pairwise(states):
        for a, b in zip(before, after, strict=False):
            if a in GREEN and b not in GREEN and b != "y":
                return False
    return True


def _synthesise(a: str, b: str, yellow: float, all_red: float) -> tuple[Segment, ...]:
    losing = [i for i, c in enumerate(a) if c in GREEN and b[i] not in GREEN]
    if not losing:
        return ()
    amber, red = list(a), list(a)
    for i in losing:
        amber[i], red[i] = "y", "r"
    segments: list[Segment] = [("".join(amber), yellow)]
    if all_red > 0:
        segments.append(("".join(red), all_red))
    return tuple(segments)


def derive_phase_set(
    tls_id: str,
    program_id: str,
    phases: list[tuple[str, float]],
    links: list[tuple[str, str] | None],
    *,
    default_yellow: float = DEFAULT_YELLOW,
    default_all_red: float = DEFAULT_ALL_RED,
) -> PhaseSet:
    """One signal's phase set from its program's (state, duration) list and link table."""
    states = [s for s, _ in phases]
    yellows = [d for s, d in phases if any(c in AMBER for c in s) and d > 0]
    reds = [d for s, d in phases if not any(c in GREEN or c in AMBER for c in s) and d > 0]
    yellow = max(yellows) if yellows else default_yellow
    all_red = max(reds) if reds else default_all_red
    greens: list[GreenPhase] = []
    seen: set[str] = set()
    for k, state in enumerate(states):
        if not is_green_state(state) or state in seen:
            continue
        seen.add(state)
        on = green_links(state)
        served = [links[i] for i in sorted(on) if i < len(links)]
        moves = tuple(dict.fromkeys(m for m in served if m is not None))
        if not moves:  # greens only for links that lead nowhere (unused indices): skip
            continue
        greens.append(
            GreenPhase(
                index=len(greens),
                program_index=k,
                state=state,
                duration=phases[k][1],
                links=on,
                in_lanes=tuple(dict.fromkeys(m[0] for m in moves)),
                movements=moves,
            )
        )
    by_state = {g.state: g.index for g in greens}
    transitions: dict[tuple[int, int], tuple[Segment, ...]] = {}
    n = len(states)
    for g in greens:  # the program's own sequences from each green to the next one
        between: list[Segment] = []
        for step in range(1, n + 1):
            k = (g.program_index + step) % n
            if states[k] in by_state:
                dst = by_state[states[k]]
                seq = [g.state, *(st for st, _ in between), states[k]]
                if dst != g.index and (g.index, dst) not in transitions and _yellow_first(seq):
                    transitions[(g.index, dst)] = tuple(between)
                break
            between.append((states[k], phases[k][1]))
    for a in greens:
        for b in greens:
            if a.index != b.index and (a.index, b.index) not in transitions:
                transitions[(a.index, b.index)] = _synthesise(a.state, b.state, yellow, all_red)
    compatible = {pair for s in states for pair in combinations(sorted(green_links(s)), 2)}
    used = [m for m in links if m]
    return PhaseSet(
        tls_id=tls_id,
        program_id=program_id,
        links=tuple(links),
        greens=tuple(greens),
        transitions=transitions,
        yellow_time=yellow,
        all_red_time=all_red,
        compatible=frozenset(compatible),
        in_lanes=tuple(dict.fromkeys(m[0] for m in used)),
        out_lanes=tuple(dict.fromkeys(m[1] for m in used)),
    )


def derive_phases(
    sumo: Any,
    *,
    default_yellow: float = DEFAULT_YELLOW,
    default_all_red: float = DEFAULT_ALL_RED,
) -> dict[str, PhaseSet]:
    """Phase sets of every signal of the loaded simulation (libsumo), from its active program.

    Signals with fewer than one green phase (blinking, off) are left out: nothing to control.
    """
    tl = sumo.trafficlight
    result: dict[str, PhaseSet] = {}
    for tls_id in tl.getIDList():
        program_id = tl.getProgram(tls_id)
        logic = next(
            (lg for lg in tl.getAllProgramLogics(tls_id) if lg.programID == program_id), None
        )
        if logic is None:
            continue
        phases = [(p.state, float(p.duration)) for p in logic.phases]
        links: list[tuple[str, str] | None] = [
            (str(group[0][0]), str(group[0][1])) if group else None
            for group in tl.getControlledLinks(tls_id)
        ]
        width = max(len(s) for s, _ in phases)
        links += [None] * (width - len(links))
        phase_set = derive_phase_set(
            tls_id,
            program_id,
            phases,
            links,
            default_yellow=default_yellow,
            default_all_red=default_all_red,
        )
        if phase_set.greens:
            result[tls_id] = phase_set
    return result
