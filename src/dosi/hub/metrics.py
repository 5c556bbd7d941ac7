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
            "# HELP dosi_http_requests_in_flight Requests being served.",
            "# TYPE dosi_http_requests_in_flight gauge",
            f"dosi_http_requests_in_flight {self.in_flight}",
            "# HELP dosi_uptime_seconds Seconds since the hub started.",
            "# TYPE dosi_uptime_seconds gauge",
            f"dosi_uptime_seconds {time.time() - self.started:.3f}",
        ]
        return "\n".join(lines) + "\n"
