"""What a backend offers subscriptions: their records and the notification outbox.

Backend-neutral: SQLite implements it in `sqlite_events`, PostgreSQL will too.
Everything is per tenant and lives beside the tenant's entities, so the
outbox rows and the notifier's journal cursor move in one transaction (the
at-least-once guarantee rests on that).

Subscription documents are opaque bytes here (the subscriptions package owns
their shape); the store adds what must be decided inside a transaction: the
journal position a new subscription starts after, the per-tenant cap, and a
revision number that tells the notifier its cached subscriptions are stale.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class SubscriptionRow:
    id: str
    since: int  # journal seq at creation: the subscription sees changes after it
    doc: bytes
    status: bytes | None  # last persisted delivery counters, if any


@dataclass(frozen=True)
class OutboxRow:
    seq: int
    at: int  # epoch ms the change was committed (or the periodic query ran)
    data: bytes  # one rendered entity of a notification's data[]


class EventStore(Protocol):
    """Subscriptions and the outbox of notifications not yet delivered."""

    async def subscription_create(self, tenant: str, sub_id: str, doc: bytes, cap: int) -> None:
        """Store a new subscription (AlreadyExists; BadRequestData past `cap` per tenant)."""
        ...

    async def subscription_update(
        self, tenant: str, sub_id: str, expected: bytes, doc: bytes
    ) -> bool:
        """Replace the document if it is still `expected`; False if it changed meanwhile.

        ResourceNotFound if the subscription is gone.
        """
        ...

    async def subscription_delete(self, tenant: str, sub_id: str) -> None:
        """Remove the subscription, its counters and its undelivered notifications."""
        ...

    async def subscription_get(self, tenant: str, sub_id: str) -> SubscriptionRow | None: ...

    async def subscription_list(
        self, tenant: str, offset: int, limit: int
    ) -> tuple[list[SubscriptionRow], int]:
        """A page in creation order, and the total."""
        ...

    async def subscriptions_revision(self, tenant: str) -> int:
        """Changes with every create, update and delete of the tenant's subscriptions."""
        ...

    async def subscriptions_all(self, tenant: str) -> tuple[int, list[SubscriptionRow]]:
        """The revision and every subscription of the tenant (for the notifier)."""
        ...

    async def status_save(self, tenant: str, items: Sequence[tuple[str, bytes]]) -> None:
        """Persist delivery counters of subscriptions that still exist."""
        ...

    async def notifier_cursor(self, tenant: str) -> int:
        """The journal seq up to which the notifier has queued notifications (0: none yet)."""
        ...

    async def notifier_set_cursor(self, tenant: str, cursor: int) -> None: ...

    async def outbox_add(
        self, tenant: str, rows: Sequence[tuple[str, int, bytes]], cursor: int | None
    ) -> None:
        """Queue (subscription id, at, data) rows and, in the same transaction, move the
        cursor (None: leave it, for periodic notifications)."""
        ...

    async def outbox_read(
        self, tenant: str, sub_id: str, after: int, limit: int
    ) -> list[OutboxRow]:
        """Queued rows of one subscription with seq > `after`, oldest first."""
        ...

    async def outbox_delete(self, tenant: str, seqs: Sequence[int]) -> None:
        """Forget rows whose delivery was acknowledged."""
        ...

    async def outbox_pending(self, tenant: str) -> list[str]:
        """Subscriptions with queued rows (where delivery resumes after a restart)."""
        ...
