"""@context resolution for the hub: from a request's @context value to a `Context`.

The hub stores everything expanded (see `model`); a `Context` is how one
request's names map to those IRIs and back. `ContextResolver` turns the
@context member or Link header value into a `Context`, downloading remote
contexts once (cached by URL), processing each distinct value once (cached by
canonical JSON), and keeps the clause 5.13 @context store behind the
`/jsonldContexts` endpoints.

How terms are processed, and the NGSI-LD rules on top of JSON-LD (the core
always applies and wins for its own terms; scoped contexts are ignored), are
in `context_processing`; fetching-side checks (shape, nesting depth, cycles)
in `context_documents`; the 5.13 bookkeeping in `context_cache`. Expansion rules of `Context.expand`, in order:

1. a term the contexts define -> its IRI (a term defined as null is an error);
2. `prefix:suffix` with `prefix` a prefix term -> prefix IRI + suffix;
3. anything shaped like an absolute IRI (`scheme:...`) -> unchanged;
4. otherwise -> @vocab + term (the NGSI-LD default vocab when none is set).
"""

from __future__ import annotations

import asyncio
import builtins
import functools
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Final

import orjson

from dosi.ngsi.context_cache import (
    CONTEXTS_PATH,
    CORE_LOCAL_ID,
    KINDS,
    ContextInfo,
    ContextStore,
    http_fetch,
)
from dosi.ngsi.context_documents import (
    ABSOLUTE_IRI,
    canonical_key,
    collect_documents,
    core_document_copy,
)
from dosi.ngsi.context_processing import TermDef, TermMap, build_term_map, core_term_map
from dosi.ngsi.errors import BadRequestData, LdContextNotAvailable, NgsiError
from dosi.ngsi.link import parse_link_header
from dosi.ngsi.model import CORE_CONTEXT_URLS, DEFAULT_CORE_CONTEXT, DEFAULT_VOCAB

__all__ = [
    "KINDS",
    "Context",
    "ContextInfo",
    "ContextResolver",
    "parse_link_header",
]

Fetch = Callable[[str], Awaitable[Any]]
OnChange = Callable[[str, dict[str, Any]], None]

_MEMO_LIMIT: Final = 8192  # per-Context expand/compact memo entries before a reset


