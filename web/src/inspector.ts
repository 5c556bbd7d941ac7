// The entity inspector: a selected entity's attributes as the hub holds them, and the
// history of one numeric attribute from the temporal API.

import { entity, history, type Series } from "./api";
import { Chart } from "./charts";
import { type City, dateValue } from "./city";
import { formatNumber, language, t } from "./i18n";

type Attribute = { type?: string; value?: unknown; object?: unknown; unitCode?: string; observedAt?: string };

/** Attributes shown first, and the numeric ones worth charting, per entity type. */
const CHARTED: Record<string, string[]> = {
  TrafficFlowObserved: ["intensity", "averageVehicleSpeed", "occupancy"],
  DeviceMeasurement: ["numValue"],
  WaterObserved: ["flow", "height"],
  ThreePhaseAcMeasurement: ["voltagePu", "loadingPercentage", "totalActivePower"],
  SolarEnergy: ["totalActivePower"],
  AirQualityObserved: ["co2", "no2", "pm10"],
  TrafficSignal: ["phase"],
  EnergyStorage: ["stateOfCharge", "activePower"],
  KeyPerformanceIndicator: ["kpiValue"],
};

export class Inspector {
  private chart: Chart | null = null;
  private current: string | null = null;
  private attribute = "";
  private span: "hour" | "day" = "hour";
  private loading = 0;

  constructor(
    private readonly root: HTMLElement,
    private readonly city: City,
    private readonly timezone: string,
    private readonly onSelectRelated: (id: string) => void,
  ) {}

  get selected(): string | null {
    return this.current;
  }

  async show(id: string): Promise<void> {
    this.current = id;
    const ticket = ++this.loading;
    const body = this.root.querySelector<HTMLElement>(".inspector-body")!;
    const opening = this.root.hidden;
    this.root.hidden = false;
    if (opening) {
      this.root.scrollIntoView({ block: "start" });
      this.root.querySelector<HTMLElement>("h2")?.focus({ preventScroll: true });
    }
    body.setAttribute("aria-busy", "true");
    let data: Record<string, unknown>;
    try {
      data = await entity(id);
    } catch (error) {
      body.textContent = `${t("error")}: ${String(error)}`;
      return;
    }
    if (ticket !== this.loading) return; // another selection won the race
    const charted = (CHARTED[String(data.type)] ?? []).filter((name) => name in data);
    if (!charted.includes(this.attribute)) this.attribute = charted[0] ?? "";
    // The chart first: it is what an operator opens a sensor for.
    body.replaceChildren(this.heading(data));
    if (this.attribute) body.append(this.historyBlock(charted));
    body.append(this.table(data), this.relatedLinks(data));
    body.removeAttribute("aria-busy");
    if (this.attribute) await this.drawHistory();
  }

  /** Re-read the selected entity after a live change to it (cheap: one GET). */
  refresh(id: string): void {
    if (id === this.current && !this.root.hidden) void this.show(id);
  }

  close(): void {
    this.current = null;
    this.chart?.destroy();
    this.chart = null;
    this.root.hidden = true;
  }

  private heading(data: Record<string, unknown>): HTMLElement {
    const h = document.createElement("h3");
    const name = (data.name as Attribute | undefined)?.value;
    h.textContent = `${String(name ?? data.id)}`;
    const small = document.createElement("p");
    small.className = "entity-id";
    small.textContent = `${String(data.type)} · ${String(data.id)}`;
    const wrap = document.createElement("div");
    wrap.append(h, small);
    return wrap;
  }

  private table(data: Record<string, unknown>): HTMLElement {
    const table = document.createElement("table");
    table.className = "attributes";
    const head = table.createTHead().insertRow();
    for (const key of ["attribute", "value", "observedAt"] as const) {
      const th = document.createElement("th");
      th.scope = "col";
      th.textContent = t(key);
      head.append(th);
    }
    const tbody = table.createTBody();
    for (const [name, raw] of Object.entries(data)) {
      if (name === "id" || name === "type" || name === "@context" || name === "location") continue;
      const attr = (Array.isArray(raw) ? raw[0] : raw) as Attribute;
      const row = tbody.insertRow();
      const th = document.createElement("th");
      th.scope = "row";
      th.textContent = name;
      row.append(th);
      row.insertCell().textContent = display(attr);
      const at = attr?.observedAt ? new Date(attr.observedAt) : dateValue((attr?.value as unknown) ?? null);
      row.insertCell().textContent = attr?.observedAt && at ? this.time(at) : "";
    }
    return table;
  }

