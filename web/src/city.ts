// What the dashboard knows of the district: every entity by id, kept current from the
// live stream, with the joins the map needs (loops per road, meters per power line).

import { entitiesOfType, type Entity, follow } from "./api";

/** Assets drawn as geometry; their shapes never change while the twin runs. */
export const ASSET_TYPES = ["RoadSegment", "Pipe", "PowerLine"] as const;
/** Observation entities: one per sensor, updated at every reading. */
export const SENSOR_TYPES = [
  "TrafficFlowObserved",
  "DeviceMeasurement",
  "WaterObserved",
  "ThreePhaseAcMeasurement",
  "SolarEnergy",
  "AirQualityObserved",
] as const;
export const ACTUATOR_TYPES = ["TrafficSignal", "Valve", "Pump", "EnergyStorage", "Switch"] as const;
export const KPI_TYPE = "KeyPerformanceIndicator";

/** Attributes the live view shows; the stream carries only changes to these. */
export const LIVE_ATTRS = [
  "intensity",
  "occupancy",
  "averageVehicleSpeed",
  "congested",
  "numValue",
  "flow",
  "height",
  "voltagePu",
  "loadingPercentage",
  "totalActivePower",
  "co2",
  "no2",
  "phase",
  "signalState",
  "held",
  "status",
  "setting",
  "state",
  "stateOfCharge",
  "kpiValue",
  "dateObservedTo",
];

export type Listener = (entity: Entity) => void;

export class City {
  readonly entities = new Map<string, Entity>();
  /** Loops (TrafficFlowObserved ids) on each road segment. */
  readonly loopsByRoad = new Map<string, string[]>();
  /** Line meter per PowerLine, joined on their shared name. */
  readonly meterByLine = new Map<string, string>();
  simulatedTime: Date | null = null;
  private readonly listeners: Listener[] = [];
  private source: EventSource | null = null;

  async load(): Promise<void> {
    const types = [...ASSET_TYPES, ...SENSOR_TYPES, ...ACTUATOR_TYPES, KPI_TYPE];
    const batches = await Promise.all(types.map((type) => entitiesOfType(type)));
    for (const batch of batches) for (const e of batch) this.put(e);
    const lineByName = new Map<string, string>();
    for (const e of this.ofType("PowerLine")) lineByName.set(String(e.name), e.id);
    for (const e of this.ofType("ThreePhaseAcMeasurement")) {
      const line = lineByName.get(String(e.name));
      if (line && "loadingPercentage" in e) this.meterByLine.set(line, e.id);
    }
    for (const e of this.ofType("TrafficFlowObserved")) {
      const road = e.refRoadSegment as string | undefined;
      if (road) this.loopsByRoad.set(road, [...(this.loopsByRoad.get(road) ?? []), e.id]);
    }
  }

  ofType(type: string): Entity[] {
    return [...this.entities.values()].filter((e) => e.type === type);
  }

  onChange(listener: Listener): void {
    this.listeners.push(listener);
  }

  /** Follows the hub's stream; updates merge into the entities already known. */
  live(onState: (open: boolean) => void): void {
    this.source?.close();
    this.source = follow(
      [...SENSOR_TYPES, ...ACTUATOR_TYPES, KPI_TYPE],
      LIVE_ATTRS,
      (change) => {
        const known = this.entities.get(change.id);
        // Unknown ids are new entities (a KPI's first value): keep them; nothing else grows.
        const merged = known ? Object.assign(known, change) : this.put(change);
        this.advanceClock(merged);
        for (const listener of this.listeners) listener(merged);
      },
      onState,
    );
  }

  private put(e: Entity): Entity {
    this.entities.set(e.id, e);
    this.advanceClock(e);
    return e;
  }

  private advanceClock(e: Entity): void {
    const stamp = dateValue(e.dateObservedTo);
    if (stamp && (!this.simulatedTime || stamp > this.simulatedTime)) this.simulatedTime = stamp;
  }
}

/** A DateTime in key-values form is either a string or `{"@type": "DateTime", "@value"}`. */
export function dateValue(value: unknown): Date | null {
  if (typeof value === "string") return new Date(value);
  if (value && typeof value === "object" && "@value" in value) {
    return new Date(String((value as { "@value": unknown })["@value"]));
  }
  return null;
}

export function numberOf(value: unknown): number | null {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}