class Context:
    """One @context value, processed: term <-> IRI mapping for a request.

    Immutable and shared between requests (the resolver hands out the same
    object for the same value); `expand` and `compact` memoize into private
    bounded dicts, so the common case is one dict lookup. Core terms live in
    one dict shared by every Context; only the user's own terms are per-Context.
    """

    __slots__ = (
        "_compact_memo",
        "_core",
        "_expand_memo",
        "_inverse",
        "_prefixes",
        "_user",
        "dependencies",
        "is_core_only",
        "key",
        "source",
        "used_pyld",
        "vocab",
        "warnings",
    )

    def __init__(
        self,
        term_map: TermMap,
        *,
        source: Any,
        key: str,
        dependencies: frozenset[str] = frozenset(),
    ) -> None:
        core = core_term_map()
        self._core: Mapping[str, TermDef] = core.terms
        self._user: dict[str, TermDef] = {
            t: d for t, d in term_map.terms.items() if core.terms.get(t) != d
        }
        #: The @context value as the client gave it (None = core only). Do not mutate.
        self.source: Any = source
        #: Canonical JSON of `source`: equal keys mean equal Contexts.
        self.key = key
        #: The @vocab in effect (None only if a user context removed it).
        self.vocab: str | None = term_map.vocab
        #: True when the value adds nothing to the core (no terms, same @vocab).
        self.is_core_only = not self._user and term_map.vocab == core.vocab
        #: Non-fatal problems found while processing, e.g. ignored core-term redefinitions.
        self.warnings: tuple[str, ...] = term_map.warnings
        #: Local ids of the stored contexts this one was built from (for hit counts, invalidation).
        self.dependencies = dependencies
        self.used_pyld = term_map.used_pyld
        self._expand_memo: dict[str, str] = {}
        self._compact_memo: dict[str, str] = {}
        self._inverse: dict[str, str] | None = None
        self._prefixes: list[tuple[str, str]] = []

    def __repr__(self) -> str:
        shown = self.key if len(self.key) <= 80 else self.key[:77] + "..."
        return f"Context({shown})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Context) and other.key == self.key

    def __hash__(self) -> int:
        return hash(self.key)

    def _term(self, term: str) -> TermDef | None:
        d = self._user.get(term)
        return d if d is not None else self._core.get(term)

    def defines(self, term: str) -> bool:
        """Whether the term is defined (rather than expanded through the @vocab or as an IRI)."""
        return self._term(term) is not None

    # -- expansion ------------------------------------------------------------------

    def expand(self, term: str) -> str:
        """Full IRI for an attribute name, entity type or vocab value (rules in the module doc)."""
        iri = self._expand_memo.get(term)
        if iri is None:
            iri = self._expand(term)
            if len(self._expand_memo) >= _MEMO_LIMIT:
                self._expand_memo.clear()
            self._expand_memo[term] = iri
        return iri

    def _expand(self, term: str) -> str:
        if not term:
            raise BadRequestData("An empty string is not a valid term")
        d = self._term(term)
        if d is not None:
            if d.iri is None:
                raise BadRequestData(f"The @context maps the term {term!r} to null")
            return d.iri
        if term[0] == "@":
            return term
        colon = term.find(":")
        if colon > 0:
            prefix, suffix = term[:colon], term[colon + 1 :]
            if prefix == "_" or suffix.startswith("//"):
                return term
            p = self._term(prefix)
            if p is not None and p.prefix and p.iri is not None:
                return p.iri + suffix
            if ABSOLUTE_IRI.match(term):
                return term
        return (self.vocab if self.vocab is not None else DEFAULT_VOCAB) + term

    # -- compaction -----------------------------------------------------------------

    def compact(self, iri: str) -> str:
        """Shortest name that expands back to `iri`: a term, else vocab-relative, else a compact IRI, else `iri`.

        Among several terms for one IRI the shortest (then alphabetically first)
        wins, as in JSON-LD's inverse context; container and type coercions are
        not considered since NGSI-LD compacts names, not values.
        """
        name = self._compact_memo.get(iri)
        if name is None:
            name = self._compact(iri)
            if len(self._compact_memo) >= _MEMO_LIMIT:
                self._compact_memo.clear()
            self._compact_memo[iri] = name
        return name

    def _build_inverse(self) -> dict[str, str]:
        merged = {**self._core, **self._user}
        inverse: dict[str, str] = {}
        prefixes: list[tuple[str, str]] = []
        for term in sorted(merged, key=lambda t: (len(t), t)):
            d = merged[term]
            if d.iri is None or d.reverse or d.iri.startswith("@"):
                continue
            inverse.setdefault(d.iri, term)
            if d.prefix:
                prefixes.append((term, d.iri))
        self._prefixes = prefixes
        self._inverse = inverse
        return inverse

    def _compact(self, iri: str) -> str:
        inverse = self._inverse if self._inverse is not None else self._build_inverse()
        term = inverse.get(iri)
        if term is not None:
            return term
        vocab = self.vocab if self.vocab is not None else DEFAULT_VOCAB
        if iri.startswith(vocab) and len(iri) > len(vocab):
            suffix = iri[len(vocab) :]
            if self._term(suffix) is None and self._round_trips(suffix, iri):
                return suffix
        best: str | None = None
        for pterm, piri in self._prefixes:
            if iri.startswith(piri) and len(iri) > len(piri):
                candidate = f"{pterm}:{iri[len(piri) :]}"
                if best is not None and (len(candidate), candidate) >= (len(best), best):
                    continue
                if self._term(candidate) is None and self._round_trips(candidate, iri):
                    best = candidate
        return best if best is not None else iri

    def _round_trips(self, name: str, iri: str) -> bool:
        try:
            return self.expand(name) == iri
        except BadRequestData:
            return False


