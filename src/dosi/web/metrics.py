"""Prometheus text for the web server: requests by kind, the proxy's failures, what-if jobs."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field


@dataclass
class WebMetrics:
    requests: Counter[tuple[str, str, int]] = field(default_factory=Counter)  # kind, method, status
    seconds: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    hub_failures: int = 0  # proxied requests answered 502/504 by us
    streams_open: int = 0  # live streams being relayed now
    jobs: Counter[str] = field(default_factory=Counter)  # started, done, failed, cancelled
    jobs_running: int = 0

    def observe(self, kind: str, method: str, status: int, elapsed: float) -> None:
        # Bounded: kinds are fixed names, methods the few HTTP has (others are "OTHER").
        known = method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
        self.requests[(kind, method if known else "OTHER", status)] += 1
        self.seconds[kind] += elapsed

    def render(self) -> str:
        lines = [
            "# HELP dosi_web_requests_total HTTP requests by kind (proxy, api, static, ops).",
            "# TYPE dosi_web_requests_total counter",
        ]
        for (kind, method, status), count in sorted(self.requests.items()):
            lines.append(
                f'dosi_web_requests_total{{kind="{kind}",method="{method}",status="{status}"}} '
                f"{count}"
            )
        lines += [
            "# HELP dosi_web_request_seconds_total Time spent answering, by kind.",
            "# TYPE dosi_web_request_seconds_total counter",
        ]
        for kind, seconds in sorted(self.seconds.items()):
            lines.append(f'dosi_web_request_seconds_total{{kind="{kind}"}} {seconds:.6f}')
        lines += [
            "# HELP dosi_web_hub_failures_total Proxied requests the hub did not answer.",
            "# TYPE dosi_web_hub_failures_total counter",
            f"dosi_web_hub_failures_total {self.hub_failures}",
            "# HELP dosi_web_streams_open Live streams relayed now.",
            "# TYPE dosi_web_streams_open gauge",
            f"dosi_web_streams_open {self.streams_open}",
            "# HELP dosi_web_whatif_jobs_total What-if jobs by outcome.",
            "# TYPE dosi_web_whatif_jobs_total counter",
        ]
        for outcome in ("started", "done", "failed", "cancelled"):
            lines.append(f'dosi_web_whatif_jobs_total{{outcome="{outcome}"}} {self.jobs[outcome]}')
        lines += [
            "# HELP dosi_web_whatif_jobs_running What-if jobs running now (0 or 1).",
            "# TYPE dosi_web_whatif_jobs_running gauge",
            f"dosi_web_whatif_jobs_running {self.jobs_running}",
        ]
        return "\n".join(lines) + "\n"
