"""NGSI-LD q-language parser (ETSI GS CIM 009 clause 4.9): text -> `qlang_ast` tree.

A hand-written recursive descent over the string. Every syntax error is a
`BadRequestData` naming the character position where parsing stopped; length
and parenthesis depth are capped so hostile input stays cheap.
"""

from __future__ import annotations

import re

from dosi.ngsi.cursor import WHITESPACE, Cursor
from dosi.ngsi.errors import BadRequestData
from dosi.ngsi.qlang_ast import (
    COMPARABLE,
    MAX_DEPTH,
    MAX_QUERY_LENGTH,
    METADATA,
    OPERATORS,
    ORDERING,
    And,
    AttrPath,
    Node,
    Operand,
    Or,
    Pattern,
    Range,
    Term,
    Value,
    ValueList,
    compile_regex,
    looks_temporal,
    parse_temporal,
)

_WS = WHITESPACE
_NAME_STOP = frozenset('[]=!<>~;|(),"') | _WS
_VALUE_STOP = frozenset(';|(),"') | _WS
_NUMBER_RE = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?", re.ASCII)
_URI_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:\S+")
_TERM_RE = re.compile(r"\w[\w\-]*")
_NAME_RE = re.compile(r"\w[\w\-]*(?::[\w\-]+)*")
_IRI_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://\S+")
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")


def parse_q(text: str) -> Node:
    """Parse a q expression; `;` (AND) binds tighter than `|` (OR)."""
    if len(text) > MAX_QUERY_LENGTH:
        raise BadRequestData(f"Invalid q: longer than {MAX_QUERY_LENGTH} characters")
    if not text.strip():
        raise BadRequestData("Invalid q: empty query")
    return _Parser(text).parse()


