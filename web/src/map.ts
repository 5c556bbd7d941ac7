// The district map: the twin's own geometry from the hub (no online tiles can be reached),
// layers that can be switched, colours that follow the live stream.

import L from "leaflet";
import "leaflet/dist/leaflet.css";

import { type City, numberOf } from "./city";
import type { Entity } from "./api";
import {
  colourFor,
  LOADING,
  NO_DATA,
  OCCUPANCY,
  PRESSURE,
  type Scale,
  signalColour,
  SPEED,
} from "./colours";

export type LayerName = "roads" | "pipes" | "grid" | "sensors" | "signals" | "air";
export type RoadMode = "speed" | "congestion";
type Select = (id: string) => void;

type Coordinates = number[][];
interface Geometry {
  type: string;
  coordinates: unknown;
}

const RIGHT_HAND_OFFSET_M = 7; // the two directions of a street drawn side by side

export class DistrictMap {
  readonly map: L.Map;
  readonly layers: Record<LayerName, L.LayerGroup>;
  roadMode: RoadMode = "speed";
  private readonly roads = new Map<string, L.Polyline>();
  private readonly lines = new Map<string, L.Polyline>();
  private readonly markers = new Map<string, L.CircleMarker>();
  private readonly cells = new Map<string, L.Polygon>();
  private readonly svg = L.svg({ padding: 0.2 });

  constructor(
    element: HTMLElement,
    private readonly city: City,
    private readonly select: Select,
    origin: [number, number],
  ) {
    this.map = L.map(element, {
      preferCanvas: true,
      zoomSnap: 0.25,
      attributionControl: true,
      keyboardPanDelta: 120,
    });
    // A view before any layer: Leaflet defers drawing (and so the markers' elements) until then.
    this.map.setView(L.latLng(origin[1], origin[0]), 14);
    this.map.attributionControl.setPrefix(false);
    this.map.attributionControl.addAttribution("L-Town © KIOS CoE (CC BY 4.0) · CIGRE MV");
    this.layers = {
      air: L.layerGroup(),
      pipes: L.layerGroup(),
      grid: L.layerGroup(),
      roads: L.layerGroup(),
      sensors: L.layerGroup(),
      signals: L.layerGroup(),
    };
    for (const name of ["pipes", "grid", "roads", "sensors", "signals"] as const) {
      this.layers[name].addTo(this.map);
    }
  }

  /** Draws every asset and sensor once; later changes only restyle them. */
  draw(): void {
    const bounds = L.latLngBounds([]);
    for (const e of this.city.ofType("Pipe")) {
      const line = this.polyline(e, "pipes", { color: "#4f7fa6", weight: pipeWeight(e), opacity: 0.8 });
      if (line) bounds.extend(line.getBounds());
    }
    for (const e of this.city.ofType("PowerLine")) {
      const line = this.polyline(e, "grid", { color: "#7b3294", weight: 3, dashArray: "6 4" });
      if (line) this.lines.set(e.id, line);
    }
    for (const e of this.city.ofType("RoadSegment")) {
      const lanes = numberOf(e.totalLaneNumber) ?? 1;
      const line = this.polyline(e, "roads", { color: NO_DATA, weight: 2 + 2 * lanes }, true);
      if (line) {
        this.roads.set(e.id, line);
        bounds.extend(line.getBounds());
      }
    }
    for (const e of this.city.ofType("AirQualityObserved")) this.cell(e);
    for (const type of ["TrafficFlowObserved", "DeviceMeasurement", "WaterObserved", "ThreePhaseAcMeasurement", "SolarEnergy"]) {
      for (const e of this.city.ofType(type)) this.marker(e, "sensors", 4);
    }
    for (const type of ["TrafficSignal", "Valve", "Pump", "EnergyStorage", "Switch"]) {
      for (const e of this.city.ofType(type)) this.marker(e, "signals", type === "TrafficSignal" ? 7 : 5);
    }
    if (bounds.isValid()) this.map.fitBounds(bounds, { padding: [12, 12] });
    this.restyleAll();
  }

  setLayer(name: LayerName, visible: boolean): void {
    if (visible) this.layers[name].addTo(this.map);
    else this.layers[name].remove();
  }

