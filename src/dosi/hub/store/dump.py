"""Raw, paged access to a store's contents for export and import (`dosi export/import`).

The `Store` and `TemporalStore` interfaces serve the API: pages by offset,
instances capped per answer, history written at the time of the write. A
dump needs other things: every row once in a stable order whatever the size
(keyset paging, bounded memory), history rows with both of their times, and
history written back as it was (recording times, deletion markers, hourly
rollups), not as new observations. Each backend answers these in its own
module (dump_sqlite.py, dump_postgres.py) against the same tables.

History is exported per series (entity, attribute) in time order; importing
the same rows twice adds nothing (`write_history`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from dosi.ngsi.errors import BadRequestData
from dosi.ngsi.model import Entity

if TYPE_CHECKING:
    from dosi.hub.store.base import Store

Record = dict[str, Any]  # a temporal entity record: id, type, scope?, createdAt, modifiedAt, ...


@dataclass(frozen=True)
class RawInstance:
    """One history row: observation (or recording) time, recording time, stored document."""

    ts: int
    recorded: int
    doc: bytes  # orjson bytes of the instance, as history keeps them


@dataclass(frozen=True)
class Hourly:
    """One hourly rollup row (see sqlite_temporal.DDL `history_hourly`)."""

    hour: int
    n: int
    numbers: int
    total: float
    sumsq: float
    low: float | None
    high: float | None


@dataclass(frozen=True)
class Series:
    key: int
    attr: str  # IRI
    raw: bool = True  # has raw instances
    hourly: bool = False  # has hourly rollup rows


class Dump(Protocol):
    async def counts(self, tenant: str) -> tuple[int, int]:
        """(current entities, temporal entity records) of the tenant."""
        ...

    async def entities(self, tenant: str, after: int, limit: int) -> list[tuple[int, Entity]]:
        """Current entities with row key > `after`, in key order."""
        ...

    async def records(self, tenant: str, after: int, limit: int) -> list[tuple[int, Record]]:
        """Temporal entity records with key > `after`, in key order."""
        ...

    async def series(self, tenant: str, entity: int) -> list[Series]:
        """The attributes with raw or rolled-up history of one temporal entity."""
        ...

    async def instances(
        self, tenant: str, entity: int, attr: int, after: tuple[int, int], limit: int
    ) -> list[tuple[int, int, RawInstance]]:
        """(ts, seq, row) of one series after (ts, seq), oldest first."""
        ...

    async def hourly(
        self, tenant: str, entity: int, attr: int, after: int, limit: int
    ) -> list[Hourly]:
        """Rollup rows of one series with hour > `after`, in hour order."""
        ...

    async def write_history(
        self,
        tenant: str,
        record: Record,
        attr: str | None,
        instances: Sequence[RawInstance],
        hourly: Sequence[Hourly],
    ) -> int:
        """In one transaction: save the record (types merged with a stored one), add the
        instances not already stored and replace the rollup hours; how many were added."""
        ...


def dump_of(store: Store) -> Dump:
    """The dump access of a store's backend."""
    from dosi.hub.store.sqlite import SqliteStore

    if isinstance(store, SqliteStore):
        from dosi.hub.store.dump_sqlite import SqliteDump

        return SqliteDump(store)
    from dosi.hub.store.postgres import PostgresStore

    if isinstance(store, PostgresStore):
        from dosi.hub.store.dump_postgres import PostgresDump

        return PostgresDump(store)
    raise TypeError(f"no dump access for {type(store).__name__}")


def merged_record(new: Record, stored: Record | None) -> Record:
    """The record to save: the imported one, keeping types only the stored one has."""
    if stored is None:
        return new
    if stored.get("id") != new["id"]:
        raise BadRequestData(f"history of {new['id']} collides with that of {stored.get('id')}")
    extra = [t for t in stored.get("type", []) if t not in new["type"]]
    return {**new, "type": [*new["type"], *extra]} if extra else new


def missing(
    instances: Sequence[RawInstance], stored: Counter[tuple[int, int, bytes]]
) -> list[RawInstance]:
    """The instances to insert: each identical (ts, recorded, doc) row counts once per copy,
    so importing a series twice adds nothing and exact repeats within it survive."""
    left = Counter(stored)
    out: list[RawInstance] = []
    for inst in instances:
        key = (inst.ts, inst.recorded, inst.doc)
        if left[key] > 0:
            left[key] -= 1
        else:
            out.append(inst)
    return out
