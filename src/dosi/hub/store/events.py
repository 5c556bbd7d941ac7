"""What a backend offers subscriptions: their records and the notification outbox (stub)."""

from __future__ import annotations

from typing import Protocol


class EventStore(Protocol):
    """Subscriptions and the outbox of notifications not yet delivered."""