  setRoadMode(mode: RoadMode): void {
    this.roadMode = mode;
    for (const id of this.roads.keys()) this.restyleRoad(id);
  }

  roadScale(): Scale {
    return this.roadMode === "speed" ? SPEED : OCCUPANCY;
  }

  /** One entity changed: recolour what shows it. */
  update(e: Entity): void {
    switch (e.type) {
      case "TrafficFlowObserved": {
        const road = this.city.entities.get(e.id)?.refRoadSegment;
        if (typeof road === "string") this.restyleRoad(road);
        this.restyleMarker(e.id);
        break;
      }
      case "ThreePhaseAcMeasurement":
        for (const [line, meter] of this.city.meterByLine) if (meter === e.id) this.restyleLine(line);
        this.restyleMarker(e.id);
        break;
      case "AirQualityObserved":
        this.restyleCell(e.id);
        break;
      default:
        this.restyleMarker(e.id);
    }
  }

  /** Centres on an entity and marks it (search, explorer, keyboard). */
  focus(id: string): void {
    const marker = this.markers.get(id);
    const shape = marker ?? this.roads.get(id) ?? this.lines.get(id) ?? this.cells.get(id);
    if (!shape) return;
    const view = this.map.getBounds();
    if (shape instanceof L.CircleMarker) {
      if (!view.contains(shape.getLatLng())) this.map.panTo(shape.getLatLng());
    } else if (!view.contains((shape as L.Polyline).getBounds())) {
      this.map.fitBounds((shape as L.Polyline).getBounds(), { maxZoom: 17 });
    }
  }

  private restyleAll(): void {
    for (const id of this.roads.keys()) this.restyleRoad(id);
    for (const id of this.lines.keys()) this.restyleLine(id);
    for (const id of this.markers.keys()) this.restyleMarker(id);
    for (const id of this.cells.keys()) this.restyleCell(id);
  }

  private restyleRoad(id: string): void {
    const line = this.roads.get(id);
    if (!line) return;
    line.setStyle({ color: colourFor(this.roadScale(), this.roadValue(id)) });
  }

  /** Mean over the road's loops: speed as a share of the limit, or occupancy. */
  private roadValue(id: string): number | null {
    const values: number[] = [];
    const limit = numberOf(this.city.entities.get(id)?.maximumAllowedSpeed);
    for (const loop of this.city.loopsByRoad.get(id) ?? []) {
      const e = this.city.entities.get(loop);
      if (!e) continue;
      if (this.roadMode === "congestion") {
        const occupancy = numberOf(e.occupancy);
        if (occupancy !== null) values.push(occupancy);
      } else {
        const speed = numberOf(e.averageVehicleSpeed);
        // No car passed in the interval: the road is free, not unknown.
        if (speed !== null && limit) values.push(speed / limit);
        else if (numberOf(e.intensity) === 0) values.push(1);
      }
    }
    return values.length ? values.reduce((a, b) => a + b, 0) / values.length : null;
  }

  private restyleLine(id: string): void {
    const meter = this.city.meterByLine.get(id);
    const loading = meter ? numberOf(this.city.entities.get(meter)?.loadingPercentage) : null;
    this.lines.get(id)?.setStyle({ color: loading === null ? "#7b3294" : colourFor(LOADING, loading) });
  }

  private restyleCell(id: string): void {
    const co2 = numberOf(this.city.entities.get(id)?.co2);
    // 420 ppm background; a street canyon at the peak reaches a few hundred more.
    const share = co2 === null ? 0 : Math.min(1, Math.max(0, (co2 - 420) / 200));
    this.cells.get(id)?.setStyle({ fillOpacity: 0.05 + 0.45 * share });
  }

  private restyleMarker(id: string): void {
    const marker = this.markers.get(id);
    const e = this.city.entities.get(id);
    if (!marker || !e) return;
    const colour = markerColour(e);
    marker.setStyle({ fillColor: colour, color: "#1f2328" });
    marker.getElement()?.setAttribute("data-state", colour);
  }

