"""Entity type selection (clause 4.17): tables, errors, and a reference-evaluator property."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dosi.ngsi.errors import BadRequestData
from dosi.ngsi.typeexpr import compile_types

EX = "https://ex.org/"


def expand(term: str) -> str:
    return term if ":" in term else EX + term


def types(*names: str) -> list[str]:
    return [expand(n) for n in names]


CASES: list[tuple[str, list[str], bool]] = [
    ("Building", types("Building"), True),
    ("Building", types("Shop"), False),
    ("Building", [], False),
    ("Building,Shop", types("Shop"), True),
    ("Building|Shop", types("Shop"), True),
    ("Building,Shop", types("Park"), False),
    ("Building;Shop", types("Building", "Shop"), True),
    ("Building;Shop", types("Building"), False),
    ("Building;Shop|Park", types("Park"), True),
    ("Building;(Shop|Park)", types("Park"), False),
    ("Building;(Shop|Park)", types("Building", "Park"), True),
    ("(Building;Shop),(Park;Tree)", types("Park", "Tree"), True),
    ("(Building;Shop),(Park;Tree)", types("Building", "Tree"), False),
    ("((Building))", types("Building"), True),
    (" Building , Shop ", types("Shop"), True),
    # full IRIs: ':' and '/' are part of the name, never separators
    ("https://ex.org/Building", types("Building"), True),
    ("https://other.org/ns#Shop,Park", ["https://other.org/ns#Shop"], True),
    (
        "https://other.org/v1.2/Shop;Building",
        ["https://other.org/v1.2/Shop", EX + "Building"],
        True,
    ),
    ("urn:ngsi-ld:T:1|X", ["urn:ngsi-ld:T:1"], True),
    ("ex:Building", ["ex:Building"], True),
]


@pytest.mark.parametrize(("expr", "entity_types", "expected"), CASES)
def test_matches(expr: str, entity_types: list[str], expected: bool) -> None:
    assert compile_types(expr, expand).matches(entity_types) is expected


@pytest.mark.parametrize(
    ("expr", "mentioned", "simple"),
    [
        ("A", {"A"}, True),
        ("A,B|C", {"A", "B", "C"}, True),
        ("(A,B),(C)", {"A", "B", "C"}, True),
        ("A;B", {"A", "B"}, False),
        ("A|(B;C)", {"A", "B", "C"}, False),
        ("A,A,https://x.org/A", {"A", "https://x.org/A"}, True),
    ],
)
def test_mentioned_and_simple_union(expr: str, mentioned: set[str], simple: bool) -> None:
    selection = compile_types(expr, expand)
    assert selection.mentioned == {expand(m) for m in mentioned}
    assert selection.is_simple_union is simple


def test_expand_called_once_per_name() -> None:
    calls: list[str] = []

    def counting(term: str) -> str:
        calls.append(term)
        return expand(term)

    compile_types("A,B;A|(A;B)", counting)
    assert sorted(calls) == ["A", "B"]


@pytest.mark.parametrize(
    ("expr", "fragment"),
    [
        ("", "empty"),
        ("  ", "empty"),
        ("A,,B", "expected an entity type name"),
        ("A;", "expected an entity type name"),
        (",A", "expected an entity type name"),
        ("(A", "expected ')'"),
        ("A)", "unexpected ')'"),
        ("()", "expected an entity type name"),
        ("A B", "unexpected 'B'"),
        ('A"', "invalid entity type name"),
        ("A<B>", "invalid entity type name"),
        ("(" * 33 + "A" + ")" * 33, "nested deeper than 32"),
        ("A," * 5000, "longer than 8192"),
    ],
)
def test_syntax_errors(expr: str, fragment: str) -> None:
    with pytest.raises(BadRequestData) as info:
        compile_types(expr, expand)
    assert fragment in info.value.detail


NAMES = ["A", "B", "C", "https://o.org/D"]
Tree = Any  # str | tuple[str, list[Tree]]

trees = st.recursive(
    st.sampled_from(NAMES),
    lambda inner: st.tuples(
        st.sampled_from([";", ",", "|"]), st.lists(inner, min_size=2, max_size=3)
    ),
    max_leaves=8,
)


def render(tree: Tree) -> str:
    if isinstance(tree, str):
        return tree
    op, children = tree
    return "(" + str(op).join(render(child) for child in children) + ")"


def reference(tree: Tree, present: set[str]) -> bool:
    if isinstance(tree, str):
        return expand(tree) in present
    op, children = tree
    results = [reference(child, present) for child in children]
    return all(results) if op == ";" else any(results)


@settings(max_examples=200, deadline=None)
@given(tree=trees, present=st.sets(st.sampled_from([*NAMES, "E"]), max_size=4))
def test_matches_reference_and_prefilter_is_sound(tree: Tree, present: set[str]) -> None:
    entity_types = [expand(n) for n in present]
    selection = compile_types(render(tree), expand)
    result = selection.matches(entity_types)
    assert result == reference(tree, set(entity_types))
    if result:
        assert not selection.mentioned.isdisjoint(entity_types)
    if selection.is_simple_union:
        assert result == (not selection.mentioned.isdisjoint(entity_types))


@settings(max_examples=200, deadline=None)
@given(
    text=st.one_of(
        st.text(max_size=100),
        st.lists(st.sampled_from(["A", ",", ";", "|", "(", ")", " ", "x:/"])).map("".join),
    )
)
def test_arbitrary_text_only_raises_bad_request(text: str) -> None:
    with contextlib.suppress(BadRequestData):
        compile_types(text, expand).matches([EX + "A"])
