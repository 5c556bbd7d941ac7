"""The broker's @context store (ETSI GS CIM 009 clause 5.13): cached, hosted and implicit contexts.

Three kinds of entries, as the spec names them:

* ``Cached``: downloaded from their original URL when a request referenced
  them; LRU-bounded; re-downloaded on demand (delete with reload).
* ``Hosted``: given to the broker by a client (``POST /jsonldContexts``) and
  served back from ``/ngsi-ld/v1/jsonldContexts/{localId}``.
* ``ImplicitlyCreated``: inline or multi-part @context values the broker had
  to put behind a URL to answer with a Link header; one per distinct value.

The NGSI-LD core context is listed as a ``Cached`` entry that cannot be
deleted; it is shipped with the package and never downloaded.

This module holds the bookkeeping and the default HTTP fetch; it knows nothing
of term processing (see `context_processing`) or of `Context` objects.
"""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import re
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
import orjson

from dosi.ngsi.errors import AlreadyExists, BadRequestData, LdContextNotAvailable, ResourceNotFound
from dosi.ngsi.model import CORE_CONTEXT_URLS, DEFAULT_CORE_CONTEXT

KINDS: Final = ("Hosted", "Cached", "ImplicitlyCreated")
HOSTED_KINDS: Final = frozenset({"Hosted", "ImplicitlyCreated"})
CONTEXTS_PATH: Final = "/ngsi-ld/v1/jsonldContexts/"
CORE_LOCAL_ID: Final = "ngsi-ld-core-context"
ACCEPT: Final = "application/ld+json, application/json;q=0.9"
MAX_REDIRECTS: Final = 3

_LOCAL_ID: Final = re.compile(r"^[A-Za-z0-9._~-]{1,128}$")
_HOSTED_PATH: Final = re.compile(r"/ngsi-ld/v1/jsonldContexts/([A-Za-z0-9._~-]{1,128})$")


def utc_now() -> datetime:
    return datetime.now(UTC)


def format_time(t: datetime) -> str:
    """NGSI-LD DateTime, UTC with a Z, as the rest of the hub writes it."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def cached_local_id(url: str) -> str:
    """Stable id of a Cached entry: the same URL gets the same id across restarts."""
    return hashlib.sha256(url.encode()).hexdigest()[:32]


def implicit_local_id(key: str) -> str:
    """Stable id of an ImplicitlyCreated entry: derived from the canonical @context value."""
    return hashlib.sha256(key.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class ContextInfo:
    """A snapshot of one stored @context's metadata (clause 5.13.3, `details=true`)."""

    local_id: str
    kind: str
    #: Original URL for Cached entries (None for Hosted and ImplicitlyCreated).
    url: str | None
    created_at: datetime
    last_usage: datetime | None = None
    number_of_hits: int = 0
    extra_info: Mapping[str, Any] | None = None

    @property
    def id(self) -> str:
        return self.local_id

    @property
    def path(self) -> str:
        """Where the broker serves it: `/ngsi-ld/v1/jsonldContexts/{localId}`."""
        return CONTEXTS_PATH + self.local_id

    def url_at(self, base_url: str) -> str:
        """The URL clients should use: the original one if Cached, else the broker's own."""
        return self.url if self.url is not None else base_url.rstrip("/") + self.path

    def to_json(self, details: bool, base_url: str = "") -> Any:
        """List-endpoint form: the URL alone, or the clause 5.13.3 metadata object.

        Member names follow the spec's OpenAPI (`URL` in capitals; `createdAt`,
        which replaced `timestamp` in V1.8.1). No `expiresAt`: cached entries do
        not expire, they are evicted (LRU) or reloaded on request.
        """
        if not details:
            return self.url_at(base_url)
        out: dict[str, Any] = {
            "URL": self.url_at(base_url),
            "localId": self.local_id,
            "kind": self.kind,
            "createdAt": format_time(self.created_at),
        }
        if self.last_usage is not None:
            out["lastUsage"] = format_time(self.last_usage)
        out["numberOfHits"] = self.number_of_hits
        if self.extra_info:
            out["extraInfo"] = dict(self.extra_info)
        return out


@dataclass(slots=True)
class _Entry:
    local_id: str
    kind: str
    url: str | None
    document: Any
    created_at: datetime = field(default_factory=utc_now)
    last_usage: datetime | None = None
    hits: int = 0
    extra_info: dict[str, Any] | None = None
    key: str | None = None  # canonical @context value, ImplicitlyCreated only

    def info(self) -> ContextInfo:
        extra = dict(self.extra_info) if self.extra_info else None
        return ContextInfo(
            self.local_id, self.kind, self.url, self.created_at, self.last_usage, self.hits, extra
        )

    def touch(self, now: datetime) -> None:
        self.hits += 1
        self.last_usage = now

    def record(self) -> dict[str, Any]:
        rec: dict[str, Any] = {
            "localId": self.local_id,
            "kind": self.kind,
            "createdAt": format_time(self.created_at),
            "numberOfHits": self.hits,
            "document": self.document,
        }
        if self.last_usage is not None:
            rec["lastUsage"] = format_time(self.last_usage)
        return rec


