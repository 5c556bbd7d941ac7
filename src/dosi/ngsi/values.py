"""Small validators for NGSI-LD scalar values: URIs, names, timestamps."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Protocol

from dosi.ngsi.errors import BadRequestData

# RFC 3986 scheme followed by ':' and no whitespace or characters NGSI-LD forbids in ids.
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:[^\s<>\"{}|\\^`]*$")
# Clause 4.6.2: characters not allowed in attribute names and entity types.
# Control characters are never part of a name; "@" starts JSON-LD keywords.
_FORBIDDEN_NAME_CHARS = re.compile(r"[\x00-\x1f\x7f\s<>\"'=;()&?\\]")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?$")

MAX_NAME_LENGTH = 512
MAX_ID_LENGTH = 2048


class Expander(Protocol):
    """What parsing and rendering need from an @context."""

    def expand(self, term: str) -> str: ...

    def compact(self, iri: str) -> str: ...


def is_uri(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= MAX_ID_LENGTH and bool(_URI.match(value))


def require_uri(value: Any, what: str) -> str:
    if not is_uri(value):
        raise BadRequestData(f"{what} must be a URI, got {_short(value)}")
    return str(value)


_VALID_NAMES: set[str] = set()
_VALID_NAMES_MAX = 65_536


def require_name(value: Any, what: str) -> str:
    """An attribute name or entity type as written by a client (a term or an IRI)."""
    if not isinstance(value, str) or not value:
        raise BadRequestData(f"{what} must be a non-empty string, got {_short(value)}")
    if value in _VALID_NAMES:  # names repeat across entities: check each once
        return value
    if len(value) > MAX_NAME_LENGTH or _FORBIDDEN_NAME_CHARS.search(value) or value.startswith("@"):
        raise BadRequestData(f"{what} {_short(value)} contains forbidden characters")
    if len(_VALID_NAMES) >= _VALID_NAMES_MAX:
        _VALID_NAMES.clear()
    _VALID_NAMES.add(value)
    return value


def require_datetime(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _DATETIME.match(value):
        raise BadRequestData(f"{what} must be an ISO 8601 DateTime, got {_short(value)}")
    try:
        parse_datetime(value)
    except ValueError as exc:
        raise BadRequestData(f"{what} is not a valid DateTime: {exc}") from None
    return value


def parse_datetime(value: str) -> datetime:
    """ISO 8601 -> aware datetime (naive input is taken as UTC)."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def now_iso() -> str:
    """The hub's clock for createdAt/modifiedAt: UTC, microseconds, 'Z'."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
