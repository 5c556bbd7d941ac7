"""The NDJSON export format: one JSON object per line, written and checked here.

    {"dosi": "export", "version": 1, "tenant": null, "exportedAt": "...", "schemaVersion": 2}
    {"kind": "context", "key": "<localId>", "record": {...hosted @context record...}}
    {"kind": "entity", "tenant": "", "entity": {...internal expanded entity...}}
    {"kind": "history", "tenant": "", "id": "<entity id>", "record": {...temporal record...},
     "attr": "<IRI>", "instances": [{"ts": ms, "recorded": ms, "doc": {...instance...}}],
     "hourly": [{"hour": ms, "n": .., "numbers": .., "total": .., "sumsq": .., "low": ..,
                 "high": ..}]}
    {"kind": "subscription", "tenant": "", "id": "<id>", "doc": {...}, "status": {...}|null}

Tenant "" is the default tenant. Every history line carries its entity's
record, so each line stands alone and imports in one transaction; a record
without history has a line without `attr`. Times in history lines are epoch
milliseconds, as the store keeps them (`ts`: observedAt, else the recording
time). Hosted @contexts are hub-wide, so their lines name no tenant.

Import reads only what it checked: every line is parsed into a typed item
before anything is written (`parse_line`), and an error names the line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from dosi.hub.store.dump import Hourly, RawInstance, Record
from dosi.hub.subscriptions.model import check_members
from dosi.ngsi.errors import NgsiError
from dosi.ngsi.geojson import validate_geometry
from dosi.ngsi.model import ATTRIBUTE_TYPES, ENTITY_RESERVED, VALUE_KEY, Entity
from dosi.ngsi.values import is_uri, require_datetime, require_uri

FORMAT_VERSION = 1
MAX_LINE_BYTES = 64 * 1024 * 1024  # one line is parsed whole: this bounds import memory
MAX_ROWS_PER_LINE = 100_000
_INT64 = 2**63
_SPACE = re.compile(r"[\s\x00-\x1f\x7f]")
_NAMES: set[str] = set()
_TIMES: set[str] = set()
_TENANT_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:/-")


class LineError(Exception):
    """A line that cannot be imported; the message names it."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line


class _Bad(Exception):
    """A check failed (raised inside the checks, turned into LineError with the number)."""


@dataclass(frozen=True)
class Header:
    version: int
    tenant: str | None


@dataclass(frozen=True)
class ContextItem:
    key: str
    value: bytes  # the kv row, as context_store keeps it


@dataclass(frozen=True)
class EntityItem:
    tenant: str
    entity: Entity


@dataclass(frozen=True)
class HistoryItem:
    tenant: str
    record: Record
    attr: str | None
    instances: list[RawInstance]
    hourly: list[Hourly]


@dataclass(frozen=True)
class SubscriptionItem:
    tenant: str
    id: str
    doc: bytes
    status: bytes | None


Item = ContextItem | EntityItem | HistoryItem | SubscriptionItem


# -- writing ---------------------------------------------------------------------------------
def _line(obj: dict[str, Any]) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE)


def header_line(tenant: str | None, exported_at: str, schema_version: int) -> bytes:
    return _line(
        {
            "dosi": "export",
            "version": FORMAT_VERSION,
            "tenant": tenant,
            "exportedAt": exported_at,
            "schemaVersion": schema_version,
        }
    )


def context_line(key: str, value: bytes) -> bytes:
    return _line({"kind": "context", "key": key, "record": orjson.loads(value)})


def entity_line(tenant: str, entity: Entity) -> bytes:
    return _line({"kind": "entity", "tenant": tenant, "entity": entity})


def history_line(
    tenant: str,
    record: Record,
    attr: str | None = None,
    instances: list[RawInstance] | None = None,
    hourly: list[Hourly] | None = None,
) -> bytes:
    obj: dict[str, Any] = {"kind": "history", "tenant": tenant, "id": record["id"]}
    obj["record"] = record
    if attr is not None:
        obj["attr"] = attr
    if instances:
        obj["instances"] = [
            {"ts": i.ts, "recorded": i.recorded, "doc": orjson.Fragment(i.doc)} for i in instances
        ]
    if hourly:
        obj["hourly"] = [
            {
                "hour": h.hour,
                "n": h.n,
                "numbers": h.numbers,
                "total": h.total,
                "sumsq": h.sumsq,
                "low": h.low,
                "high": h.high,
            }
            for h in hourly
        ]
    return _line(obj)