  private polyline(
    e: Entity,
    layer: LayerName,
    style: L.PolylineOptions,
    offset = false,
  ): L.Polyline | null {
    const geometry = e.location as Geometry | undefined;
    if (geometry?.type !== "LineString") return null;
    let points = (geometry.coordinates as Coordinates).map(([lon, lat]) => L.latLng(lat, lon));
    if (offset) points = shiftRight(points, RIGHT_HAND_OFFSET_M);
    const line = L.polyline(points, { ...style, interactive: true });
    line.on("click", () => this.select(e.id));
    line.bindTooltip(String(e.name ?? e.id), { sticky: true });
    line.addTo(this.layers[layer]);
    return line;
  }

  private cell(e: Entity): void {
    const geometry = e.location as Geometry | undefined;
    if (geometry?.type !== "Polygon") return;
    const ring = (geometry.coordinates as Coordinates[])[0].map(([lon, lat]) => L.latLng(lat, lon));
    const polygon = L.polygon(ring, { color: "#6b6f76", weight: 0.5, fillColor: "#8c510a", fillOpacity: 0.05 });
    polygon.on("click", () => this.select(e.id));
    polygon.addTo(this.layers.air);
    this.cells.set(e.id, polygon);
  }

  /** Sensors and actuators are SVG so each can take keyboard focus and an accessible name. */
  private marker(e: Entity, layer: LayerName, radius: number): void {
    const geometry = e.location as Geometry | undefined;
    if (geometry?.type !== "Point") return;
    const [lon, lat] = geometry.coordinates as number[];
    const kind = e.type === "TrafficSignal" ? "signal" : layer === "signals" ? "actuator" : "sensor";
    const marker = L.circleMarker(L.latLng(lat, lon), {
      renderer: this.svg,
      radius,
      weight: 1,
      fillOpacity: 0.95,
      className: `entity ${kind}`,
    });
    marker.on("click", () => this.select(e.id));
    marker.bindTooltip(String(e.name ?? e.id));
    marker.addTo(this.layers[layer]);
    const element = marker.getElement();
    if (element) {
      element.setAttribute("data-id", e.id);
      element.setAttribute("tabindex", "0");
      element.setAttribute("role", "button");
      element.setAttribute("aria-label", `${e.type}: ${String(e.name ?? e.id)}`);
      element.addEventListener("keydown", (raw) => {
        const event = raw as KeyboardEvent;
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          this.select(e.id);
        }
      });
    }
    this.markers.set(e.id, marker);
  }
}

function pipeWeight(e: Entity): number {
  const diameter = numberOf(e.diameter) ?? 0.1; // metres
  return diameter >= 0.3 ? 3 : diameter >= 0.15 ? 2 : 1;
}

export function markerColour(e: Entity): string {
  switch (e.type) {
    case "TrafficFlowObserved":
      return colourFor(OCCUPANCY, numberOf(e.occupancy));
    case "DeviceMeasurement":
      return e.controlledProperty === "pressure" || e.measurementType === "pressure"
        ? colourFor(PRESSURE, numberOf(e.numValue))
        : "#2166ac";
    case "ThreePhaseAcMeasurement": {
      const pu = numberOf(e.voltagePu);
      if (pu !== null) return pu < 0.95 || pu > 1.05 ? "#b2182b" : "#7b3294";
      return colourFor(LOADING, numberOf(e.loadingPercentage));
    }
    case "SolarEnergy":
      return "#c99a00";
    case "TrafficSignal":
      return signalColour(e.signalState);
    default:
      return "#4f7fa6";
  }
}

/** Moves a polyline `metres` to the right of its direction of travel. */
function shiftRight(points: L.LatLng[], metres: number): L.LatLng[] {
  if (points.length < 2) return points;
  const a = points[0];
  const b = points[points.length - 1];
  const mPerDegLat = 111_320;
  const mPerDegLon = 111_320 * Math.cos((a.lat * Math.PI) / 180);
  const dx = (b.lng - a.lng) * mPerDegLon;
  const dy = (b.lat - a.lat) * mPerDegLat;
  const length = Math.hypot(dx, dy) || 1;
  const east = (dy / length) * metres; // right-hand normal of (dx, dy) is (dy, -dx)
  const north = (-dx / length) * metres;
  return points.map((p) => L.latLng(p.lat + north / mPerDegLat, p.lng + east / mPerDegLon));
}
