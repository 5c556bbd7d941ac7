"""@context resolution (clause 5.5.7 / JSON-LD 1.1) and the @context store (clause 5.13)."""

from __future__ import annotations

import asyncio
import http.server
import threading
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from pyld import jsonld

from dosi.ngsi.context import Context, ContextResolver, parse_link_header
from dosi.ngsi.context_documents import collect_documents, core_document
from dosi.ngsi.context_processing import build_term_map, core_term_map
from dosi.ngsi.errors import (
    AlreadyExists,
    BadRequestData,
    LdContextNotAvailable,
    ResourceNotFound,
)
from dosi.ngsi.model import (
    CORE_CONTEXT_V1,
    CORE_CONTEXT_V18,
    CORE_CONTEXT_V19,
    DEFAULT_CORE_CONTEXT,
    DEFAULT_VOCAB,
    NGSI_LD,
)

SDM = "https://smartdatamodels.org/"
TRANSPORT = SDM + "dataModel.Transportation/"

# Shaped like the published Smart Data Models contexts: absolute IRIs per term,
# restated core aliases, a few prefixes.
SDM_LIKE: dict[str, Any] = {
    "id": "@id",
    "type": "@type",
    "ngsi-ld": "https://uri.etsi.org/ngsi-ld/",
    "sdm": SDM,
    "schema": "https://schema.org/",
    "TrafficFlowObserved": TRANSPORT + "TrafficFlowObserved",
    "Vehicle": TRANSPORT + "Vehicle",
    "intensity": TRANSPORT + "intensity",
    "averageVehicleSpeed": TRANSPORT + "averageVehicleSpeed",
    "laneId": TRANSPORT + "laneId",
    "address": "schema:address",
    "streetAddress": "schema:streetAddress",
    "refRoadSegment": {"@id": TRANSPORT + "refRoadSegment", "@type": "@id"},
    "vehicleType": {"@id": TRANSPORT + "vehicleType", "@type": "@vocab"},
    "dateObserved": {"@id": "sdm:dateObserved", "@type": "DateTime"},
}

# Shaped like the FIWARE tutorial contexts: prefix-heavy, typed and container terms,
# prefixes defined after the terms that use them, a user @vocab.
TUTORIAL_LIKE: dict[str, Any] = {
    "Building": "fiware:Building",
    "category": {"@id": "fiware:category", "@type": "@vocab"},
    "furniture": {"@id": "fiware:furniture", "@type": "@id", "@container": "@set"},
    "owner": {"@id": "fiware:owner", "@type": "@id"},
    "name": "schema:name",
    "description2": {"@id": "schema:description", "@language": "en"},
    "tags": {"@id": "fiware:tags", "@container": "@list"},
    "labels": {"@id": "fiware:labels", "@container": "@language"},
    "byId": {"@id": "fiware:byId", "@container": ["@id", "@set"]},
    "byIndex": {"@id": "fiware:byIndex", "@container": "@index", "@index": "fiware:k"},
    "payload": {"@id": "fiware:payload", "@type": "@json"},
    "born": {"@id": "schema:birthDate", "@type": "xsd:date"},
    "nick": "fiware:nick",
    "also": "nick",
    "ex": {"@id": "http://example.org/ns", "@prefix": True},
    "hidden": None,
    "fiware": "https://uri.fiware.org/ns/data-models#",
    "schema": "https://schema.org/",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "@vocab": "https://example.org/vocab/",
}

PROBE_NAMES = [
    "unknownThing",
    "sdm:foo",
    "schema:bar",
    "fiware:baz",
    "ex:thing",
    "ngsi-ld:custom",
    "geojson:Point",
    "unknownprefix:x",
    "https://other.example/attr",
    "urn:ngsi-ld:thing",
]


def fast_and_pyld(value: Any, docs: dict[str, Any] | None = None) -> Any:
    """Process with the fast path and with pyld; assert they agree; return the fast result."""
    docs = docs or {}
    fast = build_term_map(value, docs.get)
    slow = build_term_map(value, docs.get, force_pyld=True)
    assert not fast.used_pyld
    assert slow.used_pyld
    assert fast.vocab == slow.vocab
    assert dict(fast.terms) == dict(slow.terms)
    assert fast.warnings == slow.warnings
    return fast


