"""The hub's long-lived objects, built once per app and shared by every route."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dosi.hub.metrics import Metrics
from dosi.hub.settings import HubSettings
from dosi.hub.store.base import Store
from dosi.ngsi.context import ContextResolver

if TYPE_CHECKING:
    from dosi.hub.subscriptions.notifier import Notifier


@dataclass
class HubState:
    settings: HubSettings
    store: Store
    contexts: ContextResolver
    metrics: Metrics = field(default_factory=Metrics)
    # Background writes (hosted @context records) not yet acknowledged by the store.
    pending: set[asyncio.Task[None]] = field(default_factory=set)
    # Set when the server starts shutting down (before it drains open responses), so
    # endless responses such as live streams can end and let the drain finish.
    draining: asyncio.Event = field(default_factory=asyncio.Event)
    # The notifier extension, for the subscription and stream routes.
    notifier: Notifier | None = None

    async def settle(self) -> None:
        """Wait for every background write started so far."""
        while self.pending:
            await asyncio.gather(*list(self.pending))
