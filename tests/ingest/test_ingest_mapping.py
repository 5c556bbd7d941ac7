"""The agent's measurement mutation gives exactly what the general NGSI-LD append gives."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from dosi.ingest.mapping import _overwrite
from dosi.ngsi.mutate import append_attributes

A, B = "https://example.org/a", "https://example.org/b"
OLD, NOW = "2026-11-25T00:00:00.000000Z", "2026-11-25T01:00:00.000000Z"


def inst(value: Any, dataset: str | None = None, at: str = OLD) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "Property", "value": value, "createdAt": at, "modifiedAt": at}
    if dataset:
        out["datasetId"] = dataset
    return out


stored_attr = st.one_of(
    st.none(),
    st.just([inst(1)]),
    st.just([inst(1), inst(2, "urn:ds:x")]),
    st.just([inst(2, "urn:ds:x")]),
)


@given(stored_attr, stored_attr, st.integers(), st.integers())
def test_overwrite_equals_append(a: Any, b: Any, va: int, vb: int) -> None:
    entity: dict[str, Any] = {"id": "urn:e:1", "type": ["T"], "createdAt": OLD, "modifiedAt": OLD}
    if a is not None:
        entity[A] = a
    if b is not None:
        entity[B] = b
    attrs = {A: [inst(va, at=NOW)], B: [inst(vb, at=NOW)]}
    before = copy.deepcopy(entity)
    expected, _ = append_attributes(entity, copy.deepcopy(attrs), NOW)
    assert _overwrite(entity, copy.deepcopy(attrs), NOW) == expected
    assert entity == before  # the stored entity is never modified in place