def oracle_expansions(
    value: Any, names: list[str], docs: dict[str, Any], nodes: frozenset[str] = frozenset()
) -> dict[str, str]:
    """What pyld's own expansion makes of each name as a property key under [core, value].

    Names in `nodes` get a node reference as value (reverse properties need one).
    """

    def loader(url: str, options: Any = None) -> dict[str, Any]:
        if url in (CORE_CONTEXT_V1, CORE_CONTEXT_V18, CORE_CONTEXT_V19):
            doc: Any = core_document()
        elif url in docs:
            doc = docs[url]
        else:  # the remote context the core scopes to "ngsildproof"
            doc = {"@context": {}}
        return {"contextUrl": None, "documentUrl": url, "document": doc}

    items = value if isinstance(value, list) else [value]
    probe: dict[str, Any] = {"@context": [DEFAULT_CORE_CONTEXT, *items], "@id": "urn:probe"}
    markers = {f"probe-{i}-value": n for i, n in enumerate(names)}
    for marker, name in markers.items():
        probe[name] = {"@id": f"urn:x:{marker}"} if name in nodes else marker
    expanded = jsonld.expand(probe, {"documentLoader": loader})
    node = expanded[0]
    flat = {k: v for k, v in node.items() if k != "@reverse"}
    flat.update(node.get("@reverse", {}))
    out: dict[str, str] = {}
    for iri, values in flat.items():
        dumped = orjson.dumps(values).decode()
        for marker, name in markers.items():
            if marker in dumped:
                out[name] = iri
    return out


async def no_fetch(url: str) -> Any:
    raise AssertionError(f"unexpected fetch of {url}")


class FakeFetch:
    """An injectable fetch over a dict of documents, counting calls."""

    def __init__(self, docs: dict[str, Any], delay: float = 0.0) -> None:
        self.docs = docs
        self.delay = delay
        self.calls: list[str] = []

    async def __call__(self, url: str) -> Any:
        self.calls.append(url)
        if self.delay:
            await asyncio.sleep(self.delay)
        if url not in self.docs:
            raise OSError("connection refused")
        return self.docs[url]


# ------------------------------------------------------------------------- core only


async def test_core_only_expansion() -> None:
    ctx = ContextResolver(fetch=no_fetch).core
    assert ctx.is_core_only and ctx.source is None
    assert ctx.expand("location") == NGSI_LD + "location"
    assert ctx.expand("Property") == NGSI_LD + "Property"
    assert ctx.expand("observedAt") == NGSI_LD + "observedAt"
    assert ctx.expand("value") == NGSI_LD + "hasValue"
    assert ctx.expand("description") == "http://purl.org/dc/terms/description"
    assert ctx.expand("Point") == "https://purl.org/geojson/vocab#Point"
    assert ctx.expand("speed") == DEFAULT_VOCAB + "speed"
    assert ctx.expand("ngsi-ld:foo") == NGSI_LD + "foo"
    assert ctx.expand("geojson:bbox") == "https://purl.org/geojson/vocab#bbox"
    assert ctx.expand("urn:ngsi-ld:Vehicle:1") == "urn:ngsi-ld:Vehicle:1"
    assert ctx.expand("https://example.org/a") == "https://example.org/a"
    assert ctx.expand("id") == "@id"
    assert ctx.expand("@type") == "@type"
    with pytest.raises(BadRequestData):
        ctx.expand("")


async def test_core_only_compaction_round_trips() -> None:
    ctx = ContextResolver(fetch=no_fetch).core
    for d in core_term_map().terms.values():
        if d.iri is not None and not d.iri.startswith("@"):
            assert ctx.expand(ctx.compact(d.iri)) == d.iri
    assert ctx.compact(NGSI_LD + "hasValue") == "value"
    assert ctx.compact(NGSI_LD + "location") == "location"
    assert ctx.compact(DEFAULT_VOCAB + "speed") == "speed"
    assert ctx.compact(NGSI_LD + "somethingElse") == "ngsi-ld:somethingElse"
    assert ctx.compact("https://example.org/a") == "https://example.org/a"
    # vocab-relative names must round-trip: this suffix would read as an absolute IRI
    assert ctx.compact(DEFAULT_VOCAB + "x:y") == "ngsi-ld:default-context/x:y"


def test_core_term_map_matches_pyld() -> None:
    fast_and_pyld(None)
    aliases = {t for t, d in core_term_map().terms.items() if (d.iri or "@").startswith("@")}
    names = [t for t in [*core_term_map().terms, *PROBE_NAMES] if t not in aliases]
    oracle = oracle_expansions([], names, {})
    ctx = Context(core_term_map(), source=None, key="null")
    assert oracle  # sanity: the probe found something
    for name, iri in oracle.items():
        assert ctx.expand(name) == iri, name


# ------------------------------------------------------------------------- user contexts


