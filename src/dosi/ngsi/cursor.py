"""The text cursor under the q, type-selection and scope-query parsers."""

from __future__ import annotations

from typing import ClassVar, NoReturn

from dosi.ngsi.errors import BadRequestData

WHITESPACE = frozenset(" \t\r\n")


class Cursor:
    """Position in a query string, and errors that say where parsing stopped."""

    language: ClassVar[str] = "query"  # named in error messages, e.g. "Invalid q at ..."

    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0

    def fail(self, reason: str, at: int | None = None) -> NoReturn:
        pos = self.i if at is None else at
        near = self.s[pos : pos + 20]
        where = f"near {near!r}" if near else "at the end"
        raise BadRequestData(f"Invalid {self.language} at position {pos} ({where}): {reason}")

    def skip_whitespace(self) -> None:
        while self.i < len(self.s) and self.s[self.i] in WHITESPACE:
            self.i += 1

    def next_char(self) -> str:
        """The next non-blank character ("" at the end), without consuming it."""
        self.skip_whitespace()
        return self.s[self.i] if self.i < len(self.s) else ""
