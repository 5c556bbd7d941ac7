"""What a backend offers the temporal API: reading and writing history (stub)."""

from __future__ import annotations

from typing import Protocol


class TemporalStore(Protocol):
    """History reads and temporal-API writes; see store/history.py for the rows."""
