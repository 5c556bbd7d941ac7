"""Values the client hands back: errors, batch outcomes, result pages, query filters."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict

JsonObject = dict[str, Any]
"""An entity, fragment or response object exactly as it travels as JSON."""

StrList = str | Sequence[str]
"""A single value or several, sent comma-separated (`attrs`, `type`, `id`, …)."""


class NgsiClientError(Exception):
    """A non-2xx answer, carrying the hub's ProblemDetails (RFC 7807) as sent.

    Services branch on `.type` (an ETSI error URI) rather than on text, so the
    problem dict is kept whole; `str(err)` is one line fit for a log.
    """

    def __init__(self, status: int, problem: JsonObject) -> None:
        self.status = status
        self.problem = problem
        super().__init__(
            f"{status} {self.title}: {self.detail}" if self.detail else f"{status} {self.title}"
        )

    @property
    def type(self) -> str:
        return str(self.problem.get("type", "about:blank"))

    @property
    def title(self) -> str:
        return str(self.problem.get("title", ""))

    @property
    def detail(self) -> str:
        return str(self.problem.get("detail", ""))


@dataclass(frozen=True, slots=True)
class BatchResult:
    """Outcome of a batch operation, whichever of 201/204/207 the hub chose.

    `errors` holds the hub's BatchEntityError objects (`entityId`, `error`).
    """

    success: list[str] = field(default_factory=list)
    errors: list[JsonObject] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


class EntityPage(list[JsonObject]):
    """One page of query results; `total` is the hub's match count when `count=True` was asked."""

    def __init__(self, items: Iterable[JsonObject] = (), total: int | None = None) -> None:
        super().__init__(items)
        self.total = total


class EntityFilter(TypedDict, total=False):
    """Query parameters shared by `query_entities`, `count_entities` and `query_all`.

    Names are Pythonic; the request builder maps them to the wire names
    (`id_pattern` -> `idPattern`, `scope_q` -> `scopeQ`). `coordinates` may be
    the JSON text or a nested list.
    """

    type: StrList
    id: StrList
    id_pattern: str
    q: str
    scope_q: str
    attrs: StrList
    pick: StrList
    omit: StrList
    georel: str
    geometry: str
    coordinates: str | Sequence[Any]
    geoproperty: str
    csf: str
    lang: str
    options: StrList
    format: str
