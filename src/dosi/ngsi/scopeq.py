"""Scope queries (ETSI GS CIM 009 clause 4.19): the `scopeQ` parameter.

A scope is a path of levels, `/Madrid/Gardens/ParqueNorte`. In a query `+`
stands for exactly one level and a final `#` for that level and everything
below it (`/Madrid/#` matches `/Madrid` and `/Madrid/Gardens/X`; `/#` matches
any scope). `;` is AND, `,` (or `|`) is OR, AND binds tighter, parentheses
group. A term matches when any of the entity's scopes matches it, so an entity
without a scope (or with only the NGSI-LD Null) matches no scope query.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TypeAlias

from dosi.ngsi.cursor import WHITESPACE, Cursor
from dosi.ngsi.errors import BadRequestData

MAX_LENGTH = 8192
MAX_DEPTH = 32
NGSI_LD_NULL = "urn:ngsi-ld:null"

_WS = WHITESPACE
_STOP = frozenset(",|;()") | _WS
# One scope level: letters, digits and underscore (the spec's ScopeLevel), plus '-'.
_LEVEL_RE = re.compile(r"[\w\-]+")

Levels: TypeAlias = tuple[str, ...]
_Check: TypeAlias = Callable[[list[Levels]], bool]


class ScopeFilter:
    """A compiled scope query; `matches` takes an entity's scope strings."""

    __slots__ = ("_check", "text")

    def __init__(self, text: str, check: _Check) -> None:
        self.text = text
        self._check = check

    def matches(self, scopes: Sequence[str]) -> bool:
        if isinstance(scopes, str):  # a lone scope string is one scope, not its characters
            scopes = (scopes,)
        split = [_levels(s) for s in scopes if isinstance(s, str) and s and s != NGSI_LD_NULL]
        return bool(split) and self._check(split)

    def __repr__(self) -> str:
        return f"ScopeFilter({self.text!r})"


def compile_scope(text: str) -> ScopeFilter:
    """Parse a scope query; BadRequestData on any syntax error."""
    if len(text) > MAX_LENGTH:
        raise BadRequestData(f"Invalid scopeQ: longer than {MAX_LENGTH} characters")
    if not text.strip():
        raise BadRequestData("Invalid scopeQ: empty")
    return ScopeFilter(text, _Parser(text).parse())


def _levels(scope: str) -> Levels:
    """The leading '/' is optional in a Scope, so `/A/B` and `A/B` are the same scope."""
    return tuple(scope.removeprefix("/").split("/"))


def _term(pattern: Levels) -> _Check:
    if "+" not in pattern and "#" not in pattern:
        return lambda scopes: pattern in scopes
    subtree = pattern[-1] == "#"
    fixed = pattern[:-1] if subtree else pattern

    def level_match(levels: Levels) -> bool:
        if len(levels) < len(fixed) or (not subtree and len(levels) != len(fixed)):
            return False
        return all(p == "+" or p == level for p, level in zip(fixed, levels, strict=False))

    return lambda scopes: any(level_match(levels) for levels in scopes)


class _Parser(Cursor):
    language = "scopeQ"

    def parse(self) -> _Check:
        check = self.union(0)
        if self.next_char():
            self.fail(f"unexpected {self.s[self.i]!r}")
        return check

    def union(self, depth: int) -> _Check:
        parts = [self.intersection(depth)]
        while self.next_char() in (",", "|"):
            self.i += 1
            parts.append(self.intersection(depth))
        if len(parts) == 1:
            return parts[0]
        return lambda scopes: any(part(scopes) for part in parts)

    def intersection(self, depth: int) -> _Check:
        parts = [self.factor(depth)]
        while self.next_char() == ";":
            self.i += 1
            parts.append(self.factor(depth))
        if len(parts) == 1:
            return parts[0]
        return lambda scopes: all(part(scopes) for part in parts)

    def factor(self, depth: int) -> _Check:
        if self.next_char() == "(":
            if depth >= MAX_DEPTH:
                self.fail(f"parentheses nested deeper than {MAX_DEPTH}")
            self.i += 1
            check = self.union(depth + 1)
            if self.next_char() != ")":
                self.fail("expected ')'")
            self.i += 1
            return check
        start = self.i
        while self.i < len(self.s) and self.s[self.i] not in _STOP:
            self.i += 1
        raw = self.s[start : self.i]
        if not raw:
            self.fail("expected a scope such as /Madrid/#")
        levels = _levels(raw)
        for n, level in enumerate(levels):
            if level == "#" and n != len(levels) - 1:
                self.fail("'#' may only be the last level", start)
            if level not in ("+", "#") and not _LEVEL_RE.fullmatch(level):
                reason = "an empty level" if not level else f"invalid scope level {level!r}"
                self.fail(f"{reason} in {raw!r}", start)
        return _term(levels)
