"""JSON-LD context processing reduced to what NGSI-LD needs: a flat term map.

NGSI-LD uses an @context for one thing: mapping short names (attribute names,
entity types, VocabProperty values) to IRIs and back. So instead of a full
JSON-LD active context we compute a *flat* map term -> (IRI, prefix flag) plus
the @vocab, following the JSON-LD 1.1 Context Processing and Create Term
Definition algorithms.

Two implementations produce that map:

* a fast path, written here, for plain contexts (strings, `{"@id", "@type",
  "@container", ...}` definitions, prefixes, `@vocab`, lists, nested URLs) —
  nearly every real-world NGSI-LD context;
* pyld's context processor for everything else (`@import`, `@base`,
  `@propagate`, `@reverse`, user `@protected` terms, IRI-shaped terms, and any
  definition the fast path finds odd, including invalid ones so that pyld gives
  the authoritative error). The fast path never rejects a context itself.

NGSI-LD rules applied on both paths, before processing:

* The core context is always processed first (its terms are what NGSI-LD means
  by "Property", "location", ...). A user context may not change core terms:
  its definitions of them are dropped (core wins) and reported as warnings.
  JSON-LD would raise "protected term redefinition" instead; we ignore because
  older published contexts (Smart Data Models and others) routinely restate or
  slightly vary core terms, and rejecting them would make them unusable.
* `null` in a context list (a JSON-LD reset) resets to the core, not to empty.
* Scoped contexts (`"@context"` inside a term definition) are ignored: they do
  not change the flat map, and NGSI-LD's normalized form never applies them.
* Only the @vocab may be changed freely; it defaults to the core's
  (`https://uri.etsi.org/ngsi-ld/default-context/`).
"""

from __future__ import annotations

import functools
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from dosi.ngsi.context_documents import (
    ABSOLUTE_IRI,
    MAX_URLS,
    DocLookup,
    absolutize,
    core_local,
)
from dosi.ngsi.errors import BadRequestData, LdContextNotAvailable
from dosi.ngsi.model import CORE_CONTEXT_URLS

KEYWORDS: Final = frozenset(
    {
        "@base", "@container", "@context", "@default", "@direction", "@embed",
        "@explicit", "@first", "@graph", "@id", "@import", "@included", "@index",
        "@json", "@language", "@list", "@nest", "@none", "@omitDefault",
        "@propagate", "@protected", "@preserve", "@requireAll", "@reverse", "@set",
        "@type", "@value", "@version", "@vocab",
    }
)  # fmt: skip
_KEYWORD_FORM: Final = re.compile(r"^@[a-zA-Z]+$")
_GEN_DELIMS: Final = frozenset(":/?#[]@")
# Term-definition members the fast path understands (no @reverse, no @protected).
_FAST_DEF_KEYS: Final = frozenset(
    {"@id", "@type", "@container", "@language", "@direction", "@prefix", "@index", "@nest"}
)
_FAST_CTX_KEYWORDS: Final = frozenset({"@version", "@vocab", "@language", "@direction"})
_SIMPLE_CONTAINERS: Final = frozenset({"@list", "@set", "@index", "@language", "@id", "@type"})


@dataclass(frozen=True, slots=True)
class TermDef:
    """What a term means once processed: its IRI (None = explicitly unmapped)."""

    iri: str | None
    prefix: bool = False  # may be used as the prefix of a compact IRI
    reverse: bool = False


@dataclass(frozen=True, slots=True)
class TermMap:
    """The result of processing an @context value: every term in effect, and the @vocab."""

    terms: Mapping[str, TermDef]
    vocab: str | None
    warnings: tuple[str, ...] = ()
    used_pyld: bool = False


class _Fallback(Exception):
    """Raised inside the fast path when pyld must take over."""


# --------------------------------------------------------------------------- core


@functools.cache
def core_term_map() -> TermMap:
    """The core context processed by the fast path (checked against pyld in the tests)."""
    proc = _FastProcessor(TermMap({}, None), lambda _url: None, [])
    proc.process_local(core_local())
    return TermMap(dict(proc.terms), proc.vocab)


# --------------------------------------------------------------------------- sanitizing


