"""Prometheus metrics in text exposition format, without a client library.

Label sets are bounded by construction: route templates (not raw paths),
methods and status codes.
"""

from __future__ import annotations

import bisect
import time
from collections import defaultdict

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.started = time.time()
        self.requests: defaultdict[tuple[str, str, int], int] = defaultdict(int)
        self.latency: defaultdict[tuple[str, str], list[float]] = defaultdict(
            lambda: [0.0] * (len(BUCKETS) + 2)  # buckets..., +Inf count, sum
        )
        self.entities_written = 0
        self.in_flight = 0
        # Gauges other parts set: name -> (help, value); e.g. history size, from retention.
        self.gauges: dict[str, tuple[str, float]] = {}
        # IoT agent (dosi.ingest): measurements by transport, rejections by reason (a fixed
        # set), measurements stored, commands by outcome.
        self.ingest_received: defaultdict[str, int] = defaultdict(int)
        self.ingest_rejected: defaultdict[str, int] = defaultdict(int)
        self.ingest_stored = 0
        self.ingest_commands: defaultdict[str, int] = defaultdict(int)
        # Notifications (subscriptions): requests/publishes acknowledged or failed, the
        # entity changes the acknowledged ones carried, and live streams open.
        self.notifications_sent = 0
        self.notifications_failed = 0
        self.notified_entities = 0
        self.notifications_expired = 0  # entity changes dropped after notify_max_age_s
        self.streams_open = 0

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests[(method, route, status)] += 1
        row = self.latency[(method, route)]
        row[bisect.bisect_left(BUCKETS, seconds)] += 1
        row[-1] += seconds

    def render(self) -> str:
        lines = [
            "# HELP dosi_http_requests_total HTTP requests by route and status.",
            "# TYPE dosi_http_requests_total counter",
        ]
        for (method, route, status), n in sorted(self.requests.items()):
            lines.append(
                f'dosi_http_requests_total{{method="{method}",route="{route}",status="{status}"}} {n}'
            )
        lines += [
            "# HELP dosi_http_request_duration_seconds Request latency.",
            "# TYPE dosi_http_request_duration_seconds histogram",
        ]
        for (method, route), row in sorted(self.latency.items()):
            labels = f'method="{method}",route="{route}"'
            cumulative = 0.0
            for bound, count in zip(BUCKETS, row, strict=False):
                cumulative += count
                lines.append(
                    f'dosi_http_request_duration_seconds_bucket{{{labels},le="{bound}"}} {cumulative:g}'
                )
            cumulative += row[len(BUCKETS)]
            lines.append(
                f'dosi_http_request_duration_seconds_bucket{{{labels},le="+Inf"}} {cumulative:g}'
            )
            lines.append(f"dosi_http_request_duration_seconds_sum{{{labels}}} {row[-1]:.6f}")
            lines.append(f"dosi_http_request_duration_seconds_count{{{labels}}} {cumulative:g}")
        lines += [
            "# HELP dosi_entities_written_total Entities created, changed or deleted.",
            "# TYPE dosi_entities_written_total counter",
            f"dosi_entities_written_total {self.entities_written}",
            "# HELP dosi_notifications_total Notifications sent, by outcome.",
            "# TYPE dosi_notifications_total counter",
            f'dosi_notifications_total{{outcome="ok"}} {self.notifications_sent}',
            f'dosi_notifications_total{{outcome="failed"}} {self.notifications_failed}',
            "# HELP dosi_notifications_expired_total Entity changes dropped undelivered "
            "after notify_max_age_s.",
            "# TYPE dosi_notifications_expired_total counter",
            f"dosi_notifications_expired_total {self.notifications_expired}",
            "# HELP dosi_notified_entities_total Entity changes in acknowledged notifications.",
            "# TYPE dosi_notified_entities_total counter",
            f"dosi_notified_entities_total {self.notified_entities}",
            "# HELP dosi_streams_open Live streams (SSE) open in this worker.",
            "# TYPE dosi_streams_open gauge",
            f"dosi_streams_open {self.streams_open}",
            "# HELP dosi_http_requests_in_flight Requests being served.",
            "# TYPE dosi_http_requests_in_flight gauge",
            f"dosi_http_requests_in_flight {self.in_flight}",
            *self._ingest_lines(),
            "# HELP dosi_uptime_seconds Seconds since the hub started.",
            "# TYPE dosi_uptime_seconds gauge",
            f"dosi_uptime_seconds {time.time() - self.started:.3f}",
        ]
        for name, (text, value) in sorted(self.gauges.items()):
            lines += [f"# HELP {name} {text}", f"# TYPE {name} gauge", f"{name} {value:g}"]
        return "\n".join(lines) + "\n"

    def _ingest_lines(self) -> list[str]:
        lines = [
            "# HELP dosi_ingest_measurements_total Device measurements received, by transport.",
            "# TYPE dosi_ingest_measurements_total counter",
        ]
        lines += [
            f'dosi_ingest_measurements_total{{transport="{t}"}} {n}'
            for t, n in sorted(self.ingest_received.items())
        ]
        lines += [
            "# HELP dosi_ingest_rejected_total Device messages rejected, by reason.",
            "# TYPE dosi_ingest_rejected_total counter",
        ]
        lines += [
            f'dosi_ingest_rejected_total{{reason="{r}"}} {n}'
            for r, n in sorted(self.ingest_rejected.items())
        ]
        lines += [
            "# HELP dosi_ingest_stored_total Measurements written to the store.",
            "# TYPE dosi_ingest_stored_total counter",
            f"dosi_ingest_stored_total {self.ingest_stored}",
            "# HELP dosi_ingest_commands_total Device commands, by outcome.",
            "# TYPE dosi_ingest_commands_total counter",
        ]
        lines += [
            f'dosi_ingest_commands_total{{outcome="{o}"}} {n}'
            for o, n in sorted(self.ingest_commands.items())
        ]
        return lines
