"""One apply() on PostgreSQL: lock, mutate in Python, write the plan (inside a transaction).

The semantics are those of sqlite_apply.apply_ops: mutations run in order against
the current rows, each op has its own outcome, an op that raises NgsiError
leaves its entity as it was, and every entity's final state is written once.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from dosi.hub.store.base import Mutation, Outcome, run_mutations
from dosi.hub.store.history import to_ms
from dosi.hub.store.postgres_plan import PgWritePlan, pack_checked
from dosi.hub.store.rows import stat_delta, unpack
from dosi.ngsi.errors import NgsiError
from dosi.ngsi.model import Entity
from dosi.ngsi.values import now_iso


async def load_for_update(
    conn: asyncpg.Connection, s: str, ids: Sequence[str]
) -> dict[str, tuple[int, Entity]]:
    """The current rows of `ids`, locked until the transaction ends.

    Locked in id order, so two transactions over overlapping ids never wait on
    each other in a cycle.
    """
    rows = await conn.fetch(
        f"SELECT rid, id, doc FROM {s}.entities WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE",
        sorted(set(ids)),
    )
    return {eid: (rid, unpack(doc)) for rid, eid, doc in rows}


async def apply_ops(
    conn: asyncpg.Connection,
    s: str,
    ops: Sequence[tuple[str, Mutation]],
    tenant: str,
    channel: str,
    *,
    indexed: frozenset[str] = frozenset(),
    history: bool = True,
    strict: bool = False,
) -> list[Outcome]:
    """Run mutations against the locked rows, then write each entity's final state.

    `strict` (several callers' ops in one group commit): an entity that cannot be
    stored fails the whole call instead of its own ops, since the ops of other
    callers may have led to it; each caller is then run alone.
    """
    original = await load_for_update(conn, s, [eid for eid, _ in ops])
    state: dict[str, Entity | None] = {eid: ent for eid, (_, ent) in original.items()}
    outcomes = run_mutations(ops, state)
    docs, refused = _final_docs(original, state)
    if refused and strict:
        raise next(iter(refused.values()))
    if refused:
        # What PostgreSQL cannot hold fails every change of that entity, which stays as it was.
        outcomes = [
            Outcome(o.id, error=refused[o.id]) if o.change is not None and o.id in refused else o
            for o in outcomes
        ]
    plan = PgWritePlan(indexed, history=history)
    now = now_iso()
    now_ms = to_ms(now)
    for outcome in outcomes:
        if outcome.change is not None:
            plan.record(outcome.change, now, now_ms)
    for eid, final in state.items():
        known = original.get(eid)
        start = known[1] if known else None
        if final is start or eid in refused:
            continue
        stat_delta(start, final, plan.stats)
        if known is None:
            if final is not None:
                plan.insert(final, docs[eid])
        elif final is None:
            plan.delete(known[0], known[1])
        else:
            plan.update(known[0], known[1], final, docs[eid])
    await plan.flush(conn, s)
    if plan.changes.journal:
        await conn.execute("SELECT pg_notify($1, $2)", channel, tenant)  # sent at COMMIT
    return outcomes


def _final_docs(
    original: dict[str, tuple[int, Entity]], state: dict[str, Entity | None]
) -> tuple[dict[str, bytes], dict[str, NgsiError]]:
    docs: dict[str, bytes] = {}
    refused: dict[str, NgsiError] = {}
    for eid, final in state.items():
        known = original.get(eid)
        if final is None or (known is not None and final is known[1]):
            continue
        try:
            docs[eid] = pack_checked(final)
        except NgsiError as exc:
            refused[eid] = exc
    return docs, refused
