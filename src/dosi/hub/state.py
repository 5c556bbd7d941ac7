"""The hub's long-lived objects, built once per app and shared by every route."""

from __future__ import annotations

from dataclasses import dataclass, field

from dosi.hub.metrics import Metrics
from dosi.hub.settings import HubSettings
from dosi.hub.store.base import Store
from dosi.ngsi.context import ContextResolver


@dataclass
class HubState:
    settings: HubSettings
    store: Store
    contexts: ContextResolver
    metrics: Metrics = field(default_factory=Metrics)
