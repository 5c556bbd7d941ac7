"""The web server's own ProblemDetails errors, beside the NGSI-LD ones it reuses."""

from __future__ import annotations

from dosi.ngsi.errors import NgsiError


class HubUnreachable(NgsiError):
    """HTTP 502: the hub refused the connection or broke it."""

    error_type = "InternalError"
    status = 502
    title = "Hub unreachable"


class HubTimeout(NgsiError):
    """HTTP 504: the hub took longer than the proxy waits."""

    error_type = "InternalError"
    status = 504
    title = "Hub timed out"


class Busy(NgsiError):
    """HTTP 409: a what-if run is in progress (one at a time: each takes two cores)."""

    error_type = "OperationNotSupported"
    status = 409
    title = "Busy"


class TooManyStreams(NgsiError):
    """HTTP 503: the proxy already relays its maximum of live streams."""

    error_type = "OperationNotSupported"
    status = 503
    title = "Too many live streams"
