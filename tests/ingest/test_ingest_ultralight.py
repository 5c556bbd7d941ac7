"""UltraLight 2.0 parsing and formatting, and value conversion by provisioned type."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dosi.ingest.southbound import parse_topic
from dosi.ingest.ultralight import (
    Measure,
    format_command,
    format_measure,
    parse_command_result,
    parse_measures,
)
from dosi.ingest.values import converter
from dosi.ngsi.errors import BadRequestData

# Keys and values as devices write them: no separators, no surrounding blanks.
_TOKEN_CHARS = st.characters(
    blacklist_characters="|#\r\n\t ", blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")
)
keys = st.text(_TOKEN_CHARS, min_size=1, max_size=12).filter(
    lambda k: k not in ("TimeInstant", "observedAt")
)
values = st.text(_TOKEN_CHARS, max_size=20)
pairs = st.lists(st.tuples(keys, values), min_size=1, max_size=8)
stamps = st.none() | st.sampled_from(["2026-11-25T10:00:00Z", "2026-11-25T10:00:00.123+09:00"])


@given(st.lists(st.tuples(pairs, stamps), min_size=1, max_size=5))
def test_format_then_parse_round_trips(
    groups: list[tuple[list[tuple[str, str]], str | None]],
) -> None:
    text = "#".join(format_measure(p, stamp) for p, stamp in groups)
    assert parse_measures(text) == [Measure(p, stamp) for p, stamp in groups]


@given(st.text(max_size=60))
def test_any_text_parses_or_is_bad_request(text: str) -> None:
    try:
        measures = parse_measures(text)
    except BadRequestData:
        return
    assert measures
    for measure in measures:
        assert measure.pairs
        assert all(key for key, _ in measure.pairs)


def test_examples() -> None:
    assert parse_measures("t|15|h|70") == [Measure([("t", "15"), ("h", "70")])]
    assert parse_measures("t|15#t|16\n") == [Measure([("t", "15")]), Measure([("t", "16")])]
    assert parse_measures("2026-11-25T10:00:00Z|t|15") == [
        Measure([("t", "15")], "2026-11-25T10:00:00Z")
    ]
    assert parse_measures("t|15|TimeInstant|2026-11-25T10:00:00Z") == [
        Measure([("t", "15")], "2026-11-25T10:00:00Z")
    ]
    assert parse_measures("msg|") == [Measure([("msg", "")])]


@pytest.mark.parametrize(
    "text",
    ["", "#", "t", "t|1|h", "|1", "notatime|t|1", "TimeInstant|2026-11-25T10:00:00Z", "a|1#b"],
)
def test_malformed(text: str) -> None:
    with pytest.raises(BadRequestData):
        parse_measures(text)


def test_limits() -> None:
    with pytest.raises(BadRequestData):
        parse_measures("#".join(["t|1"] * 101))
    with pytest.raises(BadRequestData):
        parse_measures("|".join(["k", "v"] * 257))


def test_commands() -> None:
    assert format_command("dev1", "switch", "on") == "dev1@switch|on"
    assert format_command("dev1", "switch", True) == "dev1@switch|true"
    assert format_command("dev1", "set", {"a": 1, "b": "x"}) == "dev1@set|a=1|b=x"
    assert parse_command_result("dev1@switch|done") == ("dev1", "switch", "done")
    assert parse_command_result("dev1@switch") == ("dev1", "switch", "")
    assert parse_command_result("dev1@set|a=1|b=2") == ("dev1", "set", "a=1|b=2")
    for bad in ("switch|on", "@switch|on", "dev1@|on"):
        with pytest.raises(BadRequestData):
            parse_command_result(bad)


@pytest.mark.parametrize(
    ("type_name", "value", "text", "expected"),
    [
        ("Number", "15", True, ("Property", "value", 15)),
        ("Number", "15.5", True, ("Property", "value", 15.5)),
        ("Number", 3, False, ("Property", "value", 3)),
        ("Integer", "4.0", True, ("Property", "value", 4)),
        ("Boolean", "false", True, ("Property", "value", False)),
        ("Boolean", 1, False, ("Property", "value", True)),
        ("Text", 12, False, ("Property", "value", "12")),
        (
            "geo:point",
            "35.1, 128.9",
            True,
            ("GeoProperty", "value", {"type": "Point", "coordinates": [128.9, 35.1]}),
        ),
        (
            "geo:json",
            '{"type":"Point","coordinates":[1,2]}',
            True,
            ("GeoProperty", "value", {"type": "Point", "coordinates": [1, 2]}),
        ),
        (
            "Relationship",
            "urn:ngsi-ld:Road:1",
            True,
            ("Relationship", "object", "urn:ngsi-ld:Road:1"),
        ),
        ("Object", '{"a": 1}', True, ("Property", "value", {"a": 1})),
        ("Whatever", "x", True, ("Property", "value", "x")),
    ],
)
def test_conversions(
    type_name: str, value: Any, text: bool, expected: tuple[str, str, Any]
) -> None:
    assert converter(type_name)(value, text) == expected


@pytest.mark.parametrize(
    ("type_name", "value"),
    [
        ("Number", "warm"),
        ("Number", "nan"),
        ("Number", True),
        ("Integer", "1.5"),
        ("Boolean", "maybe"),
        ("Text", {"a": 1}),
        ("geo:point", "35.1"),
        ("geo:point", "200, 1"),
        ("DateTime", "yesterday"),
        ("Relationship", "not a uri"),
        ("Object", "{"),
    ],
)
def test_conversion_errors(type_name: str, value: Any) -> None:
    with pytest.raises(BadRequestData):
        converter(type_name)(value, True)


def test_topics() -> None:
    topic = parse_topic("/k1/dev1/attrs")
    assert topic is not None
    assert (topic.apikey, topic.device_id, topic.kind, topic.fmt) == ("k1", "dev1", "attrs", None)
    topic = parse_topic("/ul/k1/dev1/cmdexe")
    assert topic is not None
    assert (topic.fmt, topic.kind) == ("ul", "cmdexe")
    topic = parse_topic("/json/k1/dev1/attrs/t")
    assert topic is not None
    assert (topic.fmt, topic.attribute) == ("json", "t")
    for bad in ("k1/dev1/attrs", "/k1/dev1/cmd", "/k1//attrs", "/a/b/c/d/e", "/k1/dev1"):
        assert parse_topic(bad) is None
