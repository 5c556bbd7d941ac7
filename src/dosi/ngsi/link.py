"""Parsing the HTTP `Link` header that carries a JSON-LD @context (RFC 8288).

Clients sending `application/json` bodies (and every GET) name their @context
in a Link header with `rel="http://www.w3.org/ns/json-ld#context"`. A header
may hold several comma-separated links; only the JSON-LD one matters, and
JSON-LD 1.1 makes more than one of them an error.
"""

from __future__ import annotations

import re

from dosi.ngsi.errors import BadRequestData

JSONLD_CONTEXT_REL = "http://www.w3.org/ns/json-ld#context"

# RFC 7230 token characters (link-param names).
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Unquoted param values: tokens, leniently widened to unquoted URIs (`rel=http://...`),
# which clients send although RFC 8288 wants them quoted.
_BARE_VALUE = re.compile(r'[^\s;,"]+')
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+\-.]*:")
_OWS = " \t"


def parse_link_header(value: str | None) -> str | None:
    """Return the URL of the JSON-LD context link in a Link header, or None if there is none.

    Raises BadRequestData for a header that is not valid RFC 8288 syntax, for more
    than one JSON-LD context link, and for a context URL that is not absolute
    (there is no base to resolve it against in NGSI-LD).
    """
    if value is None or not value.strip():
        return None
    found: list[str] = []
    for target, params in _parse_links(value):
        rels = params.get("rel", "")
        if any(r.lower() == JSONLD_CONTEXT_REL for r in rels.split()):
            found.append(target)
    if not found:
        return None
    if len(found) > 1:
        raise BadRequestData(
            "Link header: more than one JSON-LD @context link (rel=json-ld#context)"
        )
    url = found[0].strip()
    if not _SCHEME.match(url):
        raise BadRequestData(f"Link header: the @context URL {url!r} is not an absolute URL")
    return url


def _malformed(header: str, why: str) -> BadRequestData:
    return BadRequestData(f"Malformed Link header ({why}): {header!r}")


def _parse_links(header: str) -> list[tuple[str, dict[str, str]]]:
    """Split a Link header into (target, {param: value}) pairs; first occurrence of a param wins."""
    links: list[tuple[str, dict[str, str]]] = []
    i, n = 0, len(header)
    while True:
        # Skip empty list elements ("a, , b" is allowed by the #rule).
        while i < n and (header[i] in _OWS or header[i] == ","):
            i += 1
        if i >= n:
            break
        if header[i] != "<":
            raise _malformed(header, "expected '<'")
        end = header.find(">", i + 1)
        if end < 0:
            raise _malformed(header, "unterminated '<'")
        target = header[i + 1 : end]
        if not target.strip() or any(c in target for c in "<\n\r"):
            raise _malformed(header, "empty or invalid link target")
        i = end + 1
        params: dict[str, str] = {}
        while True:
            while i < n and header[i] in _OWS:
                i += 1
            if i >= n or header[i] == ",":
                break
            if header[i] != ";":
                raise _malformed(header, "expected ';' or ','")
            i += 1
            while i < n and header[i] in _OWS:
                i += 1
            m = _TOKEN.match(header, i)
            if m is None:
                raise _malformed(header, "expected a parameter name")
            name = m.group().lower()
            i = m.end()
            while i < n and header[i] in _OWS:
                i += 1
            pvalue = ""
            if i < n and header[i] == "=":
                i += 1
                while i < n and header[i] in _OWS:
                    i += 1
                if i < n and header[i] == '"':
                    pvalue, i = _quoted_string(header, i)
                else:
                    m = _BARE_VALUE.match(header, i)
                    if m is None:
                        raise _malformed(header, f"expected a value for {name!r}")
                    pvalue, i = m.group(), m.end()
            params.setdefault(name, pvalue)
        links.append((target, params))
    return links


def _quoted_string(header: str, i: int) -> tuple[str, int]:
    """Read an RFC 7230 quoted-string starting at the opening quote; return (value, next index)."""
    out: list[str] = []
    i += 1
    n = len(header)
    while i < n:
        c = header[i]
        if c == "\\":
            if i + 1 >= n:
                break
            out.append(header[i + 1])
            i += 2
            continue
        if c == '"':
            return "".join(out), i + 1
        out.append(c)
        i += 1
    raise _malformed(header, "unterminated quoted string")