  private relatedLinks(data: Record<string, unknown>): HTMLElement {
    const ids = new Set<string>();
    for (const raw of Object.values(data)) {
      const attr = raw as Attribute;
      if (attr?.type === "Relationship" && typeof attr.object === "string") ids.add(attr.object);
    }
    if (data.type === "RoadSegment") for (const loop of this.city.loopsByRoad.get(String(data.id)) ?? []) ids.add(loop);
    const meter = this.city.meterByLine.get(String(data.id));
    if (meter) ids.add(meter);
    const nav = document.createElement("nav");
    nav.setAttribute("aria-label", t("related"));
    if (!ids.size) return nav;
    const title = document.createElement("h4");
    title.textContent = t("related");
    const list = document.createElement("ul");
    for (const id of ids) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "link";
      button.textContent = String(this.city.entities.get(id)?.name ?? id);
      button.addEventListener("click", () => this.onSelectRelated(id));
      const li = document.createElement("li");
      li.append(button);
      list.append(li);
    }
    nav.append(title, list);
    return nav;
  }

  private historyBlock(charted: string[]): HTMLElement {
    const section = document.createElement("section");
    section.className = "history";
    const title = document.createElement("h4");
    title.textContent = t("history");
    const controls = document.createElement("div");
    controls.className = "history-controls";
    const select = document.createElement("select");
    select.setAttribute("aria-label", t("attribute"));
    for (const name of charted) select.add(new Option(name, name, false, name === this.attribute));
    select.addEventListener("change", () => {
      this.attribute = select.value;
      void this.drawHistory();
    });
    controls.append(select);
    for (const span of ["hour", "day"] as const) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = t(span === "hour" ? "lastHour" : "lastDay");
      button.setAttribute("aria-pressed", String(span === this.span));
      button.addEventListener("click", () => {
        this.span = span;
        for (const b of controls.querySelectorAll("button")) b.setAttribute("aria-pressed", String(b === button));
        void this.drawHistory();
      });
      controls.append(button);
    }
    const canvas = document.createElement("canvas");
    canvas.className = "history-chart";
    canvas.setAttribute("role", "img");
    const note = document.createElement("p");
    note.className = "history-note";
    note.setAttribute("aria-live", "polite");
    section.append(title, controls, canvas, note);
    return section;
  }

  private async drawHistory(): Promise<void> {
    const id = this.current;
    const canvas = this.root.querySelector<HTMLCanvasElement>(".history-chart");
    const note = this.root.querySelector<HTMLElement>(".history-note");
    if (!id || !canvas || !note) return;
    const end = this.city.simulatedTime ?? new Date();
    let series: Series = [];
    try {
      series = await history(id, this.attribute, end, this.span);
    } catch (error) {
      note.textContent = `${t("error")}: ${String(error)}`;
    }
    if (id !== this.current) return;
    this.chart?.destroy();
    this.chart = null;
    canvas.dataset.points = String(series.length);
    canvas.setAttribute("aria-label", `${t("history")}: ${this.attribute}, ${series.length}`);
    if (!series.length) {
      note.textContent = t("noHistory");
      return;
    }
    const last = series[series.length - 1][1];
    note.textContent = `${this.attribute}: ${formatNumber(last, 2)} (${this.time(new Date(series[series.length - 1][0]))})`;
    const format = (ms: number): string => this.time(new Date(ms));
    this.chart = new Chart(canvas, {
      type: "line",
      data: {
        datasets: [
          {
            label: this.attribute,
            data: series.map(([x, y]) => ({ x, y })),
            borderColor: "#2166ac",
            backgroundColor: "#2166ac",
            pointRadius: series.length > 60 ? 0 : 2,
            borderWidth: 2,
          },
        ],
      },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        parsing: false,
        plugins: { legend: { display: false }, tooltip: { callbacks: { title: (items) => format(items[0].parsed.x ?? 0) } } },
        scales: {
          x: { type: "linear", ticks: { callback: (value) => format(Number(value)), maxTicksLimit: 6 } },
          y: { beginAtZero: false },
        },
      },
    });
  }

  private time(date: Date): string {
    return date.toLocaleTimeString(language() === "ko" ? "ko-KR" : "en-GB", {
      timeZone: this.timezone,
      hour: "2-digit",
      minute: "2-digit",
    });
  }
}

/** UN/CEFACT unit codes the twin uses, as people write them. */
const UNITS: Record<string, string> = {
  MTR: "m", KMH: "km/h", P1: "%", MQS: "m³/s", MTQ: "m³", KWT: "kW", KWH: "kWh", MWH: "MWh",
  VLT: "V", AMP: "A", HTZ: "Hz", GQ: "µg/m³", GRM: "g", "59": "ppm", KGM: "kg", SEC: "s", C62: "",
};

function display(attr: Attribute | undefined): string {
  if (!attr) return "";
  const value = attr.type === "Relationship" ? attr.object : attr.value;
  if (typeof value === "number") {
    const unit = attr.unitCode ? (UNITS[attr.unitCode] ?? attr.unitCode) : "";
    return `${formatNumber(value, Number.isInteger(value) ? 0 : 2)}${unit ? ` ${unit}` : ""}`;
  }
  if (value && typeof value === "object") {
    if ("@value" in value) return String((value as Record<string, unknown>)["@value"]);
    return JSON.stringify(value);
  }
  return String(value ?? "");
}
