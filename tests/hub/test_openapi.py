"""GET /openapi.json: a valid OpenAPI 3.0 document that matches the routes, and a bounded fuzz.

The fuzz (schemathesis, in-process over ASGI) generates requests from the
document itself, so it checks both sides: the hub never answers 5xx and every
4xx is ProblemDetails, and every status and media type the hub answers with
is one the document declares.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, CheckContext, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import content_type_conformance, status_code_conformance
from starlette.applications import Starlette
from starlette.routing import Route

from dosi.hub.app import create_app
from dosi.hub.openapi import openapi_document
from dosi.hub.routes import resources
from dosi.hub.settings import HubSettings
from dosi.ngsi.model import DEFAULT_CORE_CONTEXT

BASE = "/ngsi-ld/v1"
METHODS = ("get", "put", "post", "patch", "delete")
# Examples per operation and generation mode; raise it locally for a deeper run.
FUZZ_EXAMPLES = int(os.environ.get("DOSI_FUZZ_EXAMPLES", "12"))


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return openapi_document("http://127.0.0.1:8700")


def _operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method.upper(), path, operation


def _resolve(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    target: Any = doc
    for part in node["$ref"].removeprefix("#/").split("/"):
        target = target[part]
    assert isinstance(target, dict)
    return target


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _template(path: str) -> str:
    """'/types/{type:path}' and '/types/{type}' both become '/types/{}'."""
    return re.sub(r"\{[^}]*\}", "{}", path)


# --- the document itself ---------------------------------------------------------------------


def test_document_is_valid_openapi_30(doc: dict[str, Any]) -> None:
    assert doc["openapi"] == "3.0.3"
    # Raises jsonschema_rs.ValidationError against the OpenAPI 3.0 meta-schema.
    schemathesis.openapi.from_dict(doc).validate()
    json.dumps(doc)  # plain JSON, nothing Python-only


def test_every_reference_resolves(doc: dict[str, Any]) -> None:
    refs = set(_refs(doc))
    assert refs
    for ref in refs:
        assert ref.startswith("#/components/"), ref
        _resolve(doc, {"$ref": ref})


def test_operations_are_named_and_cite_a_clause(doc: dict[str, Any]) -> None:
    ids = [op["operationId"] for _, _, op in _operations(doc)]
    assert len(ids) == len(set(ids))
    for method, path, op in _operations(doc):
        if path.startswith(BASE):
            assert re.search(r"\(clauses? 5\.\d+\.\d+", op["summary"]), (method, path)
        assert op["responses"], (method, path)


def test_path_parameters_match_templates(doc: dict[str, Any]) -> None:
    for method, path, op in _operations(doc):
        params = [_resolve(doc, p) if "$ref" in p else p for p in op["parameters"]]
        in_path = {p["name"] for p in params if p["in"] == "path"}
        assert in_path == set(re.findall(r"\{([^}]+)\}", path)), (method, path)
        assert all(p["required"] for p in params if p["in"] == "path")


def test_errors_are_problem_details(doc: dict[str, Any]) -> None:
    problem = doc["components"]["schemas"]["ProblemDetails"]
    assert set(problem["required"]) == {"type", "title"}
    assert {"type", "title", "status", "detail"} <= set(problem["properties"])
    for method, path, op in _operations(doc):
        for status, response in op["responses"].items():
            if status.startswith(("4", "5")):
                content = _resolve(doc, response)["content"]
                assert list(content) == ["application/problem+json"], (method, path, status)


def test_paged_operations_document_too_many_results(doc: dict[str, Any]) -> None:
    """Regression (found by the fuzz test): limit above 1000 answers 403 TooManyResults."""
    for method, path, op in _operations(doc):
        names = {p["$ref"].rsplit("/", 1)[-1] for p in op.get("parameters", []) if "$ref" in p}
        if "limit" in names:
            assert "403" in op["responses"], (method, path)


def test_documented_shapes(doc: dict[str, Any]) -> None:
    params = doc["components"]["parameters"]
    assert params["limit"]["schema"] == {"type": "integer", "minimum": 0, "maximum": 1000}
    assert params["count"]["schema"] == {"type": "boolean"}
    assert params["format"]["schema"]["enum"] == [
        "normalized",
        "concise",
        "keyValues",
        "simplified",
    ]
    assert params["Link"]["in"] == params["NGSILD-Tenant"]["in"] == "header"
    entity = doc["components"]["schemas"]["Entity"]
    assert entity["type"] == "object"
    assert set(entity["required"]) == {"id", "type"}
    assert entity["properties"]["id"] == {"type": "string", "format": "uri"}
    create = doc["paths"][f"{BASE}/entities"]["post"]
    assert set(create["requestBody"]["content"]) == {"application/json", "application/ld+json"}
    assert set(create["responses"]) >= {"201", "400", "409", "413", "415", "503"}
    append = doc["paths"][f"{BASE}/entities/{{entityId}}/attrs"]["post"]
    append_params = [_resolve(doc, p) for p in append["parameters"]]
    (options,) = [p for p in append_params if p["name"] == "options"]
    assert options["schema"]["items"]["enum"] == ["noOverwrite"]


def test_static_parts_are_cached() -> None:
    one, two = openapi_document("http://a.example"), openapi_document("http://b.example/")
    assert one["paths"] is two["paths"]
    assert one["servers"] == [{"url": "http://a.example"}]
    assert two["servers"] == [{"url": "http://b.example"}]


# --- the document against the app's routes ---------------------------------------------------


def served_operations(app: Starlette) -> set[tuple[str, str]]:
    """(METHOD, path template) for every operation the app serves.

    /entities/{entityId}[/attrs[/{attrId}]] are one raw-path dispatcher route
    (hidden from the schema); its dispatch tables say which methods each serves.
    """
    served: set[tuple[str, str]] = set()
    hidden: list[str] = []
    for route in app.routes:
        assert isinstance(route, Route), route
        if not route.include_in_schema:
            hidden.append(route.path)
            continue
        assert route.methods is not None
        served |= {(m, _template(route.path)) for m in route.methods if m != "HEAD"}
    assert hidden == [resources.PREFIX + "{rest:path}"], hidden
    entity = resources.PREFIX + "{}"
    for table, path in (
        (resources._ENTITY, entity),
        (resources._ATTRS, entity + "/attrs"),
        (resources._ATTR, entity + "/attrs/{}"),
    ):
        served |= {(method, path) for method in table}
    return served


def test_document_matches_routes(doc: dict[str, Any], tmp_path: Path) -> None:
    app = create_app(HubSettings(data_dir=tmp_path))
    documented = {(method, _template(path)) for method, path, _ in _operations(doc)}
    served = served_operations(app)
    assert sorted(served - documented) == [], "served but not documented"
    assert sorted(documented - served) == [], "documented but not served"


async def test_served_at_openapi_json(client: httpx.AsyncClient, settings: HubSettings) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == json.loads(json.dumps(openapi_document(settings.base_url)))


# --- bounded fuzz ----------------------------------------------------------------------------

CORE_LINK = f'<{DEFAULT_CORE_CONTEXT}>; rel="http://www.w3.org/ns/json-ld#context"'
LD_CONTEXT_UNAVAILABLE = "https://uri.etsi.org/ngsi-ld/errors/LdContextNotAvailable"


def _offline(value: Any) -> Any:
    """URLs in a generated @context point at the bundled core context: the fuzz never fetches."""
    if isinstance(value, str):
        return DEFAULT_CORE_CONTEXT
    if isinstance(value, list):
        return [_offline(v) if isinstance(v, str) else v for v in value]
    return value


def _keep_offline(case: Case[Any]) -> None:
    body = case.body
    items = body if isinstance(body, list) else [body]
    for item in items:
        if isinstance(item, dict) and "@context" in item:
            item["@context"] = _offline(item["@context"])
    link = case.headers.get("Link") if case.headers else None
    if isinstance(link, str) and "json-ld#context" in link:
        case.headers["Link"] = CORE_LINK


def no_server_error(
    ctx: CheckContext, response: schemathesis.Response, case: Case[Any]
) -> bool | None:
    """No 5xx, except 503 for an @context the hub could not fetch (kept offline above anyway)."""
    if response.status_code == 503 and _problem(response).get("type") == LD_CONTEXT_UNAVAILABLE:
        return None
    return not_a_server_error(ctx, response, case)


def problem_details(
    ctx: CheckContext, response: schemathesis.Response, case: Case[Any]
) -> bool | None:
    """Every 4xx is application/problem+json with a type and a title (clause 5.5.2)."""
    if not 400 <= response.status_code < 500:
        return None
    media = response.headers.get("content-type", [""])[0]
    assert media.startswith("application/problem+json"), f"4xx served as {media!r}"
    problem = _problem(response)
    assert isinstance(problem.get("type"), str), f"4xx without a type: {problem}"
    assert isinstance(problem.get("title"), str), f"4xx without a title: {problem}"
    return None


def _problem(response: schemathesis.Response) -> dict[str, Any]:
    try:
        data = json.loads(response.content)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


CHECKS = [no_server_error, problem_details, status_code_conformance, content_type_conformance]


class Findings:
    """Failures grouped by operation and kind; one reproducer each."""

    def __init__(self) -> None:
        self.groups: dict[tuple[str, str], tuple[int, str]] = {}

    def add(self, case: Case[Any], kind: str, detail: str) -> None:
        key = (case.operation.label, kind)
        count, reproducer = self.groups.get(key, (0, ""))
        if not reproducer:
            reproducer = f"{detail}\n    {case.as_curl_command()}"
        self.groups[key] = (count + 1, reproducer)

    def report(self) -> str:
        return "\n\n".join(
            f"{label} [{kind}] x{count}\n    {reproducer}"
            for (label, kind), (count, reproducer) in sorted(self.groups.items())
        )


def _fuzz(operation: Any, mode: GenerationMode, findings: Findings, examples: int) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Case[Any]) -> None:
        _keep_offline(case)
        try:
            response = case.call()
        except Exception as exc:  # the app raised: Starlette answered 500 and re-raised
            findings.add(case, f"500 {type(exc).__name__}", f"500: {exc!r}"[:300])
            return
        try:
            case.validate_response(response, checks=CHECKS)
        except FailureGroup as group:
            for failure in group.exceptions:
                detail = f"{response.status_code}: {response.text[:300]}"
                findings.add(case, failure.title, detail)

    try:
        run()
    except Unsatisfiable:
        # Nothing to negate (no parameters and no body), e.g. GET /health.
        assert mode is GenerationMode.NEGATIVE


def test_fuzz_no_server_errors(tmp_path: Path) -> None:
    app = create_app(HubSettings(data_dir=tmp_path / "data", context_fetch_timeout_s=0.2))
    findings = Findings()
    started = time.perf_counter()
    try:
        # Schemathesis runs the app's lifespan (opening the store) on its own event loop.
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        for result in schema.get_all_operations():
            assert isinstance(result, Ok), result.err()
            operation = result.ok()
            _fuzz(operation, GenerationMode.POSITIVE, findings, FUZZ_EXAMPLES)
            _fuzz(operation, GenerationMode.NEGATIVE, findings, max(1, FUZZ_EXAMPLES // 2))
    finally:
        asgi.shutdown_lifespans()
    elapsed = time.perf_counter() - started
    assert not findings.groups, f"fuzzing for {elapsed:.0f}s found:\n\n{findings.report()}"
