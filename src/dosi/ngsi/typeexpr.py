"""Entity type selection (ETSI GS CIM 009 clause 4.17): the `type` query parameter.

`A,B` and `A|B` select entities of either type, `A;B` entities that carry both
(an entity may have several types), parentheses group, and `;` binds tighter
than `,`/`|`. Names are expanded once at compile time; `matches` only does set
lookups. `mentioned` and `is_simple_union` let storage prefilter in SQL.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TypeAlias

from dosi.ngsi.cursor import WHITESPACE, Cursor
from dosi.ngsi.errors import BadRequestData

MAX_LENGTH = 8192
MAX_DEPTH = 32

_OPERATORS = frozenset(",|;()")
_WS = WHITESPACE
_NAME_STOP = _OPERATORS | _WS
# A type name: anything but operators, whitespace and characters no IRI or term holds.
_NAME_RE = re.compile(r"[^\s,|;()\"'<>\\^`{}]+")

# Parsed form: ("type", iri) | ("and", children) | ("or", children)
TypeNode: TypeAlias = tuple[str, "str | tuple[TypeNode, ...]"]
_Check: TypeAlias = Callable[[frozenset[str]], bool]


class TypeFilter:
    """A compiled type selection over expanded type IRIs."""

    __slots__ = ("_check", "is_simple_union", "mentioned", "text")

    def __init__(self, text: str, check: _Check, mentioned: frozenset[str], simple: bool) -> None:
        self.text = text
        # Every expanded type named: any matching entity has at least one of them.
        self.mentioned = mentioned
        # Only ','/'|' between names: `types & mentioned` is then the exact test.
        self.is_simple_union = simple
        self._check = check

    def matches(self, types: Sequence[str]) -> bool:
        if isinstance(types, str):  # a lone type string is one type, not its characters
            types = (types,)
        if self.is_simple_union:
            return not self.mentioned.isdisjoint(types)
        return self._check(frozenset(types))

    def __repr__(self) -> str:
        return f"TypeFilter({self.text!r})"


def compile_types(text: str, expand: Callable[[str], str]) -> TypeFilter:
    """Parse and expand a type selection; BadRequestData on any syntax error."""
    if len(text) > MAX_LENGTH:
        raise BadRequestData(f"Invalid type selection: longer than {MAX_LENGTH} characters")
    if not text.strip():
        raise BadRequestData("Invalid type selection: empty")
    tree = _Parser(text).parse()
    cache: dict[str, str] = {}
    check = _compile(tree, expand, cache)
    return TypeFilter(text, check, frozenset(cache.values()), not _has_and(tree))


def _compile(node: TypeNode, expand: Callable[[str], str], cache: dict[str, str]) -> _Check:
    kind, payload = node
    if isinstance(payload, str):
        if payload not in cache:
            cache[payload] = expand(payload)
        iri = cache[payload]
        return lambda types: iri in types
    parts = tuple(_compile(child, expand, cache) for child in payload)
    if kind == "and":
        return lambda types: all(part(types) for part in parts)
    return lambda types: any(part(types) for part in parts)


def _has_and(node: TypeNode) -> bool:
    kind, payload = node
    if isinstance(payload, str):
        return False
    return kind == "and" or any(_has_and(child) for child in payload)


class _Parser(Cursor):
    language = "type selection"

    def parse(self) -> TypeNode:
        node = self.union(0)
        if self.next_char():
            self.fail(f"unexpected {self.s[self.i]!r}")
        return node

    def union(self, depth: int) -> TypeNode:
        items = [self.intersection(depth)]
        while self.next_char() in (",", "|"):
            self.i += 1
            items.append(self.intersection(depth))
        return _join("or", items)

    def intersection(self, depth: int) -> TypeNode:
        items = [self.factor(depth)]
        while self.next_char() == ";":
            self.i += 1
            items.append(self.factor(depth))
        return _join("and", items)

    def factor(self, depth: int) -> TypeNode:
        if self.next_char() == "(":
            if depth >= MAX_DEPTH:
                self.fail(f"parentheses nested deeper than {MAX_DEPTH}")
            self.i += 1
            node = self.union(depth + 1)
            if self.next_char() != ")":
                self.fail("expected ')'")
            self.i += 1
            return node
        start = self.i
        while self.i < len(self.s) and self.s[self.i] not in _NAME_STOP:
            self.i += 1
        name = self.s[start : self.i]
        if not name:
            self.fail("expected an entity type name")
        if not _NAME_RE.fullmatch(name):
            self.i = start
            self.fail(f"invalid entity type name {name!r}")
        return ("type", name)


def _join(kind: str, items: list[TypeNode]) -> TypeNode:
    if len(items) == 1:
        return items[0]
    flat: list[TypeNode] = []
    for item in items:
        flat.extend(item[1] if item[0] == kind and not isinstance(item[1], str) else (item,))
    return (kind, tuple(flat))
