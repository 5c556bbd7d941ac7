"""What a committed change leaves behind: history rows and a journal record.

Shared by the backends so that every one of them records the same history
(the temporal API reads it) and the same journal (subscriptions, the live
stream and the IoT agent's commands follow it). Both are written in the
transaction of the change itself: history never misses a change, and a
notification can never be lost between a commit and its delivery.

Series are keyed by 63-bit hashes of the entity id and the attribute IRI, so
a writer needs no lookup to place a row; the names live once in side tables.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import orjson

from dosi.hub.store.base import Change, JournalEntry
from dosi.ngsi.errors import BadRequestData, ResourceNotFound
from dosi.ngsi.model import ENTITY_RESERVED, Entity, Instance


def series_key(name: str) -> int:
    """A stable signed 63-bit key for an entity id or attribute IRI (fits SQL BIGINT)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big") >> 1


def to_ms(stamp: str) -> int:
    """ISO 8601 date-time -> epoch milliseconds (naive times are UTC)."""
    parsed = datetime.fromisoformat(stamp)
    if parsed.tzinfo is None:
        return int(parsed.timestamp() * 1000) - _local_offset_ms(parsed)
    return int(parsed.timestamp() * 1000)


def _local_offset_ms(naive: datetime) -> int:
    offset = naive.astimezone().utcoffset()
    return int(offset.total_seconds() * 1000) if offset else 0


def numeric(inst: Instance) -> float | None:
    """The number aggregations use: a Property's numeric value, else None."""
    value = inst.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def changed_attributes(before: Entity | None, after: Entity | None) -> list[str]:
    """Attributes created, updated or deleted between two states of one entity."""
    old = before or {}
    new = after or {}
    names = [k for k in new if k not in ENTITY_RESERVED and old.get(k) != new[k]]
    names.extend(k for k in old if k not in ENTITY_RESERVED and k not in new)
    return names


# One attribute instance as history keeps it: (entity key, attribute key, ts, recorded,
# num, doc). `ts` is the instance's observedAt, or when it was recorded if it has none;
# `recorded` is always the recording time (retention works on it). A deleted attribute
# is a row whose doc holds `deletedAt` and no value. Plain tuples: the write path makes
# one per stored instance.
HistoryRow = tuple[int, int, int, int, float | None, bytes]


def temporal_record(change: Change, now: str) -> dict[str, Any]:
    """The entity-level history record: id, types, scope and system times."""
    source = change.after if change.after is not None else change.before
    assert source is not None
    record: dict[str, Any] = {"id": change.id, "type": source["type"]}
    if "scope" in source:
        record["scope"] = source["scope"]
    record["createdAt"] = source.get("createdAt", now)
    record["modifiedAt"] = source.get("modifiedAt", now)
    if change.after is None:
        record["modifiedAt"] = now
        record["deletedAt"] = now
    return record


def history_rows(
    change: Change,
    now: str,
    attrs: list[str],
    times: dict[str, int],
    entity_key: int | None = None,
) -> list[HistoryRow]:
    """New or changed instances of the changed attributes `attrs`, and deletion markers.

    An instance equal to one the attribute already had is not recorded again,
    so touching one datasetId of a multi-attribute records just that one.
    Deleting the whole entity records no attribute rows: the entity record
    carries `deletedAt`. `times` caches parsed time stamps across calls (most
    instances of a transaction share their modifiedAt).
    """
    if change.after is None:
        return []
    before = change.before or {}
    after = change.after
    if entity_key is None:
        entity_key = series_key(change.id)
    now_ms = _ms(now, times)
    rows: list[HistoryRow] = []
    for attr in attrs:
        attr_key = attr_series_key(attr)
        old = before.get(attr, ())
        new = after.get(attr)
        if new is None:
            rows.extend(_deletion(entity_key, attr_key, inst, now, now_ms) for inst in old)
            continue
        for inst in new:
            if old and inst in old:
                continue
            modified = inst.get("modifiedAt")
            recorded = _ms(modified, times) if modified else now_ms
            observed = inst.get("observedAt")
            value = inst.get("value")
            num = float(value) if value.__class__ is int or value.__class__ is float else None
            rows.append(
                (
                    entity_key,
                    attr_key,
                    _ms(observed, times) if observed else recorded,
                    recorded,
                    num,
                    orjson.dumps(inst),
                )
            )
        if old:
            kept = {i.get("datasetId") for i in new}
            rows.extend(
                _deletion(entity_key, attr_key, inst, now, now_ms)
                for inst in old
                if inst.get("datasetId") not in kept
            )
    return rows


def _ms(stamp: str, times: dict[str, int]) -> int:
    ms = times.get(stamp)
    if ms is None:
        if len(times) > 4096:
            times.clear()
        ms = times[stamp] = to_ms(stamp)
    return ms