def _quick_iri(value: Any) -> str | None:
    """Best-effort IRI of a user definition of a core term, only to decide whether to warn."""
    raw = value.get("@id") if isinstance(value, dict) else value
    if not isinstance(raw, str):
        return None
    core = core_term_map()
    defn = core.terms.get(raw)
    if defn is not None:
        return defn.iri
    prefix, sep, suffix = raw.partition(":")
    pdef = core.terms.get(prefix)
    if sep and pdef is not None and pdef.prefix and pdef.iri:
        return pdef.iri + suffix
    return raw


def sanitize_local(ctx: dict[str, Any], warnings_out: list[str]) -> dict[str, Any]:
    """Drop core-term redefinitions (warning when they differ) and scoped contexts."""
    core_raw = core_local()
    core = core_term_map()
    out: dict[str, Any] = {}
    for k, v in ctx.items():
        if not k.startswith("@") and k in core.terms:
            if v != core_raw.get(k) and _quick_iri(v) != core.terms[k].iri:
                msg = f"@context redefines the NGSI-LD core term {k!r}; the core definition is used"
                if msg not in warnings_out:
                    warnings_out.append(msg)
            continue
        if isinstance(v, dict) and "@context" in v:
            v = {dk: dv for dk, dv in v.items() if dk != "@context"}
        out[k] = v
    return out


# --------------------------------------------------------------------------- fast path


