"""The storage interface every backend (SQLite now, PostgreSQL next) implements.

Writes are expressed as *mutations*: pure functions from the stored entity
(or None) to the new entity (or None to delete). The backend runs them inside
its transaction, so read-modify-write is atomic, a mutation that raises
leaves its entity untouched, and the other entities of a batch still apply.
Reads are a SQL-friendly `Prefilter` (ids, types, bounding box) plus an exact
Python predicate the backend applies to the candidates.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from dosi.ngsi.errors import NgsiError
from dosi.ngsi.model import Entity

if TYPE_CHECKING:
    from dosi.hub.store.events import EventStore
    from dosi.hub.store.temporal import TemporalStore

DEFAULT_TENANT = ""

# Receives the current entity (None if absent); returns the new one, None to
# delete, or the very same object for "no change". Raises NgsiError to refuse.
Mutation = Callable[[Entity | None], Entity | None]


@dataclass(frozen=True)
class Change:
    """One committed change, for history and subscriptions."""

    id: str
    before: Entity | None
    after: Entity | None


@dataclass(frozen=True)
class Outcome:
    """The result of one mutation of a batch: a change, no change, or an error."""

    id: str
    change: Change | None = None
    error: NgsiError | None = None


@dataclass(frozen=True)
class Prefilter:
    """What an index can answer. Every field narrows; None means no constraint."""

    ids: frozenset[str] | None = None
    types: frozenset[str] | None = None  # entity has at least one of these (expanded) types
    bbox: tuple[float, float, float, float] | None = None  # minx, miny, maxx, maxy
    geo_property: str | None = None  # expanded GeoProperty the bbox applies to
    # For georel=near around a Point: candidates may be streamed nearest first.
    near: tuple[float, float] | None = None
    # (attribute IRI, operator, number) comparisons every match satisfies for at least one
    # numeric value of the attribute; a backend may answer those it indexes, ignore the rest.
    values: tuple[tuple[str, str, float], ...] = ()


@dataclass(frozen=True)
class Selection:
    """A query: prefilter, exact predicate, order and page."""

    prefilter: Prefilter = field(default_factory=Prefilter)
    predicate: Callable[[Entity], bool] | None = None
    order_key: Callable[[Entity], float] | None = None  # e.g. distance for georel=near
    # Entities whose order key falls outside [low, high] do not match (near's distances),
    # so the key is computed once and serves as both filter and order.
    key_range: tuple[float, float] | None = None
    offset: int = 0
    limit: int = 20
    count: bool = False


@dataclass(frozen=True)
class Page:
    entities: list[Entity]
    total: int | None  # set when Selection.count


@dataclass(frozen=True)
class AttributeStat:
    """How many entities of `entity_type` carry `attribute` as `attribute_type`."""

    entity_type: str
    attribute: str
    attribute_type: str
    count: int


@dataclass(frozen=True)
class JournalEntry:
    """One committed change as the journal keeps it (see store/history.py)."""

    seq: int  # increases with commit order, per tenant
    at: int  # commit time, epoch milliseconds
    id: str
    before: Entity | None  # None: created; whole entity: deleted; else id, type, changed attrs
    after: Entity | None  # None: deleted
    changed: list[str]  # attribute IRIs created, updated or deleted


class Store(Protocol):
    @property
    def temporal(self) -> TemporalStore:
        """History reads and temporal-API writes."""
        ...

    @property
    def events(self) -> EventStore:
        """Subscriptions and the notification outbox."""
        ...

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def tenant_exists(self, tenant: str) -> bool: ...

    async def tenants(self) -> list[str]: ...

    async def get(self, tenant: str, entity_id: str) -> Entity | None: ...

    async def apply(self, tenant: str, ops: Sequence[tuple[str, Mutation]]) -> list[Outcome]:
        """Run mutations in order, in one transaction; acknowledged means committed."""
        ...

    async def select(self, tenant: str, selection: Selection) -> Page: ...

    async def attribute_stats(self, tenant: str) -> list[AttributeStat]:
        """Per (type, attribute, attribute type) entity counts; attribute "" counts the type."""
        ...

    async def journal_read(self, tenant: str, after: int, limit: int) -> list[JournalEntry]:
        """Journal entries with seq > `after`, oldest first."""
        ...

    async def journal_last(self, tenant: str) -> int:
        """The seq of the newest journal entry (0 if none): where a new follower starts."""
        ...

    async def journal_prune(self, tenant: str, upto: int, before_ms: int) -> int:
        """Drop entries with seq <= `upto` committed before `before_ms`; returns how many."""
        ...

    def add_commit_listener(self, listener: Callable[[str], None]) -> None:
        """Call `listener(tenant)` after each commit of this process (from any thread)."""
        ...

    def try_lead(self, role: str) -> bool:
        """Take the single-holder role `role` among the hub's processes, without waiting.

        Work that must happen once per hub, not once per worker (delivering
        notifications, sending device commands), runs where this returned True;
        the role is held until the store closes or the process dies.
        """
        ...

    async def kv_put(self, namespace: str, key: str, value: bytes) -> None: ...

    async def kv_delete(self, namespace: str, key: str) -> None: ...

    async def kv_items(self, namespace: str) -> list[tuple[str, bytes]]: ...


def run_mutations(
    ops: Sequence[tuple[str, Mutation]], state: dict[str, Entity | None]
) -> list[Outcome]:
    """Run `ops` in order against `state` (id -> current entity), updating it in place.

    The part of a write every backend shares: an op that raises NgsiError
    leaves its entity as it was and the others go on; one that returns its
    input unchanged is no change.
    """
    outcomes: list[Outcome] = []
    for eid, mutation in ops:
        before = state.get(eid)
        try:
            after = mutation(before)
        except NgsiError as exc:
            outcomes.append(Outcome(eid, error=exc))
            continue
        if after is before:
            outcomes.append(Outcome(eid))
            continue
        state[eid] = after
        outcomes.append(Outcome(eid, change=Change(eid, before, after)))
    return outcomes
