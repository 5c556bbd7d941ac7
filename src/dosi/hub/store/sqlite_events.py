"""EventStore on the SQLite backend (stub)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dosi.hub.store.sqlite import SqliteStore

# Extra tables this part needs, created with the rest of the schema.
DDL: tuple[str, ...] = ()


class SqliteEvents:
    def __init__(self, store: SqliteStore) -> None:
        self._store = store
