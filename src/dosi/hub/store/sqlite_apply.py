"""The SQLite write path: mutations against the current rows, then one write plan.

Runs on the store's writer thread inside its transaction (see sqlite.py).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from dosi.hub.store.base import Mutation, Outcome, run_mutations
from dosi.hub.store.history import to_ms
from dosi.hub.store.rows import stat_delta, unpack
from dosi.hub.store.sqlite_schema import WritePlan
from dosi.ngsi.model import Entity
from dosi.ngsi.values import now_iso

_ID_CHUNK = 500


def _load_current(conn: sqlite3.Connection, ids: Sequence[str]) -> dict[str, tuple[int, Entity]]:
    current: dict[str, tuple[int, Entity]] = {}
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), _ID_CHUNK):
        chunk = unique[start : start + _ID_CHUNK]
        marks = ",".join("?" * len(chunk))
        for rid, eid, doc in conn.execute(
            f"SELECT rid, id, doc FROM entities WHERE id IN ({marks})", chunk
        ):
            current[eid] = (rid, unpack(doc))
    return current


def apply_ops(
    conn: sqlite3.Connection,
    ops: Sequence[tuple[str, Mutation]],
    indexed: frozenset[str] = frozenset(),
    history: bool = True,
) -> list[Outcome]:
    """Run mutations against the current rows, then write each entity's final state."""
    original = _load_current(conn, [eid for eid, _ in ops])
    state: dict[str, Entity | None] = {eid: ent for eid, (_, ent) in original.items()}
    outcomes = run_mutations(ops, state)
    plan = WritePlan(indexed, history=history)
    now = now_iso()
    now_ms = to_ms(now)
    for outcome in outcomes:
        if outcome.change is not None:
            plan.record(outcome.change, now, now_ms)
    next_rid = int(conn.execute("SELECT coalesce(max(rid), 0) FROM entities").fetchone()[0]) + 1
    for eid, final in state.items():
        known = original.get(eid)
        start = known[1] if known else None
        if final is start:
            continue
        stat_delta(start, final, plan.stats)
        if known is None:
            if final is not None:
                plan.insert(next_rid, final)
                next_rid += 1
        elif final is None:
            plan.delete(known[0], known[1])
        else:
            plan.update(known[0], known[1], final)
    plan.flush(conn)
    return outcomes
