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
    # PostgreSQL (with PostGIS) instead of SQLite files, e.g. postgresql://dosi@db/dosi.
    db_url: str | None = None
    # -- temporal API and retention (fields below this line: temporal) --
    # Raw history instances are kept this many days (by recording time), then folded into
    # hourly aggregates (count, sum, sum of squares, min, max); 0 keeps them forever.
    history_days: int = 30
    # Hourly aggregates are kept this many days (by hour); 0 keeps them forever.
    rollup_days: int = 400
    # Seconds between retention passes (the first runs a few seconds after start).
    retention_interval_s: float = 600.0
    # Most instances (or aggregation periods) one temporal answer returns per attribute,
    # and in all; more is a 206 partial answer with Content-Range (clause 6.3.10).
    temporal_max_instances: int = 10_000
    temporal_max_response_instances: int = 50_000
    # -- subscriptions and notifications (fields below this line: subscriptions) --
    max_subscriptions_per_tenant: int = 1000
    # Changes one notification may carry when a subscription has a backlog (data[] length).
    notify_batch_max: int = 500
    # Requests in flight per subscription; above 1, notifications may overtake each other.
    notify_concurrency: int = 1
    notify_timeout_s: float = 10.0  # when the endpoint gives no timeout of its own
    notify_retry_max_s: float = 30.0  # ceiling of the retry backoff
    notify_stop_timeout_s: float = 5.0  # graceful shutdown waits this long for deliveries
    # A change still undelivered after this long is dropped (logged, counted), so a
    # receiver that never comes back cannot fill the disk; 0 keeps everything forever.
    notify_max_age_s: float = 7 * 86400.0
    max_streams: int = 100  # concurrent live streams (SSE) per worker
    stream_queue: int = 1000  # events a slow stream client may lag behind before it is cut
    stream_heartbeat_s: float = 15.0
    # -- IoT agent (fields below this line: ingest) --
    # MQTT broker the IoT agent connects to, e.g. mqtt://127.0.0.1:1883; None: HTTP only.
    mqtt_url: str | None = None
    # Shared-subscription group ($share/<group>/...): the workers of one hub split the
    # devices' messages; hubs with different groups on one broker each get every message.
    mqtt_share_group: str = "dosi"
    # Subscription QoS. 0 by default: the session is clean, so QoS 1 would bring no
    # redelivery, and a stock mosquitto drops QoS 1 messages for a subscriber beyond ~20 in
    # flight + max_queued_messages (1000) queued, while it buffers QoS 0 ones far longer.
    mqtt_qos: int = 0

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        return f"http://{self.host}:{self.port}"