def subscription_line(tenant: str, sub_id: str, doc: bytes, status: bytes | None) -> bytes:
    return _line(
        {
            "kind": "subscription",
            "tenant": tenant,
            "id": sub_id,
            "doc": orjson.loads(doc),
            "status": orjson.loads(status) if status else None,
        }
    )


# -- reading ---------------------------------------------------------------------------------
def parse_header(number: int, raw: bytes) -> Header:
    obj = _object(number, raw)
    if obj.get("dosi") != "export":
        raise LineError(number, 'not a dosi export: the first line must be {"dosi": "export", ...}')
    version = obj.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise LineError(number, "the header has no format version")
    if version > FORMAT_VERSION:
        raise LineError(
            number,
            f"export format version {version} is newer than this dosi reads ({FORMAT_VERSION})",
        )
    tenant = obj.get("tenant")
    return Header(version, tenant if isinstance(tenant, str) else None)


def parse_line(number: int, raw: bytes) -> Item:
    """One line after the header, fully checked (LineError names the line)."""
    obj = _object(number, raw)
    try:
        kind = obj.get("kind")
        if kind == "entity":
            return EntityItem(_tenant(obj), _entity(obj.get("entity")))
        if kind == "history":
            return _history(obj)
        if kind == "subscription":
            return _subscription(obj)
        if kind == "context":
            return _context(obj)
        raise _Bad(f"unknown kind {kind!r} (entity, history, subscription or context)")
    except (_Bad, NgsiError) as exc:
        raise LineError(number, _message(exc)) from None


def _message(exc: Exception) -> str:
    return exc.detail if isinstance(exc, NgsiError) else str(exc)