class ContextResolver:
    """Resolves @context values to `Context` objects and keeps the clause 5.13 @context store.

    `fetch` (injectable for tests) returns the parsed JSON document at a URL;
    the default downloads it with httpx (timeout, at most 3 redirects, size cap).
    `on_change(event, record)` is called with "created"/"deleted" and the
    `export_hosted`-style record whenever a Hosted or ImplicitlyCreated entry
    appears or goes, so the hub can persist them. `base_url` (the hub's public
    URL, also learnt from `url_for`) lets a Link to one of our own, since
    deleted, hosted contexts fail fast instead of being downloaded from ourselves.
    """

    def __init__(
        self,
        *,
        fetch_timeout_s: float = 5.0,
        max_bytes: int = 1_048_576,
        cache_size: int = 256,
        fetch: Fetch | None = None,
        context_cache_size: int = 1024,
        on_change: OnChange | None = None,
        base_url: str | None = None,
    ) -> None:
        self.fetch_timeout_s = fetch_timeout_s
        self.max_bytes = max_bytes
        self._fetch: Fetch = fetch if fetch is not None else self._http_fetch
        self._store = ContextStore(cache_size, core_document_copy())
        self._contexts: OrderedDict[str, Context] = OrderedDict()
        self._context_cache_size = max(1, context_cache_size)
        self._inflight: dict[str, asyncio.Future[Any]] = {}
        self._bases: set[str] = {base_url.rstrip("/")} if base_url else set()
        self._on_change = on_change
        #: The core context alone: what a request without any @context gets.
        self.core = Context(core_term_map(), source=None, key="null")

    async def _http_fetch(self, url: str) -> Any:
        return await http_fetch(url, timeout_s=self.fetch_timeout_s, max_bytes=self.max_bytes)

    # -- resolution -----------------------------------------------------------------

    async def resolve(self, value: Any) -> Context:
        """The Context for an @context value: None, a URL, an inline object, or a list of those.

        Raises BadRequestData for an invalid value and LdContextNotAvailable
        (503) when a remote context cannot be retrieved.
        """
        if value is None:
            self._store.touch((CORE_LOCAL_ID,))
            return self.core
        key = canonical_key(value)
        ctx = self._contexts.get(key)
        if ctx is not None:
            self._contexts.move_to_end(key)
            self._store.touch(ctx.dependencies)
            return ctx
        found: dict[str, Any] = {}
        fetched: set[str] = set()
        while True:
            missing = collect_documents(value, self._local_document, found)
            if not missing:
                break
            urls = sorted(missing)
            docs = await asyncio.gather(*(self._download(u) for u in urls))
            found.update(zip(urls, docs, strict=True))
            fetched.update(urls)
        ctx = self._contexts.get(key)
        if ctx is not None:  # built by a concurrent resolve of the same value meanwhile
            return ctx
        ctx = self._build(value, key, found)
        used = (*found, *_core_refs(value))
        self._store.touch(self._store.entry_id_for_url(u) for u in used if u not in fetched)
        return ctx

    def _build(self, value: Any, key: str, found: Mapping[str, Any]) -> Context:
        term_map = build_term_map(value, found.get)
        used = (*found, *_core_refs(value))
        ctx = Context(
            term_map,
            source=_copy(value),
            key=key,
            dependencies=frozenset(self._store.entry_id_for_url(u) for u in used),
        )
        self._contexts[key] = ctx
        while len(self._contexts) > self._context_cache_size:
            self._contexts.popitem(last=False)
        return ctx

    def _local_document(self, url: str) -> Any:
        doc = self._store.local_document(url)
        if doc is None and any(url.startswith(b + CONTEXTS_PATH) for b in self._bases):
            # One of our own hosted URLs, since deleted: don't download from ourselves.
            raise LdContextNotAvailable(
                f"@context {url} is not available (no such hosted @context)"
            )
        return doc

    async def _download(self, url: str) -> Any:
        """Fetch a URL once however many requests want it at the same time."""
        fut = self._inflight.get(url)
        if fut is None:
            fut = asyncio.ensure_future(self._fetch_and_cache(url))
            self._inflight[url] = fut
            fut.add_done_callback(functools.partial(self._forget_inflight, url))
        return await asyncio.shield(fut)

    def _forget_inflight(self, url: str, fut: asyncio.Future[Any]) -> None:
        if self._inflight.get(url) is fut:
            del self._inflight[url]
        if not fut.cancelled():
            fut.exception()  # retrieved here so an unawaited failure is not logged

    async def _fetch_and_cache(self, url: str) -> Any:
        doc = await self._fetch_document(url)
        for evicted in self._store.put_cached(url, doc):
            self._invalidate(evicted)
        return doc

    async def _fetch_document(self, url: str) -> Any:
        try:
            doc = await self._fetch(url)
        except NgsiError:
            raise
        except Exception as exc:
            raise LdContextNotAvailable(f"@context {url} could not be retrieved: {exc}") from exc
        if not isinstance(doc, dict) or "@context" not in doc:
            raise LdContextNotAvailable(
                f"@context {url} is not a JSON-LD context document (no @context member)"
            )
        return doc

    def _invalidate(self, local_id: str) -> None:
        """Forget processed Contexts built from a stored entry that changed or went away."""
        stale = [k for k, c in self._contexts.items() if local_id in c.dependencies]
        for k in stale:
            del self._contexts[k]

    # -- Link headers ---------------------------------------------------------------

    def url_for(self, ctx: Context, base_url: str) -> str:
        """A URL to put in a Link header for `ctx`.

        The client's own URL when it used a single one, the core URL when the
        value adds nothing to the core, else the URL of an ImplicitlyCreated
        hosted copy (one per distinct value) under `base_url`.
        """
        src = ctx.source
        if isinstance(src, list) and len(src) == 1 and isinstance(src[0], str):
            src = src[0]
        if isinstance(src, str):
            return src
        if ctx.is_core_only:
            return DEFAULT_CORE_CONTEXT
        base = base_url.rstrip("/")
        self._bases.add(base)
        entry = self._store.implicit_for_key(ctx.key)
        if entry is None:
            entry = self._store.add_hosted(
                {"@context": ctx.source}, "ImplicitlyCreated", None, ctx.key
            )
            self._notify("created", entry.record())
        return base + entry.info().path

    # -- @context store (clause 5.13) -------------------------------------------------

    def host(self, document: Any, *, kind: str = "Hosted", id: str | None = None) -> ContextInfo:
        """Store a client-given @context (`POST /jsonldContexts`); returns its metadata.

        The document must be an object with an @context member. Inline parts are
        validated now; parts behind URLs not yet downloaded are validated when
        first used (call `resolve(document["@context"])` first to check them too).
        """
        if not isinstance(document, dict) or "@context" not in document:
            raise BadRequestData("A hosted @context must be a JSON object with an @context member")
        value = document["@context"]
        if value is None:
            raise BadRequestData("A hosted @context must not be null")
        key = canonical_key(value)
        if kind == "ImplicitlyCreated":
            existing = self._store.implicit_for_key(key)
            if existing is not None:
                return existing.info()
        self._validate_local(value)
        entry = self._store.add_hosted({"@context": _copy(value)}, kind, id, key)
        self._notify("created", entry.record())
        return entry.info()

    def _validate_local(self, value: Any) -> None:
        found: dict[str, Any] = {}
        if not collect_documents(value, self._store.local_document, found):
            build_term_map(value, found.get)

    def list(self, *, kind: str | None = None) -> builtins.list[ContextInfo]:
        """Every stored @context (core first, then by creation time), optionally of one kind."""
        return self._store.list(kind)

    def get(self, id_or_url: str, *, count_hit: bool = True) -> tuple[ContextInfo, Any]:
        """Metadata and document of a stored @context by local id or URL; ResourceNotFound if none."""
        return self._store.get(id_or_url, count_hit=count_hit)

    async def delete(self, id_or_url: str, *, reload: bool = False) -> None:
        """Remove a stored @context; with `reload`, re-download a Cached one instead.

        The core cannot be deleted (BadRequestData), `reload` applies only to
        Cached entries (BadRequestData), and a failed re-download leaves the old
        copy in place (LdContextNotAvailable).
        """
        info = self._store.find(id_or_url)
        if info.local_id == CORE_LOCAL_ID:
            raise BadRequestData("The NGSI-LD core @context cannot be deleted")
        if reload:
            if info.kind != "Cached" or info.url is None:
                raise BadRequestData(f"Only Cached @contexts can be reloaded, not {info.kind}")
            doc = await self._fetch_document(info.url)
            for evicted in self._store.put_cached(info.url, doc):
                self._invalidate(evicted)
            self._invalidate(info.local_id)
            return
        entry = self._store.remove(id_or_url)
        self._invalidate(entry.local_id)
        if entry.kind != "Cached":
            self._notify("deleted", entry.record())

    def export_hosted(self) -> builtins.list[dict[str, Any]]:
        """Hosted and ImplicitlyCreated entries as plain JSON records, for the hub's store."""
        return self._store.export()

    def import_hosted(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Restore records from `export_hosted` (e.g. at startup); returns how many were loaded."""
        count = 0
        for rec in records:
            doc = rec.get("document")
            if not isinstance(doc, dict) or "@context" not in doc:
                raise BadRequestData("Hosted @context record without an @context document")
            entry = self._store.restore(rec, canonical_key(doc["@context"]))
            self._invalidate(entry.local_id)
            count += 1
        return count

    def _notify(self, event: str, record: dict[str, Any]) -> None:
        if self._on_change is not None:
            self._on_change(event, record)


def _core_refs(value: Any) -> list[str]:
    """Core URLs named at the top level of a value (they count as uses of the core entry)."""
    items = value if isinstance(value, list) else [value]
    return [v for v in items if isinstance(v, str) and v in CORE_CONTEXT_URLS]


def _copy(value: Any) -> Any:
    """A private deep copy of a JSON value (keeps key order, unlike the canonical key)."""
    return orjson.loads(orjson.dumps(value)) if isinstance(value, (dict, list)) else value