async def test_user_context_terms_prefixes_and_vocab() -> None:
    r = ContextResolver(fetch=no_fetch)
    ctx = await r.resolve(TUTORIAL_LIKE)
    assert not ctx.is_core_only and not ctx.used_pyld
    assert ctx.vocab == "https://example.org/vocab/"
    assert ctx.expand("Building") == "https://uri.fiware.org/ns/data-models#Building"
    assert ctx.expand("category") == "https://uri.fiware.org/ns/data-models#category"
    assert ctx.expand("name") == "https://schema.org/name"
    assert ctx.expand("also") == "https://uri.fiware.org/ns/data-models#nick"
    assert ctx.expand("schema:foo") == "https://schema.org/foo"
    assert ctx.expand("ex:foo") == "http://example.org/nsfoo"  # explicit @prefix
    assert ctx.expand("other") == "https://example.org/vocab/other"
    assert ctx.expand("location") == NGSI_LD + "location"  # core still there
    with pytest.raises(BadRequestData, match="hidden"):
        ctx.expand("hidden")
    # Round trips, and the shortest term wins when two map to one IRI.
    for name in ("Building", "category", "name", "other", "location", "schema:foo"):
        assert ctx.expand(ctx.compact(ctx.expand(name))) == ctx.expand(name)
    assert ctx.compact("https://uri.fiware.org/ns/data-models#nick") == "also"
    assert ctx.compact("https://example.org/vocab/other") == "other"
    assert ctx.compact("https://schema.org/foo") == "schema:foo"
    assert ctx.compact("https://uri.fiware.org/ns/data-models#zzz") == "fiware:zzz"
    assert ctx.compact(DEFAULT_VOCAB + "speed") == "ngsi-ld:default-context/speed"


async def test_vocab_typed_terms_expand_like_terms() -> None:
    r = ContextResolver(fetch=no_fetch)
    ctx = await r.resolve({"colour": {"@id": "https://ex.org/colour", "@type": "@vocab"}})
    assert ctx.expand("colour") == "https://ex.org/colour"
    assert ctx.compact("https://ex.org/colour") == "colour"
    assert ctx.vocab == DEFAULT_VOCAB


async def test_language_and_direction_resets_stay_on_the_fast_path() -> None:
    r = ContextResolver(fetch=no_fetch)
    ctx = await r.resolve({"@language": None, "@direction": None, "a": "https://x/a"})
    assert not ctx.used_pyld and ctx.expand("a") == "https://x/a"


async def test_list_of_contexts_later_wins() -> None:
    r = ContextResolver(fetch=no_fetch)
    ctx = await r.resolve(
        [
            {"speed": "https://a.example/speed", "p": "https://a.example/"},
            {"speed": "https://b.example/speed"},
            {"@vocab": "https://b.example/vocab#"},
        ]
    )
    assert ctx.expand("speed") == "https://b.example/speed"
    assert ctx.expand("p:x") == "https://a.example/x"
    assert ctx.expand("other") == "https://b.example/vocab#other"


async def test_null_in_list_resets_to_core() -> None:
    r = ContextResolver(fetch=no_fetch)
    ctx = await r.resolve([{"speed": "https://a.example/speed"}, None, {"x": "https://b/x"}])
    assert ctx.expand("speed") == DEFAULT_VOCAB + "speed"
    assert ctx.expand("x") == "https://b/x"
    assert ctx.expand("location") == NGSI_LD + "location"


async def test_core_terms_cannot_be_redefined() -> None:
    r = ContextResolver(fetch=no_fetch)
    value = {
        "location": "https://evil.example/location",
        "Property": {"@id": "https://evil.example/Property"},
        "observedAt": "https://evil.example/observedAt",
        "ngsi-ld": "https://evil.example/",
        "id": "@id",  # restated identically: no warning
        "speed": "ngsi-ld:speed",
    }
    ctx = await r.resolve(value)
    assert ctx.expand("location") == NGSI_LD + "location"
    assert ctx.expand("Property") == NGSI_LD + "Property"
    assert ctx.expand("observedAt") == NGSI_LD + "observedAt"
    assert ctx.expand("speed") == NGSI_LD + "speed"  # core "ngsi-ld" prefix, not the user's
    assert len(ctx.warnings) == 4
    assert any("'location'" in w for w in ctx.warnings)
    fast_and_pyld(value)


async def test_user_vocab_and_core_url_order() -> None:
    r = ContextResolver(fetch=no_fetch)
    mine = {"@vocab": "https://mine.example/"}
    assert (await r.resolve(mine)).expand("a") == "https://mine.example/a"
    # Naming the core after a user @vocab puts the core's @vocab back (plain JSON-LD).
    assert (await r.resolve([mine, CORE_CONTEXT_V18])).expand("a") == DEFAULT_VOCAB + "a"
    assert (await r.resolve([CORE_CONTEXT_V19, mine])).expand("a") == "https://mine.example/a"
    # Removing the @vocab falls back to the NGSI-LD default one.
    assert (await r.resolve({"@vocab": None})).expand("a") == DEFAULT_VOCAB + "a"


@pytest.mark.parametrize("url", [CORE_CONTEXT_V1, CORE_CONTEXT_V18, CORE_CONTEXT_V19])
async def test_core_urls_are_never_fetched(url: str) -> None:
    r = ContextResolver(fetch=no_fetch)
    ctx = await r.resolve(url)
    assert ctx.is_core_only
    assert await r.resolve([url]) is not ctx
    assert (await r.resolve([url])).is_core_only


