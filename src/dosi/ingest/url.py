"""MQTT broker URLs (`mqtt://user:pass@host:1883`, `mqtts://...`), checked without importing paho."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

DEFAULT_PORTS = {"mqtt": 1883, "tcp": 1883, "mqtts": 8883, "ssl": 8883}


@dataclass(frozen=True)
class BrokerUrl:
    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = None


def parse_broker_url(url: str) -> BrokerUrl:
    """ValueError with a one-line reason when `url` is not a usable broker URL."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError(f"an MQTT URL starts with mqtt:// or mqtts://, got {url!r}")
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError:
        raise ValueError(f"bad port in MQTT URL {url!r}") from None
    if not parts.hostname:
        raise ValueError(f"no host in MQTT URL {url!r}")
    if parts.path not in ("", "/") or parts.query:
        raise ValueError(f"an MQTT URL names only a broker (no path or query): {url!r}")
    return BrokerUrl(
        host=parts.hostname,
        port=port,
        tls=scheme in ("mqtts", "ssl"),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )
