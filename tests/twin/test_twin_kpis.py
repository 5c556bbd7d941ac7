"""The twin's running KPIs in the hub: one KeyPerformanceIndicator entity per key."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from twinhelpers import scenario_with

from dosi.twin.engine import Twin
from dosi.twin.entities import Clock, kpi_id
from dosi.twin.hubproc import EmbeddedHub
from dosi.twin.link import HubLink, LinkOptions

EPOCH = datetime(2026, 11, 25, 7, 30, tzinfo=ZoneInfo("Asia/Seoul"))
API = "/ngsi-ld/v1"


def moment(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def test_the_twin_keeps_its_kpis_in_the_hub_every_simulated_minute(
    hub: EmbeddedHub, tmp_path: Path
) -> None:
    twin = Twin(scenario_with(tmp_path, "traffic", name="kpis"), hours=0.05)
    link = HubLink(LinkOptions(hub.url, "kpis", "batch", "kpis"), Clock(EPOCH))
    link.start(twin.sensors(), twin.actuators(), twin.assets(), twin.states())
    result = twin.run(link)
    link.close()
    assert link.stats.failed == 0, link.stats.first_error
    assert link.stats.kpis == 4  # at 1, 2 and 3 simulated minutes, then the final figures
    with httpx.Client(base_url=hub.url, timeout=10) as http:
        listed = http.get(
            f"{API}/entities", params={"type": "KeyPerformanceIndicator", "limit": "100"}
        )
        assert listed.status_code == 200, listed.text
        entities: dict[str, dict[str, Any]] = {e["id"]: e for e in listed.json()}
        assert set(entities) == {kpi_id("kpis", key) for key in result.kpis}
        assert "traffic.mean_speed" in result.kpis and result.kpis["traffic.mean_speed"] > 5
        delay = entities[kpi_id("kpis", "traffic.mean_delay")]
        assert delay["kpiValue"]["value"] == result.kpis["traffic.mean_delay"]
        assert delay["kpiValue"]["unitCode"] == "SEC"
        end = EPOCH + timedelta(seconds=result.simulated_s)
        assert moment(delay["kpiValue"]["observedAt"]) == end
        period = delay["calculationPeriod"]["value"]
        assert (moment(period["from"]), moment(period["to"])) == (EPOCH, end)
        assert delay["name"]["value"] == "Mean delay"
        assert delay["alternateName"]["value"] == "평균 지체"
        assert delay["category"]["value"] == ["quantitative"]
        history = http.get(
            f"{API}/temporal/entities/{kpi_id('kpis', 'traffic.arrived')}",
            params={
                "attrs": "kpiValue",
                "options": "temporalValues",
                "timerel": "after",
                "timeAt": (EPOCH - timedelta(minutes=1)).isoformat(),
            },
        )
        assert history.status_code == 200, history.text
        values = history.json()["kpiValue"]["values"]
        times = sorted(moment(stamp) for _, stamp in values)
        assert times[:3] == [EPOCH + timedelta(minutes=m) for m in (1, 2, 3)]
        counts = [v for v, _ in sorted(values, key=lambda pair: moment(pair[1]))]
        assert counts == sorted(counts) and counts[-1] == result.kpis["traffic.arrived"]