# ------------------------------------------------------------------------- fast path vs pyld


@pytest.mark.parametrize(
    "value",
    [
        SDM_LIKE,
        TUTORIAL_LIKE,
        [SDM_LIKE, TUTORIAL_LIKE],
        [TUTORIAL_LIKE, {"@vocab": None}, {"late": "fiware:late"}],
        {"@version": 1.1, "@language": "en", "a": {"@id": "https://x/a", "@direction": "ltr"}},
        {"@vocab": "ngsi-ld:", "w": "w"},
        {"blank": "_:b0", "nested": {"@id": "https://x/n", "@nest": "@nest"}},
        # "schema" lacks a trailing gen-delim, so it is no prefix: "schema:name" stays as is
        {"schema": "https://schema.org", "name": "schema:name", "self": {"@id": "self"}},
        [{"@vocab": "https://v.example/"}, {"@vocab": "sub/", "@language": "de", "t": "t2"}],
        {"typed": {"@id": "https://x/typed", "@type": "later"}, "later": "https://x/Later"},
        {
            "c1": {"@id": "https://x/c1", "@container": ["@set", "@index"]},
            "c2": {"@id": "https://x/c2", "@container": "@type"},
        },
    ],
)
def test_fast_path_agrees_with_pyld(value: Any) -> None:
    tm = fast_and_pyld(value)
    ctx = Context(tm, source=value, key="k")
    names = [*(k for k in (value if isinstance(value, dict) else {}) if not k.startswith("@"))]
    for part in value if isinstance(value, list) else [value]:
        if isinstance(part, dict):
            names.extend(k for k in part if not k.startswith("@"))
    names = [n for n in dict.fromkeys([*names, *PROBE_NAMES]) if n not in ("id", "type", "hidden")]
    oracle = oracle_expansions(value, names, {})
    for name in names:
        if name in oracle:
            assert ctx.expand(name) == oracle[name], name
        else:  # JSON-LD drops it for lack of a @vocab; NGSI-LD falls back to the default one
            assert ctx.vocab is None and ctx.expand(name) == DEFAULT_VOCAB + name


def test_fast_path_with_remote_documents_agrees_with_pyld() -> None:
    docs = {
        "https://ctx.example/a.jsonld": {"@context": ["b.jsonld", {"a": "https://a.example/a"}]},
        "https://ctx.example/b.jsonld": {
            "@context": {"b": "https://b.example/b", "@vocab": "https://b/"}
        },
    }
    value = ["https://ctx.example/a.jsonld", {"c": "b:c"}]
    found: dict[str, Any] = {}
    assert not collect_documents(value, docs.get, found)
    assert set(found) == set(docs)
    tm = fast_and_pyld(value, docs)
    ctx = Context(tm, source=value, key="k")
    oracle = oracle_expansions(value, ["a", "b", "c", "zzz"], docs)
    assert oracle == {n: ctx.expand(n) for n in oracle}
    assert ctx.expand("zzz") == "https://b/zzz"


@pytest.mark.parametrize(
    ("value", "docs", "checks"),
    [
        # @import: the imported context, overridden by the local one
        (
            {"@import": "https://ctx.example/base.jsonld", "b": "https://local.example/b"},
            {
                "https://ctx.example/base.jsonld": {
                    "@context": {"a": "https://imp/a", "b": "https://imp/b"}
                }
            },
            {"a": "https://imp/a", "b": "https://local.example/b"},
        ),
        # @reverse properties
        (
            {"parentOf": {"@reverse": "https://ex.org/childOf"}},
            {},
            {"parentOf": "https://ex.org/childOf"},
        ),
        # @propagate and a term shaped like a compact IRI
        (
            {"@propagate": True, "ex": "https://ex.org/", "ex:name": {"@type": "@id"}},
            {},
            {"ex:name": "https://ex.org/name", "ex:other": "https://ex.org/other"},
        ),
        # @base does not affect vocab-relative names
        (
            {"@base": "https://base.example/", "qq": "https://ex.org/q"},
            {},
            {"qq": "https://ex.org/q"},
        ),
        # user-protected terms restated identically
        (
            [{"@protected": True, "p": "https://ex.org/p"}, {"p": "https://ex.org/p"}],
            {},
            {"p": "https://ex.org/p"},
        ),
        # the @type keyword's own definition (JSON-LD 1.1)
        ({"@type": {"@container": "@set"}, "t": "https://ex.org/t"}, {}, {"t": "https://ex.org/t"}),
    ],
)
async def test_pyld_fallback_is_correct(
    value: Any, docs: dict[str, Any], checks: dict[str, str]
) -> None:
    r = ContextResolver(fetch=FakeFetch(docs))
    ctx = await r.resolve(value)
    assert ctx.used_pyld
    oracle = oracle_expansions(value, list(checks), docs, frozenset({"parentOf"}))
    for name, iri in checks.items():
        assert ctx.expand(name) == iri
        assert oracle[name] == iri


