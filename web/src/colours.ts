// Colour scales of the live map, each with the legend that explains it. Five steps from a
// colour-blind-safe ramp, dark enough to read on the light map background.

import { type Key } from "./i18n";

export interface Step {
  upTo: number; // this colour applies below this value
  colour: string;
  label: string;
}

export interface Scale {
  title: Key;
  steps: Step[];
}

export const NO_DATA = "#8a8f98";
const RAMP = ["#b2182b", "#e66101", "#c99a00", "#4d9221", "#1b7837"];

/** Speed as a share of the limit: red is crawling, green is free flow. */
export const SPEED: Scale = {
  title: "legendSpeed",
  steps: [
    { upTo: 0.25, colour: RAMP[0], label: "< 25%" },
    { upTo: 0.5, colour: RAMP[1], label: "25–50%" },
    { upTo: 0.7, colour: RAMP[2], label: "50–70%" },
    { upTo: 0.85, colour: RAMP[3], label: "70–85%" },
    { upTo: Infinity, colour: RAMP[4], label: "≥ 85%" },
  ],
};

/** Loop occupancy: above 0.5 the lane counts as congested. */
export const OCCUPANCY: Scale = {
  title: "legendOccupancy",
  steps: [
    { upTo: 0.1, colour: RAMP[4], label: "< 10%" },
    { upTo: 0.2, colour: RAMP[3], label: "10–20%" },
    { upTo: 0.35, colour: RAMP[2], label: "20–35%" },
    { upTo: 0.5, colour: RAMP[1], label: "35–50%" },
    { upTo: Infinity, colour: RAMP[0], label: "≥ 50%" },
  ],
};

/** Pressure head at a sensor (m); below 20 m customers are under-served. */
export const PRESSURE: Scale = {
  title: "legendPressure",
  steps: [
    { upTo: 20, colour: RAMP[0], label: "< 20 m" },
    { upTo: 30, colour: RAMP[2], label: "20–30 m" },
    { upTo: 60, colour: "#2166ac", label: "30–60 m" },
    { upTo: Infinity, colour: "#5e3c99", label: "≥ 60 m" },
  ],
};

/** Line loading (%) of the thermal rating. */
export const LOADING: Scale = {
  title: "legendLoading",
  steps: [
    { upTo: 50, colour: "#7b3294", label: "< 50%" },
    { upTo: 75, colour: RAMP[3], label: "50–75%" },
    { upTo: 90, colour: RAMP[2], label: "75–90%" },
    { upTo: 100, colour: RAMP[1], label: "90–100%" },
    { upTo: Infinity, colour: RAMP[0], label: "≥ 100%" },
  ],
};

export function colourFor(scale: Scale, value: number | null): string {
  if (value === null) return NO_DATA;
  for (const step of scale.steps) if (value < step.upTo) return step.colour;
  return scale.steps[scale.steps.length - 1].colour;
}

export const SIGNAL = { green: "#1b7837", yellow: "#c99a00", red: "#b2182b" } as const;

/** A signal's colour from its SUMO state string: green if any link has green. */
export function signalColour(state: unknown): string {
  if (typeof state !== "string") return NO_DATA;
  if (/[Gg]/.test(state)) return SIGNAL.green;
  if (/[yYuo]/.test(state)) return SIGNAL.yellow;
  return SIGNAL.red;
}
