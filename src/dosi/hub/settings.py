"""Hub configuration: one frozen object handed to `create_app`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class HubSettings:
    """Everything an operator can tune; defaults suit a laptop or a living lab."""

    data_dir: Path = Path(".dosi")
    host: str = "127.0.0.1"
    port: int = 8700
    # Public base URL used for hosted @context links; derived from host/port when None.
    public_url: str | None = None
    max_body_bytes: int = 8 * 1024 * 1024
    default_page_size: int = 20
    max_page_size: int = 1000
    max_batch_entities: int = 10_000
    context_fetch_timeout_s: float = 5.0
    max_context_bytes: int = 1024 * 1024
    context_cache_size: int = 256
    log_level: str = "info"
    # Attributes (terms of the core context, or IRIs) whose numeric values get an index,
    # so q comparisons on them need not read every entity of a type.
    indexed_attributes: tuple[str, ...] = ()
    # Record every change in history (the temporal API); off trades history for ingest speed.
    history: bool = True
    # -- temporal API and retention (fields below this line: temporal) --
    # -- subscriptions and notifications (fields below this line: subscriptions) --
    # -- IoT agent (fields below this line: ingest) --
    # MQTT broker the IoT agent connects to, e.g. mqtt://127.0.0.1:1883; None: HTTP only.
    mqtt_url: str | None = None

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        return f"http://{self.host}:{self.port}"