async def test_pyld_fallback_leaves_the_core_alone() -> None:
    # pyld's @import merges into the document it loaded; the core must not be that document.
    before = orjson.dumps(core_document())
    with pytest.raises(BadRequestData):  # pyld rejects the core's @version once imported
        await ContextResolver(fetch=no_fetch).resolve({"@import": CORE_CONTEXT_V18, "i": "x:i"})
    assert orjson.dumps(core_document()) == before
    assert build_term_map(None, lambda _url: None, force_pyld=True).terms == core_term_map().terms


async def test_scoped_contexts_are_accepted_and_ignored() -> None:
    r = ContextResolver(fetch=no_fetch)
    value = {
        "address": {"@id": "https://schema.org/address", "@context": {"street": "https://x/s"}},
        "Car": {"@id": "https://ex.org/Car", "@context": "https://never.fetched/ctx.jsonld"},
    }
    ctx = await r.resolve(value)
    assert not ctx.used_pyld
    assert ctx.expand("address") == "https://schema.org/address"
    assert ctx.expand("Car") == "https://ex.org/Car"
    assert ctx.expand("street") == DEFAULT_VOCAB + "street"
    fast_and_pyld(value)


@pytest.mark.parametrize(
    "value",
    [
        42,
        True,
        [[{"a": "https://x/a"}]],
        "relative/context.jsonld",
        {"a": 42},
        {"a": {"@id": "https://x/a", "@container": "@bogus"}},
        {"a": {"@id": 5}},
        {"a": {"@id": "https://x/a", "@unknown": 1}},
        {"@vocab": 3},
        {"a": "b", "b": "a"},
        {"@version": 1.0},
        [{"@protected": True, "p": "https://ex.org/p"}, {"p": "https://ex.org/other"}],
        {"a": {"@reverse": "https://x/r", "@id": "https://x/a"}},
        {"relative": "not-an-iri-without-vocab", "@vocab": None},
    ],
)
async def test_invalid_contexts_are_bad_request(value: Any) -> None:
    r = ContextResolver(fetch=no_fetch)
    with pytest.raises(BadRequestData):
        await r.resolve(value)


# ------------------------------------------------------------------------- fetch and cache


async def test_fetch_once_then_cached() -> None:
    url = "https://ctx.example/sdm.jsonld"
    fetch = FakeFetch({url: {"@context": SDM_LIKE}})
    r = ContextResolver(fetch=fetch)
    ctx = await r.resolve(url)
    assert ctx.expand("intensity") == TRANSPORT + "intensity"
    assert await r.resolve(url) is ctx
    # A different value using the same URL reuses the downloaded document.
    ctx2 = await r.resolve([url, {"extra": "https://x/extra"}])
    assert ctx2.expand("laneId") == TRANSPORT + "laneId"
    assert fetch.calls == [url]
    (info,) = r.list(kind="Cached")[1:]
    assert info.url == url and info.number_of_hits == 2 and info.last_usage is not None


async def test_concurrent_resolves_share_one_fetch() -> None:
    url = "https://ctx.example/slow.jsonld"
    fetch = FakeFetch({url: {"@context": SDM_LIKE}}, delay=0.05)
    r = ContextResolver(fetch=fetch)
    results = await asyncio.gather(*(r.resolve(url) for _ in range(20)))
    assert fetch.calls == [url]
    assert all(c is results[0] for c in results)
    # Different values needing the same URL at once also share the download.
    fetch.calls.clear()
    url2 = "https://ctx.example/other.jsonld"
    fetch.docs[url2] = {"@context": {"o": "https://o/o"}}
    await asyncio.gather(*(r.resolve([url2, {f"t{i}": "https://t/"}]) for i in range(5)))
    assert fetch.calls == [url2]


async def test_nested_remote_contexts_resolve_through_the_cache() -> None:
    docs = {
        "https://ctx.example/top.jsonld": {
            "@context": ["https://ctx.example/sdm.jsonld", "./extra.jsonld", {"top": "sdm:top"}]
        },
        "https://ctx.example/sdm.jsonld": {"@context": SDM_LIKE},
        "https://ctx.example/extra.jsonld": {"@context": {"extra": "https://x/extra"}},
    }
    fetch = FakeFetch(docs)
    r = ContextResolver(fetch=fetch)
    ctx = await r.resolve("https://ctx.example/top.jsonld")
    assert ctx.expand("top") == SDM + "top"
    assert ctx.expand("extra") == "https://x/extra"
    assert ctx.expand("Vehicle") == TRANSPORT + "Vehicle"
    assert sorted(fetch.calls) == sorted(docs)
    await r.resolve("https://ctx.example/sdm.jsonld")
    assert len(fetch.calls) == 3


