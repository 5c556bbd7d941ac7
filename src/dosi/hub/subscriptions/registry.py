"""The notifier's compiled view of every tenant's subscriptions, kept fresh by revision.

Subscriptions may be created by any worker process; the store bumps a
per-tenant revision with each change, and `refresh` (one tiny read) reloads
the tenant when it moved. Only changed documents are recompiled.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from dosi.hub.state import HubState
from dosi.hub.store.events import SubscriptionRow
from dosi.hub.subscriptions.model import Spec, compile_spec
from dosi.hub.subscriptions.records import load
from dosi.ngsi.context import Context
from dosi.ngsi.errors import NgsiError

log = logging.getLogger("dosi.notify")


@dataclass(frozen=True)
class LiveSub:
    tenant: str
    id: str
    since: int
    doc: bytes
    spec: Spec
    ctx: Context  # what notifications are compacted with
    context: Any  # its source, for JSON-LD notifications
    link_url: str  # its URL, for the Link header of JSON notifications
    status: bytes | None  # delivery counters as last persisted


@dataclass
class TenantSubs:
    revision: int = -1
    subs: dict[str, LiveSub] = field(default_factory=dict)
    on_change: list[LiveSub] = field(default_factory=list)  # those without timeInterval
    periodic: list[LiveSub] = field(default_factory=list)


class Registry:
    def __init__(self, state: HubState) -> None:
        self._state = state
        self._tenants: dict[str, TenantSubs] = {}

    def cached(self, tenant: str) -> TenantSubs:
        return self._tenants.get(tenant) or TenantSubs()

    def get(self, tenant: str, sub_id: str) -> LiveSub | None:
        found = self._tenants.get(tenant)
        return found.subs.get(sub_id) if found else None

    def tenants(self) -> list[str]:
        return list(self._tenants)

    async def refresh(self, tenant: str) -> tuple[TenantSubs, set[str]]:
        """The tenant's subscriptions, reloaded if their revision moved; and the ids of
        those that appeared, changed or went away (their lanes need a look)."""
        events = self._state.store.events
        current = self._tenants.get(tenant)
        if current is not None and await events.subscriptions_revision(tenant) == current.revision:
            return current, set()
        revision, rows = await events.subscriptions_all(tenant)
        old = current.subs if current is not None else {}
        fresh = TenantSubs(revision=revision)
        touched = set(old) - {row.id for row in rows}
        for row in rows:
            live = old.get(row.id)
            if live is None or live.doc != row.doc:
                touched.add(row.id)
                live = await self._compile(tenant, row)
            if live is not None:
                fresh.subs[row.id] = live
                (fresh.periodic if live.spec.time_interval else fresh.on_change).append(live)
        self._tenants[tenant] = fresh
        return fresh, touched

    async def _compile(self, tenant: str, row: SubscriptionRow) -> LiveSub | None:
        record = load(row.doc)
        contexts = self._state.contexts
        try:
            own = await contexts.resolve(record.context)
            spec = compile_spec(row.id, record.raw, own, now_ms=0)
        except NgsiError as exc:  # validated when stored; only a vanished @context gets here
            log.warning("subscription unusable", extra={"id": row.id, "error": exc.detail})
            return None
        notify_source = record.notify_context
        try:
            ctx = own if notify_source == record.context else await contexts.resolve(notify_source)
        except NgsiError as exc:
            log.warning("notification @context unavailable, using the core", extra={"id": row.id})
            del exc
            ctx = contexts.core
        link_url = contexts.url_for(ctx, self._state.settings.base_url)
        return LiveSub(
            tenant, row.id, row.since, row.doc, spec, ctx, ctx.source, link_url, row.status
        )
