"""Temporal query parameters (clauses 4.11, 5.2.21, 6.18.3.2): window, lastN, representation.

One parser for GET parameters and for the `temporalQ` member of a POST query
body (which wins over the query string), so both entry points agree.

Semantics chosen where the text leaves room: `before` is t < timeAt, `after`
is t > timeAt and `between` is timeAt <= t < endTimeAt, so windows tile and
aggregation periods [start, start + duration) line up with them. Without
`timerel` the whole history is selected.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import isodate

from dosi.hub.query import split_list
from dosi.hub.store.history import to_ms
from dosi.hub.store.temporal import TIME_PROPERTIES, Aggregation, TimeWindow
from dosi.ngsi.errors import BadRequestData
from dosi.ngsi.values import require_datetime

NORMALIZED = "normalized"
CONCISE = "concise"
TEMPORAL_VALUES = "temporalValues"
AGGREGATED_VALUES = "aggregatedValues"
AGGR_METHODS = ("totalCount", "distinctCount", "sum", "avg", "min", "max", "stddev", "sumsq")
TIMERELS = ("before", "after", "between")
_FORMATS = {
    "normalized": NORMALIZED,
    "concise": CONCISE,
    "temporalValues": TEMPORAL_VALUES,
    "simplified": TEMPORAL_VALUES,
    "keyValues": TEMPORAL_VALUES,
    "aggregatedValues": AGGREGATED_VALUES,
}
_OPTIONS = {*_FORMATS, "sysAttrs"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
MAX_DURATION_TEXT = 64


@dataclass(frozen=True)
class TemporalParams:
    window: TimeWindow
    timerel: str | None = None
    time_at: int | None = None
    end_time_at: int | None = None
    last_n: int | None = None
    form: str = NORMALIZED
    sys_attrs: bool = False
    lang: str | None = None
    aggregation: Aggregation | None = None


def parse_temporal(
    params: Mapping[str, Any], temporal_q: Mapping[str, Any] | None = None
) -> TemporalParams:
    """`params`: the query string; `temporal_q`: a POST body's temporalQ (takes precedence)."""
    merged: dict[str, Any] = dict(params)
    if temporal_q is not None:
        if not isinstance(temporal_q, Mapping):
            raise BadRequestData("temporalQ must be an object")
        merged.update(temporal_q)
    prop = _text(merged.get("timeproperty"), "timeproperty") or "observedAt"
    if prop not in TIME_PROPERTIES:
        raise BadRequestData(f"timeproperty must be one of {', '.join(TIME_PROPERTIES)}")
    timerel = _text(merged.get("timerel"), "timerel")
    time_at = _time(merged.get("timeAt"), "timeAt")
    end_time_at = _time(merged.get("endTimeAt"), "endTimeAt")
    window = TimeWindow(prop)
    if timerel is None:
        if time_at is not None:
            raise BadRequestData("timeAt needs timerel (before, after or between)")
    elif timerel not in TIMERELS:
        raise BadRequestData(f"timerel must be before, after or between, got {timerel!r}")
    elif time_at is None:
        raise BadRequestData(f"timerel={timerel} needs timeAt")
    elif timerel == "before":
        window = TimeWindow(prop, end=time_at)
    elif timerel == "after":
        window = TimeWindow(prop, start=time_at, start_open=True)
    else:
        if end_time_at is None:
            raise BadRequestData("timerel=between needs endTimeAt")
        if end_time_at <= time_at:
            raise BadRequestData("endTimeAt must be later than timeAt")
        window = TimeWindow(prop, start=time_at, end=end_time_at)
    form, sys_attrs = _representation(merged)
    aggregation = None
    if form == AGGREGATED_VALUES:
        anchor = time_at if time_at is not None else 0
        aggregation = _aggregation(merged, anchor)
    return TemporalParams(
        window=window,
        timerel=timerel,
        time_at=time_at,
        end_time_at=end_time_at if timerel == "between" else None,
        last_n=_last_n(merged.get("lastN")),
        form=form,
        sys_attrs=sys_attrs,
        lang=_text(merged.get("lang"), "lang"),
        aggregation=aggregation,
    )