async def test_remote_cycles_and_depth_are_bad_request() -> None:
    cyc = {
        "https://c.example/a": {"@context": "https://c.example/b"},
        "https://c.example/b": {"@context": ["https://c.example/a"]},
    }
    with pytest.raises(BadRequestData, match="includes itself"):
        await ContextResolver(fetch=FakeFetch(cyc)).resolve("https://c.example/a")
    deep = {f"https://d.example/{i}": {"@context": f"https://d.example/{i + 1}"} for i in range(20)}
    with pytest.raises(BadRequestData, match="deeper"):
        await ContextResolver(fetch=FakeFetch(deep)).resolve("https://d.example/0")


async def test_unavailable_contexts_are_503_naming_the_url() -> None:
    docs: dict[str, Any] = {
        "https://x.example/nocontext": {"foo": 1},
        "https://x.example/array": [1, 2],
    }
    r = ContextResolver(fetch=FakeFetch(docs))
    for url in ("https://x.example/down", "https://x.example/nocontext", "https://x.example/array"):
        with pytest.raises(LdContextNotAvailable, match=url) as exc:
            await r.resolve([url])
        assert exc.value.status == 503
    assert r.list(kind="Cached")[1:] == []


async def test_lru_bound_on_cached_documents() -> None:
    docs = {f"https://l.example/{i}": {"@context": {f"t{i}": f"https://t/{i}"}} for i in range(4)}
    fetch = FakeFetch(docs)
    r = ContextResolver(fetch=fetch, cache_size=2)
    for i in range(4):
        await r.resolve(f"https://l.example/{i}")
    assert [i.url for i in r.list(kind="Cached")[1:]] == [
        "https://l.example/2",
        "https://l.example/3",
    ]
    # The evicted document's processed Context was dropped too, so it is fetched again.
    await r.resolve("https://l.example/0")
    assert fetch.calls.count("https://l.example/0") == 2


# ------------------------------------------------------------------------- real HTTP


class _Handler(http.server.BaseHTTPRequestHandler):
    accepts: list[str] = []  # noqa: RUF012 - shared with the test on purpose

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {"Content-Type": "application/ld+json"}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        type(self).accepts.append(self.headers.get("Accept", ""))
        if self.path == "/ctx.jsonld":
            self._send(200, orjson.dumps({"@context": SDM_LIKE}))
        elif self.path == "/big.jsonld":
            big = {f"term{i}": f"https://big.example/{i}" for i in range(200)}
            self._send(200, orjson.dumps({"@context": big}))
        elif self.path == "/chunked.jsonld":  # no Content-Length: the cap applies while reading
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"@context": {"pad": "' + b"x" * 5000 + b'"}}')
            self.close_connection = True
        elif self.path == "/notjson":
            self._send(200, b"<html>nope</html>", {"Content-Type": "text/html"})
        elif self.path == "/redirect":
            self._send(302, b"", {"Location": "/ctx.jsonld"})
        elif self.path == "/loop":
            self._send(302, b"", {"Location": "/loop"})
        elif self.path == "/slow":
            time.sleep(1.0)
            self._send(200, orjson.dumps({"@context": {}}))
        else:
            self._send(404, b'{"error": "not found"}')


@pytest.fixture(scope="module")
def ctx_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


async def test_real_http_fetch(ctx_server: str) -> None:
    r = ContextResolver(fetch_timeout_s=2.0)
    ctx = await r.resolve(f"{ctx_server}/ctx.jsonld")
    assert ctx.expand("Vehicle") == TRANSPORT + "Vehicle"
    assert "application/ld+json" in _Handler.accepts[-1]
    ctx = await r.resolve(f"{ctx_server}/redirect")
    assert ctx.expand("laneId") == TRANSPORT + "laneId"


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("/missing.jsonld", "HTTP 404"),
        ("/big.jsonld", "larger than"),
        ("/chunked.jsonld", "larger than"),
        ("/notjson", "not valid JSON"),
        ("/loop", "TooManyRedirects"),
        ("/slow", "timed out"),
    ],
)
async def test_real_http_failures(ctx_server: str, path: str, why: str) -> None:
    r = ContextResolver(fetch_timeout_s=0.3, max_bytes=2000)
    url = f"{ctx_server}{path}"
    with pytest.raises(LdContextNotAvailable, match=why) as exc:
        await r.resolve(url)
    assert url in exc.value.detail


async def test_unfetchable_schemes() -> None:
    r = ContextResolver()
    with pytest.raises(LdContextNotAvailable, match="unsupported scheme"):
        await r.resolve("urn:example:context")
    with pytest.raises(LdContextNotAvailable, match=r"http://127\.0\.0\.1:9/"):
        await r.resolve("http://127.0.0.1:9/ctx.jsonld")


# ------------------------------------------------------------------------- the @context store