class _FastProcessor:
    """JSON-LD 1.1 context processing for plain contexts; raises _Fallback on anything else."""

    def __init__(self, core: TermMap, lookup: DocLookup, warnings_out: list[str]) -> None:
        self.core = core
        self.terms: dict[str, TermDef] = dict(core.terms)
        self.vocab: str | None = core.vocab
        self.lookup = lookup
        self.warnings = warnings_out

    def reset_to_core(self) -> None:
        self.terms = dict(self.core.terms)
        self.vocab = self.core.vocab

    def process(self, value: Any, base: str | None) -> None:
        items = value if isinstance(value, list) else [value]
        for item in items:
            if item is None:
                self.reset_to_core()
            elif isinstance(item, str):
                url = absolutize(item, base)
                if url in CORE_CONTEXT_URLS:
                    # Re-processing the core only restates its (self-contained) terms
                    # and puts its @vocab back, exactly as JSON-LD would.
                    self.terms.update(self.core.terms)
                    self.vocab = self.core.vocab
                    continue
                doc = self.lookup(url)
                if doc is None:  # collect_documents guarantees presence
                    raise LdContextNotAvailable(f"@context {url} is not available")
                self.process(doc["@context"], url)
            elif isinstance(item, dict):
                self.process_local(sanitize_local(item, self.warnings))
            else:
                raise _Fallback

    def process_local(self, ctx: dict[str, Any]) -> None:
        for k in ctx:
            if k.startswith("@") and k not in _FAST_CTX_KEYWORDS:
                raise _Fallback
        if "@version" in ctx and ctx["@version"] != 1.1:
            raise _Fallback
        if "@language" in ctx and not (
            ctx["@language"] is None or isinstance(ctx["@language"], str)
        ):
            raise _Fallback
        if "@direction" in ctx and ctx["@direction"] not in (None, "ltr", "rtl"):
            raise _Fallback
        if "@vocab" in ctx:
            v = ctx["@vocab"]
            if v is None:
                self.vocab = None
            elif isinstance(v, str):
                iri = self.expand_iri(v, None, None)
                if iri is None or not ABSOLUTE_IRI.match(iri):
                    raise _Fallback
                self.vocab = iri
            else:
                raise _Fallback
        defined: dict[str, bool] = {}
        for term in ctx:
            if not term.startswith("@"):
                self.define(ctx, term, defined)

    def expand_iri(
        self, value: str, local: dict[str, Any] | None, defined: dict[str, bool] | None
    ) -> str | None:
        """IRI expansion with vocab=True, defining local dependencies on demand (JSON-LD 1.1 §6.2)."""
        if value in KEYWORDS:
            return value
        if _KEYWORD_FORM.match(value):
            return None
        if (
            local is not None
            and defined is not None
            and value in local
            and defined.get(value) is not True
        ):
            self.define(local, value, defined)
        known = self.terms.get(value)
        if known is not None:
            return known.iri
        colon = value.find(":")
        if colon > 0:
            prefix, suffix = value[:colon], value[colon + 1 :]
            if prefix == "_" or suffix.startswith("//"):
                return value
            if (
                local is not None
                and defined is not None
                and prefix in local
                and not defined.get(prefix)
            ):
                self.define(local, prefix, defined)
            pdef = self.terms.get(prefix)
            if pdef is not None and pdef.prefix and pdef.iri is not None:
                return pdef.iri + suffix
            if ABSOLUTE_IRI.match(value):
                return value
        if self.vocab is not None:
            return self.vocab + value
        return value

    def define(self, local: dict[str, Any], term: str, defined: dict[str, bool]) -> None:
        """Create Term Definition (JSON-LD 1.1 §4.2.2), restricted to the plain cases."""
        state = defined.get(term)
        if state is True:
            return
        if state is False or not term or ":" in term or "/" in term:
            raise _Fallback  # cycle, or a term shaped like an IRI
        defined[term] = False
        value = local[term]
        if value is None:
            self.terms[term] = TermDef(None)
            defined[term] = True
            return
        simple = isinstance(value, str)
        if simple:
            raw_id: Any = value
            spec: dict[str, Any] = {}
        elif isinstance(value, dict):
            if any(k not in _FAST_DEF_KEYS for k in value):
                raise _Fallback
            spec = value
            raw_id = value.get("@id", term)
        else:
            raise _Fallback
        prefix = False
        iri: str | None
        if raw_id is None:
            iri = None
        elif not isinstance(raw_id, str):
            raise _Fallback
        elif raw_id == term:
            if self.vocab is None:
                raise _Fallback
            iri = self.vocab + term
        elif raw_id in KEYWORDS:
            if raw_id in ("@context", "@preserve"):
                raise _Fallback
            iri = raw_id
        else:
            if _KEYWORD_FORM.match(raw_id):
                raise _Fallback
            iri = self.expand_iri(raw_id, local, defined)
            if iri is None or not ABSOLUTE_IRI.match(iri):
                raise _Fallback
            prefix = simple and (iri.startswith("_:") or iri[-1] in _GEN_DELIMS)
        if spec:
            prefix = self._check_members(spec, iri, prefix, local, defined)
        self.terms[term] = TermDef(iri, prefix)
        defined[term] = True

    def _check_members(
        self,
        spec: dict[str, Any],
        iri: str | None,
        prefix: bool,
        local: dict[str, Any],
        defined: dict[str, bool],
    ) -> bool:
        """Validate the optional members of an expanded definition; return the prefix flag."""
        type_ = spec.get("@type")
        if "@type" in spec:
            if not isinstance(type_, str):
                raise _Fallback
            if type_ not in ("@id", "@vocab", "@json", "@none"):
                t = self.expand_iri(type_, local, defined)
                if t is None or not ABSOLUTE_IRI.match(t) or t.startswith("_:"):
                    raise _Fallback
        if "@container" in spec:
            c = spec["@container"]
            items = [c] if isinstance(c, str) else c
            if not isinstance(items, list) or not items:
                raise _Fallback
            if any(not isinstance(x, str) or x not in _SIMPLE_CONTAINERS for x in items):
                raise _Fallback
            if len(items) > (2 if "@set" in items else 1) or len(set(items)) != len(items):
                raise _Fallback
            if "@list" in items and len(items) != 1:
                raise _Fallback
            if "@type" in items and (type_ or "@id") not in ("@id", "@vocab"):
                raise _Fallback
        if "@index" in spec:
            idx = spec["@index"]
            c = spec.get("@container")
            has_index = c == "@index" or (isinstance(c, list) and "@index" in c)
            if not has_index or not isinstance(idx, str) or idx.startswith("@"):
                raise _Fallback
        language = spec.get("@language")
        if "@type" not in spec and not (language is None or isinstance(language, str)):
            raise _Fallback
        if "@direction" in spec and spec["@direction"] not in (None, "ltr", "rtl"):
            raise _Fallback
        if "@nest" in spec:
            nest = spec["@nest"]
            if not isinstance(nest, str) or (nest != "@nest" and nest.startswith("@")):
                raise _Fallback
            if nest != "@nest":
                raise _Fallback  # must resolve to @nest: leave the check to pyld
        if "@prefix" in spec:
            p = spec["@prefix"]
            if not isinstance(p, bool) or iri is None or iri in KEYWORDS:
                raise _Fallback
            return p
        return prefix