def _object(number: int, raw: bytes) -> dict[str, Any]:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise LineError(number, f"not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise LineError(number, "not a JSON object")
    return obj


def _tenant(obj: dict[str, Any]) -> str:
    tenant = obj.get("tenant")
    if not isinstance(tenant, str) or len(tenant) > 128 or not set(tenant) <= _TENANT_CHARS:
        raise _Bad(f'tenant must be a tenant name ("" for the default), got {tenant!r}')
    return tenant


def _name(value: Any, what: str) -> str:
    """An expanded type or attribute IRI as the store keeps it (names repeat: cached)."""
    if isinstance(value, str) and value in _NAMES:
        return value
    if not isinstance(value, str) or not value or len(value) > 2048 or value.startswith("@"):
        raise _Bad(f"{what} must be a non-empty name, got {value!r:.80}")
    if _SPACE.search(value):
        raise _Bad(f"{what} {value!r:.80} contains whitespace or control characters")
    if len(_NAMES) >= 65_536:
        _NAMES.clear()
    _NAMES.add(value)
    return value


def _datetime(value: Any, what: str) -> None:
    """A DateTime the store can parse (time stamps repeat across instances: cached)."""
    if isinstance(value, str) and value in _TIMES:
        return
    require_datetime(value, what)
    if len(_TIMES) >= 65_536:
        _TIMES.clear()
    _TIMES.add(value)


def _types(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not value:
        raise _Bad(f"{what} must be a non-empty list of types")
    return [_name(t, what) for t in value]


def _scope(value: Any) -> None:
    if not isinstance(value, list) or not all(isinstance(s, str) and s for s in value):
        raise _Bad("scope must be a list of scope paths")


def _entity(entity: Any) -> Entity:
    """The internal expanded form (model.py), checked as far as the store relies on it."""
    if not isinstance(entity, dict):
        raise _Bad("entity must be a JSON object")
    if not is_uri(entity.get("id")):
        raise _Bad(f"entity id must be a URI, got {entity.get('id')!r:.80}")
    _types(entity.get("type"), "entity type")
    for key in ("createdAt", "modifiedAt"):
        _datetime(entity.get(key), f"{key} of {entity['id']}")
    if "scope" in entity:
        _scope(entity["scope"])
    if "@context" in entity:
        raise _Bad("a stored entity has no @context")
    for attr, instances in entity.items():
        if attr in ENTITY_RESERVED:
            continue
        _name(attr, "attribute name")
        if not isinstance(instances, list) or not instances:
            raise _Bad(f"attribute {attr} must be a non-empty list of instances")
        datasets: set[Any] = set()
        for inst in instances:
            _instance(attr, inst)
            if inst.get("datasetId") in datasets:
                raise _Bad(f"attribute {attr} repeats datasetId {inst.get('datasetId')}")
            datasets.add(inst.get("datasetId"))
    return entity


def _instance(attr: str, inst: Any, *, history: bool = False) -> None:
    if not isinstance(inst, dict):
        raise _Bad(f"an instance of {attr} must be a JSON object")
    kind = inst.get("type")
    if kind not in ATTRIBUTE_TYPES:
        raise _Bad(f"an instance of {attr} has unknown type {kind!r:.40}")
    deleted = history and "deletedAt" in inst
    if not deleted and VALUE_KEY[kind] not in inst:
        raise _Bad(f"an instance of {attr} has no {VALUE_KEY[kind]}")
    if kind == "GeoProperty" and not deleted:
        validate_geometry(inst["value"])
    if "datasetId" in inst and not is_uri(inst["datasetId"]):
        raise _Bad(f"datasetId of {attr} must be a URI")
    for key in ("observedAt", "createdAt", "modifiedAt", "deletedAt"):
        if key in inst:
            _datetime(inst[key], f"{key} of {attr}")


def _int(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not -_INT64 <= value < _INT64:
        raise _Bad(f"{what} must be a 64-bit integer, got {value!r:.40}")
    return value


def _number(value: Any, what: str, *, optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise _Bad(f"{what} must be a number, got {value!r:.40}")
    return float(value)


def _rows(obj: dict[str, Any], key: str) -> list[Any]:
    rows = obj.get(key, [])
    if not isinstance(rows, list) or len(rows) > MAX_ROWS_PER_LINE:
        raise _Bad(f"{key} must be a list of at most {MAX_ROWS_PER_LINE:,} rows")
    return rows


def _history(obj: dict[str, Any]) -> HistoryItem:
    tenant = _tenant(obj)
    record = obj.get("record")
    entity_id = obj.get("id")
    if not is_uri(entity_id):
        raise _Bad(f"history id must be an entity id, got {entity_id!r:.80}")
    if not isinstance(record, dict) or record.get("id") != entity_id:
        raise _Bad("history record must be an object with the line's id")
    _types(record.get("type"), "history record type")
    for key in ("createdAt", "modifiedAt", "deletedAt"):
        if key in record:
            _datetime(record[key], f"{key} of the history record")
    if "scope" in record:
        _scope(record["scope"])
    attr = obj.get("attr")
    if attr is None:
        if obj.get("instances") or obj.get("hourly"):
            raise _Bad("history rows need the attribute they belong to (attr)")
        return HistoryItem(tenant, record, None, [], [])
    _name(attr, "history attr")
    instances = []
    for row in _rows(obj, "instances"):
        if not isinstance(row, dict):
            raise _Bad("each history instance must be an object")
        _instance(attr, row.get("doc"), history=True)
        instances.append(
            RawInstance(
                _int(row.get("ts"), "ts"), _int(row.get("recorded"), "recorded"),
                orjson.dumps(row["doc"]),
            )
        )  # fmt: skip
    hourly = []
    for row in _rows(obj, "hourly"):
        if not isinstance(row, dict):
            raise _Bad("each hourly row must be an object")
        hourly.append(
            Hourly(
                _int(row.get("hour"), "hour"),
                _int(row.get("n"), "n"),
                _int(row.get("numbers"), "numbers"),
                _number(row.get("total"), "total") or 0.0,
                _number(row.get("sumsq"), "sumsq") or 0.0,
                _number(row.get("low"), "low", optional=True),
                _number(row.get("high"), "high", optional=True),
            )
        )
    return HistoryItem(tenant, record, attr, instances, hourly)


def _subscription(obj: dict[str, Any]) -> SubscriptionItem:
    tenant = _tenant(obj)
    sub_id = require_uri(obj.get("id"), "subscription id")
    doc = obj.get("doc")
    if not isinstance(doc, dict) or not isinstance(doc.get("raw"), dict) or "context" not in doc:
        raise _Bad("subscription doc must be an object with raw and context")
    check_members(doc["raw"])
    for key in ("createdAt", "modifiedAt"):
        _datetime(doc.get(key), f"{key} of the subscription")
    status = obj.get("status")
    if status is not None and not isinstance(status, dict):
        raise _Bad("subscription status must be an object or null")
    return SubscriptionItem(
        tenant, sub_id, orjson.dumps(doc), orjson.dumps(status) if status is not None else None
    )


def _context(obj: dict[str, Any]) -> ContextItem:
    key = obj.get("key")
    record = obj.get("record")
    if not isinstance(key, str) or not key or len(key) > 256:
        raise _Bad("context key must be a non-empty string")
    if not isinstance(record, dict) or record.get("localId") != key:
        raise _Bad("context record must be an object whose localId is the key")
    document = record.get("document")
    if not isinstance(document, dict) or "@context" not in document:
        raise _Bad("context record has no @context document")
    return ContextItem(key, orjson.dumps(record))