def _text(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequestData(f"{name} must be a string")
    return value


def _time(value: Any, name: str) -> int | None:
    if value is None:
        return None
    return to_ms(require_datetime(value, name))


def _last_n(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadRequestData(f"lastN must be a positive integer, got {value!r}")
    return value


def _representation(params: Mapping[str, Any]) -> tuple[str, bool]:
    options = params.get("options")
    if options is not None and not isinstance(options, str):
        raise BadRequestData("options must be a comma-separated string")
    chosen = set(split_list(options) or [])
    unknown = chosen - _OPTIONS
    if unknown:
        raise BadRequestData(f"unknown options: {', '.join(sorted(unknown))}")
    fmt = _text(params.get("format"), "format")
    if fmt is not None:
        if fmt not in _FORMATS:
            raise BadRequestData(
                "format must be normalized, concise, temporalValues or aggregatedValues"
            )
        forms = {_FORMATS[fmt]}
    else:
        forms = {_FORMATS[o] for o in chosen if o in _FORMATS}
    if {TEMPORAL_VALUES, AGGREGATED_VALUES} <= forms:
        raise BadRequestData("temporalValues and aggregatedValues cannot be used together")
    for form in (AGGREGATED_VALUES, TEMPORAL_VALUES, CONCISE):
        if form in forms:
            return form, "sysAttrs" in chosen
    return NORMALIZED, "sysAttrs" in chosen


def _aggregation(params: Mapping[str, Any], anchor: int) -> Aggregation:
    raw = params.get("aggrMethods")
    if isinstance(raw, list):
        raw = ",".join(m if isinstance(m, str) else "?" for m in raw)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raise BadRequestData("aggregatedValues needs aggrMethods")
    methods = split_list(_text(raw, "aggrMethods")) or []
    unknown = [m for m in methods if m not in AGGR_METHODS]
    if unknown:
        raise BadRequestData(
            f"unknown aggrMethods {', '.join(unknown)}; use {', '.join(AGGR_METHODS)}"
        )
    duration = _text(params.get("aggrPeriodDuration"), "aggrPeriodDuration")
    period, calendar = parse_period(duration) if duration else (0, None)
    ordered = tuple(dict.fromkeys(methods))
    if calendar is not None:
        return Aggregation(ordered, 0, anchor, edges=calendar_edges(calendar))
    return Aggregation(ordered, period, anchor)


def parse_period(text: str) -> tuple[int, isodate.Duration | None]:
    """ISO 8601 duration -> (milliseconds, None), or (0, duration) with months or years."""
    if len(text) > MAX_DURATION_TEXT:
        raise BadRequestData("aggrPeriodDuration is too long")
    try:
        parsed = isodate.parse_duration(text)
    except (isodate.ISO8601Error, ValueError, OverflowError):
        raise BadRequestData(
            f"aggrPeriodDuration must be an ISO 8601 duration like PT1H, got {text!r}"
        ) from None
    if isinstance(parsed, isodate.Duration):
        if parsed.years or parsed.months:
            if parsed.years < 0 or parsed.months < 0 or parsed.tdelta < timedelta(0):
                raise BadRequestData("aggrPeriodDuration must not be negative")
            if parsed.years % 1 or parsed.months % 1:
                raise BadRequestData("aggrPeriodDuration: years and months must be whole")
            return 0, parsed
        parsed = parsed.tdelta
    if parsed < timedelta(0):
        raise BadRequestData("aggrPeriodDuration must not be negative")
    ms = parsed // _MS
    if parsed and ms == 0:
        raise BadRequestData("aggrPeriodDuration must be at least one millisecond")
    return int(ms), None


def calendar_edges(duration: isodate.Duration) -> Callable[[int, int, int, int], list[int]]:
    """Period edges anchor + k * duration (calendar arithmetic) covering [lo, hi)."""
    average = (float(duration.years) * 365.2425 + float(duration.months) * 30.436875) * 86_400_000
    average += duration.tdelta / _MS

    def edges(anchor: int, lo: int, hi: int, cap: int) -> list[int]:
        base = _EPOCH + timedelta(milliseconds=anchor)

        def edge(k: int) -> int:
            return int((base + duration * k - _EPOCH) // _MS)

        try:
            k = int((lo - anchor) // average)
            while edge(k) > lo:
                k -= 1
            while edge(k + 1) <= lo:
                k += 1
            out = [edge(k)]
            while out[-1] < hi and len(out) <= cap:
                k += 1
                out.append(edge(k))
        except (OverflowError, ValueError):
            raise BadRequestData("aggregation periods reach beyond the supported dates") from None
        return out

    return edges


def iso(ms: int) -> str:
    """Epoch milliseconds -> ISO 8601 UTC with milliseconds (exact: no float)."""
    return (_EPOCH + timedelta(milliseconds=ms)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