class _Parser(Cursor):
    language = "q"

    def peek(self, token: str) -> bool:
        return self.s.startswith(token, self.i)

    def ws(self) -> None:
        self.skip_whitespace()

    def next_is(self, token: str) -> bool:
        self.ws()
        return self.peek(token)

    def run(self, stop: frozenset[str]) -> str:
        start = self.i
        while self.i < len(self.s) and self.s[self.i] not in stop:
            self.i += 1
        return self.s[start : self.i]

    def parse(self) -> Node:
        node = self.disjunction(0)
        self.ws()
        if self.i < len(self.s):
            self.fail(f"unexpected {self.s[self.i]!r}")
        return node

    def disjunction(self, depth: int) -> Node:
        items = [self.conjunction(depth)]
        while self.next_is("|"):
            self.i += 1
            items.append(self.conjunction(depth))
        return _join(Or, items)

    def conjunction(self, depth: int) -> Node:
        items = [self.factor(depth)]
        while self.next_is(";"):
            self.i += 1
            items.append(self.factor(depth))
        return _join(And, items)

    def factor(self, depth: int) -> Node:
        self.ws()
        if not self.peek("("):
            return self.term()
        if depth >= MAX_DEPTH:
            self.fail(f"parentheses nested deeper than {MAX_DEPTH}")
        self.i += 1
        node = self.disjunction(depth + 1)
        self.ws()
        if not self.peek(")"):
            self.fail("expected ')'")
        self.i += 1
        return node

    def at_term_end(self) -> bool:
        self.ws()
        return self.i >= len(self.s) or self.s[self.i] in ";|)"

    def term(self) -> Term:
        negated = self.peek("!")
        self.i += negated
        path = self.path()
        self.ws()
        op = next((o for o in OPERATORS if self.peek(o)), None)
        if op is None:
            if not self.at_term_end():
                if self.peek("="):
                    self.fail("'=' is not an operator, use '=='")
                self.fail("expected an operator (== != > >= < <= ~= !~=), ';', '|' or ')'")
            return Term(path, negated=negated)
        if negated:
            self.fail("'!' only negates a bare attribute (a non-existence test)")
        self.i += len(op)
        self.ws()
        operand: Operand
        if op in ("~=", "!~="):
            operand = self.pattern()
        elif op in ORDERING:
            operand = self.comparable()
        else:
            operand = self.equality_operand()
        if not self.at_term_end():
            self.fail("expected ';', '|' or ')' after the value")
        return Term(path, op, operand)

    def path(self) -> AttrPath:
        start = self.i
        raw = self.run(_NAME_STOP)
        if not raw:
            self.fail("expected an attribute name")
        segments = _segments(raw)
        for seg in segments:
            if not (_NAME_RE.fullmatch(seg) or _IRI_RE.fullmatch(seg)):
                self.fail(f"invalid attribute name {seg!r}", start)
        trail: list[str] = []
        while self.peek("["):
            self.i += 1
            key_at = self.i
            keys = self.run(_NAME_STOP).split(".")
            if not self.peek("]"):
                self.fail("expected ']' closing the trailing path")
            if not all(keys):
                self.fail("empty key in the trailing path", key_at)
            trail.extend(keys)
            self.i += 1
        meta = segments[-1] if len(segments) > 1 and segments[-1] in METADATA else None
        subs = segments[1:-1] if meta else segments[1:]
        if meta and trail:
            self.fail(f"'{meta}' cannot be followed by a [trailing path]", start)
        return AttrPath(segments[0], tuple(subs), meta, tuple(trail))

    def pattern(self) -> Pattern:
        start = self.i
        if self.peek('"'):
            source = self.quoted(regex=True)
        else:  # unquoted: runs to a ';', '|' or ')' outside any group or class
            depth, in_class, s = 0, False, self.s
            while self.i < len(s):
                c = s[self.i]
                if c == "\\":
                    self.i += 2
                    continue
                if in_class:
                    in_class = c != "]"
                elif c == "[":
                    in_class = True
                elif c == "(":
                    depth += 1
                elif c == ")" and depth:
                    depth -= 1
                elif c in ";|)" and not depth:
                    break
                self.i += 1
            self.i = min(self.i, len(s))
            source = s[start : self.i]
            if not source.rstrip().endswith("\\"):  # tolerated spaces before ';' are not regex
                source = source.rstrip()
        if not source:
            self.fail("expected a regular expression", start)
        try:
            compile_regex(source)
        except BadRequestData as exc:
            self.fail(exc.detail.removeprefix("Invalid q: "), start)
        return Pattern(source)

    def comparable(self) -> Value:
        start = self.i
        value = self.single()
        if value.kind not in COMPARABLE:
            self.fail("ordering needs a number, quoted string, DateTime, Date or Time", at=start)
        if self.peek(",") or self.peek(".."):
            self.fail("ordering operators take a single value, not a list or range")
        return value

    def equality_operand(self) -> Value | Range | ValueList:
        first = self.item()
        if isinstance(first, Range):
            if self.peek(","):
                self.fail("a range cannot be part of a value list")
            return first
        if self.peek(".."):
            self.i += 2
            return self.make_range(first, self.single())
        items = [first]
        while self.peek(","):
            self.i += 1
            self.ws()
            item = self.item()
            if isinstance(item, Range):
                self.fail("a range cannot be part of a value list")
            items.append(item)
        return items[0] if len(items) == 1 else ValueList(tuple(items))

    def item(self) -> Value | Range:
        """A value, or a range when an unquoted `low..high` is read as one run."""
        if self.peek('"'):
            return self.single()
        start = self.i
        raw = self.run(_VALUE_STOP)
        low_text, dots, high_text = raw.partition("..")
        low = self.comparable_literal(low_text, start) if dots and low_text else None
        if low is not None:
            high = self.classify(high_text, start) if high_text else self.single()
            return self.make_range(low, high)
        return self.classify(raw, start)

    def single(self) -> Value:
        if self.peek('"'):
            text = self.quoted(regex=False)
            return Value("string", text, text)
        start = self.i
        return self.classify(self.run(_VALUE_STOP), start)

    def make_range(self, low: Value, high: Value) -> Range:
        families = {_family(low.kind), _family(high.kind)}
        if len(families) != 1 or low.kind not in COMPARABLE or high.kind not in COMPARABLE:
            self.fail(
                f"range {low.render()}..{high.render()} needs two numbers, two quoted strings,"
                " or two DateTimes/Dates/Times"
            )
        return Range(low, high)

    def comparable_literal(self, text: str, at: int) -> Value | None:
        """Type an unquoted boolean, number or DateTime/Date/Time; None if it is none of them."""
        if text in ("true", "false"):
            return Value("bool", text == "true", text)
        if _NUMBER_RE.fullmatch(text):
            try:
                number: int | float = int(text) if text.lstrip("-").isdigit() else float(text)
            except ValueError:  # beyond Python's int-from-string digit limit
                self.fail(f"number {text[:20]!r}... is too long", at)
            return Value("number", number, text)
        if looks_temporal(text):
            temporal = parse_temporal(text)
            if temporal is None:
                self.fail(f"invalid DateTime, Date or Time {text!r}", at)
            return Value(temporal[0], temporal[1], text)
        return None

    def classify(self, text: str, at: int) -> Value:
        """Type any unquoted literal: the comparable ones, then URI, then bare term."""
        value = self.comparable_literal(text, at)
        if value is not None:
            return value
        if not text:
            self.fail("expected a value", at)
        if _URI_RE.fullmatch(text):
            return Value("uri", text, text)
        if _TERM_RE.fullmatch(text):
            return Value("term", text, text)
        self.fail(f'invalid value {text!r} (quote strings as "...")', at)

    def quoted(self, regex: bool) -> str:
        """A double-quoted string; in a regex only \\" is unescaped, the rest is RE2's."""
        start, s = self.i, self.s
        self.i += 1
        out: list[str] = []
        while self.i < len(s):
            c = s[self.i]
            if c == '"':
                self.i += 1
                return "".join(out)
            if c == "\\" and self.i + 1 < len(s):
                nxt = s[self.i + 1]
                self.i += 2
                if nxt == '"':
                    out.append('"')
                elif regex:
                    out.append(c + nxt)
                elif nxt == "u" and re.fullmatch(r"[0-9A-Fa-f]{4}", s[self.i : self.i + 4]):
                    out.append(chr(int(s[self.i : self.i + 4], 16)))
                    self.i += 4
                else:
                    out.append(_ESCAPES.get(nxt, c + nxt))
                continue
            out.append(c)
            self.i += 1
        self.fail("unterminated quoted string", start)


_ESCAPES = {"\\": "\\", "/": "/", "n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}


def _family(kind: str) -> str:
    return "temporal" if kind in ("datetime", "date") else kind


def _join(cls: type[And] | type[Or], items: list[Node]) -> Node:
    """One item stays itself; same-operator children are flattened (a;(b;c) is a;b;c)."""
    if len(items) == 1:
        return items[0]
    flat: list[Node] = []
    for item in items:
        flat.extend(item.items if isinstance(item, cls) else (item,))
    return cls(tuple(flat))


def _segments(raw: str) -> list[str]:
    """Split an attribute path on '.', keeping the dots of an absolute IRI's authority/path.

    `https://ex.org/ns/speed.accuracy` is the IRI `https://ex.org/ns/speed` and the
    sub-attribute `accuracy`: a dot after the IRI's last '/' or '#' separates segments.
    """
    segments: list[str] = []
    for piece in raw.split("."):
        if segments and "://" in segments[-1] and not _SCHEME_RE.match(piece):
            tail = segments[-1].split("://", 1)[1]
            if not ("/" in tail or "#" in tail) or "/" in piece or "#" in piece:
                segments[-1] += "." + piece
                continue
        segments.append(piece)
    return segments
