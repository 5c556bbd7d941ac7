// The KPI panel and the alerts list: figures the twin publishes (KeyPerformanceIndicator
// entities) beside figures read off the live sensors, and what needs an operator's eye.

import type { Config } from "./api";
import { type City, numberOf } from "./city";
import { formatNumber, language, t } from "./i18n";

const MAX_ALERTS = 50;
/** The twin's run figures worth a glance; the rest are one click away in the explorer. */
const PANEL_KPIS = [
  "traffic.mean_delay",
  "traffic.mean_travel_time",
  "traffic.stops",
  "traffic.co2",
  "water.min_pressure",
  "water.leak_volume",
  "power.max_line_loading",
  "power.voltage_violations",
  "power.pv_energy",
];
const LOW_PRESSURE_M = 20;
const OVERLOAD_PERCENT = 90;
const VOLTAGE_BAND: [number, number] = [0.95, 1.05];

interface Figure {
  key: string;
  label: string;
  value: string;
}

export class Panels {
  constructor(
    private readonly kpiRoot: HTMLElement,
    private readonly alertRoot: HTMLElement,
    private readonly city: City,
    private readonly config: Config,
  ) {}

  render(): void {
    this.renderKpis();
    this.renderAlerts();
  }

  private renderKpis(): void {
    const figures = [...this.sensorFigures(), ...this.twinFigures()];
    if (!figures.length) {
      const p = document.createElement("p");
      p.textContent = t("kpiWaiting");
      this.kpiRoot.replaceChildren(p);
      return;
    }
    const list = document.createElement("dl");
    for (const figure of figures) {
      const item = document.createElement("div");
      item.className = "kpi";
      item.dataset.kpi = figure.key;
      const dt = document.createElement("dt");
      dt.textContent = figure.label;
      const dd = document.createElement("dd");
      dd.textContent = figure.value;
      item.append(dt, dd);
      list.append(item);
    }
    this.kpiRoot.replaceChildren(list);
  }

  /** Read off the sensors now: the picture of this minute, not the run so far. */
  private sensorFigures(): Figure[] {
    const ko = language() === "ko";
    const figures: Figure[] = [];
    let flow = 0;
    let weighted = 0;
    for (const e of this.city.ofType("TrafficFlowObserved")) {
      const speed = numberOf(e.averageVehicleSpeed);
      const count = numberOf(e.intensity) ?? 0;
      if (speed !== null && count > 0) {
        flow += count;
        weighted += speed * count;
      }
    }
    if (flow > 0) {
      figures.push({ key: "live.mean_speed", label: ko ? "현재 평균 속도" : "Mean speed now", value: `${formatNumber(weighted / flow)} km/h` });
    }
    const pressures = this.city
      .ofType("DeviceMeasurement")
      .filter((e) => e.measurementType === "pressure")
      .map((e) => numberOf(e.numValue))
      .filter((v): v is number => v !== null);
    if (pressures.length) {
      const band = `${formatNumber(Math.min(...pressures))}–${formatNumber(Math.max(...pressures))} m`;
      figures.push({ key: "live.pressure_band", label: ko ? "수압 범위" : "Pressure band", value: band });
    }
    const voltages = this.city.ofType("ThreePhaseAcMeasurement").map((e) => numberOf(e.voltagePu));
    const buses = voltages.filter((v): v is number => v !== null);
    if (buses.length) {
      const outside = buses.filter((v) => v < VOLTAGE_BAND[0] || v > VOLTAGE_BAND[1]).length;
      figures.push({ key: "live.voltage_violations", label: ko ? "전압 이탈 모선" : "Buses out of band", value: `${outside} / ${buses.length}` });
    }
    const co2 = this.city
      .ofType("AirQualityObserved")
      .map((e) => numberOf(e.co2))
      .filter((v): v is number => v !== null);
    if (co2.length) {
      figures.push({ key: "live.co2", label: ko ? "최고 CO2 농도" : "Highest CO2", value: `${formatNumber(Math.max(...co2), 0)} ppm` });
    }
    return figures;
  }

  /** What the twin computes over the run so far (delay, CO2 emitted, …). */
  private twinFigures(): Figure[] {
    const figures: Figure[] = [];
    for (const e of this.city.ofType("KeyPerformanceIndicator")) {
      const key = e.id.split(":").pop() ?? e.id;
      const label = this.config.kpis[key];
      if (!PANEL_KPIS.includes(key)) continue;
      const value = numberOf(e.kpiValue);
      if (!label || value === null) continue;
      const unit = label.unit ? ` ${label.unit}` : "";
      figures.push({ key, label: language() === "ko" ? label.ko : label.en, value: `${formatNumber(value, label.digits)}${unit}` });
    }
    return figures.sort((a, b) => PANEL_KPIS.indexOf(a.key) - PANEL_KPIS.indexOf(b.key));
  }

  private renderAlerts(): void {
    const alerts: Array<{ key: string; text: string; severity: "high" | "medium" }> = [];
    const name = (e: Record<string, unknown>): string => String(e.name ?? e.id);
    for (const e of this.city.ofType("DeviceMeasurement")) {
      const head = numberOf(e.numValue);
      if (e.measurementType === "pressure" && head !== null && head < LOW_PRESSURE_M) {
        alerts.push({ key: e.id, text: t("alertLowPressure", { v: formatNumber(head), name: name(e) }), severity: "high" });
      }
    }
    for (const e of this.city.ofType("ThreePhaseAcMeasurement")) {
      const loading = numberOf(e.loadingPercentage);
      const pu = numberOf(e.voltagePu);
      if (loading !== null && loading > OVERLOAD_PERCENT) {
        alerts.push({ key: e.id, text: t("alertLoading", { v: formatNumber(loading, 0), name: name(e) }), severity: "high" });
      }
      if (pu !== null && (pu < VOLTAGE_BAND[0] || pu > VOLTAGE_BAND[1])) {
        alerts.push({ key: e.id, text: t("alertVoltage", { v: formatNumber(pu, 3), name: name(e) }), severity: "high" });
      }
    }
    const congestedRoads = new Set<string>();
    for (const e of this.city.ofType("TrafficFlowObserved")) {
      if (e.congested === true && typeof e.refRoadSegment === "string") congestedRoads.add(e.refRoadSegment);
    }
    for (const road of congestedRoads) {
      const e = this.city.entities.get(road);
      alerts.push({ key: road, text: t("alertCongestion", { name: e ? name(e) : road }), severity: "medium" });
    }
    alerts.sort((a, b) => (a.severity === b.severity ? a.text.localeCompare(b.text) : a.severity === "high" ? -1 : 1));
    const shown = alerts.slice(0, MAX_ALERTS);
    if (!shown.length) {
      const p = document.createElement("p");
      p.textContent = t("noAlerts");
      this.alertRoot.replaceChildren(p);
      return;
    }
    const list = document.createElement("ul");
    for (const alert of shown) {
      const li = document.createElement("li");
      li.className = `alert ${alert.severity}`;
      li.dataset.id = alert.key;
      li.textContent = alert.text;
      list.append(li);
    }
    this.alertRoot.replaceChildren(list);
  }
}