_ATTR_KEYS: dict[str, int] = {}


def attr_series_key(attr: str) -> int:
    """`series_key` memoised for attribute IRIs (a city has a few hundred of them)."""
    key = _ATTR_KEYS.get(attr)
    if key is None:
        if len(_ATTR_KEYS) > 65536:
            _ATTR_KEYS.clear()
        key = _ATTR_KEYS[attr] = series_key(attr)
    return key


def _deletion(entity_key: int, attr_key: int, inst: Instance, now: str, now_ms: int) -> HistoryRow:
    marker: dict[str, Any] = {"type": inst.get("type", "Property"), "deletedAt": now}
    if "datasetId" in inst:
        marker["datasetId"] = inst["datasetId"]
    return (entity_key, attr_key, now_ms, now_ms, None, orjson.dumps(marker))


def journal_record(change: Change, attrs: list[str]) -> dict[str, Any]:
    """What followers of the journal need to know about one change.

    `before` is None for a created entity, the whole entity for a deleted one,
    and for an update only id, type and the previous instances of `changed`
    (what `showChanges` and the attribute triggers need) to keep rows small.
    """
    before: dict[str, Any] | None = None
    if change.before is not None:
        if change.after is None:
            before = change.before
        else:
            before = {"id": change.id, "type": change.before["type"]}
            for attr in attrs:
                if attr in change.before:
                    before[attr] = change.before[attr]
    return {"id": change.id, "before": before, "after": change.after, "changed": attrs}


def journal_entry(seq: int, at: int, doc: bytes) -> JournalEntry:
    record = orjson.loads(doc)
    return JournalEntry(seq, at, record["id"], record["before"], record["after"], record["changed"])


class ChangeRecorder:
    """The history and journal rows of one transaction, whatever the backend.

    Both write plans (SQLite, PostgreSQL) hold one and flush its lists; the
    rows are derived here only, so the backends record exactly the same.
    """

    def __init__(self, *, history: bool = True) -> None:
        self.keep_history = history
        self.journal: list[tuple[int, bytes]] = []  # (commit ms, record)
        self.history: list[HistoryRow] = []
        self.attr_names: dict[int, str] = {}  # attribute key -> IRI
        self.records: dict[int, dict[str, Any]] = {}  # entity key -> its latest record
        self._times: dict[str, int] = {}

    def record(self, change: Change, now: str, now_ms: int) -> None:
        attrs = changed_attributes(change.before, change.after)
        self.journal.append((now_ms, orjson.dumps(journal_record(change, attrs))))
        if not self.keep_history:
            return
        entity_key = series_key(change.id)
        self.records[entity_key] = temporal_record(change, now)
        for attr in attrs:
            self.attr_names[attr_series_key(attr)] = attr
        self.history.extend(history_rows(change, now, attrs, self._times, entity_key))

    def entity_rows(self) -> list[tuple[int, str, str, bytes]]:
        """(key, id, first type, record) per entity, sorted (writers lock rows in one order)."""
        return sorted(
            (key, record["id"], record["type"][0], orjson.dumps(record))
            for key, record in self.records.items()
        )

    def type_rows(self) -> list[tuple[str, int]]:
        return sorted({(t, key) for key, record in self.records.items() for t in record["type"]})


def merged_record(
    record: dict[str, Any] | None,
    entity_id: str,
    types: Sequence[str],
    scope: Sequence[str] | None,
    *,
    must_exist: bool,
    now: str,
) -> tuple[dict[str, Any], bool]:
    """The entity record after a temporal-API write of instances; (record, created)."""
    created = record is None
    if record is None:
        if must_exist:
            raise ResourceNotFound(f"entity {entity_id} has no temporal representation")
        if not types:
            raise BadRequestData("a new temporal entity needs a type")
        record = {"id": entity_id, "type": list(types), "createdAt": now}
    else:
        record["type"] = [*record["type"], *(t for t in types if t not in record["type"])]
    if scope is not None:
        record["scope"] = list(scope)
    record["modifiedAt"] = now
    return record, created


def added_rows(
    entity_key: int,
    instances: Sequence[tuple[str, Instance]],
    now_ms: int,
    dumps: Callable[[Any], bytes] = orjson.dumps,
) -> tuple[dict[int, str], list[HistoryRow]]:
    """History rows for instances given to the temporal API, and their attribute names."""
    names: dict[int, str] = {}
    rows: list[HistoryRow] = []
    for attr, inst in instances:
        attr_key = attr_series_key(attr)
        names[attr_key] = attr
        observed = inst.get("observedAt")
        ts = to_ms(observed) if observed else now_ms
        rows.append((entity_key, attr_key, ts, now_ms, numeric(inst), dumps(inst)))
    return names, rows