async def test_host_list_get_and_resolve_hosted() -> None:
    events: list[tuple[str, str]] = []
    r = ContextResolver(fetch=no_fetch, on_change=lambda e, rec: events.append((e, rec["localId"])))
    info = r.host({"@context": {"speed": "https://ex.org/speed"}})
    assert info.kind == "Hosted" and info.url is None
    assert info.path == f"/ngsi-ld/v1/jsonldContexts/{info.local_id}" and info.id == info.local_id
    assert events == [("created", info.local_id)]
    kinds = [(i.kind, i.local_id) for i in r.list()]
    assert kinds[0] == ("Cached", "ngsi-ld-core-context") and ("Hosted", info.local_id) in kinds
    assert [i.local_id for i in r.list(kind="Hosted")] == [info.local_id]
    with pytest.raises(BadRequestData):
        r.list(kind="Bogus")
    got, doc = r.get(info.local_id)
    assert doc == {"@context": {"speed": "https://ex.org/speed"}} and got.number_of_hits == 1
    base = "http://hub.example:8700"
    link = info.url_at(base)
    assert r.get(link)[0].local_id == info.local_id
    ctx = await r.resolve(link)  # served locally, no fetch
    assert ctx.expand("speed") == "https://ex.org/speed"
    assert r.get(info.local_id, count_hit=False)[0].number_of_hits == 3
    assert info.to_json(False, base) == link
    details = r.get(info.local_id, count_hit=False)[0].to_json(True, base)
    assert (
        details["URL"] == link
        and details["kind"] == "Hosted"
        and details["localId"] == info.local_id
    )
    assert {"createdAt", "lastUsage", "numberOfHits"} <= set(details)


async def test_host_validation() -> None:
    r = ContextResolver(fetch=no_fetch)
    bad_documents: list[Any] = [
        {"speed": "https://x"},
        [],
        {"@context": None},
        {"@context": {"a": 42}},
        {"@context": 7},
    ]
    for bad in bad_documents:
        with pytest.raises(BadRequestData):
            r.host(bad)
    r.host({"@context": {"a": "https://x/a"}}, id="mine")
    with pytest.raises(AlreadyExists):
        r.host({"@context": {"a": "https://x/a"}}, id="mine")
    with pytest.raises(BadRequestData):
        r.host({"@context": {}}, id="bad id/with slash")
    with pytest.raises(BadRequestData):
        r.host({"@context": {}}, kind="Cached")
    # A URL not downloaded yet is accepted; it is checked when used.
    assert r.host({"@context": "https://later.example/ctx"}).kind == "Hosted"


async def test_delete_hosted_and_core() -> None:
    events: list[str] = []
    r = ContextResolver(fetch=no_fetch, on_change=lambda e, rec: events.append(e))
    info = r.host({"@context": {"speed": "https://ex.org/speed"}})
    base = "http://hub.example"
    r.url_for(await r.resolve({"x": "https://x/x"}), base)  # makes our base URL known
    await r.resolve(info.url_at(base))
    await r.delete(info.local_id)
    assert events == ["created", "created", "deleted"]
    with pytest.raises(ResourceNotFound):
        r.get(info.local_id)
    with pytest.raises(ResourceNotFound):
        await r.delete(info.local_id)
    # Our own deleted URL is not downloaded from ourselves.
    with pytest.raises(LdContextNotAvailable):
        await r.resolve(info.url_at(base))
    r2 = ContextResolver(fetch=no_fetch, base_url="https://hub.example/")
    with pytest.raises(LdContextNotAvailable, match="no such hosted"):
        await r2.resolve("https://hub.example/ngsi-ld/v1/jsonldContexts/gone")
    for core in ("ngsi-ld-core-context", CORE_CONTEXT_V18, CORE_CONTEXT_V1):
        with pytest.raises(BadRequestData):
            await r.delete(core)
    with pytest.raises(BadRequestData):
        await r.delete(r.host({"@context": {}}).local_id, reload=True)


async def test_delete_and_reload_cached() -> None:
    url = "https://ctx.example/v.jsonld"
    fetch = FakeFetch({url: {"@context": {"speed": "https://v1/speed"}}})
    r = ContextResolver(fetch=fetch)
    assert (await r.resolve(url)).expand("speed") == "https://v1/speed"
    fetch.docs[url] = {"@context": {"speed": "https://v2/speed"}}
    assert (await r.resolve(url)).expand("speed") == "https://v1/speed"  # cached
    await r.delete(url, reload=True)
    assert len(fetch.calls) == 2
    assert (await r.resolve(url)).expand("speed") == "https://v2/speed"
    (cached,) = r.list(kind="Cached")[1:]
    assert r.get(cached.local_id)[1] == fetch.docs[url]
    # A failed reload keeps the old copy.
    del fetch.docs[url]
    with pytest.raises(LdContextNotAvailable):
        await r.delete(cached.local_id, reload=True)
    assert (await r.resolve(url)).expand("speed") == "https://v2/speed"
    # Plain delete: the next use downloads it again.
    fetch.docs[url] = {"@context": {"speed": "https://v3/speed"}}
    await r.delete(cached.local_id)
    assert r.list(kind="Cached")[1:] == []
    assert (await r.resolve(url)).expand("speed") == "https://v3/speed"


