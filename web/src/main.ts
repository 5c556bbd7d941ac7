// Boot: config, the district from the hub, then the live stream; wires the views together.

import "./styles.css";

import { getConfig } from "./api";
import { City } from "./city";
import { type Scale } from "./colours";
import { Explorer } from "./explorer";
import { applyLanguage, language, onLanguageChange, setLanguage, t } from "./i18n";
import { Inspector } from "./inspector";
import { DistrictMap, type LayerName, type RoadMode } from "./map";
import { Panels } from "./panels";
import { WhatIfPanel } from "./whatif";

const PANEL_REFRESH_MS = 1000; // KPI and alert lists are redrawn at most once a second

const $ = <T extends HTMLElement>(selector: string): T => document.querySelector<T>(selector)!;

async function main(): Promise<void> {
  applyLanguage(document);
  setUpTabs();
  $("#language").addEventListener("click", () => setLanguage(language() === "ko" ? "en" : "ko"));

  const config = await getConfig();
  const timezone = config.timezone ?? "Asia/Seoul";
  const city = new City();
  await city.load();

  const select = (id: string): void => {
    showTab("tab-map");
    map.focus(id);
    void inspector.show(id);
  };
  const map = new DistrictMap($("#map"), city, select, config.origin);
  const inspector = new Inspector($("#inspector"), city, timezone, select);
  const panels = new Panels($("#kpis"), $("#alerts"), city, config);
  const explorer = new Explorer($("#view-explorer"), select);
  const whatIf = new WhatIfPanel($("#view-whatif"), config);
  map.draw();
  panels.render();
  renderLegend(map.roadScale());
  fillFind(city, select);
  void explorer.loadTypes();
  $("#inspector .close").addEventListener("click", () => inspector.close());

  for (const box of document.querySelectorAll<HTMLInputElement>(".layers input")) {
    box.addEventListener("change", () => map.setLayer(box.name as LayerName, box.checked));
  }
  $<HTMLSelectElement>("#road-mode").addEventListener("change", (event) => {
    map.setRoadMode((event.target as HTMLSelectElement).value as RoadMode);
    renderLegend(map.roadScale());
  });

  const clock = $("#sim-time");
  const showClock = (): void => {
    const at = city.simulatedTime;
    if (!at) return;
    clock.setAttribute("datetime", at.toISOString());
    clock.textContent = at.toLocaleString(language() === "ko" ? "ko-KR" : "en-GB", {
      timeZone: timezone,
      dateStyle: "medium",
      timeStyle: "medium",
    });
  };
  showClock();

  let dirty = false;
  // Read by bench/web_bench.py: how many live changes this page has applied.
  const stats = { changes: 0 };
  (window as unknown as { dosiStats: typeof stats }).dosiStats = stats;
  city.onChange((e) => {
    stats.changes += 1;
    map.update(e);
    inspector.refresh(e.id);
    dirty = true;
  });
  window.setInterval(() => {
    if (!dirty) return;
    dirty = false;
    panels.render();
    showClock();
  }, PANEL_REFRESH_MS);
  city.live((open) => {
    const status = $("#connection");
    status.dataset.state = open ? "live" : "offline";
    status.dataset.i18n = open ? "live" : "offline";
    status.textContent = t(open ? "live" : "offline");
  });

  onLanguageChange(() => {
    panels.render();
    renderLegend(map.roadScale());
    showClock();
    whatIf.relabel();
    if (inspector.selected) void inspector.show(inspector.selected);
  });
  document.body.dataset.ready = "true"; // the first view is interactive
  performance.mark("dosi-ready");
}

function setUpTabs(): void {
  const tabs = [...document.querySelectorAll<HTMLButtonElement>("[role=tab]")];
  for (const tab of tabs) {
    tab.addEventListener("click", () => showTab(tab.id));
    tab.addEventListener("keydown", (event) => {
      const index = tabs.indexOf(tab);
      const next =
        event.key === "ArrowRight" ? tabs[(index + 1) % tabs.length]
        : event.key === "ArrowLeft" ? tabs[(index - 1 + tabs.length) % tabs.length]
        : null;
      if (next) {
        event.preventDefault();
        showTab(next.id);
        next.focus();
      }
    });
  }
}

function showTab(id: string): void {
  for (const tab of document.querySelectorAll<HTMLButtonElement>("[role=tab]")) {
    const selected = tab.id === id;
    tab.setAttribute("aria-selected", String(selected));
    tab.tabIndex = selected ? 0 : -1;
    $(`#${tab.getAttribute("aria-controls")}`).hidden = !selected;
  }
}

function renderLegend(scale: Scale): void {
  const legend = $("#legend");
  const title = document.createElement("p");
  title.className = "legend-title";
  title.textContent = t(scale.title);
  const list = document.createElement("ul");
  for (const step of [...scale.steps, { colour: "#8a8f98", label: t("legendNoData") }]) {
    const item = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = step.colour;
    swatch.setAttribute("aria-hidden", "true");
    item.append(swatch, document.createTextNode(step.label));
    list.append(item);
  }
  legend.replaceChildren(title, list);
}

function fillFind(city: City, select: (id: string) => void): void {
  const list = $("#find-list");
  const byLabel = new Map<string, string>();
  for (const e of city.entities.values()) {
    if (e.type === "Pipe") continue; // 905 pipes would drown the sensors
    const label = `${String(e.name ?? e.id)} (${e.type})`;
    byLabel.set(label, e.id);
    const option = document.createElement("option");
    option.value = label;
    list.append(option);
  }
  $<HTMLFormElement>("#find").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $<HTMLInputElement>("#find-input").value.trim();
    const id = byLabel.get(text) ?? (city.entities.has(text) ? text : undefined);
    if (id) select(id);
  });
}

main().catch((error: unknown) => {
  const banner = document.createElement("p");
  banner.className = "fatal";
  banner.setAttribute("role", "alert");
  banner.textContent = `${t("error")}: ${error instanceof Error ? error.message : String(error)}`;
  document.body.prepend(banner);
  console.error(error);
});
