"""A subscription's members (clause 5.2.12) -> a validated, compiled `Spec`.

The subscription is kept as the client wrote it (`raw`, terms and all) plus
the @context it was written with; `compile_spec` checks every member and
compiles what matching and rendering need (entity selectors, q, geoQ,
scopeQ, expanded attribute names, the endpoint). Creation and every update
run it on the whole subscription, so a stored subscription is always valid.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import orjson

from dosi.hub.query import EntityFilter, compile_pattern
from dosi.ngsi.context import Context
from dosi.ngsi.errors import BadRequestData
from dosi.ngsi.geo import parse_geoquery
from dosi.ngsi.model import LOCATION, Entity
from dosi.ngsi.qlang import compile_q
from dosi.ngsi.render import CONCISE, NORMALIZED, SIMPLIFIED
from dosi.ngsi.scopeq import compile_scope
from dosi.ngsi.typeexpr import compile_types
from dosi.ngsi.values import parse_datetime, require_datetime, require_name, require_uri

JSON = "application/json"
JSON_LD = "application/ld+json"
GEO_JSON = "application/geo+json"
ACCEPTS = (JSON, JSON_LD, GEO_JSON)
SCHEMES = ("http", "https", "mqtt", "mqtts")
TRIGGERS = (
    "entityCreated",
    "entityUpdated",
    "entityDeleted",
    "attributeCreated",
    "attributeUpdated",
    "attributeDeleted",
)
DEFAULT_TRIGGERS = frozenset({"attributeCreated", "attributeUpdated"})
# entityUpdated is the three attribute triggers together (clause 5.2.12).
_ENTITY_UPDATED = frozenset({"attributeCreated", "attributeUpdated", "attributeDeleted"})
FORMATS = {
    "normalized": NORMALIZED,
    "concise": CONCISE,
    "keyValues": SIMPLIFIED,
    "simplified": SIMPLIFIED,
}
MAX_DOC_BYTES = 64 * 1024
MAX_SELECTORS = 100
MAX_NAMES = 256
MAX_PAIRS = 32
MAX_TEXT = 4096
MIN_INTERVAL_S = 1.0
# Header names (RFC 9110 tokens) and values without line breaks: receiverInfo becomes headers.
_TOKEN = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$")
_SIMPLE_TYPE = re.compile(r"^[^\s,|;()]+$")
# Members the hub fills in; accepted in a body (a GET result sent back) and ignored.
READ_ONLY = frozenset({"id", "type", "@context", "status", "createdAt", "modifiedAt", "deletedAt"})
STATUS_FIELDS = frozenset(
    {"status", "timesSent", "timesFailed", "lastNotification", "lastSuccess", "lastFailure"}
)
_KNOWN = frozenset(
    {
        "subscriptionName",
        "description",
        "entities",
        "watchedAttributes",
        "notificationTrigger",
        "timeInterval",
        "q",
        "geoQ",
        "csf",
        "scopeQ",
        "lang",
        "isActive",
        "notification",
        "expiresAt",
        "throttling",
        "jsonldContext",
        "temporalQ",
        "datasetId",
    }
)


@dataclass(frozen=True)
class Endpoint:
    uri: str
    scheme: str
    accept: str
    timeout_s: float | None
    cooldown_s: float | None
    receiver_info: tuple[tuple[str, str], ...]
    notifier_info: tuple[tuple[str, str], ...]

    def info(self, key: str, default: str) -> str:
        for k, v in self.notifier_info:
            if k == key:
                return v
        return default


@dataclass(frozen=True)
class Spec:
    """What the notifier needs of one subscription, compiled once."""

    id: str
    filter: EntityFilter
    watched: frozenset[str] | None
    triggers: frozenset[str]
    time_interval: float | None
    throttling: float | None
    expires_ms: int | None
    active: bool
    attributes: frozenset[str] | None
    form: str
    show_changes: bool
    sys_attrs: bool
    lang: str | None
    endpoint: Endpoint

    selects: Selector

    def status(self, now_ms: int) -> str:
        if self.expires_ms is not None and now_ms >= self.expires_ms:
            return "expired"
        return "active" if self.active else "paused"


class Selector:
    """An `EntityFilter` as a test of one entity state: selectors, q, geo (near too), scope."""

    __slots__ = ("_ids", "_key", "_predicate", "_types", "_window")

    def __init__(self, flt: EntityFilter) -> None:
        # A query leaves ids and plain type lists to the store's indexes; here they count.
        self._ids = flt.ids
        self._types = flt.types
        self._predicate = flt.predicate()
        self._window = flt.key_range()
        self._key = flt.order_key()

    def __call__(self, entity: Entity) -> bool:
        if self._ids is not None and entity["id"] not in self._ids:
            return False
        if self._types is not None and not self._types.matches(entity.get("type", ())):
            return False
        if self._predicate is not None and not self._predicate(entity):
            return False
        if self._window is not None and self._key is not None:
            return self._window[0] <= self._key(entity) <= self._window[1]
        return True


def compile_spec(sub_id: str, raw: dict[str, Any], ctx: Context, *, now_ms: int) -> Spec:
    """Validate every member of `raw` (BadRequestData) and compile it.

    `now_ms` rejects an expiresAt already past; stored subscriptions are
    recompiled with `now_ms=0`.
    """
    if len(orjson.dumps(raw)) > MAX_DOC_BYTES:
        raise BadRequestData(f"a subscription must not exceed {MAX_DOC_BYTES} bytes")
    for key in ("subscriptionName", "description", "lang"):
        if key in raw and not (isinstance(raw[key], str) and len(raw[key]) <= MAX_TEXT):
            raise BadRequestData(f"{key} must be a string of at most {MAX_TEXT} characters")
    selectors = _selectors(raw.get("entities"), ctx)
    watched = _names(raw.get("watchedAttributes"), "watchedAttributes", ctx)
    interval = _positive(raw.get("timeInterval"), "timeInterval")
    throttling = _positive(raw.get("throttling"), "throttling")
    if interval is not None:
        if interval < MIN_INTERVAL_S:
            raise BadRequestData(f"timeInterval must be at least {MIN_INTERVAL_S:g} second")
        if watched is not None or throttling is not None or "notificationTrigger" in raw:
            raise BadRequestData(
                "timeInterval (periodic notification) excludes watchedAttributes, "
                "throttling and notificationTrigger"
            )
        if selectors is None:
            raise BadRequestData("a periodic subscription (timeInterval) needs entities")
    elif selectors is None and watched is None:
        raise BadRequestData("a subscription needs entities, watchedAttributes or both")
    q = raw.get("q")
    if q is not None and not isinstance(q, str):
        raise BadRequestData("q must be a string")
    scope_q = raw.get("scopeQ")
    if scope_q is not None and not isinstance(scope_q, str):
        raise BadRequestData("scopeQ must be a string")
    geo = _geo(raw.get("geoQ"))
    flt = EntityFilter(
        q=compile_q(q, ctx.expand) if q is not None else None,
        scope=compile_scope(scope_q) if scope_q is not None else None,
        geo=geo,
        geo_property=ctx.expand(geo.geoproperty) if geo is not None else LOCATION,
        selectors=selectors,
    )
    active = raw.get("isActive", True)
    if not isinstance(active, bool):
        raise BadRequestData("isActive must be true or false")
    expires_ms = None
    if "expiresAt" in raw:
        stamp = require_datetime(raw["expiresAt"], "expiresAt")
        expires_ms = int(parse_datetime(stamp).timestamp() * 1000)
        if expires_ms <= now_ms:
            raise BadRequestData("expiresAt must be in the future")
    if "jsonldContext" in raw:
        require_uri(raw["jsonldContext"], "jsonldContext")
    notification = raw.get("notification")
    if not isinstance(notification, dict):
        raise BadRequestData("a subscription needs a notification member (an object)")
    form = notification.get("format", "normalized")
    if form not in FORMATS:
        raise BadRequestData("notification.format must be normalized, concise or keyValues")
    show_changes = _flag(notification, "showChanges")
    if show_changes and FORMATS[form] == SIMPLIFIED:
        raise BadRequestData("showChanges cannot be combined with the keyValues format")
    return Spec(
        id=sub_id,
        filter=flt,
        watched=watched,
        triggers=_triggers(raw.get("notificationTrigger")),
        time_interval=interval,
        throttling=throttling,
        expires_ms=expires_ms,
        active=active,
        attributes=_names(notification.get("attributes"), "notification.attributes", ctx),
        form=FORMATS[form],
        show_changes=show_changes,
        sys_attrs=_flag(notification, "sysAttrs"),
        lang=raw.get("lang"),
        endpoint=_endpoint(notification.get("endpoint")),
        selects=Selector(flt),
    )


def check_members(raw: dict[str, Any]) -> None:
    """Unknown top-level members are refused, so a misspelt one is not silently ignored."""
    unknown = set(raw) - _KNOWN - READ_ONLY
    if unknown:
        raise BadRequestData(f"unknown subscription members: {', '.join(sorted(unknown))}")


def _selectors(value: Any, ctx: Context) -> tuple[EntityFilter, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_SELECTORS:
        raise BadRequestData(f"entities must be a list of 1 to {MAX_SELECTORS} selectors")
    out = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("type"), str):
            raise BadRequestData("each entities selector must be an object with a type")
        unknown = set(item) - {"id", "idPattern", "type"}
        if unknown:
            raise BadRequestData(f"unknown entity selector members: {', '.join(sorted(unknown))}")
        ids = frozenset({require_uri(item["id"], "entities id")}) if "id" in item else None
        pattern = compile_pattern(item["idPattern"]) if "idPattern" in item else None
        out.append(
            EntityFilter(ids=ids, id_pattern=pattern, types=compile_types(item["type"], ctx.expand))
        )
    return tuple(out)


def _names(value: Any, what: str, ctx: Context) -> frozenset[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_NAMES:
        raise BadRequestData(f"{what} must be a list of 1 to {MAX_NAMES} attribute names")
    return frozenset(ctx.expand(require_name(name, what)) for name in value)


def _triggers(value: Any) -> frozenset[str]:
    if value is None:
        return DEFAULT_TRIGGERS
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, str) and v in TRIGGERS for v in value)
    ):
        raise BadRequestData(f"notificationTrigger must be a non-empty list of: {TRIGGERS}")
    found = set(value)
    if "entityUpdated" in found:
        found |= _ENTITY_UPDATED
    return frozenset(found)


def _positive(value: Any, what: str) -> float | None:
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
        or value > 10**9
    ):
        raise BadRequestData(f"{what} must be a positive number of seconds")
    return float(value)


def _flag(obj: dict[str, Any], key: str) -> bool:
    value = obj.get(key, False)
    if not isinstance(value, bool):
        raise BadRequestData(f"notification.{key} must be true or false")
    return value


def _geo(value: Any) -> Any:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadRequestData("geoQ must be an object with georel, geometry and coordinates")
    unknown = set(value) - {"georel", "geometry", "coordinates", "geoproperty"}
    if unknown:
        raise BadRequestData(f"unknown geoQ members: {', '.join(sorted(unknown))}")
    geo = parse_geoquery(
        value.get("georel"),
        value.get("geometry"),
        value.get("coordinates"),
        value.get("geoproperty"),
    )
    if geo is None:
        raise BadRequestData("geoQ needs georel, geometry and coordinates")
    return geo


def _endpoint(value: Any) -> Endpoint:
    if not isinstance(value, dict):
        raise BadRequestData("notification.endpoint must be an object with a uri")
    uri = require_uri(value.get("uri"), "notification.endpoint.uri")
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise BadRequestData(f"notification.endpoint.uri must use one of {', '.join(SCHEMES)}")
    try:
        port_ok = parts.port is None or 0 < parts.port < 65536
    except ValueError:
        port_ok = False
    if not parts.hostname or not port_ok:
        raise BadRequestData("notification.endpoint.uri needs a host (and a valid port)")
    accept = value.get("accept", JSON)
    if accept not in ACCEPTS:
        raise BadRequestData(f"notification.endpoint.accept must be one of {', '.join(ACCEPTS)}")
    timeout = value.get("timeout")
    cooldown = value.get("cooldown")
    for name, number in (("timeout", timeout), ("cooldown", cooldown)):
        if number is not None and (
            isinstance(number, bool)
            or not isinstance(number, int | float)
            or not 0 <= number <= 86_400_000
        ):
            raise BadRequestData(f"notification.endpoint.{name} must be milliseconds (>= 0)")
    notifier_info = _pairs(value.get("notifierInfo"), "notifierInfo")
    for key, text in notifier_info:
        if key == "MQTT-QoS" and text not in ("0", "1", "2"):
            raise BadRequestData("notifierInfo MQTT-QoS must be 0, 1 or 2")
        if key == "MQTT-Version" and text not in ("mqtt3.1.1", "mqtt5.0"):
            raise BadRequestData("notifierInfo MQTT-Version must be mqtt3.1.1 or mqtt5.0")
    if scheme.startswith("mqtt"):
        topic = unquote(parts.path).strip("/")
        if not topic or "+" in topic or "#" in topic or "#" in uri:
            raise BadRequestData(
                "an mqtt endpoint uri names the topic in its path (no + or # wildcards)"
            )
    return Endpoint(
        uri=uri,
        scheme=scheme,
        accept=accept,
        timeout_s=timeout / 1000 if timeout else None,
        cooldown_s=cooldown / 1000 if cooldown else None,
        receiver_info=_pairs(value.get("receiverInfo"), "receiverInfo"),
        notifier_info=notifier_info,
    )


def _pairs(value: Any, what: str) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_PAIRS:
        raise BadRequestData(f"{what} must be a list of at most {MAX_PAIRS} key/value pairs")
    out = []
    for item in value:
        if not isinstance(item, dict) or set(item) != {"key", "value"}:
            raise BadRequestData(f"each {what} item must be an object with key and value")
        key, text = item["key"], item["value"]
        if not isinstance(key, str) or not _TOKEN.match(key):
            raise BadRequestData(f"{what} key {key!r} is not a valid header name")
        if not isinstance(text, str) or len(text) > 1024 or any(c in text for c in "\r\n\0"):
            raise BadRequestData(f"{what} value for {key} must be one line of text")
        out.append((key, text))
    return tuple(out)


def is_simple_type(text: str) -> bool:
    """A single type name (not a type expression): it can be compacted for display."""
    return bool(_SIMPLE_TYPE.match(text))
