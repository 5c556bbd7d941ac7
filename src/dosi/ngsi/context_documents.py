"""Where @context values come from: the shipped core, and remote documents.

Before any term is processed, a value's remote parts must be at hand. This
module checks a value's shape (an object, a URL, null, or a list of those) and
walks it, and the remote documents it names, to find which URLs still need
downloading, with a depth limit, a cap on how many, and cycle detection. It
also loads the NGSI-LD core context, which is shipped with the package and
never fetched, and gives values the canonical form they are cached under.
"""

from __future__ import annotations

import functools
import importlib.resources
import re
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import urljoin

import orjson

from dosi.ngsi.errors import BadRequestData
from dosi.ngsi.model import CORE_CONTEXT_URLS

#: Documents (`{"@context": ...}`) by absolute URL; None when unknown.
DocLookup = Callable[[str], Any]

MAX_DEPTH: Final = 8  # nesting of remote contexts inside remote contexts
MAX_URLS: Final = 32  # distinct remote contexts one @context value may pull in
ABSOLUTE_IRI: Final = re.compile(r"^([A-Za-z][A-Za-z0-9+\-.]*|_):[^\s]*$")


@functools.cache
def core_document() -> dict[str, Any]:
    """The shipped NGSI-LD core context document (never fetched over the network)."""
    ref = importlib.resources.files("dosi.ngsi").joinpath(
        "contexts/ngsi-ld-core-context-v1.9.jsonld"
    )
    doc: dict[str, Any] = orjson.loads(ref.read_bytes())
    return doc


def core_document_copy() -> dict[str, Any]:
    """A private deep copy of the core document, safe to hand out."""
    copy: dict[str, Any] = orjson.loads(orjson.dumps(core_document()))
    return copy


@functools.cache
def core_local() -> dict[str, Any]:
    """The core's local context minus `@protected` and scoped contexts.

    Neither matters to a flat term map (see `context_processing`), and the one
    scoped context in the core names a remote URL we would otherwise have to fetch.
    """
    raw: dict[str, Any] = core_document()["@context"]
    out: dict[str, Any] = {}
    for k, v in raw.items():
        if k == "@protected":
            continue
        if isinstance(v, dict) and "@context" in v:
            v = {dk: dv for dk, dv in v.items() if dk != "@context"}
        out[k] = v
    return out


def canonical_key(value: Any) -> str:
    """The cache key of an @context value: its canonical JSON (sorted object keys)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise BadRequestData(f"Invalid @context: not JSON-serializable ({exc})") from exc


def absolutize(ref: str, base: str | None) -> str:
    """Resolve a context reference against the document it appears in; reject relative refs at top level."""
    if ABSOLUTE_IRI.match(ref):
        return ref
    if base is None:
        raise BadRequestData(f"Invalid @context: {ref!r} is neither an object nor an absolute URL")
    return urljoin(base, ref)


def collect_documents(value: Any, lookup: DocLookup, found: dict[str, Any]) -> set[str]:
    """Walk an @context value, checking its shape and gathering remote documents.

    Known documents (from `lookup`) are added to `found`; the URLs still to be
    fetched are returned. Call again after fetching them, until none is missing.
    Core URLs need no document. Raises BadRequestData for a malformed value,
    a cycle of remote contexts or one nested too deep.
    """
    missing: set[str] = set()
    _collect(value, None, lookup, found, missing, (), 0)
    if len(found) + len(missing) > MAX_URLS:
        raise BadRequestData(f"Invalid @context: references more than {MAX_URLS} remote contexts")
    return missing


def _collect(
    value: Any,
    base: str | None,
    lookup: DocLookup,
    found: dict[str, Any],
    missing: set[str],
    path: tuple[str, ...],
    depth: int,
) -> None:
    items = value if isinstance(value, list) else [value]
    for item in items:
        if item is None:
            continue
        if isinstance(item, str):
            _collect_url(absolutize(item, base), lookup, found, missing, path, depth)
        elif isinstance(item, dict):
            imp = item.get("@import")
            if isinstance(imp, str):
                url = absolutize(imp, base)
                if url not in CORE_CONTEXT_URLS and url not in found:
                    doc = lookup(url)
                    if doc is None:
                        missing.add(url)
                    else:
                        found[url] = doc
        else:
            where = f" (in {base})" if base else ""
            raise BadRequestData(
                f"Invalid @context{where}: each entry must be an object, a URL or null, "
                f"not {type(item).__name__}"
            )


def _collect_url(
    url: str,
    lookup: DocLookup,
    found: dict[str, Any],
    missing: set[str],
    path: tuple[str, ...],
    depth: int,
) -> None:
    if url in CORE_CONTEXT_URLS:
        return
    if url in path:
        raise BadRequestData(f"Invalid @context: remote context {url} includes itself")
    if depth >= MAX_DEPTH:
        raise BadRequestData(f"Invalid @context: remote contexts nested deeper than {MAX_DEPTH}")
    doc = found.get(url)
    if doc is None:
        doc = lookup(url)
        if doc is None:
            missing.add(url)
            return
        found[url] = doc
    _collect(doc["@context"], url, lookup, found, missing, (*path, url), depth + 1)
