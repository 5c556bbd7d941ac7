// The dashboard's only ways out: the hub's NGSI-LD API and live stream (through the web
// server's pass-through) and the web server's own /api for config and what-if jobs.

export const NGSI = "/ngsi-ld/v1";
const PAGE = 1000; // the hub's largest page

export type Entity = Record<string, unknown> & { id: string; type: string };

export interface KpiLabel {
  en: string;
  ko: string;
  unit: string;
  lowerIsBetter: boolean;
  digits: number;
}

export interface Config {
  scenario: string;
  origin: [number, number];
  timezone?: string;
  whatIf: { kinds: string[]; roads: string[]; junctions: string[] };
  kpis: Record<string, KpiLabel>;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly title: string,
    readonly detail: string,
  ) {
    super(detail ? `${title}: ${detail}` : title);
  }
}

async function check(response: Response): Promise<Response> {
  if (response.ok) return response;
  let title = `HTTP ${response.status}`;
  let detail = "";
  try {
    const problem = (await response.json()) as { title?: string; detail?: string };
    title = problem.title ?? title;
    detail = problem.detail ?? "";
  } catch {
    // not ProblemDetails: keep the status line
  }
  throw new ApiError(response.status, title, detail);
}

export async function getJson<T>(url: string, init?: RequestInit): Promise<T> {
  const response = await check(await fetch(url, init));
  return (await response.json()) as T;
}

export function getConfig(): Promise<Config> {
  return getJson<Config>("/api/config");
}

/** Every entity of one type, concise key-values, page after page. */
export async function entitiesOfType(type: string, attrs?: string[]): Promise<Entity[]> {
  const out: Entity[] = [];
  for (let offset = 0; ; offset += PAGE) {
    const params = new URLSearchParams({ type, options: "keyValues", limit: String(PAGE) });
    params.set("offset", String(offset));
    if (attrs) params.set("attrs", attrs.join(","));
    const page = await getJson<Entity[]>(`${NGSI}/entities?${params}`);
    out.push(...page);
    if (page.length < PAGE) return out;
  }
}

export function entity(id: string): Promise<Record<string, unknown>> {
  return getJson(`${NGSI}/entities/${encodeURIComponent(id)}`);
}

/** A raw query for the explorer: the entities and the total count the hub reports. */
export async function query(params: URLSearchParams): Promise<{ url: string; count: number; body: unknown }> {
  params.set("count", "true");
  const url = `${NGSI}/entities?${params}`;
  const response = await check(await fetch(url));
  const count = Number(response.headers.get("NGSILD-Results-Count") ?? "0");
  return { url, count, body: await response.json() };
}

export type Series = Array<[number, number]>; // [epoch ms, value]

/** One attribute's history: raw values over the last hour, or 15-minute means over a day. */
export async function history(
  id: string,
  attribute: string,
  end: Date,
  span: "hour" | "day",
): Promise<Series> {
  const hours = span === "hour" ? 1 : 24;
  const params = new URLSearchParams({
    attrs: attribute,
    timerel: "between",
    timeAt: new Date(end.getTime() - hours * 3600_000).toISOString(),
    endTimeAt: new Date(end.getTime() + 1000).toISOString(),
  });
  if (span === "day") {
    params.set("options", "aggregatedValues");
    params.set("aggrMethods", "avg");
    params.set("aggrPeriodDuration", "PT15M");
  } else {
    params.set("options", "temporalValues");
    params.set("lastN", "600");
  }
  const body = await getJson<Record<string, unknown>>(
    `${NGSI}/temporal/entities/${encodeURIComponent(id)}?${params}`,
  );
  const attr = body[attribute] as { values?: unknown[][]; avg?: unknown[][] } | undefined;
  const rows = (span === "day" ? attr?.avg : attr?.values) ?? [];
  const series: Series = [];
  for (const row of rows) {
    const value = row[0];
    if (typeof value === "number") series.push([Date.parse(String(row[1])), value]);
  }
  return series.sort((a, b) => a[0] - b[0]);
}

export interface WhatIfKpi {
  key: string;
  en: string;
  ko: string;
  unit: string;
  baseline: number;
  variant: number;
  change: number | null;
  better: boolean | null;
}

export interface WhatIfJob {
  id: string;
  status: "running" | "done" | "failed";
  progress: { baseline: number; variant: number };
  event: string;
  description?: string;
  kpis?: WhatIfKpi[];
  error?: string;
}

export function startWhatIf(event: string, hours: number): Promise<WhatIfJob> {
  return getJson<WhatIfJob>("/api/whatif", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ event, hours }),
  });
}

export function whatIf(id: string): Promise<WhatIfJob> {
  return getJson<WhatIfJob>(`/api/whatif/${encodeURIComponent(id)}`);
}

/**
 * The hub's live stream of changes to `types` (only the attributes named), key-values.
 * EventSource reconnects by itself; `onState` hears whether the stream is open.
 */
export function follow(
  types: string[],
  attrs: string[],
  onChange: (entity: Entity) => void,
  onState: (open: boolean) => void,
): EventSource {
  const params = new URLSearchParams({
    type: types.join(","),
    attrs: attrs.join(","),
    options: "keyValues",
  });
  const source = new EventSource(`${NGSI}/stream?${params}`);
  source.addEventListener("open", () => onState(true));
  source.addEventListener("error", () => onState(false));
  source.addEventListener("change", (event) => {
    try {
      onChange(JSON.parse((event as MessageEvent<string>).data) as Entity);
    } catch {
      // a malformed event is dropped, the stream goes on
    }
  });
  return source;
}