# --------------------------------------------------------------------------- pyld path


def _sanitize_value(value: Any, base: str | None, warnings_out: list[str]) -> list[Any]:
    """The @context value as pyld should see it: see the module docstring for the rules."""
    items = value if isinstance(value, list) else [value]
    out: list[Any] = []
    for item in items:
        if item is None:
            out.extend((None, dict(core_local())))
        elif isinstance(item, str):
            out.append(absolutize(item, base))
        elif isinstance(item, dict):
            local = sanitize_local(item, warnings_out)
            if isinstance(local.get("@import"), str):
                local["@import"] = absolutize(local["@import"], base)
            out.append(local)
        else:
            out.append(item)
    return out


def _process_with_pyld(value: Any, lookup: DocLookup, warnings_out: list[str]) -> TermMap:
    from pyld import jsonld
    from pyld.context_resolver import ContextResolver

    def loader(url: str, options: Any = None) -> dict[str, Any]:
        if url in CORE_CONTEXT_URLS:  # a copy: pyld's @import updates what it loads in place
            doc: dict[str, Any] = {"@context": dict(core_local())}
        else:
            raw = lookup(url)
            if raw is None:
                raise jsonld.JsonLdError(
                    f"@context {url} is not available", "jsonld.LoadDocumentError"
                )
            inner = raw["@context"]
            if isinstance(inner, dict) and "@import" not in inner:
                # Keep a single object single: @import needs it to be one.
                doc = {"@context": sanitize_local(inner, warnings_out)}
            else:
                doc = {"@context": _sanitize_value(inner, url, warnings_out)}
        return {"contextUrl": None, "documentUrl": url, "document": doc}

    proc = jsonld.JsonLdProcessor()
    options: dict[str, Any] = {
        "documentLoader": loader,
        "base": "",
        "processingMode": "json-ld-1.1",
        "contextResolver": ContextResolver({}, loader, max_context_urls=MAX_URLS + 1),
    }
    local = [dict(core_local()), *_sanitize_value(value, None, warnings_out)]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            initial = proc.process_context({}, None, options)
            active = proc.process_context(initial, local, options)
    except jsonld.JsonLdError as exc:
        raise BadRequestData(f"Invalid @context: {_pyld_message(exc)}") from exc
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        # pyld trips over some odd-but-valid inputs (e.g. "@language": null with no
        # language set); such a context reaches pyld only when it is unusual anyway.
        raise BadRequestData(f"Invalid @context: cannot be processed ({exc!r})") from exc
    terms: dict[str, TermDef] = {}
    for term, m in active["mappings"].items():
        if m is None:
            continue
        terms[term] = TermDef(m.get("@id"), bool(m.get("_prefix")), bool(m.get("reverse")))
    return TermMap(terms, active.get("@vocab"), used_pyld=True)


def _pyld_message(exc: Exception) -> str:
    code = getattr(exc, "code", None)
    msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"{msg} ({code})" if code else msg


# --------------------------------------------------------------------------- entry point


def build_term_map(value: Any, lookup: DocLookup, *, force_pyld: bool = False) -> TermMap:
    """Process an @context value (after `collect_documents` found every document) into a TermMap."""
    warnings_out: list[str] = []
    if not force_pyld:
        proc = _FastProcessor(core_term_map(), lookup, warnings_out)
        try:
            proc.process(value, None)
        except _Fallback:
            pass
        else:
            return TermMap(proc.terms, proc.vocab, tuple(warnings_out))
        warnings_out.clear()
    tm = _process_with_pyld(value, lookup, warnings_out)
    return TermMap(tm.terms, tm.vocab, tuple(warnings_out), used_pyld=True)
