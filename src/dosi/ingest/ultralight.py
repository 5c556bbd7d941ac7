"""UltraLight 2.0, the FIWARE text protocol for small devices: parse and format.

A payload is one or more measure groups separated by `#`; a group is
`key|value|key|value...`, optionally preceded by a timestamp
(`2026-11-25T10:00:00Z|t|15`). Commands travel as `device@command|value`
and their results as `device@command|result`. Every value is text: the
device's attribute types decide what it becomes (see mapping.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from dosi.ngsi.errors import BadRequestData
from dosi.ngsi.values import require_datetime

MAX_GROUPS = 100
MAX_PAIRS = 256
# Keys that carry the measurement's time instead of an attribute value.
TIME_KEYS = frozenset({"TimeInstant", "observedAt"})


@dataclass(frozen=True)
class Measure:
    """One measure group: its (key, text value) pairs and the device's own timestamp."""

    pairs: list[tuple[str, str]]
    observed_at: str | None = None


def parse_measures(text: str) -> list[Measure]:
    """`t|15|h|70#t|16` -> one Measure per group; BadRequestData if malformed."""
    measures: list[Measure] = []
    groups = [g.strip() for g in text.strip().split("#")]
    groups = [g for g in groups if g]
    if not groups:
        raise BadRequestData("an UltraLight payload needs at least one key|value pair")
    if len(groups) > MAX_GROUPS:
        raise BadRequestData(f"an UltraLight payload holds at most {MAX_GROUPS} measure groups")
    for group in groups:
        measures.append(_parse_group(group))
    return measures


def _parse_group(group: str) -> Measure:
    fields = [f.strip() for f in group.split("|")]
    observed_at: str | None = None
    if len(fields) % 2:
        # An odd field count means the group starts with its timestamp (UL 2.0).
        observed_at = require_datetime(fields[0], "UltraLight timestamp")
        fields = fields[1:]
    if not fields:
        raise BadRequestData("an UltraLight measure group needs at least one key|value pair")
    if len(fields) > 2 * MAX_PAIRS:
        raise BadRequestData(f"an UltraLight measure group holds at most {MAX_PAIRS} pairs")
    pairs: list[tuple[str, str]] = []
    for key, value in zip(fields[::2], fields[1::2], strict=True):
        if not key:
            raise BadRequestData("an UltraLight key must not be empty")
        if key in TIME_KEYS:
            observed_at = require_datetime(value, f"UltraLight {key}")
            continue
        pairs.append((key, value))
    if not pairs:
        raise BadRequestData("an UltraLight measure group carries no attribute")
    return Measure(pairs, observed_at)


def format_measure(pairs: list[tuple[str, str]], observed_at: str | None = None) -> str:
    """The inverse of one group of `parse_measures` (devices and tests use it)."""
    fields = [observed_at] if observed_at else []
    for key, value in pairs:
        fields += [key, value]
    return "|".join(fields)


def format_command(device_id: str, command: str, value: object) -> str:
    """`device@command|value`; an object value becomes `k=v|k=v` (the UL 2.0 convention)."""
    if isinstance(value, dict):
        params = "|".join(f"{k}={_text(v)}" for k, v in value.items())
        return f"{device_id}@{command}|{params}" if params else f"{device_id}@{command}"
    return f"{device_id}@{command}|{_text(value)}"


def parse_command_result(text: str) -> tuple[str, str, str]:
    """`device@command|result` -> (device, command, result)."""
    head, sep, result = text.strip().partition("|")
    device_id, at, command = head.partition("@")
    if not at or not device_id or not command:
        raise BadRequestData("an UltraLight command result must look like device@command|result")
    return device_id, command, result if sep else ""


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)
