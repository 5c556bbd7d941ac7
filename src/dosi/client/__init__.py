"""The Python SDK for the NGSI-LD API: what every dosi service and the tests use.

`AsyncNgsiClient` for asyncio code, `NgsiClient` for blocking code; both speak
HTTP to a running hub or go in-process with `app=`. Requests are described once
in `dosi.client.calls`.
"""

from dosi.client.async_client import AsyncNgsiClient
from dosi.client.sync_client import NgsiClient
from dosi.client.types import BatchResult, EntityFilter, EntityPage, JsonObject, NgsiClientError

__all__ = [
    "AsyncNgsiClient",
    "BatchResult",
    "EntityFilter",
    "EntityPage",
    "JsonObject",
    "NgsiClient",
    "NgsiClientError",
]
