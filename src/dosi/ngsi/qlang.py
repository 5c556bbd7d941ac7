"""NGSI-LD q-language evaluation (ETSI GS CIM 009 clause 4.9) against the internal form.

`compile_q` parses once and turns the tree into nested closures, so `matches`
does no parsing and no name expansion: per entity it only walks dicts and
compares. Evaluation never raises; anything that cannot be compared (a number
against a string, a missing sub-attribute) simply does not match.

Semantics (see `model.py` for the entity form):
- an attribute is a list of instances; a term matches if ANY instance matches;
- the target is `value`/`json` (Property, GeoProperty, JsonProperty), `object`/
  `objectList` (Relationship kinds: only `==`/`!=` can match), every string of a
  `languageMap`, `vocab` (compared against the literal both raw and expanded), or
  each element of `valueList`; a list target matches if any element does;
- `!=`/`!~=` hold when the target exists and no element equals/matches; a missing
  attribute (or sub-attribute, metadata, trailing key) never matches any operator.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from functools import lru_cache
from typing import Any, TypeAlias

from dosi.ngsi.errors import NgsiError
from dosi.ngsi.model import VALUE_KEY, Entity
from dosi.ngsi.qlang_ast import (
    ORDERING,
    TEMPORAL,
    And,
    AttrPath,
    Node,
    Or,
    Pattern,
    Range,
    Term,
    Value,
    ValueList,
    compile_regex,
    parse_temporal,
    temporal_cmp,
)
from dosi.ngsi.qlang_parser import parse_q

__all__ = ["CompiledQ", "compile_node", "compile_q"]

Predicate: TypeAlias = Callable[[Entity], bool]
# sign(element - literal), or None when the two are not comparable
Cmp: TypeAlias = Callable[[Any], "int | None"]
# (category, target value) -> bool; category is plain | rel | vocab | lang
Test: TypeAlias = Callable[[str, Any], bool]
Target: TypeAlias = tuple[str, Any]

_CATEGORY = {"object": "rel", "objectList": "rel", "vocab": "vocab", "languageMap": "lang"}
_VALUE_KEYS = tuple(dict.fromkeys(VALUE_KEY.values()))
_MISSING = object()


class CompiledQ:
    """A parsed, expanded q expression, ready to test entities in the internal form."""

    __slots__ = ("_predicate", "ast", "attributes")

    def __init__(self, ast: Node, predicate: Predicate, attributes: frozenset[str]) -> None:
        self.ast = ast
        self.attributes = attributes  # expanded IRIs of the top-level attributes named
        self._predicate = predicate

    def matches(self, entity: Entity) -> bool:
        return self._predicate(entity)

    def render(self) -> str:
        """The expression as q text (terms as written, before expansion)."""
        return self.ast.render()

    def __str__(self) -> str:
        return self.ast.render()

    def __repr__(self) -> str:
        return f"CompiledQ({self.ast.render()!r})"


def compile_q(text: str, expand: Callable[[str], str]) -> CompiledQ:
    """Parse `text` (BadRequestData on any syntax error) and compile it."""
    return compile_node(parse_q(text), expand)


def compile_node(ast: Node, expand: Callable[[str], str]) -> CompiledQ:
    """Compile an already-built tree; `expand` is called once per distinct name."""
    cache: dict[str, str] = {}

    def cached(term: str) -> str:
        if term not in cache:
            cache[term] = expand(term)
        return cache[term]

    attributes: set[str] = set()
    predicate = _node(ast, cached, attributes)
    return CompiledQ(ast, predicate, frozenset(attributes))


def _node(node: Node, expand: Callable[[str], str], attributes: set[str]) -> Predicate:
    if isinstance(node, Term):
        return _term(node, expand, attributes)
    parts = tuple(_node(item, expand, attributes) for item in node.items)
    if isinstance(node, And):

        def all_of(entity: Entity) -> bool:
            return all(part(entity) for part in parts)

        return all_of
    assert isinstance(node, Or)

    def any_of(entity: Entity) -> bool:
        return any(part(entity) for part in parts)

    return any_of


def _term(term: Term, expand: Callable[[str], str], attributes: set[str]) -> Predicate:
    attr = expand(term.path.attr)
    attributes.add(attr)
    targets = _resolver(term.path, expand)
    if term.op is None or term.operand is None:
        wanted = not term.negated

        def exists(entity: Entity) -> bool:
            for inst in _instances(entity, attr):
                if targets(inst):
                    return wanted
            return not wanted

        return exists
    test = _test(term, expand)

    def compare(entity: Entity) -> bool:
        for inst in _instances(entity, attr):
            for category, value in targets(inst):
                if test(category, value):
                    return True
        return False

    return compare


def _instances(entity: Entity, attr: str) -> list[Any] | tuple[Any, ...]:
    found = entity.get(attr)
    if isinstance(found, list):
        return found
    return (found,) if isinstance(found, dict) else ()


# --- paths ----------------------------------------------------------------------------


def _resolver(path: AttrPath, expand: Callable[[str], str]) -> Callable[[Any], list[Target]]:
    """instance -> the (category, value) pairs the path reaches in it (usually 0 or 1)."""
    subs = tuple(expand(name) for name in path.subs)
    meta, trail = path.meta, path.trail
    if not subs and meta is None and not trail:  # the common case, kept lean

        def direct(inst: Any) -> list[Target]:
            found = _value_of(inst) if isinstance(inst, dict) else None
            return [] if found is None else [found]

        return direct

    def targets(inst: Any) -> list[Target]:
        nodes = [inst] if isinstance(inst, dict) else []
        for sub in subs:
            nodes = [n for node in nodes for n in _as_dicts(node.get(sub))]
        out: list[Target] = []
        for node in nodes:
            if meta is not None:
                if meta in node:
                    out.append(("plain", node[meta]))
                continue
            found = _value_of(node)
            if found is None:
                continue
            category, value = found
            if trail:
                if category in ("rel", "vocab"):
                    continue
                value = _walk(value, trail)
                if value is _MISSING:
                    continue
                category = "plain"
            out.append((category, value))
        return out

    return targets


def _as_dicts(found: Any) -> list[dict[str, Any]]:
    if isinstance(found, dict):
        return [found]
    if isinstance(found, list):
        return [item for item in found if isinstance(item, dict)]
    return []


def _value_of(node: dict[str, Any]) -> tuple[str, Any] | None:
    kind = node.get("type")
    key = VALUE_KEY.get(kind) if isinstance(kind, str) else None
    if key is None or key not in node:  # untyped or odd: take the first value member present
        key = next((k for k in _VALUE_KEYS if k in node), None)
        if key is None:
            return None
    return _CATEGORY.get(key, "plain"), node[key]


def _walk(value: Any, trail: tuple[str, ...]) -> Any:
    """Follow [key][key]... into a compound value; a list is searched element-wise."""
    for key in trail:
        if isinstance(value, dict):
            value = value.get(key, _MISSING)
        elif isinstance(value, list):
            if key.isdigit():
                index = int(key)
                value = value[index] if index < len(value) else _MISSING
            else:
                value = [v[key] for v in value if isinstance(v, dict) and key in v] or _MISSING
        else:
            return _MISSING
        if value is _MISSING:
            return _MISSING
    return value


def _elements(category: str, value: Any) -> list[Any]:
    """The scalars a target stands for: list members, language strings, @value/@id."""
    if category == "lang" and isinstance(value, dict):
        out: list[Any] = []
        for text in value.values():
            out.extend(text if isinstance(text, list) else (text,))
        return out
    items = value if isinstance(value, list) else [value]
    return [_unwrap(item, category) for item in items]


def _any(predicate: Callable[[Any], Any], category: str, value: Any) -> bool:
    """Does any element of the target satisfy `predicate`? Scalars skip the list building."""
    if type(value) is list or type(value) is dict:
        return any(predicate(e) for e in _elements(category, value))
    return bool(predicate(value))


def _unwrap(item: Any, category: str) -> Any:
    if isinstance(item, dict):
        for key in ("@value", "@id", "object") if category == "rel" else ("@value", "@id"):
            if key in item:
                return item[key]
    return item


# --- comparisons ----------------------------------------------------------------------


def _test(term: Term, expand: Callable[[str], str]) -> Test:
    op, operand = term.op, term.operand
    if isinstance(operand, Pattern):
        regex = compile_regex(operand.source)
        positive = op == "~="

        def pattern(category: str, value: Any) -> bool:
            if category == "rel":
                return False
            hit = _any(lambda e: type(e) is str and regex.search(e), category, value)
            return hit is positive

        return pattern
    if op in ORDERING:
        assert isinstance(operand, Value)
        cmp = _cmp(operand)
        accept = {">": (1,), ">=": (0, 1), "<": (-1,), "<=": (-1, 0)}[op]

        def ordering(category: str, value: Any) -> bool:
            if category == "rel":
                return False
            return _any(lambda e: cmp(e) in accept, category, value)

        return ordering
    assert operand is not None and not isinstance(operand, Pattern)
    equal = _equality(operand)
    vocab_equal = _vocab_equality(operand, expand)
    positive = op == "=="

    def equality(category: str, value: Any) -> bool:
        hit = _any(vocab_equal if category == "vocab" else equal, category, value)
        return hit is positive

    return equality


def _equality(operand: Value | Range | ValueList) -> Callable[[Any], bool]:
    if isinstance(operand, Range):
        low, high = _cmp(operand.low), _cmp(operand.high)

        def within(e: Any) -> bool:
            below, above = low(e), high(e)
            return below is not None and above is not None and below >= 0 and above <= 0

        return within
    values = operand.items if isinstance(operand, ValueList) else (operand,)
    cmps = tuple(_cmp(value) for value in values)

    def equals(e: Any) -> bool:
        return any(cmp(e) == 0 for cmp in cmps)

    return equals


def _vocab_equality(
    operand: Value | Range | ValueList, expand: Callable[[str], str]
) -> Callable[[Any], bool]:
    """VocabProperty values are expanded IRIs: match the literal raw or expanded."""
    if isinstance(operand, Range):
        return _equality(operand)
    values = operand.items if isinstance(operand, ValueList) else (operand,)
    forms: set[str] = set()
    for value in values:
        if isinstance(value.value, str):
            forms.add(value.value)
            with suppress(NgsiError):  # not an expandable term: only the raw form can match
                forms.add(expand(value.value))
    others = _equality(ValueList(tuple(v for v in values if not isinstance(v.value, str))))

    def equals(e: Any) -> bool:
        return (type(e) is str and e in forms) or others(e)

    return equals


def _cmp(literal: Value) -> Cmp:
    """sign(element - literal) for same-typed pairs; None on any type mismatch."""
    target = literal.value
    if literal.kind == "number":

        def number(e: Any) -> int | None:
            if type(e) is int or type(e) is float:
                return (e > target) - (e < target)  # type: ignore[operator]
            return None

        return number
    if literal.kind == "bool":
        return lambda e: (0 if e is target else 1) if type(e) is bool else None
    if literal.kind in TEMPORAL:
        reference = (literal.kind, target)

        def temporal(e: Any) -> int | None:
            if type(e) is not str:
                return None
            parsed = _parse_target_temporal(e)
            return None if parsed is None else temporal_cmp(parsed, reference)  # type: ignore[arg-type]

        return temporal

    def text(e: Any) -> int | None:
        return (e > target) - (e < target) if type(e) is str else None  # type: ignore[operator]

    return text


@lru_cache(maxsize=4096)
def _parse_target_temporal(text: str) -> Any:
    return parse_temporal(text)
