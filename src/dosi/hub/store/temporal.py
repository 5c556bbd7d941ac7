"""What a backend offers the temporal API: history reads, temporal writes, retention.

Backend-neutral: SQLite implements it now (store/sqlite_temporal.py), PostgreSQL
later. A query is a `TemporalSelection` (like `Selection` for the current
state: an index-friendly prefilter, exact Python checks, a page) plus a time
window and what to return per attribute: instances or aggregated periods.
Aggregation happens in the backend, next to the data; the hub only turns
`Stats` into the requested methods and renders.

Times are epoch milliseconds throughout (the history rows' `ts`/`recorded`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from dosi.ngsi.model import Entity, Instance

HOUR_MS = 3_600_000
INSTANCE_PREFIX = "urn:ngsi-ld:attribute:instance:"
# Temporal properties a query may select on (clause 4.8).
TIME_PROPERTIES = ("observedAt", "createdAt", "modifiedAt", "deletedAt")


def instance_id(seq: int) -> str:
    """The instanceId of a history row: its sequence number, so lookups are direct."""
    return f"{INSTANCE_PREFIX}{seq}"


def instance_seq(value: str) -> int | None:
    """The row an instanceId names, or None if the hub never issued it."""
    if not value.startswith(INSTANCE_PREFIX):
        return None
    digits = value[len(INSTANCE_PREFIX) :]
    if not digits.isdigit() or len(digits) > 18:
        return None
    return int(digits)


@dataclass(frozen=True)
class TimeWindow:
    """Instances whose `prop` time lies in [start, end); None leaves a side open.

    observedAt uses the observation time (the recording time for instances
    without one); createdAt and modifiedAt the recording time; deletedAt
    selects deletion records only.
    """

    prop: str = "observedAt"
    start: int | None = None
    end: int | None = None
    start_open: bool = False  # timerel=after: strictly later than `start`

    @property
    def bounded(self) -> bool:
        return self.start is not None or self.end is not None or self.prop == "deletedAt"


@dataclass(frozen=True)
class Aggregation:
    """Aggregated periods: whole window (period_ms 0), fixed length, or calendar edges."""

    methods: tuple[str, ...]
    period_ms: int = 0
    anchor: int = 0  # some period edge: timeAt, or the epoch
    # Calendar periods (months, years): edges(anchor, lo, hi, cap) -> sorted edges, the
    # first <= lo and the last >= hi (at most cap + 1 of them).
    edges: Callable[[int, int, int, int], list[int]] | None = None

    @property
    def hour_aligned(self) -> bool:
        """Every hour lies in one period, so hourly rollups can answer for raw rows."""
        return self.anchor % HOUR_MS == 0 and self.period_ms % HOUR_MS == 0


@dataclass(frozen=True)
class TemporalSelection:
    """A temporal query: which entities, which window, what per attribute, which page."""

    window: TimeWindow = field(default_factory=TimeWindow)
    ids: frozenset[str] | None = None  # prefilter: one of these ids
    types: frozenset[str] | None = None  # prefilter: one of these (expanded) types ever
    # Exact check on the entity record (id, type list, scope, system times).
    record_check: Callable[[dict[str, Any]], bool] | None = None
    attrs: frozenset[str] | None = None  # expanded attribute IRIs; None: all
    # q and geo-queries: checked on the entity as it was at the end of the window
    # (latest instance per datasetId of each of `snapshot_attrs` inside the window).
    snapshot_check: Callable[[Entity], bool] | None = None
    snapshot_attrs: frozenset[str] = frozenset()
    # An entity matches only if one of its (selected) attributes has an instance in the
    # window; retrieving one entity by id does not require that.
    require_data: bool = True
    last_n: int | None = None
    max_instances: int = 10_000  # per attribute; more is a truncated (206) answer
    max_total: int = 50_000  # instances in one answer, shared out over its attributes
    aggregation: Aggregation | None = None
    offset: int = 0
    limit: int = 20
    count: bool = False


@dataclass(frozen=True)
class HistoryInstance:
    seq: int
    time: int  # the selected temporal property, ms
    doc: Instance  # internal expanded form; a deletion record holds `deletedAt`, no value


@dataclass
class Stats:
    """Mergeable statistics of one period (raw rows and hourly rollups add up)."""

    count: int = 0  # instances, deletion records included
    numbers: int = 0  # numeric values among them
    total: float = 0.0
    sumsq: float = 0.0
    low: float | None = None
    high: float | None = None
    distinct: int | None = None  # None: unknown (rolled-up rows keep no values)

    def merge(self, other: Stats) -> None:
        self.count += other.count
        self.numbers += other.numbers
        self.total += other.total
        self.sumsq += other.sumsq
        if other.low is not None and (self.low is None or other.low < self.low):
            self.low = other.low
        if other.high is not None and (self.high is None or other.high > self.high):
            self.high = other.high
        self.distinct = None


@dataclass(frozen=True)
class Bucket:
    start: int
    end: int
    stats: Stats


@dataclass
class Series:
    """One attribute of one entity in the answer."""

    attr: str  # expanded IRI
    attr_type: str = "Property"
    instances: list[HistoryInstance] = field(default_factory=list)  # oldest first
    buckets: list[Bucket] = field(default_factory=list)  # oldest first
    truncated: bool = False  # more matched than returned (cap or lastN)


@dataclass
class TemporalEntity:
    record: dict[str, Any]  # id, type (list), scope?, createdAt, modifiedAt, deletedAt?
    series: list[Series]


@dataclass(frozen=True)
class TemporalPage:
    entities: list[TemporalEntity]
    total: int | None  # set when the selection asked for a count


@dataclass(frozen=True)
class HistorySize:
    instances: int
    rollup_rows: int


class TemporalStore(Protocol):
    """History reads and temporal-API writes; see store/history.py for the rows."""

    async def query(self, tenant: str, selection: TemporalSelection) -> TemporalPage: ...

    async def upsert(
        self,
        tenant: str,
        entity_id: str,
        types: Sequence[str],
        scope: Sequence[str] | None,
        instances: Sequence[tuple[str, Instance]],
        *,
        must_exist: bool = False,
    ) -> bool:
        """Add (attribute IRI, instance) pairs; create the temporal entity if new.

        True when it was created. `must_exist` refuses an unknown entity
        (ResourceNotFound); creating one needs `types` (BadRequestData).
        """
        ...

    async def delete_entity(self, tenant: str, entity_id: str) -> None:
        """Forget the entity's whole history (ResourceNotFound if there is none)."""
        ...

    async def delete_attribute(
        self, tenant: str, entity_id: str, attr: str, *, dataset_id: str | None, delete_all: bool
    ) -> None:
        """Delete the attribute's instances: the default ones, one datasetId's, or all."""
        ...

    async def update_instance(
        self,
        tenant: str,
        entity_id: str,
        attr: str,
        seq: int,
        patch: Callable[[Instance], Instance],
    ) -> None:
        """Replace one stored instance by `patch(old)` (ResourceNotFound if absent)."""
        ...

    async def delete_instance(self, tenant: str, entity_id: str, attr: str, seq: int) -> None: ...

    async def roll_up(self, tenant: str, before_ms: int, limit: int) -> int:
        """Fold at most `limit` raw instances recorded before `before_ms` into hourly
        aggregates and delete them; returns how many (0: nothing left to do)."""
        ...

    async def prune_rollup(self, tenant: str, before_ms: int, limit: int) -> int:
        """Delete at most `limit` hourly aggregates of hours before `before_ms`."""
        ...

    async def size(self, tenant: str) -> HistorySize: ...
