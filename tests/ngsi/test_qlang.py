"""q-language (clause 4.9): behaviour tables, syntax errors, and property-based checks."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dosi.ngsi.errors import BadRequestData
from dosi.ngsi.qlang import compile_node, compile_q
from dosi.ngsi.qlang_ast import (
    And,
    AttrPath,
    Node,
    Or,
    Pattern,
    Range,
    Term,
    Value,
    ValueList,
    parse_temporal,
)
from dosi.ngsi.qlang_parser import parse_q

EX = "https://ex.org/"


def expand(term: str) -> str:
    return term if ":" in term else EX + term


def prop(value: Any, **extra: Any) -> dict[str, Any]:
    return {"type": "Property", "value": value, **extra}


def rel(obj: Any) -> dict[str, Any]:
    return {"type": "Relationship", "object": obj}


ENTITY: dict[str, Any] = {
    "id": "urn:ngsi-ld:Thing:1",
    "type": [EX + "Thing"],
    "createdAt": "2024-01-01T00:00:00.000000Z",
    "modifiedAt": "2024-01-02T00:00:00.000000Z",
    EX + "temperature": [
        prop(
            21.5,
            observedAt="2024-05-01T10:00:00Z",
            unitCode="CEL",
            createdAt="2024-01-01T00:00:00.000000Z",
            **{EX + "accuracy": prop(0.95), EX + "sensor": rel("urn:ngsi-ld:Sensor:9")},
        )
    ],
    EX + "count": [prop(7)],
    EX + "big": [prop(10**20)],
    EX + "zero": [prop(0)],
    EX + "name": [prop("Main Street")],
    EX + "quote": [prop('say "hi" \\ bye')],
    EX + "code": [prop("AB-123")],
    EX + "flag": [prop(True)],
    EX + "tags": [prop(["red", "green"])],
    EX + "address": [
        prop(
            {
                "addressLocality": "Berlin",
                "postal": {"code": 10115, "area": "Mitte"},
                "lines": [{"n": "a"}, {"n": "b"}],
            }
        )
    ],
    EX + "born": [prop("2020-03-04T05:06:07Z")],
    EX + "day": [prop({"@type": "Date", "@value": "2021-06-01"})],
    EX + "opens": [prop("08:30:00Z")],
    EX + "owner": [rel("urn:ngsi-ld:Person:alice")],
    EX + "friends": [rel(["urn:ngsi-ld:Person:bob", "urn:ngsi-ld:Person:carol"])],
    EX + "members": [
        {
            "type": "ListRelationship",
            "objectList": [{"object": "urn:ngsi-ld:Person:dave"}, "urn:ngsi-ld:Person:erin"],
        }
    ],
    EX + "label": [
        {
            "type": "LanguageProperty",
            "languageMap": {
                "en": "Town hall",
                "de": "Rathaus",
                "es": ["Ayuntamiento", "Casa consistorial"],
            },
        }
    ],
    EX + "category": [{"type": "VocabProperty", "vocab": EX + "commercial"}],
    EX + "kinds": [{"type": "VocabProperty", "vocab": [EX + "office", "https://other.org/Shop"]}],
    EX + "readings": [{"type": "ListProperty", "valueList": [1, 5, 9]}],
    EX + "config": [{"type": "JsonProperty", "json": {"mode": "eco", "levels": [1, 2, 3]}}],
    EX + "location": [
        {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [13.4, 52.5]}}
    ],
    EX + "speed": [
        prop(50, datasetId="urn:ngsi-ld:Dataset:gps"),
        prop(80, datasetId="urn:ngsi-ld:Dataset:radar", observedAt="2024-05-01T11:00:00Z"),
    ],
}

CASES: list[tuple[str, bool]] = [
    # numbers: int and float compare numerically; never against strings or booleans
    ("count==7", True),
    ("count==7.0", True),
    ("count!=7", False),
    ("count!=8", True),
    ("count>6", True),
    ("count>7", False),
    ("count>=7", True),
    ("count<8", True),
    ("count<=6", False),
    ("count==-7", False),
    ("count>-7.5", True),
    ("count==7e0", True),
    ("temperature>21", True),
    ("temperature<21.6", True),
    ("temperature==21.5", True),
    ("big==100000000000000000000", True),
    ("big>99999999999999999999", True),
    ('count=="7"', False),
    ('count>"6"', False),
    ("name==7", False),
    ("flag==1", False),
    ("zero==false", False),
    # strings
    ('name=="Main Street"', True),
    ('name=="main street"', False),
    ('name!="Main Street"', False),
    ('name!="Other"', True),
    ('name>"M"', True),
    ('name<"M"', False),
    ('name>="Main Street"', True),
    ('quote=="say \\"hi\\" \\\\ bye"', True),
    ("name==Main", False),
    ("config[mode]==eco", True),
    # booleans
    ("flag==true", True),
    ("flag==false", False),
    ("flag!=false", True),
    ("count==true", False),
    # list targets: any element
    ('tags=="red"', True),
    ('tags=="blue"', False),
    ('tags!="red"', False),
    ('tags!="blue"', True),
    ('tags>"h"', True),
    ("tags~=^gr", True),
    ("readings==5", True),
    ("readings>8", True),
    ("readings>9", False),
    ("readings==2..4", False),
    ("readings==4..6", True),
    # value lists: == any-of, != none-of
    ("count==1,7,9", True),
    ("count==1,2", False),
    ("count!=1,2", True),
    ("count!=1,7", False),
    ('name=="a","Main Street"', True),
    ('count=="7",7', True),
    ('tags=="blue","green"', True),
    # ranges (inclusive)
    ("count==5..10", True),
    ("count==7..7", True),
    ("count==8..10", False),
    ("count==-10..-1", False),
    ("count!=8..10", True),
    ("count!=5..10", False),
    ("temperature==21..22", True),
    ("temperature==21.6..22", False),
    ('name=="A".."N"', True),
    ('name=="N".."Z"', False),
    ("born==2020-01-01T00:00:00Z..2020-12-31T23:59:59Z", True),
    ("born==2020-01-01..2020-12-31", True),
    ("born==2021-01-01..2021-12-31", False),
    ('count=="a".."z"', False),
    # DateTime / Date / Time literals compare as instants when both sides are date-like
    ("born==2020-03-04T05:06:07Z", True),
    ("born==2020-03-04T06:06:07+01:00", True),
    ("born==2020-03-04T05:06:07.000Z", True),
    ("born>2020-03-04T05:06:06Z", True),
    ("born>2020-03-04T05:06:07Z", False),
    ("born<2020-03-04", False),
    ("born>2020-03-04", True),
    ('born=="2020-03-04T05:06:07Z"', True),
    ("day==2021-06-01", True),
    ("day>2021-05-31", True),
    ("day<2021-06-01T00:00:01Z", True),
    ("opens<09:00:00Z", True),
    ("opens>09:00", False),
    ("opens==08:30:00Z", True),
    ("opens==09:30:00+01:00", True),
    ("count>2020-01-01", False),
    ("name>2020-01-01", False),
    ("born>09:00", False),
    # instance metadata
    ("temperature.observedAt>2024-05-01T09:00:00Z", True),
    ("temperature.observedAt<2024-05-01T09:00:00Z", False),
    ("temperature.observedAt==2024-05-01", False),
    ("temperature.observedAt>=2024-05-01", True),
    ('temperature.unitCode=="CEL"', True),
    ('temperature.unitCode=="FAH"', False),
    ("temperature.createdAt<2024-02-01", True),
    ("temperature.observedAt", True),
    ("temperature.datasetId", False),
    ("count.observedAt", False),
    ("count.observedAt<2030-01-01", False),
    # multi-instance attributes: any instance; datasetId addresses one
    ("speed.datasetId==urn:ngsi-ld:Dataset:radar", True),
    ('speed.datasetId=="urn:ngsi-ld:Dataset:gps"', True),
    ("speed.datasetId==urn:ngsi-ld:Dataset:none", False),
    ("speed==50", True),
    ("speed==80", True),
    ("speed>70", True),
    ("speed>90", False),
    ("speed!=50", True),
    ("speed!=50,80", False),
    ("speed.observedAt>2024-01-01", True),
    ("speed.datasetId==urn:ngsi-ld:Dataset:radar;speed>70", True),
    # sub-attributes (names expanded)
    ("temperature.accuracy>0.9", True),
    ("temperature.accuracy<0.9", False),
    ("temperature.accuracy", True),
    ("temperature.precision", False),
    ("temperature.sensor==urn:ngsi-ld:Sensor:9", True),
    ("temperature.sensor!=urn:ngsi-ld:Sensor:9", False),
    ("temperature.accuracy.observedAt", False),
    ("count.accuracy", False),
    # trailing paths into compound values (keys not expanded)
    ('address[addressLocality]=="Berlin"', True),
    ('address[addressLocality]!="Berlin"', False),
    ('address[addressLocality]!="Paris"', True),
    ("address[postal.code]==10115", True),
    ("address[postal][code]>10000", True),
    ("address[postal][area]~=^Mi", True),
    ('address[missing]=="x"', False),
    ('address[missing]!="x"', False),
    ("address[missing]", False),
    ("address[postal]", True),
    ("address[postal][code][deeper]", False),
    ('address[lines][n]=="b"', True),
    ('address[lines][0][n]=="a"', True),
    ('address[lines][5][n]=="a"', False),
    ('config[mode]=="eco"', True),
    ("config[levels]==2", True),
    ('location[type]=="Point"', True),
    ("location[coordinates]==52.5", True),
    ('name[x]=="a"', False),
    ('label[de]=="Rathaus"', True),
    ('label[en]=="Rathaus"', False),
    ('label[es]=="Ayuntamiento"', True),
    ("temperature.accuracy[x]", False),
    # Relationships: only == and != can match
    ("owner==urn:ngsi-ld:Person:alice", True),
    ('owner=="urn:ngsi-ld:Person:alice"', True),
    ("owner!=urn:ngsi-ld:Person:alice", False),
    ("owner!=urn:ngsi-ld:Person:bob", True),
    ('owner>"a"', False),
    ("owner~=alice", False),
    ("owner!~=bob", False),
    ("friends==urn:ngsi-ld:Person:carol", True),
    ("friends!=urn:ngsi-ld:Person:carol", False),
    ("friends==urn:ngsi-ld:Person:x,urn:ngsi-ld:Person:bob", True),
    ("members==urn:ngsi-ld:Person:dave", True),
    ("members==urn:ngsi-ld:Person:erin", True),
    ("members!=urn:ngsi-ld:Person:zed", True),
    ("owner[x]", False),
    # LanguageProperty: any language's string
    ('label=="Rathaus"', True),
    ('label=="Town hall"', True),
    ('label=="Casa consistorial"', True),
    ('label=="City hall"', False),
    ('label!="City hall"', True),
    ("label~=(?i)^rat", True),
    # VocabProperty: the literal matches raw or expanded
    ("category==commercial", True),
    ('category=="commercial"', True),
    ("category==https://ex.org/commercial", True),
    ("category==residential", False),
    ("category!=residential", True),
    ("category!=commercial", False),
    ("category==residential,commercial", True),
    ("kinds==office", True),
    ('kinds=="https://other.org/Shop"', True),
    ("kinds==Shop", False),
    ("category~=commercial$", True),
    # patterns (RE2, search semantics)
    ("name~=Main", True),
    ("name~=^Street", False),
    ("name!~=^Street", True),
    ("name!~=Main", False),
    ('name~="M.*t$"', True),
    ("name~=(?i)main street", True),
    ("name~=(Main|Side) Street", True),
    ('name~="a|b"', True),
    ("name~=x|name==7", False),
    ('name~=x|name=="Main Street"', True),
    ('code~="\\d{3}$"', True),
    ('code~="[;|)]"', False),
    ('quote~="\\"hi\\""', True),
    ("count~=7", False),
    ("count!~=7", True),
    # existence and non-existence
    ("count", True),
    ("nothing", False),
    ("!nothing", True),
    ("!count", False),
    ("count;nothing", False),
    ("count|nothing", True),
    ("!nothing;count", True),
    # a missing attribute matches no operator, != included
    ("nothing==1", False),
    ("nothing!=1", False),
    ("nothing~=x", False),
    ("nothing!~=x", False),
    ("nothing>0", False),
    ("nothing==1..2", False),
    # precedence: ';' binds tighter than '|'
    ("count==1;name|flag==true", True),
    ("count==1;(name|flag==true)", False),
    ('flag==false|count==7;name=="x"', False),
    ('(flag==false|count==7);name=="Main Street"', True),
    ("count==7|count==1;nothing", True),
    ("(count==7|count==1);nothing", False),
    ("((count==7))", True),
    ("((count==7);(flag==true|nothing));((name))", True),
    # whitespace between tokens is tolerated (an unquoted pattern's trailing spaces too)
    ("count == 7 ; name", True),
    ("name~=Street  ;count", True),
    ("name~=^Main Street$ | nothing", True),
    ('name~=" $"|nothing', False),
    (" ( count>1 | nothing ) ", True),
    # absolute IRIs as attribute and sub-attribute names
    ("https://ex.org/count==7", True),
    ("https://ex.org/temperature.observedAt>2024-01-01", True),
    ("https://ex.org/temperature.https://ex.org/accuracy>0.9", True),
    ("https://ex.org/temperature.accuracy>0.9", True),
    ('https://ex.org/address[addressLocality]=="Berlin"', True),
    ("http://other.org/count==7", False),
]


@pytest.mark.parametrize(("q", "expected"), CASES)
def test_matches(q: str, expected: bool) -> None:
    assert compile_q(q, expand).matches(ENTITY) is expected


@pytest.mark.parametrize("q", [q for q, _ in CASES])
def test_render_is_stable(q: str) -> None:
    rendered = compile_q(q, expand).render()
    again = compile_q(rendered, expand)
    assert again.render() == rendered
    assert again.matches(ENTITY) == compile_q(q, expand).matches(ENTITY)


ERRORS: list[tuple[str, str]] = [
    ("", "empty"),
    ("   ", "empty"),
    ("count==", "expected a value"),
    ("count=7", "'=' is not an operator"),
    ("(count==7", "expected ')'"),
    ("count==7)", "unexpected ')'"),
    ("count==7;", "expected an attribute name"),
    (";count", "expected an attribute name"),
    ("count==7||name", "expected an attribute name"),
    ("a==1 ;; b", "expected an attribute name"),
    ("count>true", "ordering needs"),
    ("count>urn:x:1", "ordering needs"),
    ("count>1,2", "single value"),
    ("count>1..2", "invalid value"),
    ("count==1..2,3", "range cannot be part of a value list"),
    ("count==1,2..3", "range cannot be part of a value list"),
    ('count==1.."a"', "needs two numbers"),
    ("count==true..false", "needs two numbers"),
    ("count==2020-01-01..5", "needs two numbers"),
    ("count==2020-13-01", "invalid DateTime"),
    ("count==2020-01-01T25:00:00Z", "invalid DateTime"),
    ("count==10:61", "invalid DateTime"),
    ("count==hello world", "after the value"),
    ('count=="a""b"', "after the value"),
    ('name=="unterminated', "unterminated"),
    ('name~="unterminated', "unterminated"),
    ("name~=", "expected a regular expression"),
    ("name~=(a", "missing )"),
    ("name~=(?<=a)b", "bad regular expression"),
    ("name~=" + "a" * 1001, "longer than 1000"),
    ("!count==7", "'!' only negates"),
    ("count.observedAt[x]", "cannot be followed"),
    ("address[", "expected ']'"),
    ("address[a..b]", "empty key"),
    ("address[]", "empty key"),
    ("address[a]b", "expected an operator"),
    ("count..x", "invalid attribute name"),
    ("cou nt", "expected an operator"),
    ("count!", "expected an operator"),
    ("count==@foo", "invalid value"),
    ("count==a;b=c", "'=' is not an operator"),
    ("count===7", "invalid value"),
    ("count==" + "9" * 5000, "too long"),
    ("==7", "expected an attribute name"),
    ("(" * 33 + "count" + ")" * 33, "nested deeper than 32"),
    ("count==1;" * 1000, "longer than 8192"),
]


@pytest.mark.parametrize(("q", "fragment"), ERRORS)
def test_syntax_errors(q: str, fragment: str) -> None:
    with pytest.raises(BadRequestData) as info:
        compile_q(q, expand)
    assert fragment in info.value.detail
    assert info.value.detail.startswith("Invalid q")


def test_error_names_the_position() -> None:
    with pytest.raises(BadRequestData, match=r"position 9 \(near '\)'\)"):
        compile_q("count==7;)", expand)


def test_depth_limit_is_inclusive() -> None:
    assert compile_q("(" * 32 + "count" + ")" * 32, expand).matches(ENTITY)


def test_long_flat_chain_compiles_and_runs() -> None:
    q = ";".join(["count==7"] * 900)
    assert len(q) < 8192
    assert compile_q(q, expand).matches(ENTITY)


def test_attributes_are_expanded_top_level_names() -> None:
    compiled = compile_q("temperature.accuracy>1;address[postal]|count|https://o.org/x", expand)
    assert compiled.attributes == {
        EX + "temperature",
        EX + "address",
        EX + "count",
        "https://o.org/x",
    }


def test_expand_called_once_per_name() -> None:
    calls: list[str] = []

    def counting(term: str) -> str:
        calls.append(term)
        return expand(term)

    compiled = compile_q("a==1;a==2|a.b>3;(c|a.b)", counting)
    assert sorted(calls) == ["a", "b", "c"]
    compiled.matches(ENTITY)
    assert len(calls) == 3


def test_vocab_literal_that_cannot_expand_still_compares_raw() -> None:
    def strict(term: str) -> str:
        if " " in term:
            raise BadRequestData(f"cannot expand {term!r}")
        return expand(term)

    entity = {
        "id": "urn:x",
        "type": [EX + "T"],
        EX + "v": [{"type": "VocabProperty", "vocab": "a b"}],
    }
    assert compile_q('v=="a b"', strict).matches(entity)


def test_hostile_regex_is_linear() -> None:
    entity = {"id": "urn:x", "type": [EX + "T"], EX + "name": [prop("a" * 100_000 + "!")]}
    compiled = compile_q("name~=(a+)+$", expand)
    start = time.perf_counter()
    assert compiled.matches(entity) is False
    assert time.perf_counter() - start < 1.0


def test_evaluation_tolerates_odd_shapes() -> None:
    odd = {
        "id": "urn:x",
        "type": [EX + "T"],
        EX + "a": {"type": "Property", "value": 1},  # a bare dict, not a list
        EX + "b": [None, 3, {"value": 2}],  # junk instances and an untyped one
        EX + "c": [{"type": "Property"}],  # no value at all
        EX + "d": "not an attribute",
    }
    assert compile_q("a==1", expand).matches(odd)
    assert compile_q("b==2", expand).matches(odd)
    assert not compile_q("c", expand).matches(odd)
    assert not compile_q("c!=1", expand).matches(odd)
    assert not compile_q("d", expand).matches(odd)
    assert not compile_q("a.s.observedAt", expand).matches(odd)


def test_str_and_repr() -> None:
    compiled = compile_q(" a == 1 ; ( b | c ) ", expand)
    assert str(compiled) == "a==1;(b|c)"
    assert "a==1" in repr(compiled)


def test_parse_builds_expected_tree() -> None:
    tree = parse_q('a.s[k.m]=="x";b.observedAt>2020-01-01|!c')
    assert tree == Or(
        (
            And(
                (
                    Term(AttrPath("a", ("s",), None, ("k", "m")), "==", Value("string", "x", "x")),
                    Term(
                        AttrPath("b", (), "observedAt"),
                        ">",
                        Value("date", dt.date(2020, 1, 1), "2020-01-01"),
                    ),
                )
            ),
            Term(AttrPath("c"), negated=True),
        )
    )


def test_temporal_parsing() -> None:
    assert parse_temporal("2020-01-01T00:00:00.123456789Z") == (
        "datetime",
        dt.datetime(2020, 1, 1, 0, 0, 0, 123456, tzinfo=dt.UTC),
    )
    assert parse_temporal("2020-01-01T00:00") == (
        "datetime",
        dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
    )
    assert parse_temporal("12:00:00-0230") is not None
    assert parse_temporal("2020-02-30") is None
    assert parse_temporal("12:00:00+25:00") is None
    assert parse_temporal("yesterday") is None


# --- property-based ---------------------------------------------------------------------

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

NAMES = ["a", "b", "c"]


def _dt_value(kind: str, fmt: str) -> st.SearchStrategy[Value]:
    def make(moment: dt.datetime) -> Value:
        text = moment.strftime(fmt)
        parsed = parse_temporal(text)
        assert parsed is not None
        return Value(parsed[0], parsed[1], text)

    return st.datetimes(dt.datetime(2000, 1, 1), dt.datetime(2030, 1, 1)).map(make)


numbers = st.one_of(
    st.integers(-50, 50).map(lambda n: Value("number", n, str(n))),
    st.floats(-50, 50, allow_nan=False).map(lambda f: Value("number", f, repr(f))),
)
strings = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=6).map(
    lambda s: Value("string", s, s)
)
datetimes = _dt_value("datetime", "%Y-%m-%dT%H:%M:%SZ")
dates = _dt_value("date", "%Y-%m-%d")
times = _dt_value("time", "%H:%M:%SZ")
comparables = st.one_of(numbers, strings, datetimes, dates, times)
values = st.one_of(
    comparables,
    st.booleans().map(lambda b: Value("bool", b, "true" if b else "false")),
    st.sampled_from(["urn:x:1", "urn:x:2", "https://ex.org/v"]).map(lambda u: Value("uri", u, u)),
    st.sampled_from(["eco", "red", "x_1"]).map(lambda t: Value("term", t, t)),
)
ranges = st.one_of(
    st.tuples(numbers, numbers), st.tuples(strings, strings), st.tuples(datetimes, dates)
).map(lambda pair: Range(*pair))
patterns = st.sampled_from(["^a", "b$", "(x|y)", 'a"b', "\\d+", "[;|)]", "(?i)A", '\\"'])
paths = st.one_of(
    st.builds(
        AttrPath,
        st.sampled_from(NAMES),
        st.sampled_from([(), ("s",)]),
        st.sampled_from([None, "observedAt", "unitCode", "datasetId"]),
    ),
    st.builds(
        AttrPath,
        st.sampled_from(NAMES),
        st.just(()),
        st.none(),
        st.lists(st.sampled_from(["k", "m", "0"]), min_size=1, max_size=2).map(tuple),
    ),
)
terms = st.one_of(
    st.builds(Term, paths, negated=st.booleans()),
    st.builds(
        Term,
        paths,
        st.sampled_from(["==", "!="]),
        st.one_of(
            values, ranges, st.lists(values, min_size=2, max_size=3).map(tuple).map(ValueList)
        ),
    ),
    st.builds(Term, paths, st.sampled_from([">", ">=", "<", "<="]), comparables),
    st.builds(Term, paths, st.sampled_from(["~=", "!~="]), patterns.map(Pattern)),
)


def _trees(max_leaves: int) -> st.SearchStrategy[Node]:
    def extend(children: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
        group = st.lists(children, min_size=2, max_size=3).map(tuple)
        return st.one_of(group.map(And), group.map(Or))

    return st.recursive(terms, extend, max_leaves=max_leaves)


scalars = st.one_of(
    st.integers(-50, 50),
    st.floats(-50, 50, allow_nan=False),
    st.sampled_from(["a", "b", "x", "y", "A", "eco", "12", 'a"b', '"', "red"]),
    st.booleans(),
    st.sampled_from(["2020-01-01T00:00:00Z", "2010-05-05", "12:00:00Z", "urn:x:1"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(["k", "m"]), inner)
    ),
    max_leaves=5,
)
instances = st.one_of(
    st.builds(prop, json_values),
    st.builds(rel, st.sampled_from(["urn:x:1", "urn:x:2", "https://ex.org/v"])),
    st.builds(
        lambda m: {"type": "LanguageProperty", "languageMap": m},
        st.dictionaries(st.sampled_from(["en", "k"]), st.sampled_from(["a", "eco", "x"])),
    ),
    st.builds(
        lambda v: {"type": "VocabProperty", "vocab": v},
        st.sampled_from([EX + "eco", EX + "red", "urn:x:1"]),
    ),
    st.builds(lambda v: {"type": "ListProperty", "valueList": v}, st.lists(scalars, max_size=3)),
).flatmap(
    lambda inst: st.fixed_dictionaries(
        {},
        optional={
            "observedAt": st.sampled_from(["2020-01-01T00:00:00Z", "2025-01-01T00:00:00Z"]),
            "unitCode": st.sampled_from(["a", "CEL"]),
            "datasetId": st.sampled_from(["urn:x:1", "urn:x:2"]),
            EX + "s": st.builds(prop, scalars),
        },
    ).map(lambda extra: {**inst, **extra})
)
entities = st.dictionaries(
    st.sampled_from([EX + n for n in NAMES]), st.lists(instances, min_size=1, max_size=2)
).map(lambda attrs: {"id": "urn:x", "type": [EX + "T"], **attrs})


@FAST
@given(tree=_trees(8), sample=st.lists(entities, min_size=1, max_size=3))
def test_rendered_tree_parses_back_equivalent(tree: Node, sample: list[dict[str, Any]]) -> None:
    text = tree.render()
    reparsed = parse_q(text)
    assert reparsed.render() == text
    direct, via_text = compile_node(tree, expand), compile_q(text, expand)
    for entity in sample:
        assert direct.matches(entity) == via_text.matches(entity)


@FAST
@given(left=_trees(4), right=_trees(4), sample=st.lists(entities, min_size=1, max_size=3))
def test_and_or_compose(left: Node, right: Node, sample: list[dict[str, Any]]) -> None:
    a, b = compile_node(left, expand), compile_node(right, expand)
    both = compile_q(f"({left.render()});({right.render()})", expand)
    either = compile_q(f"({left.render()})|({right.render()})", expand)
    for entity in sample:
        assert both.matches(entity) == (a.matches(entity) and b.matches(entity))
        assert either.matches(entity) == (a.matches(entity) or b.matches(entity))


GRAMMAR_BITS = [
    "a", "b.s", "c[k]", ".observedAt", "==", "!=", ">", ">=", "<", "<=", "~=", "!~=", "!",
    "(", ")", ";", "|", ",", "..", "1", "-2.5", '"x"', '"', "\\", "true", "urn:x:1",
    "2020-01-01", "T10:00:00Z", "[", "]", " ", "=", "https://ex.org/a", "(a+)+$", "[a-", "é",
]  # fmt: skip
arbitrary_text = st.one_of(
    st.text(max_size=200),
    st.lists(st.sampled_from(GRAMMAR_BITS), max_size=40).map("".join),
)
SAMPLE_ENTITIES = [ENTITY, {"id": "urn:x", "type": [EX + "T"]}]


@FAST
@given(text=arbitrary_text)
def test_arbitrary_text_only_raises_bad_request(text: str) -> None:
    start = time.perf_counter()
    try:
        compiled = compile_q(text, expand)
    except BadRequestData as exc:
        assert exc.detail
    else:
        for entity in SAMPLE_ENTITIES:
            compiled.matches(entity)
    assert time.perf_counter() - start < 1.0


@FAST
@given(tree=_trees(6), entity=entities)
def test_evaluating_random_trees_never_raises(tree: Node, entity: dict[str, Any]) -> None:
    assert compile_node(tree, expand).matches(entity) in (True, False)
