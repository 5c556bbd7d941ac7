"""What the web server is told: the hub it fronts, the scenario it shows, its limits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

STATIC = Path(__file__).parent / "static"  # the built front end (make web)


@dataclass(frozen=True)
class WebSettings:
    hub_url: str  # the hub's base URL, e.g. http://127.0.0.1:8701
    scenario: str = "eco-delta"  # built-in name or scenario.toml: map origin, what-if targets
    static_dir: Path = STATIC
    max_body_bytes: int = 1_000_000  # request bodies passed to the hub
    hub_timeout_s: float = 30.0  # per read, except on the live stream (it waits for changes)
    max_streams: int = 64  # live streams relayed at once (each holds a hub connection)
    whatif_max_hours: float = 2.0
    jobs_kept: int = 10  # finished what-if jobs remembered for GET /api/whatif/{id}