async def test_url_for() -> None:
    url = "https://ctx.example/sdm.jsonld"
    r = ContextResolver(fetch=FakeFetch({url: {"@context": SDM_LIKE}}))
    base = "http://hub.example:8700/"
    assert r.url_for(await r.resolve(url), base) == url
    assert r.url_for(await r.resolve([url]), base) == url
    assert r.url_for(r.core, base) == DEFAULT_CORE_CONTEXT
    assert r.url_for(await r.resolve({}), base) == DEFAULT_CORE_CONTEXT
    assert r.url_for(await r.resolve([CORE_CONTEXT_V19]), base) == CORE_CONTEXT_V19
    inline = [url, {"extra": "https://x/extra"}]
    ctx = await r.resolve(inline)
    link = r.url_for(ctx, base)
    assert link.startswith("http://hub.example:8700/ngsi-ld/v1/jsonldContexts/")
    assert r.url_for(ctx, base) == link  # one entry per distinct value
    (implicit,) = r.list(kind="ImplicitlyCreated")
    assert link.endswith(implicit.local_id)
    assert r.get(link)[1] == {"@context": inline}
    same = await r.resolve(link)
    assert (
        same.expand("extra") == "https://x/extra"
        and same.expand("Vehicle") == TRANSPORT + "Vehicle"
    )


async def test_export_import_round_trip() -> None:
    r = ContextResolver(fetch=no_fetch)
    hosted = r.host({"@context": {"a": "https://x/a"}})
    ctx = await r.resolve([{"b": "https://x/b"}])
    link = r.url_for(ctx, "http://hub")
    await r.resolve(hosted.url_at("http://hub"))
    records = orjson.loads(orjson.dumps(r.export_hosted()))
    assert {rec["kind"] for rec in records} == {"Hosted", "ImplicitlyCreated"}

    r2 = ContextResolver(fetch=no_fetch)
    assert r2.import_hosted(records) == 2
    assert (await r2.resolve(link)).expand("b") == "https://x/b"
    info, _ = r2.get(hosted.local_id, count_hit=False)
    assert info.number_of_hits == 1 and info.created_at == hosted.created_at
    # The implicit entry is found again for the same value instead of duplicated.
    assert r2.url_for(await r2.resolve([{"b": "https://x/b"}]), "http://hub") == link
    assert len(r2.list(kind="ImplicitlyCreated")) == 1
    with pytest.raises(BadRequestData):
        r2.import_hosted([{"localId": "x", "kind": "Hosted", "document": {}}])


# ------------------------------------------------------------------------- Link header


LINK_REL = 'rel="http://www.w3.org/ns/json-ld#context"'


@pytest.mark.parametrize(
    ("header", "url"),
    [
        (None, None),
        ("", None),
        (
            f'<https://ex.org/c.jsonld>; {LINK_REL}; type="application/ld+json"',
            "https://ex.org/c.jsonld",
        ),
        (f"<https://ex.org/c.jsonld>;{LINK_REL}", "https://ex.org/c.jsonld"),
        (
            "<https://ex.org/c.jsonld>; rel=http://www.w3.org/ns/json-ld#context",
            "https://ex.org/c.jsonld",
        ),
        (
            '<https://ex.org/next>; rel="next", <https://ex.org/c.jsonld>; '
            'rel="alternate http://www.w3.org/ns/json-ld#context"',
            "https://ex.org/c.jsonld",
        ),
        ('<https://ex.org/next>; rel="next"', None),
        ('<https://ex.org/a,b>; title="x, \\"y\\""; ' + LINK_REL, "https://ex.org/a,b"),
    ],
)
def test_parse_link_header(header: str | None, url: str | None) -> None:
    assert parse_link_header(header) == url


@pytest.mark.parametrize(
    "header",
    [
        f"https://ex.org/c.jsonld; {LINK_REL}",
        f"<https://ex.org/c.jsonld; {LINK_REL}",
        '<https://ex.org/c.jsonld>; rel="http://www.w3.org/ns/json-ld#context; type=x',
        f"<https://ex.org/c.jsonld> {LINK_REL}",
        f"<>; {LINK_REL}",
        f"<c.jsonld>; {LINK_REL}",
        "<https://ex.org/c.jsonld>; =x",
        f"<https://ex.org/a>; {LINK_REL}, <https://ex.org/b>; {LINK_REL}",
    ],
)
def test_parse_link_header_malformed(header: str) -> None:
    with pytest.raises(BadRequestData):
        parse_link_header(header)
