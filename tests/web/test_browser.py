"""The dashboard in a real browser: Debian's Chromium driven by Playwright.

One running district for the module: a hub, the eco-delta twin publishing into it
at 30x, and `dosi web` in front of it, each its own process as in `dosi demo`.
With DOSI_SCREENSHOTS=DIR the main views are saved there as PNG (docs/img/).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from livedistrict import Chromium, District, running_district
from playwright.sync_api import Page

pytestmark = pytest.mark.slow

SCREENSHOTS = os.environ.get("DOSI_SCREENSHOTS")
AXE = Path(__file__).resolve().parents[2] / "web" / "node_modules" / "axe-core" / "axe.min.js"


@pytest.fixture(scope="module")
def district(tmp_path_factory: pytest.TempPathFactory) -> Iterator[District]:
    with running_district(tmp_path_factory.mktemp("district"), speed="30x") as d:
        if SCREENSHOTS:
            time.sleep(60)  # half an hour of simulated history for the pictures
        yield d


@pytest.fixture(scope="module")
def browser() -> Iterator[Chromium]:
    with Chromium.launch() as chromium:
        yield chromium


@pytest.fixture
def page(browser: Chromium, district: District) -> Iterator[Page]:
    with browser.page(district.web_url) as page:
        yield page


TOPMOST_PRESSURE_SENSOR = """() => {
  for (const p of document.querySelectorAll('path.sensor[data-id*="water-pressure"]')) {
    const r = p.getBoundingClientRect();
    if (document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2) === p) return p.dataset.id;
  }
  return null;
}"""


def shoot(page: Page, name: str) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / f"dashboard-{name}.png"))


def test_page_loads_without_console_errors_and_shows_the_district(
    browser: Chromium, district: District
) -> None:
    with browser.page(district.web_url) as page:
        assert browser.errors == [], browser.errors
        # Every sensor and signal of the district is on the map, with an accessible name.
        sensors = page.locator("path.sensor")
        assert sensors.count() == district.sensor_count
        assert page.locator("path.signal").count() == 16
        label = sensors.first.get_attribute("aria-label")
        assert label and ":" in label
        # Roads, pipes and lines are drawn on the canvas renderer.
        assert page.locator(".leaflet-overlay-pane canvas").count() >= 1
        assert page.locator("html").get_attribute("lang") == "ko"
        shoot(page, "map")


def test_a_live_value_changes_within_seconds(page: Page) -> None:
    clock = page.locator("#sim-time")
    first = clock.get_attribute("datetime")
    assert first, "the simulated clock shows the district's latest reading"
    # At 30x a loop reports every 2 s of wall time; the stream must bring it.
    page.wait_for_function(
        "(first) => document.querySelector('#sim-time').getAttribute('datetime') > first",
        arg=first,
        timeout=15_000,
    )
    assert page.locator("#connection").get_attribute("data-state") == "live"


def test_clicking_a_sensor_opens_its_history_chart(page: Page, district: District) -> None:
    # A pressure sensor not covered by another marker (AMR meters share their nodes).
    entity_id = page.evaluate(TOPMOST_PRESSURE_SENSOR)
    assert entity_id, "a pressure sensor is visible on the map"
    page.locator(f'path.sensor[data-id="{entity_id}"]').click()
    inspector = page.locator("#inspector")
    inspector.wait_for(state="visible")
    assert entity_id in inspector.locator(".entity-id").inner_text()
    chart = inspector.locator("canvas.history-chart[data-points]")
    chart.wait_for(state="attached", timeout=10_000)
    points = int(chart.get_attribute("data-points") or 0)
    # The chart holds what the temporal API holds for that sensor over the last hour.
    history = httpx.get(
        f"{district.hub_url}/ngsi-ld/v1/temporal/entities/{entity_id}",
        params={"attrs": "numValue", "options": "temporalValues", "lastN": "600"},
    ).json()
    assert points >= 2
    assert points <= len(history["numValue"]["values"])
    shoot(page, "inspector")


def test_the_language_switch_changes_the_labels(page: Page) -> None:
    tab = page.locator("#tab-map")
    assert tab.inner_text() == "지도"
    page.locator("#language").click()
    assert tab.inner_text() == "Map"
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.locator("#kpi-title").inner_text() == "Key figures"
    page.locator("#language").click()
    assert tab.inner_text() == "지도"


def test_keyboard_reaches_a_sensor_and_opens_it(page: Page) -> None:
    sensor = page.locator("path.sensor").first
    sensor.focus()
    page.keyboard.press("Enter")
    page.locator("#inspector").wait_for(state="visible")
    # Tabs follow the WAI-ARIA pattern: arrow keys move between them.
    page.locator("#tab-map").focus()
    page.keyboard.press("ArrowRight")
    assert page.locator("#tab-explorer").get_attribute("aria-selected") == "true"
    assert page.locator("#view-explorer").is_visible()


def test_the_explorer_runs_an_ngsi_ld_query(page: Page) -> None:
    page.locator("#tab-explorer").click()
    form = page.locator("#view-explorer form")
    form.locator("select[name=type]").select_option("TrafficSignal")
    form.locator("button[type=submit]").click()
    summary = page.locator(".explorer-summary")
    summary.wait_for(state="visible")
    page.wait_for_function("document.querySelectorAll('.explorer-results tbody tr').length > 0")
    assert page.locator(".explorer-results tbody tr").count() == 16
    assert re.fullmatch(r"16\D+16\D*", summary.inner_text()), summary.inner_text()
    shoot(page, "explorer")
    # A broken q gives the hub's ProblemDetails, shown as an alert, not a blank table.
    form.locator("input[name=q]").fill("numValue<<")
    form.locator("button[type=submit]").click()
    page.wait_for_function(
        "document.querySelector('.explorer-summary').getAttribute('role') === 'alert'"
    )
    assert "400" in summary.inner_text()


def test_a_short_what_if_completes_and_shows_its_comparison(page: Page) -> None:
    page.locator("#tab-whatif").click()
    view = page.locator("#view-whatif")
    view.locator("select[name=kind]").select_option("pv-drop")
    view.locator("input[name=minutes]").fill("3")
    view.locator("button[type=submit]").click()
    status = view.locator(".whatif-status")
    page.wait_for_function(
        "['done', 'failed'].includes(document.querySelector('.whatif-status').dataset.status)",
        timeout=120_000,
    )
    assert status.get_attribute("data-status") == "done", status.inner_text()
    rows = view.locator(".whatif-result tbody tr")
    assert rows.count() >= 5
    assert view.locator(".whatif-result canvas").is_visible()
    # PV lost: the variant's PV energy is lower than the baseline's.
    pv = view.locator(".whatif-result tbody tr", has_text="태양광 발전량")
    assert "악화" in pv.inner_text()
    shoot(page, "whatif")


def test_no_serious_or_critical_accessibility_violations(page: Page) -> None:
    page.add_script_tag(path=str(AXE))
    for tab in ("#tab-map", "#tab-explorer", "#tab-whatif"):
        page.locator(tab).click()
        result = page.evaluate(
            "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
            ".map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.length,"
            " target: v.nodes[0].target.join(' ')}))"
        )
        serious = [v for v in result if v["impact"] in ("serious", "critical")]
        assert serious == [], f"{tab}: {serious}"