class ContextStore:
    """Entries by local id and URL. Not thread-safe: used from one event loop."""

    def __init__(self, cache_size: int, core_document: Any) -> None:
        if cache_size < 1:
            raise ValueError("cache_size must be at least 1")
        self.cache_size = cache_size
        self._cached: OrderedDict[str, _Entry] = OrderedDict()  # url -> entry, LRU order
        self._cached_ids: dict[str, str] = {}  # local id -> url
        self._hosted: dict[str, _Entry] = {}  # local id -> entry (Hosted, ImplicitlyCreated)
        self._implicit: dict[str, str] = {}  # canonical key -> local id
        others = sorted(CORE_CONTEXT_URLS - {DEFAULT_CORE_CONTEXT})
        self._core = _Entry(
            CORE_LOCAL_ID,
            "Cached",
            DEFAULT_CORE_CONTEXT,
            core_document,
            extra_info={"core": True, "aliases": others},
        )

    # -- lookups ------------------------------------------------------------------

    def entry_id_for_url(self, url: str) -> str:
        """The local id a URL is (or would be) stored under: core, hosted, else Cached."""
        if url in CORE_CONTEXT_URLS:
            return CORE_LOCAL_ID
        hosted = self._hosted_for_url(url)
        return hosted.local_id if hosted is not None else cached_local_id(url)

    def local_document(self, url: str) -> Any:
        """The document for a URL without any download, or None; counts nothing."""
        hosted = self._hosted_for_url(url)
        if hosted is not None:
            return hosted.document
        entry = self._cached.get(url)
        if entry is not None:
            self._cached.move_to_end(url)
            return entry.document
        return None

    def _hosted_for_url(self, url: str) -> _Entry | None:
        m = _HOSTED_PATH.search(urlsplit(url).path)
        return self._hosted.get(m.group(1)) if m else None

    def _find(self, id_or_url: str) -> _Entry:
        if id_or_url == CORE_LOCAL_ID or id_or_url in CORE_CONTEXT_URLS:
            return self._core
        entry = self._hosted.get(id_or_url)
        if entry is None:
            url = self._cached_ids.get(id_or_url, id_or_url)
            entry = self._cached.get(url)
        if entry is None:
            entry = self._hosted_for_url(id_or_url)
        if entry is None:
            raise ResourceNotFound(f"No @context with id or URL {id_or_url!r}")
        return entry

    # -- usage ----------------------------------------------------------------------

    def touch(self, local_ids: Iterable[str]) -> None:
        now = utc_now()
        for lid in local_ids:
            if lid == CORE_LOCAL_ID:
                self._core.touch(now)
                continue
            entry = self._hosted.get(lid)
            if entry is None:
                url = self._cached_ids.get(lid)
                entry = self._cached.get(url) if url is not None else None
            if entry is not None:
                entry.touch(now)

    # -- cached ---------------------------------------------------------------------

    def put_cached(self, url: str, document: Any) -> list[str]:
        """Store (or replace) a downloaded document; return the local ids evicted by the LRU bound."""
        lid = cached_local_id(url)
        old = self._cached.pop(url, None)
        entry = _Entry(lid, "Cached", url, document)
        if old is not None:
            entry.hits, entry.last_usage = old.hits, old.last_usage
        self._cached[url] = entry
        self._cached_ids[lid] = url
        evicted: list[str] = []
        while len(self._cached) > self.cache_size:
            _, old_entry = self._cached.popitem(last=False)
            self._cached_ids.pop(old_entry.local_id, None)
            evicted.append(old_entry.local_id)
        return evicted

    # -- hosted ---------------------------------------------------------------------

    def add_hosted(
        self, document: dict[str, Any], kind: str, local_id: str | None, key: str
    ) -> _Entry:
        if kind not in HOSTED_KINDS:
            raise BadRequestData(f"Cannot host an @context of kind {kind!r}")
        if kind == "ImplicitlyCreated":
            existing = self._implicit.get(key)
            if existing is not None and existing in self._hosted:
                return self._hosted[existing]
            local_id = local_id or implicit_local_id(key)
        elif local_id is None:
            local_id = uuid.uuid4().hex
        if not _LOCAL_ID.match(local_id):
            raise BadRequestData(f"Invalid @context local id {local_id!r}")
        if local_id in self._hosted or local_id in self._cached_ids or local_id == CORE_LOCAL_ID:
            raise AlreadyExists(f"An @context with id {local_id!r} already exists")
        entry = _Entry(
            local_id, kind, None, document, key=key if kind == "ImplicitlyCreated" else None
        )
        self._hosted[local_id] = entry
        if kind == "ImplicitlyCreated":
            self._implicit[key] = local_id
        return entry

    def implicit_for_key(self, key: str) -> _Entry | None:
        lid = self._implicit.get(key)
        return self._hosted.get(lid) if lid is not None else None

    # -- management -----------------------------------------------------------------

    def list(self, kind: str | None = None) -> builtins.list[ContextInfo]:
        if kind is not None and kind not in KINDS:
            raise BadRequestData(
                f"Unknown @context kind {kind!r}; expected one of {', '.join(KINDS)}"
            )
        rest = sorted([*self._hosted.values(), *self._cached.values()], key=lambda e: e.created_at)
        return [e.info() for e in [self._core, *rest] if kind is None or e.kind == kind]

    def get(self, id_or_url: str, *, count_hit: bool) -> tuple[ContextInfo, Any]:
        entry = self._find(id_or_url)
        if count_hit:
            entry.touch(utc_now())
        return entry.info(), entry.document

    def find(self, id_or_url: str) -> ContextInfo:
        return self._find(id_or_url).info()

    def remove(self, id_or_url: str) -> _Entry:
        entry = self._find(id_or_url)
        if entry is self._core:
            raise BadRequestData("The NGSI-LD core @context cannot be deleted")
        if entry.kind == "Cached":
            assert entry.url is not None
            self._cached.pop(entry.url, None)
            self._cached_ids.pop(entry.local_id, None)
        else:
            self._hosted.pop(entry.local_id, None)
            if entry.key is not None:
                self._implicit.pop(entry.key, None)
        return entry

    def export(self) -> builtins.list[dict[str, Any]]:
        return [e.record() for e in sorted(self._hosted.values(), key=lambda e: e.created_at)]

    def restore(self, record: Mapping[str, Any], key: str) -> _Entry:
        """Re-insert an exported Hosted/ImplicitlyCreated record, replacing any entry with its id or value."""
        lid, kind = record.get("localId"), record.get("kind")
        if not isinstance(lid, str) or not _LOCAL_ID.match(lid) or kind not in HOSTED_KINDS:
            raise BadRequestData(f"Invalid hosted @context record for id {lid!r}")
        old = self._hosted.pop(lid, None)
        if old is not None and old.key is not None:
            self._implicit.pop(old.key, None)
        entry = _Entry(lid, str(kind), None, record["document"])
        entry.created_at = _parse_time(record.get("createdAt")) or entry.created_at
        entry.last_usage = _parse_time(record.get("lastUsage"))
        hits = record.get("numberOfHits")
        entry.hits = hits if isinstance(hits, int) and hits >= 0 else 0
        if kind == "ImplicitlyCreated":
            entry.key = key
            self._implicit[key] = lid
        self._hosted[lid] = entry
        return entry


