"""The stored document encoding: pack/unpack must round-trip every entity exactly."""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from dosi.hub.store.rows import expand_shapes, pack, stat_delta, stat_keys, unpack

T0, T1, T2 = "2026-11-25T08:00:00.000000Z", "2026-11-25T09:00:00.000000Z", "2026-11-25T10:00:00Z"
IRI = "https://uri.etsi.org/ngsi-ld/default-context/"

times = st.sampled_from([T0, T1, T2])


@st.composite
def instances(draw: Any, depth: int = 0) -> dict[str, Any]:
    # Request bodies never hold wider integers: orjson reads those as floats.
    inst: dict[str, Any] = {"type": "Property", "value": draw(st.integers(-(2**63), 2**63 - 1))}
    inst["createdAt"] = draw(times)
    inst["modifiedAt"] = draw(times)
    if draw(st.booleans()):
        inst["datasetId"] = f"urn:ngsi-ld:Dataset:{draw(st.integers(0, 3))}"
    if depth < 2 and draw(st.booleans()):
        inst[IRI + "accuracy"] = draw(instances(depth + 1))
    return inst


@st.composite
def entities(draw: Any) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "id": "urn:ngsi-ld:T:1",
        "type": [IRI + "T"],
        "createdAt": draw(times),
        "modifiedAt": draw(times),
    }
    for name in draw(st.lists(st.sampled_from(["a", "b", "c"]), unique=True)):
        entity[IRI + name] = draw(st.lists(instances(), min_size=1, max_size=3))
    return entity


@given(entities())
@settings(max_examples=200, deadline=None)
def test_pack_round_trips(entity: dict[str, Any]) -> None:
    assert unpack(pack(entity)) == entity


def test_pack_drops_times_equal_to_the_entity() -> None:
    inst = {"type": "Property", "value": 1, "createdAt": T0, "modifiedAt": T1}
    entity = {"id": "urn:x:1", "type": ["T"], "createdAt": T0, "modifiedAt": T1, IRI + "a": [inst]}
    packed = pack(entity)
    assert packed.count(T0.encode()) == 1 and packed.count(T1.encode()) == 1
    assert entity[IRI + "a"][0]["createdAt"] == T0  # the caller's entity is untouched


def test_stat_keys_count_each_attribute_once_per_entity() -> None:
    entity = {
        "id": "urn:x:1",
        "type": ["A", "B"],
        IRI + "a": [{"type": "Property", "value": 1}, {"type": "Relationship", "object": "urn:y"}],
    }
    keys = stat_keys(entity)
    assert ("", IRI + "a", "") in keys
    assert {("A", IRI + "a", "Property"), ("B", IRI + "a", "Relationship")} <= keys
    assert ("A", "", "") in keys and ("B", "", "") in keys


@given(entities())
@settings(max_examples=100, deadline=None)
def test_stat_delta_counts_exactly_the_stat_keys(entity: dict[str, Any]) -> None:
    shapes: Counter[Any] = Counter()
    stat_delta(None, entity, shapes)
    counts = expand_shapes(shapes)
    assert set(counts) == stat_keys(entity)
    assert set(counts.values()) == {1}
    stat_delta(entity, None, shapes)
    assert not +expand_shapes(shapes)
