"""Scope queries (clause 4.19): tables, errors, and an independent regex oracle."""

from __future__ import annotations

import contextlib
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dosi.ngsi.errors import BadRequestData
from dosi.ngsi.scopeq import compile_scope

CASES: list[tuple[str, list[str], bool]] = [
    ("/Madrid/Gardens/ParqueNorte", ["/Madrid/Gardens/ParqueNorte"], True),
    ("/Madrid/Gardens/ParqueNorte", ["/Madrid/Gardens"], False),
    ("/Madrid/Gardens", ["/Madrid/Gardens/ParqueNorte"], False),
    ("/Madrid/#", ["/Madrid"], True),
    ("/Madrid/#", ["/Madrid/Gardens/ParqueNorte"], True),
    ("/Madrid/#", ["/MadridSur"], False),
    ("/Madrid/#", ["/Spain/Madrid"], False),
    ("/Madrid/+", ["/Madrid/Gardens"], True),
    ("/Madrid/+", ["/Madrid"], False),
    ("/Madrid/+", ["/Madrid/Gardens/ParqueNorte"], False),
    ("/+/Gardens", ["/Madrid/Gardens"], True),
    ("/+/Gardens", ["/Madrid/Parks"], False),
    ("/Madrid/+/#", ["/Madrid/Gardens/ParqueNorte"], True),
    ("/Madrid/+/#", ["/Madrid/Gardens"], True),
    ("/Madrid/+/#", ["/Madrid"], False),
    ("/#", ["/Anything/At/All"], True),
    ("/#", ["/X"], True),
    # an entity without a scope (or with only the NGSI-LD Null) matches nothing
    ("/#", [], False),
    ("/#", ["urn:ngsi-ld:null"], False),
    ("/Madrid", [], False),
    # any of the entity's scopes may satisfy a term
    ("/Madrid/#", ["/Berlin", "/Madrid/Centro"], True),
    # ';' AND, ',' and '|' OR, AND binds tighter, parentheses group
    ("/Madrid/#;/CompanyA/#", ["/Madrid/X", "/CompanyA/Unit"], True),
    ("/Madrid/#;/CompanyA/#", ["/Madrid/X"], False),
    ("/Madrid,/Berlin", ["/Berlin"], True),
    ("/Madrid|/Berlin", ["/Berlin"], True),
    ("/Madrid,/Berlin", ["/Paris"], False),
    ("/A;/B,/C", ["/C"], True),
    ("/A;(/B,/C)", ["/C"], False),
    ("/A;(/B,/C)", ["/A", "/C"], True),
    ("((/A))", ["/A"], True),
    (" /A , /B ", ["/B"], True),
    # the leading '/' is optional in a Scope
    ("Madrid/#", ["/Madrid/X"], True),
    ("/Madrid", ["Madrid"], True),
    ("/Städte/Straße_1", ["/Städte/Straße_1"], True),
]


@pytest.mark.parametrize(("query", "scopes", "expected"), CASES)
def test_matches(query: str, scopes: list[str], expected: bool) -> None:
    assert compile_scope(query).matches(scopes) is expected


def test_lone_string_is_one_scope() -> None:
    assert compile_scope("/Madrid").matches("/Madrid")


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("", "empty"),
        ("/A/#/B", "'#' may only be the last level"),
        ("/A//B", "an empty level"),
        ("/A/", "an empty level"),
        ("/", "an empty level"),
        ("/A;", "expected a scope"),
        (",/A", "expected a scope"),
        ("(/A", "expected ')'"),
        ("/A)", "unexpected ')'"),
        ("/A /B", "unexpected '/'"),
        ("/A/x.y", "invalid scope level"),
        ("/A/a+b", "invalid scope level"),
        ('/A/"b"', "invalid scope level"),
        ("(" * 33 + "/A" + ")" * 33, "nested deeper than 32"),
        ("/A," * 3000, "longer than 8192"),
    ],
)
def test_syntax_errors(query: str, fragment: str) -> None:
    with pytest.raises(BadRequestData) as info:
        compile_scope(query)
    assert fragment in info.value.detail


LEVELS = ["A", "B", "c_1"]
scopes = st.lists(st.sampled_from(LEVELS), min_size=1, max_size=4).map(
    lambda ls: "/" + "/".join(ls)
)
patterns = (
    st.tuples(st.lists(st.sampled_from([*LEVELS, "+"]), max_size=3), st.booleans())
    .filter(lambda p: p[0] or p[1])
    .map(lambda p: "/" + "/".join([*p[0], *(["#"] if p[1] else [])]))
)


def oracle(pattern: str, scope: str) -> bool:
    """Translate the pattern to a Python regex: '+' is one level, a final '#' any tail."""
    levels = pattern[1:].split("/")
    subtree = levels[-1] == "#"
    fixed = levels[:-1] if subtree else levels
    body = "".join("/" + ("[^/]+" if lv == "+" else re.escape(lv)) for lv in fixed)
    return re.fullmatch(body + ("(/.*)?" if subtree else ""), scope) is not None


@settings(max_examples=200, deadline=None)
@given(pattern=patterns, entity_scopes=st.lists(scopes, max_size=3))
def test_single_pattern_agrees_with_oracle(pattern: str, entity_scopes: list[str]) -> None:
    expected = any(oracle(pattern, scope) for scope in entity_scopes)
    assert compile_scope(pattern).matches(entity_scopes) is expected


@settings(max_examples=200, deadline=None)
@given(left=patterns, right=patterns, entity_scopes=st.lists(scopes, max_size=3))
def test_and_or_compose(left: str, right: str, entity_scopes: list[str]) -> None:
    a = compile_scope(left).matches(entity_scopes)
    b = compile_scope(right).matches(entity_scopes)
    assert compile_scope(f"({left});({right})").matches(entity_scopes) == (a and b)
    assert compile_scope(f"{left},{right}").matches(entity_scopes) == (a or b)


@settings(max_examples=200, deadline=None)
@given(
    text=st.one_of(
        st.text(max_size=100),
        st.lists(st.sampled_from(["/", "A", "+", "#", ";", ",", "|", "(", ")", " "])).map("".join),
    )
)
def test_arbitrary_text_only_raises_bad_request(text: str) -> None:
    with contextlib.suppress(BadRequestData):
        compile_scope(text).matches(["/A/B"])
