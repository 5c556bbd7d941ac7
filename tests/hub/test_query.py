"""Query Entities end to end: GET /entities and POST /entityOperations/query.

ETSI GS CIM 009 V1.8.1 clauses 5.7.2 (Query Entities), 4.9 (NGSI-LD Query
Language), 4.17 (type selection), 4.19 (scopeQ), 5.5.9 / 6.3.10 (pagination),
6.3.13 (counting), 4.5 (representations), 4.14 (tenants), 6.23 (POST query).
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from helpers import (
    BASE,
    DEFAULT_VOCAB,
    assert_problem,
    ids_of,
    post_query,
    query,
    seed,
)

S1 = "urn:ngsi-ld:Sensor:s1"
S2 = "urn:ngsi-ld:Sensor:s2"
S3 = "urn:ngsi-ld:Sensor:s3"
C1 = "urn:ngsi-ld:Camera:c1"
V1 = "urn:ngsi-ld:Vehicle:v1"
D1 = "urn:ngsi-ld:Device:d1"
D2 = "urn:ngsi-ld:Device:d2"

CITY: list[dict[str, Any]] = [
    {
        "id": S1,
        "type": "Sensor",
        "scope": "/Busan/Gangseo",
        "temperature": {
            "type": "Property",
            "value": 21.5,
            "unitCode": "CEL",
            "observedAt": "2026-01-10T10:00:00Z",
            "accuracy": {"type": "Property", "value": 0.9},
        },
        "status": {"type": "Property", "value": "ok"},
        "name": {"type": "Property", "value": "Busan port sensor"},
        "address": {
            "type": "Property",
            "value": {"city": "Busan", "district": "Gangseo", "zip": 46700},
        },
        "controlledBy": {"type": "Relationship", "object": D1},
        "installedAt": {
            "type": "Property",
            "value": {"@type": "DateTime", "@value": "2025-03-01T09:00:00Z"},
        },
        "enabled": {"type": "Property", "value": True},
    },
    {
        "id": S2,
        "type": "Sensor",
        "scope": "/Busan/Haeundae",
        "temperature": {
            "type": "Property",
            "value": 30,
            "observedAt": "2025-12-01T08:00:00Z",
            "accuracy": {"type": "Property", "value": 0.4},
        },
        "status": {"type": "Property", "value": "fault"},
        "name": {"type": "Property", "value": "Haeundae beach sensor"},
        "address": {
            "type": "Property",
            "value": {"city": "Busan", "district": "Haeundae", "zip": 48100},
        },
        "controlledBy": {"type": "Relationship", "object": D2},
        "installedAt": {
            "type": "Property",
            "value": {"@type": "DateTime", "@value": "2024-06-15T12:00:00Z"},
        },
        "enabled": {"type": "Property", "value": False},
    },
    {
        "id": S3,
        "type": ["Sensor", "Camera"],
        "scope": "/Seoul",
        "temperature": {"type": "Property", "value": 15},
        "status": {"type": "Property", "value": "ok"},
        "name": {"type": "Property", "value": "Seoul station camera"},
        "address": {"type": "Property", "value": {"city": "Seoul", "zip": 4509}},
        "controlledBy": {"type": "Relationship", "object": D1},
    },
    {
        "id": C1,
        "type": "Camera",
        "resolution": {"type": "Property", "value": 1080},
        "status": {"type": "Property", "value": "ok"},
    },
    {
        "id": V1,
        "type": "Vehicle",
        "speed": {"type": "Property", "value": 50},
    },
]
SENSORS = sorted([S1, S2, S3])


@pytest.fixture
async def city(client: httpx.AsyncClient) -> httpx.AsyncClient:
    await seed(client, CITY)
    return client


async def q_ids(client: httpx.AsyncClient, q: str, **extra: str) -> list[str]:
    return ids_of(await query(client, {"q": q, **extra}))


# --- type selection (clause 4.17) ------------------------------------------------------


async def test_type_single(city: httpx.AsyncClient) -> None:
    assert ids_of(await query(city, {"type": "Sensor"})) == SENSORS


async def test_type_comma_list_is_or(city: httpx.AsyncClient) -> None:
    assert ids_of(await query(city, {"type": "Sensor,Vehicle"})) == sorted([*SENSORS, V1])


async def test_type_pipe_is_or(city: httpx.AsyncClient) -> None:
    assert ids_of(await query(city, {"type": "Camera|Vehicle"})) == sorted([S3, C1, V1])


async def test_type_semicolon_is_and_on_multi_typed_entities(city: httpx.AsyncClient) -> None:
    assert ids_of(await query(city, {"type": "Sensor;Camera"})) == [S3]


async def test_type_parentheses_group(city: httpx.AsyncClient) -> None:
    assert ids_of(await query(city, {"type": "(Sensor;Camera)|Vehicle"})) == sorted([S3, V1])


async def test_type_and_binds_tighter_than_or(city: httpx.AsyncClient) -> None:
    # Vehicle,(Sensor;Camera) written without parentheses: `;` binds tighter.
    assert ids_of(await query(city, {"type": "Vehicle,Sensor;Camera"})) == sorted([S3, V1])


async def test_type_multi_typed_entity_matches_each_of_its_types(city: httpx.AsyncClient) -> None:
    assert S3 in ids_of(await query(city, {"type": "Camera"}))
    assert S3 in ids_of(await query(city, {"type": "Sensor"}))


async def test_type_unknown_gives_empty_list(city: httpx.AsyncClient) -> None:
    resp = await query(city, {"type": "Submarine"})
    assert resp.status_code == 200
    assert resp.json() == []


async def test_type_as_full_iri(city: httpx.AsyncClient) -> None:
    assert ids_of(await query(city, {"type": DEFAULT_VOCAB + "Sensor"})) == SENSORS


async def test_type_syntax_error_is_bad_request(city: httpx.AsyncClient) -> None:
    assert_problem(await query(city, {"type": "(Sensor;Camera"}), 400, "BadRequestData")


async def test_type_returned_in_compact_form(city: httpx.AsyncClient) -> None:
    resp = await query(city, {"type": "Sensor;Camera"})
    (entity,) = resp.json()
    assert sorted(entity["type"]) == ["Camera", "Sensor"]


# --- ids and idPattern -----------------------------------------------------------------


async def test_id_list(city: httpx.AsyncClient) -> None:
    assert ids_of(await query(city, {"id": f"{S1},{C1}"})) == sorted([S1, C1])


async def test_id_list_combined_with_type(city: httpx.AsyncClient) -> None:
    assert ids_of(await query(city, {"id": f"{S1},{C1}", "type": "Sensor"})) == [S1]


async def test_id_unknown_gives_empty_list(city: httpx.AsyncClient) -> None:
    resp = await query(city, {"id": "urn:ngsi-ld:Sensor:nope"})
    assert resp.status_code == 200
    assert resp.json() == []


async def test_id_not_a_uri_is_bad_request(city: httpx.AsyncClient) -> None:
    assert_problem(await query(city, {"id": "not a uri"}), 400, "BadRequestData")


async def test_id_pattern(city: httpx.AsyncClient) -> None:
    assert ids_of(await query(city, {"idPattern": r"^urn:ngsi-ld:Sensor:s[12]$"})) == [S1, S2]


async def test_id_pattern_with_type(city: httpx.AsyncClient) -> None:
    resp = await query(city, {"idPattern": ":(s3|c1)$", "type": "Camera"})
    assert ids_of(resp) == sorted([S3, C1])
    resp = await query(city, {"idPattern": ":(s3|c1)$", "type": "Sensor"})
    assert ids_of(resp) == [S3]


async def test_id_pattern_invalid_regex_is_bad_request(city: httpx.AsyncClient) -> None:
    assert_problem(await query(city, {"idPattern": "(unclosed"}), 400, "BadRequestData")


async def test_id_pattern_catastrophic_backtracking_returns_fast(client: httpx.AsyncClient) -> None:
    await seed(
        client,
        [{"id": f"urn:ngsi-ld:Thing:{'a' * 40}{i}!", "type": "Thing"} for i in range(20)],
    )
    started = time.monotonic()
    resp = await query(client, {"idPattern": "(a+)+$"})
    assert time.monotonic() - started < 2.0
    assert resp.status_code == 200
    assert resp.json() == []


# --- attrs -----------------------------------------------------------------------------


async def test_attrs_alone_selects_entities_with_at_least_one(city: httpx.AsyncClient) -> None:
    assert ids_of(await query(city, {"attrs": "resolution"})) == [C1]
    assert ids_of(await query(city, {"attrs": "speed,resolution"})) == sorted([C1, V1])


async def test_attrs_projects_the_response(city: httpx.AsyncClient) -> None:
    resp = await query(city, {"type": "Sensor", "attrs": "temperature,status"})
    for entity in resp.json():
        assert set(entity) <= {"id", "type", "scope", "temperature", "status"}
        assert "temperature" in entity


async def test_attrs_with_type_drops_entities_without_any(city: httpx.AsyncClient) -> None:
    assert ids_of(await query(city, {"type": "Sensor,Camera", "attrs": "resolution"})) == [C1]


async def test_attrs_unknown_gives_empty_list(city: httpx.AsyncClient) -> None:
    resp = await query(city, {"attrs": "noSuchAttribute"})
    assert resp.status_code == 200
    assert resp.json() == []


# --- q language (clause 4.9) -----------------------------------------------------------


async def test_q_equal_number(city: httpx.AsyncClient) -> None:
    assert await q_ids(city, "temperature==21.5") == [S1]


async def test_q_equal_integer_matches_integer_value(city: httpx.AsyncClient) -> None:
    assert await q_ids(city, "temperature==30") == [S2]


async def test_q_not_equal_skips_entities_without_the_attribute(city: httpx.AsyncClient) -> None:
    assert await q_ids(city, "temperature!=21.5") == [S2, S3]


async def test_q_greater_than(city: httpx.AsyncClient) -> None:
    assert await q_ids(city, "temperature>20") == [S1, S2]


async def test_q_greater_or_equal(city: httpx.AsyncClient) -> None:
    assert await q_ids(city, "temperature>=21.5") == [S1, S2]


async def test_q_less_than(city: httpx.AsyncClient) -> None:
    assert await q_ids(city, "temperature<21.5") == [S3]


async def test_q_less_or_equal(city: httpx.AsyncClient) -> None:
    assert await q_ids(city, "temperature<=21.5") == [S1, S3]


async def test_q_range(city: httpx.AsyncClient) -> None:
    assert await q_ids(city, "temperature==15..22") == [S1, S3]


async def test_q_range_not_equal(city: httpx.AsyncClient) -> None:
    assert await q_ids(city, "temperature!=15..22") == [S2]


async def test_q_value_list(city: httpx.AsyncClient) -> None:
    assert await q_ids(city, "temperature==15,30") == [S2, S3]


async def test_q_string_equality(city: httpx.AsyncClient) -> None:
    assert await q_ids(city, 'status=="ok"') == sorted([S1, S3, C1])


async def test_q_string_list(city: httpx.AsyncClient) -> None:
    assert await q_ids(city, 'status=="fault","ok"', type="Sensor") == SENSORS


async def test_q_string_not_equal(city: httpx.AsyncClient) -> None:
    assert await q_ids(city, 'status!="ok"') == [S2]


async def test_q_boolean(city: httpx.AsyncClient) -> None:
    assert await q_ids(city, "enabled==true") == [S1]
    assert await q_ids(city, "enabled==false") == [S2]


async def test_q_pattern(city: httpx.AsyncClient) -> None:
    assert await q_ids(city, 'name~="^Busan"') == [S1]


async def test_q_pattern_case_insensitive_flag(city: httpx.AsyncClient) -> None:
    assert await q_ids(city, 'name~="(?i)SENSOR"') == [S1, S2]


async def test_q_not_pattern(city: httpx.AsyncClient) -> None:
    assert await q_ids(city, 'name!~="sensor"') == [S3]


async def test_q_and(city: httpx.AsyncClient) -> None:
    assert await q_ids(city, 'temperature>20;status=="ok"') == [S1]


async def test_q_or(city: httpx.AsyncClient) -> None:
    assert await q_ids(city, 'temperature>25|status=="ok"') == sorted([S1, S2, S3, C1])


async def test_q_and_binds_tighter_than_or(city: httpx.AsyncClient) -> None:
    # a|b;c is a|(b;c): speed==50 or (temperature<20 and status ok)
    assert await q_ids(city, 'speed==50|temperature<20;status=="ok"') == sorted([S3, V1])


async def test_q_parentheses(city: httpx.AsyncClient) -> None:
    q = '(temperature>25|temperature<16);status=="ok"'
    assert await q_ids(city, q) == [S3]


async def test_q_nested_parentheses(city: httpx.AsyncClient) -> None:
    q = '((temperature>25;status=="fault")|(speed>10));(temperature|speed)'
    assert await q_ids(city, q) == sorted([S2, V1])


async def test_q_existence(city: httpx.AsyncClient) -> None:
    assert await q_ids(city, "resolution") == [C1]


async def test_q_non_existence(city: httpx.AsyncClient) -> None:
    assert await q_ids(city, "!temperature", type="Sensor,Camera") == [C1]


async def test_q_compound_value_key(city: httpx.AsyncClient) -> None:
    assert await q_ids(city, 'address[city]=="Busan"') == [S1, S2]


async def test_q_compound_value_key_ordering(city: httpx.AsyncClient) -> None:
    assert await q_ids(city, "address[zip]>40000") == [S1, S2]
    assert await q_ids(city, "address[zip]<40000") == [S3]


async def test_q_compound_missing_key_never_matches(city: httpx.AsyncClient) -> None:
    # S3's address has no district: neither == nor != may match it.
    assert await q_ids(city, 'address[district]!="Gangseo"') == [S2]


async def test_q_sub_attribute(city: httpx.AsyncClient) -> None:
    assert await q_ids(city, "temperature.accuracy>=0.9") == [S1]
    assert await q_ids(city, "temperature.accuracy<0.5") == [S2]


async def test_q_observed_at(city: httpx.AsyncClient) -> None:
    assert await q_ids(city, "temperature.observedAt>=2026-01-01T00:00:00Z") == [S1]
    assert await q_ids(city, "temperature.observedAt<2026-01-01T00:00:00Z") == [S2]


async def test_q_unit_code(city: httpx.AsyncClient) -> None:
    assert await q_ids(city, 'temperature.unitCode=="CEL"') == [S1]


async def test_q_relationship_quoted_uri(city: httpx.AsyncClient) -> None:
    assert await q_ids(city, f'controlledBy=="{D1}"') == [S1, S3]


async def test_q_relationship_unquoted_uri(city: httpx.AsyncClient) -> None:
    assert await q_ids(city, f"controlledBy=={D2}") == [S2]


async def test_q_relationship_not_equal(city: httpx.AsyncClient) -> None:
    assert await q_ids(city, f'controlledBy!="{D1}"') == [S2]


async def test_q_datetime_value_comparison(city: httpx.AsyncClient) -> None:
    assert await q_ids(city, "installedAt>2025-01-01T00:00:00Z") == [S1]
    assert await q_ids(city, "installedAt<2025-01-01T00:00:00Z") == [S2]


async def test_q_datetime_range(city: httpx.AsyncClient) -> None:
    q = "installedAt==2024-01-01T00:00:00Z..2024-12-31T23:59:59Z"
    assert await q_ids(city, q) == [S2]


async def test_q_with_type(city: httpx.AsyncClient) -> None:
    assert await q_ids(city, 'status=="ok"', type="Camera") == sorted([S3, C1])


async def test_q_full_iri_attribute_name(city: httpx.AsyncClient) -> None:
    assert await q_ids(city, f"{DEFAULT_VOCAB}temperature>25") == [S2]


@pytest.mark.parametrize(
    "bad",
    [
        "temperature=21",
        "temperature==",
        "(temperature>1",
        "temperature>1)",
        "temperature>>1",
        "temperature>1;",
        "temperature~=",
        'name~="(unclosed"',
    ],
)
async def test_q_syntax_errors_are_bad_request(city: httpx.AsyncClient, bad: str) -> None:
    assert_problem(await query(city, {"q": bad}), 400, "BadRequestData")


# --- scopeQ (clause 4.19) --------------------------------------------------------------


async def test_scope_q_subtree(city: httpx.AsyncClient) -> None:
    assert ids_of(await query(city, {"scopeQ": "/Busan/#"})) == [S1, S2]


async def test_scope_q_one_level_wildcard(city: httpx.AsyncClient) -> None:
    assert ids_of(await query(city, {"scopeQ": "/Busan/+"})) == [S1, S2]


async def test_scope_q_exact(city: httpx.AsyncClient) -> None:
    assert ids_of(await query(city, {"scopeQ": "/Seoul"})) == [S3]
    assert ids_of(await query(city, {"scopeQ": "/Busan"})) == []


async def test_scope_q_or(city: httpx.AsyncClient) -> None:
    assert ids_of(await query(city, {"scopeQ": "/Busan/Gangseo,/Seoul"})) == [S1, S3]


async def test_scope_q_any_scope(city: httpx.AsyncClient) -> None:
    assert ids_of(await query(city, {"scopeQ": "/#"})) == SENSORS


async def test_scope_q_with_q(city: httpx.AsyncClient) -> None:
    assert ids_of(await query(city, {"scopeQ": "/Busan/#", "q": "temperature>25"})) == [S2]


async def test_scope_q_invalid_is_bad_request(city: httpx.AsyncClient) -> None:
    assert_problem(await query(city, {"scopeQ": "/Busan//x"}), 400, "BadRequestData")


# --- mandatory filter ------------------------------------------------------------------


async def test_query_without_any_filter_is_bad_request(city: httpx.AsyncClient) -> None:
    assert_problem(await query(city), 400, "BadRequestData")


async def test_query_with_only_paging_is_bad_request(city: httpx.AsyncClient) -> None:
    assert_problem(await query(city, {"limit": "5"}), 400, "BadRequestData")


# --- pagination (clauses 5.5.9, 6.3.10) and counting (6.3.13) --------------------------

ITEMS = [f"urn:ngsi-ld:Item:{i:03d}" for i in range(25)]


@pytest.fixture
async def items(client: httpx.AsyncClient) -> httpx.AsyncClient:
    await seed(
        client,
        [
            {"id": eid, "type": "Item", "n": {"type": "Property", "value": i}}
            for i, eid in enumerate(ITEMS)
        ],
    )
    return client


async def test_limit(items: httpx.AsyncClient) -> None:
    resp = await query(items, {"type": "Item", "limit": "10"})
    assert len(ids_of(resp)) == 10


async def test_offset_past_the_end_is_empty(items: httpx.AsyncClient) -> None:
    resp = await query(items, {"type": "Item", "limit": "10", "offset": "100"})
    assert resp.status_code == 200
    assert resp.json() == []


async def test_last_page_is_partial(items: httpx.AsyncClient) -> None:
    resp = await query(items, {"type": "Item", "limit": "10", "offset": "20"})
    assert len(ids_of(resp)) == 5


async def test_count_header(items: httpx.AsyncClient) -> None:
    resp = await query(items, {"type": "Item", "limit": "5", "count": "true"})
    assert resp.status_code == 200
    assert resp.headers["NGSILD-Results-Count"] == "25"
    assert len(resp.json()) == 5


async def test_count_header_reflects_filter(items: httpx.AsyncClient) -> None:
    resp = await query(items, {"type": "Item", "q": "n<7", "count": "true"})
    assert resp.headers["NGSILD-Results-Count"] == "7"


async def test_no_count_header_without_count(items: httpx.AsyncClient) -> None:
    resp = await query(items, {"type": "Item", "limit": "5"})
    assert "NGSILD-Results-Count" not in resp.headers


async def test_limit_zero_with_count(items: httpx.AsyncClient) -> None:
    resp = await query(items, {"type": "Item", "limit": "0", "count": "true"})
    assert resp.status_code == 200
    assert resp.json() == []
    assert resp.headers["NGSILD-Results-Count"] == "25"


async def test_limit_zero_without_count_is_bad_request(items: httpx.AsyncClient) -> None:
    assert_problem(await query(items, {"type": "Item", "limit": "0"}), 400, "BadRequestData")


async def test_limit_over_maximum_is_too_many_results(items: httpx.AsyncClient) -> None:
    # V1.8.1 clause 6.3.10: a limit above the broker's maximum -> 403 TooManyResults.
    assert_problem(await query(items, {"type": "Item", "limit": "1001"}), 403, "TooManyResults")


async def test_limit_at_maximum_is_accepted(items: httpx.AsyncClient) -> None:
    resp = await query(items, {"type": "Item", "limit": "1000"})
    assert len(ids_of(resp)) == 25


async def test_negative_limit_is_bad_request(items: httpx.AsyncClient) -> None:
    assert_problem(await query(items, {"type": "Item", "limit": "-1"}), 400, "BadRequestData")


async def test_negative_offset_is_bad_request(items: httpx.AsyncClient) -> None:
    assert_problem(await query(items, {"type": "Item", "offset": "-5"}), 400, "BadRequestData")


async def test_non_numeric_limit_is_bad_request(items: httpx.AsyncClient) -> None:
    assert_problem(await query(items, {"type": "Item", "limit": "ten"}), 400, "BadRequestData")


def _links(resp: httpx.Response) -> dict[str, str]:
    """rel -> target of every link in the Link header(s), besides the @context one."""
    out: dict[str, str] = {}
    for header in resp.headers.get_list("Link"):
        for part in header.split(","):
            if 'rel="next"' in part or "rel=next" in part:
                out["next"] = part.split(">")[0].strip().lstrip("<")
            if 'rel="prev"' in part or "rel=prev" in part:
                out["prev"] = part.split(">")[0].strip().lstrip("<")
    return out


async def test_link_next_on_a_full_page(items: httpx.AsyncClient) -> None:
    resp = await query(items, {"type": "Item", "limit": "10", "offset": "0"})
    target = _links(resp).get("next")
    assert target is not None, resp.headers.get_list("Link")
    params = parse_qs(urlsplit(target).query)
    assert params["offset"] == ["10"]
    assert params["limit"] == ["10"]
    assert params["type"] == ["Item"]


async def test_link_next_can_be_followed(items: httpx.AsyncClient) -> None:
    resp = await query(items, {"type": "Item", "limit": "10"})
    target = _links(resp)["next"]
    follow = await items.get(target)
    assert len(ids_of(follow)) == 10
    assert set(ids_of(follow)).isdisjoint(ids_of(resp))


async def test_no_link_next_on_the_last_page(items: httpx.AsyncClient) -> None:
    resp = await query(items, {"type": "Item", "limit": "10", "offset": "20"})
    assert "next" not in _links(resp)


async def test_link_prev_after_the_first_page(items: httpx.AsyncClient) -> None:
    resp = await query(items, {"type": "Item", "limit": "10", "offset": "10"})
    target = _links(resp).get("prev")
    assert target is not None
    assert parse_qs(urlsplit(target).query)["offset"] == ["0"]


async def test_pages_are_stable_and_cover_the_result(items: httpx.AsyncClient) -> None:
    seen: list[str] = []
    for offset in range(0, 30, 7):
        resp = await query(items, {"type": "Item", "limit": "7", "offset": str(offset)})
        seen += [e["id"] for e in resp.json()]
    assert len(seen) == len(set(seen)) == 25
    assert sorted(seen) == ITEMS


async def test_pages_are_stable_with_a_q_filter(items: httpx.AsyncClient) -> None:
    full = ids_of(await query(items, {"type": "Item", "q": "n>=5", "limit": "100"}))
    pages: list[str] = []
    for offset in (0, 4, 8, 12, 16):
        resp = await query(
            items, {"type": "Item", "q": "n>=5", "limit": "4", "offset": str(offset)}
        )
        pages += [e["id"] for e in resp.json()]
    assert len(pages) == len(set(pages))
    assert sorted(pages) == full


async def test_same_page_twice_is_identical(items: httpx.AsyncClient) -> None:
    params = {"type": "Item", "limit": "6", "offset": "6"}
    first = [e["id"] for e in (await query(items, params)).json()]
    second = [e["id"] for e in (await query(items, params)).json()]
    assert first == second


async def test_post_query_pagination_and_count(items: httpx.AsyncClient) -> None:
    resp = await post_query(
        items, {"entities": [{"type": "Item"}]}, params={"limit": "10", "count": "true"}
    )
    assert len(ids_of(resp)) == 10
    assert resp.headers["NGSILD-Results-Count"] == "25"


# --- formats (clause 4.5) --------------------------------------------------------------


async def test_normalized_is_the_default(city: httpx.AsyncClient) -> None:
    resp = await query(city, {"id": S1})
    (entity,) = resp.json()
    assert entity["temperature"]["type"] == "Property"
    assert entity["temperature"]["value"] == 21.5
    assert entity["controlledBy"] == {"type": "Relationship", "object": D1}


async def test_key_values_option(city: httpx.AsyncClient) -> None:
    (entity,) = (await query(city, {"id": S1, "options": "keyValues"})).json()
    assert entity["temperature"] == 21.5
    assert entity["status"] == "ok"
    assert entity["controlledBy"] == D1
    assert entity["address"] == {"city": "Busan", "district": "Gangseo", "zip": 46700}


async def test_format_key_values(city: httpx.AsyncClient) -> None:
    (entity,) = (await query(city, {"id": S1, "format": "keyValues"})).json()
    assert entity["temperature"] == 21.5


async def test_format_concise(city: httpx.AsyncClient) -> None:
    (entity,) = (await query(city, {"id": S1, "format": "concise"})).json()
    assert entity["status"] == "ok"
    assert entity["controlledBy"] == {"object": D1}
    temperature = entity["temperature"]
    assert "type" not in temperature
    assert temperature["value"] == 21.5
    assert temperature["unitCode"] == "CEL"
    assert temperature["accuracy"] == 0.9


async def test_options_concise(city: httpx.AsyncClient) -> None:
    (entity,) = (await query(city, {"id": S1, "options": "concise"})).json()
    assert entity["status"] == "ok"


async def test_sys_attrs(city: httpx.AsyncClient) -> None:
    (entity,) = (await query(city, {"id": S1, "options": "sysAttrs"})).json()
    assert "createdAt" in entity and "modifiedAt" in entity
    assert "createdAt" in entity["temperature"]
    assert "modifiedAt" in entity["temperature"]


async def test_no_sys_attrs_by_default(city: httpx.AsyncClient) -> None:
    (entity,) = (await query(city, {"id": S1})).json()
    assert "createdAt" not in entity
    assert "createdAt" not in entity["temperature"]


async def test_unknown_format_is_bad_request(city: httpx.AsyncClient) -> None:
    assert_problem(await query(city, {"id": S1, "format": "fancy"}), 400, "BadRequestData")


async def test_pick(city: httpx.AsyncClient) -> None:
    (entity,) = (await query(city, {"id": S1, "pick": "id,status"})).json()
    assert entity == {"id": S1, "status": {"type": "Property", "value": "ok"}}


async def test_omit(city: httpx.AsyncClient) -> None:
    (entity,) = (await query(city, {"id": S1, "omit": "temperature,address,type"})).json()
    assert "temperature" not in entity and "address" not in entity and "type" not in entity
    assert entity["id"] == S1
    assert "status" in entity


async def test_pick_and_omit_together_are_bad_request(city: httpx.AsyncClient) -> None:
    resp = await query(city, {"id": S1, "pick": "status", "omit": "name"})
    assert_problem(resp, 400, "BadRequestData")


async def test_lang_on_query(client: httpx.AsyncClient) -> None:
    await seed(
        client,
        [
            {
                "id": "urn:ngsi-ld:Place:p1",
                "type": "Place",
                "label": {
                    "type": "LanguageProperty",
                    "languageMap": {"en": "Bridge", "ko": "다리"},
                },
            }
        ],
    )
    (entity,) = (await query(client, {"type": "Place", "lang": "ko"})).json()
    assert entity["label"] == {"type": "Property", "value": "다리", "lang": "ko"}


# --- POST /entityOperations/query ------------------------------------------------------


async def test_post_query_by_type(city: httpx.AsyncClient) -> None:
    assert ids_of(await post_query(city, {"entities": [{"type": "Sensor"}]})) == SENSORS


async def test_post_query_several_selectors_are_or(city: httpx.AsyncClient) -> None:
    body = {"entities": [{"type": "Vehicle"}, {"id": C1, "type": "Camera"}]}
    assert ids_of(await post_query(city, body)) == sorted([C1, V1])


async def test_post_query_selector_id_and_type_must_both_hold(city: httpx.AsyncClient) -> None:
    body = {"entities": [{"id": C1, "type": "Sensor"}]}
    assert ids_of(await post_query(city, body)) == []


async def test_post_query_selector_id_pattern(city: httpx.AsyncClient) -> None:
    body = {"entities": [{"idPattern": "Sensor:s[23]$", "type": "Sensor"}]}
    assert ids_of(await post_query(city, body)) == [S2, S3]


async def test_post_query_attrs(city: httpx.AsyncClient) -> None:
    resp = await post_query(city, {"entities": [{"type": "Sensor"}], "attrs": ["status"]})
    for entity in resp.json():
        assert set(entity) <= {"id", "type", "scope", "status"}


async def test_post_query_attrs_alone(city: httpx.AsyncClient) -> None:
    assert ids_of(await post_query(city, {"attrs": ["speed"]})) == [V1]


async def test_post_query_q(city: httpx.AsyncClient) -> None:
    body = {"entities": [{"type": "Sensor"}], "q": '(temperature>25|temperature<16);status=="ok"'}
    assert ids_of(await post_query(city, body)) == [S3]


async def test_post_query_q_with_selectors_or(city: httpx.AsyncClient) -> None:
    body = {"entities": [{"type": "Camera"}, {"type": "Vehicle"}], "q": 'status=="ok"'}
    assert ids_of(await post_query(city, body)) == sorted([S3, C1])


async def test_post_query_scope_q(city: httpx.AsyncClient) -> None:
    body = {"entities": [{"type": "Sensor"}], "scopeQ": "/Busan/#"}
    assert ids_of(await post_query(city, body)) == [S1, S2]


async def test_post_query_geo_q(client: httpx.AsyncClient) -> None:
    await seed(
        client,
        [
            {
                "id": "urn:ngsi-ld:Buoy:near",
                "type": "Buoy",
                "location": {
                    "type": "GeoProperty",
                    "value": {"type": "Point", "coordinates": [128.9, 35.1]},
                },
            },
            {
                "id": "urn:ngsi-ld:Buoy:far",
                "type": "Buoy",
                "location": {
                    "type": "GeoProperty",
                    "value": {"type": "Point", "coordinates": [126.97, 37.56]},
                },
            },
        ],
    )
    body = {
        "entities": [{"type": "Buoy"}],
        "geoQ": {
            "georel": "near;maxDistance==1000",
            "geometry": "Point",
            "coordinates": [128.9, 35.1],
        },
    }
    assert ids_of(await post_query(client, body)) == ["urn:ngsi-ld:Buoy:near"]


async def test_post_query_key_values_format(city: httpx.AsyncClient) -> None:
    resp = await post_query(
        city, {"entities": [{"id": S1, "type": "Sensor"}]}, params={"format": "keyValues"}
    )
    (entity,) = resp.json()
    assert entity["temperature"] == 21.5


async def test_post_query_without_filters_is_bad_request(city: httpx.AsyncClient) -> None:
    assert_problem(await post_query(city, {}), 400, "BadRequestData")


async def test_post_query_wrong_body_type_is_bad_request(city: httpx.AsyncClient) -> None:
    resp = await city.post(
        f"{BASE}/entityOperations/query",
        json={"type": "Subscription", "entities": [{"type": "Sensor"}]},
    )
    assert_problem(resp, 400, "BadRequestData")


async def test_post_query_bad_q_is_bad_request(city: httpx.AsyncClient) -> None:
    resp = await post_query(city, {"entities": [{"type": "Sensor"}], "q": "temperature=>"})
    assert_problem(resp, 400, "BadRequestData")


async def test_post_query_selector_without_id_or_type_is_bad_request(
    city: httpx.AsyncClient,
) -> None:
    assert_problem(await post_query(city, {"entities": [{}]}), 400, "BadRequestData")


async def test_post_query_and_get_agree(city: httpx.AsyncClient) -> None:
    get = ids_of(await query(city, {"type": "Sensor", "q": "temperature>16"}))
    post = ids_of(await post_query(city, {"entities": [{"type": "Sensor"}], "q": "temperature>16"}))
    assert get == post == [S1, S2]


# --- tenants (clause 4.14) -------------------------------------------------------------


async def test_tenant_isolation(client: httpx.AsyncClient) -> None:
    await seed(client, [{"id": "urn:ngsi-ld:Pump:a", "type": "Pump"}], tenant="busan")
    await seed(client, [{"id": "urn:ngsi-ld:Pump:b", "type": "Pump"}], tenant="seoul")
    await seed(client, [{"id": "urn:ngsi-ld:Pump:c", "type": "Pump"}])
    busan = await query(client, {"type": "Pump"}, headers={"NGSILD-Tenant": "busan"})
    seoul = await query(client, {"type": "Pump"}, headers={"NGSILD-Tenant": "seoul"})
    default = await query(client, {"type": "Pump"})
    assert ids_of(busan) == ["urn:ngsi-ld:Pump:a"]
    assert ids_of(seoul) == ["urn:ngsi-ld:Pump:b"]
    assert ids_of(default) == ["urn:ngsi-ld:Pump:c"]


async def test_tenant_isolation_in_post_query(client: httpx.AsyncClient) -> None:
    await seed(client, [{"id": "urn:ngsi-ld:Pump:a", "type": "Pump"}], tenant="busan")
    await seed(client, [{"id": "urn:ngsi-ld:Pump:c", "type": "Pump"}])
    resp = await post_query(
        client, {"entities": [{"type": "Pump"}]}, headers={"NGSILD-Tenant": "busan"}
    )
    assert ids_of(resp) == ["urn:ngsi-ld:Pump:a"]


async def test_tenant_echoed_in_query_response(client: httpx.AsyncClient) -> None:
    await seed(client, [{"id": "urn:ngsi-ld:Pump:a", "type": "Pump"}], tenant="busan")
    resp = await query(client, {"type": "Pump"}, headers={"NGSILD-Tenant": "busan"})
    assert resp.headers.get("NGSILD-Tenant") == "busan"


async def test_unknown_tenant_is_nonexistent_tenant(client: httpx.AsyncClient) -> None:
    resp = await query(client, {"type": "Pump"}, headers={"NGSILD-Tenant": "atlantis"})
    assert_problem(resp, 404, "NonexistentTenant")


async def test_tenant_count_is_per_tenant(client: httpx.AsyncClient) -> None:
    await seed(
        client,
        [{"id": f"urn:ngsi-ld:Pump:{i}", "type": "Pump"} for i in range(3)],
        tenant="busan",
    )
    await seed(client, [{"id": "urn:ngsi-ld:Pump:x", "type": "Pump"}])
    resp = await query(
        client, {"type": "Pump", "count": "true"}, headers={"NGSILD-Tenant": "busan"}
    )
    assert resp.headers["NGSILD-Results-Count"] == "3"


# --- response headers ------------------------------------------------------------------


async def test_json_response_carries_context_link(city: httpx.AsyncClient) -> None:
    resp = await query(city, {"type": "Sensor"})
    assert resp.headers["Content-Type"].startswith("application/json")
    links = ",".join(resp.headers.get_list("Link"))
    assert 'rel="http://www.w3.org/ns/json-ld#context"' in links


async def test_entities_are_updated_in_query_results(city: httpx.AsyncClient) -> None:
    await seed(
        city, [{"id": S3, "type": "Sensor", "temperature": {"type": "Property", "value": 40}}]
    )
    assert await q_ids(city, "temperature>35") == [S3]
    assert await q_ids(city, "temperature==15") == []


async def test_q_filters_independently_of_attrs_projection(city: httpx.AsyncClient) -> None:
    resp = await query(city, {"type": "Sensor", "q": "temperature>20", "attrs": "status"})
    assert ids_of(resp) == [S1, S2]
    for entity in resp.json():
        assert "temperature" not in entity
        assert "status" in entity


async def test_count_of_empty_result_is_zero(city: httpx.AsyncClient) -> None:
    resp = await query(city, {"type": "Submarine", "count": "true"})
    assert resp.json() == []
    assert resp.headers["NGSILD-Results-Count"] == "0"


async def test_post_query_lang_member(client: httpx.AsyncClient) -> None:
    await seed(
        client,
        [
            {
                "id": "urn:ngsi-ld:Place:p1",
                "type": "Place",
                "label": {
                    "type": "LanguageProperty",
                    "languageMap": {"en": "Bridge", "fr": "Pont"},
                },
            }
        ],
    )
    resp = await post_query(client, {"entities": [{"type": "Place"}], "lang": "fr"})
    (entity,) = resp.json()
    assert entity["label"] == {"type": "Property", "value": "Pont", "lang": "fr"}


async def test_post_query_pick(city: httpx.AsyncClient) -> None:
    resp = await post_query(
        city, {"entities": [{"id": S1, "type": "Sensor"}]}, params={"pick": "id,status"}
    )
    (entity,) = resp.json()
    assert entity == {"id": S1, "status": {"type": "Property", "value": "ok"}}


async def test_post_query_concise(city: httpx.AsyncClient) -> None:
    resp = await post_query(
        city, {"entities": [{"id": S1, "type": "Sensor"}]}, params={"format": "concise"}
    )
    (entity,) = resp.json()
    assert entity["status"] == "ok"
    assert entity["controlledBy"] == {"object": D1}


async def test_post_query_json_ld_response(city: httpx.AsyncClient) -> None:
    resp = await post_query(
        city, {"entities": [{"type": "Vehicle"}]}, headers={"Accept": "application/ld+json"}
    )
    assert resp.headers["Content-Type"].startswith("application/ld+json")
    (entity,) = resp.json()
    assert "@context" in entity


async def test_post_query_unknown_tenant(city: httpx.AsyncClient) -> None:
    resp = await post_query(
        city, {"entities": [{"type": "Sensor"}]}, headers={"NGSILD-Tenant": "atlantis"}
    )
    assert_problem(resp, 404, "NonexistentTenant")