# ------------------------------------------------------------------------------ fetch


async def http_fetch(url: str, *, timeout_s: float, max_bytes: int) -> Any:
    """Download and parse a JSON-LD context document; every failure is LdContextNotAvailable.

    One overall deadline (not per read) so a slow-drip server cannot hold a
    request; the body is capped while streaming, not after.
    """
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise LdContextNotAvailable(f"@context {url} cannot be retrieved: unsupported scheme")
    body = bytearray()
    try:
        async with (
            asyncio.timeout(timeout_s),
            httpx.AsyncClient(
                timeout=timeout_s,
                follow_redirects=True,
                max_redirects=MAX_REDIRECTS,
                headers={"Accept": ACCEPT},
            ) as client,
            client.stream("GET", url) as resp,
        ):
            if not 200 <= resp.status_code < 300:
                raise LdContextNotAvailable(
                    f"@context {url} could not be retrieved: HTTP {resp.status_code}"
                )
            declared = resp.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > max_bytes:
                raise _too_large(url, max_bytes)
            async for chunk in resp.aiter_bytes():
                body += chunk
                if len(body) > max_bytes:
                    raise _too_large(url, max_bytes)
    except TimeoutError as exc:
        raise LdContextNotAvailable(f"@context {url} could not be retrieved: timed out") from exc
    except httpx.HTTPError as exc:
        reason = type(exc).__name__
        raise LdContextNotAvailable(f"@context {url} could not be retrieved: {reason}") from exc
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise LdContextNotAvailable(f"@context {url} is not valid JSON") from exc


def _too_large(url: str, max_bytes: int) -> LdContextNotAvailable:
    return LdContextNotAvailable(f"@context {url} is larger than {max_bytes} bytes")
