"""NGSI-LD q-language (ETSI GS CIM 009 clause 4.9): the AST, its rendering, and literals.

Kept apart from parsing (`qlang_parser.py`) and evaluation (`qlang.py`) so an AST
can be built, rendered and parsed back in tests without an entity in sight.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Literal, TypeAlias

import re2

from dosi.ngsi.errors import BadRequestData

MAX_QUERY_LENGTH = 8192
MAX_DEPTH = 32
MAX_PATTERN_LENGTH = 1000

# Path segments that address instance metadata rather than a sub-attribute.
METADATA = frozenset({"observedAt", "createdAt", "modifiedAt", "unitCode", "datasetId"})

Op: TypeAlias = Literal["==", "!=", ">", ">=", "<", "<=", "~=", "!~="]
# Longest first, so "!~=" is not read as "!" and ">=" not as ">".
OPERATORS: tuple[Op, ...] = ("==", "!~=", "!=", ">=", "<=", "~=", ">", "<")
ORDERING = frozenset({">", ">=", "<", "<="})

Kind: TypeAlias = Literal["number", "string", "bool", "datetime", "date", "time", "uri", "term"]
COMPARABLE = frozenset({"number", "string", "datetime", "date", "time"})
TEMPORAL = frozenset({"datetime", "date", "time"})
Scalar: TypeAlias = int | float | str | bool | dt.datetime | dt.date | dt.time
TemporalKind: TypeAlias = Literal["datetime", "date", "time"]
Temporal: TypeAlias = tuple[TemporalKind, dt.datetime | dt.date | dt.time]

_TZ = r"(Z|[+-]\d{2}:?\d{2})?"
_CLOCK = r"(\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?"
_DATETIME_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})T" + _CLOCK + _TZ, re.ASCII)
_DATE_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})", re.ASCII)
_TIME_RE = re.compile(_CLOCK + _TZ, re.ASCII)


# --- literals -------------------------------------------------------------------------


def _tz(text: str | None) -> dt.tzinfo:
    """Zone designator -> tzinfo; a missing one means UTC, as NGSI-LD timestamps are UTC."""
    if not text or text == "Z":
        return dt.UTC
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:])
    if hours > 23 or minutes > 59:
        raise ValueError("bad zone offset")
    offset = dt.timedelta(hours=hours, minutes=minutes)
    return dt.timezone(-offset if text[0] == "-" else offset)


def _clock(h: str, m: str, s: str | None, frac: str | None) -> tuple[int, int, int, int]:
    micro = int((frac or "0")[:6].ljust(6, "0"))
    return int(h), int(m), int(s or 0), micro


def parse_temporal(text: str) -> Temporal | None:
    """Read an ISO 8601 DateTime, Date or Time; None if it is not one (or is out of range)."""
    try:
        if m := _DATETIME_RE.fullmatch(text):
            y, mo, d, h, mi, s, frac, tz = m.groups()
            clock = _clock(h, mi, s, frac)
            return "datetime", dt.datetime(int(y), int(mo), int(d), *clock, tzinfo=_tz(tz))
        if m := _DATE_RE.fullmatch(text):
            return "date", dt.date(*(int(g) for g in m.groups()))
        if m := _TIME_RE.fullmatch(text):
            h, mi, s, frac, tz = m.groups()
            return "time", dt.time(*_clock(h, mi, s, frac), tzinfo=_tz(tz))
    except ValueError:
        return None
    return None


def looks_temporal(text: str) -> bool:
    """Shaped like a DateTime, Date or Time (whether or not the fields are in range)."""
    return bool(
        _DATETIME_RE.fullmatch(text) or _DATE_RE.fullmatch(text) or _TIME_RE.fullmatch(text)
    )


def temporal_cmp(a: Temporal, b: Temporal) -> int | None:
    """Sign of a - b; a Date meets a DateTime at midnight UTC; other pairs don't compare."""
    (ka, va), (kb, vb) = a, b
    if ka != kb:
        if {ka, kb} != {"datetime", "date"}:
            return None
        va, vb = _as_datetime(va), _as_datetime(vb)
    return (va > vb) - (va < vb)  # type: ignore[operator]


def _as_datetime(v: dt.datetime | dt.date | dt.time) -> dt.datetime:
    if isinstance(v, dt.datetime):
        return v
    assert isinstance(v, dt.date)
    return dt.datetime(v.year, v.month, v.day, tzinfo=dt.UTC)


def quote(text: str) -> str:
    """A q-language quoted string for `text` (only backslash and quote are escaped)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


_REGEX_OPTIONS = re2.Options()
_REGEX_OPTIONS.log_errors = False
_REGEX_OPTIONS.max_mem = 4 << 20


def compile_regex(source: str) -> re2._Regexp:
    """RE2 only: linear-time matching, so a hostile pattern cannot stall the hub."""
    if len(source) > MAX_PATTERN_LENGTH:
        raise BadRequestData(f"Invalid q: pattern longer than {MAX_PATTERN_LENGTH} characters")
    try:
        return re2.compile(source, _REGEX_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else "invalid"
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise BadRequestData(f"Invalid q: bad regular expression {source!r}: {reason}") from None


# --- AST ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Value:
    """One literal; `text` is how it was written (unquoted), used to render it back."""

    kind: Kind
    value: Scalar
    text: str

    def render(self) -> str:
        return quote(self.text) if self.kind == "string" else self.text


@dataclass(frozen=True, slots=True)
class Range:
    low: Value
    high: Value

    def render(self) -> str:
        return f"{self.low.render()}..{self.high.render()}"


@dataclass(frozen=True, slots=True)
class ValueList:
    items: tuple[Value, ...]

    def render(self) -> str:
        return ",".join(v.render() for v in self.items)


@dataclass(frozen=True, slots=True)
class Pattern:
    source: str

    def render(self) -> str:
        # Quote marks become \x22 so the rendered pattern never needs a quote escape.
        out, i = ['"'], 0
        while i < len(self.source):
            c = self.source[i]
            if c == "\\" and i + 1 < len(self.source):
                nxt = self.source[i + 1]
                out.append("\\x22" if nxt == '"' else c + nxt)
                i += 2
                continue
            out.append("\\x22" if c == '"' else c)
            i += 1
        return "".join(out) + '"'


Operand: TypeAlias = Value | Range | ValueList | Pattern


@dataclass(frozen=True, slots=True)
class AttrPath:
    """attr(.sub)*(.metadata)?([key])*; `attr` and `subs` are expanded, trail keys are not."""

    attr: str
    subs: tuple[str, ...] = ()
    meta: str | None = None
    trail: tuple[str, ...] = ()

    def render(self) -> str:
        text = ".".join((self.attr, *self.subs, *((self.meta,) if self.meta else ())))
        return text + "".join(f"[{key}]" for key in self.trail)


@dataclass(frozen=True, slots=True)
class Term:
    """A comparison, or (op None) an existence test; `negated` is `!attr`, non-existence."""

    path: AttrPath
    op: Op | None = None
    operand: Operand | None = None
    negated: bool = False

    def render(self) -> str:
        if self.op is None or self.operand is None:
            return ("!" if self.negated else "") + self.path.render()
        return self.path.render() + self.op + self.operand.render()


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Node, ...]

    def render(self) -> str:
        return ";".join(f"({i.render()})" if isinstance(i, Or) else i.render() for i in self.items)


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Node, ...]

    def render(self) -> str:
        return "|".join(i.render() for i in self.items)


Node: TypeAlias = Term | And | Or
