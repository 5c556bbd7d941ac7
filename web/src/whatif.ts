// The what-if panel: launch a baseline/variant run on the web server, follow its progress,
// then draw the variant's KPIs as a share of the baseline's.

import { type Config, startWhatIf, whatIf, type WhatIfJob, type WhatIfKpi } from "./api";
import { Chart } from "./charts";
import { formatNumber, type Key, language, t } from "./i18n";

const POLL_MS = 500;
const KIND_LABELS: Record<string, Key> = {
  "road-closure": "roadClosure",
  "pipe-burst": "pipeBurst",
  "pv-drop": "pvDrop",
  "demand-surge": "demandSurge",
};

export class WhatIfPanel {
  private chart: Chart | null = null;
  private job: WhatIfJob | null = null;
  private timer: number | undefined;
  private label = "";

  constructor(
    private readonly root: HTMLElement,
    private readonly config: Config,
  ) {
    const form = root.querySelector<HTMLFormElement>("form")!;
    const kind = form.elements.namedItem("kind") as HTMLSelectElement;
    kind.addEventListener("change", () => this.showFields(kind.value));
    this.fillTargets();
    this.showFields(kind.value);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      void this.start(new FormData(form));
    });
  }

  /** Redraws labels after a language switch. */
  relabel(): void {
    if (this.job) this.renderJob(this.job);
  }

  private fillTargets(): void {
    const roads = this.root.querySelector<HTMLSelectElement>("select[name=road]")!;
    for (const road of this.config.whatIf.roads) roads.add(new Option(road, road));
    const junctions = this.root.querySelector<HTMLSelectElement>("select[name=junction]")!;
    for (const node of this.config.whatIf.junctions) junctions.add(new Option(node, node));
  }

  private showFields(kind: string): void {
    for (const field of this.root.querySelectorAll<HTMLElement>("[data-for]")) {
      field.hidden = field.dataset.for !== kind;
    }
  }

  private async start(form: FormData): Promise<void> {
    const kind = String(form.get("kind"));
    const argument =
      kind === "road-closure" ? form.get("road")
      : kind === "pipe-burst" ? form.get("junction")
      : kind === "pv-drop" ? form.get("fraction")
      : form.get("factor");
    const event = `${kind}:${String(argument)}`;
    this.label = `${t(KIND_LABELS[kind] ?? "eventKind")} ${String(argument)}`;
    const hours = Number(form.get("minutes")) / 60;
    const status = this.root.querySelector<HTMLElement>(".whatif-status")!;
    const button = this.root.querySelector<HTMLButtonElement>("button[type=submit]")!;
    try {
      button.disabled = true;
      this.job = await startWhatIf(event, hours);
      this.renderJob(this.job);
      this.poll();
    } catch (error) {
      button.disabled = false;
      status.textContent = `${t("error")}: ${String(error instanceof Error ? error.message : error)}`;
    }
  }

  private poll(): void {
    window.clearTimeout(this.timer);
    this.timer = window.setTimeout(async () => {
      if (!this.job) return;
      try {
        this.job = await whatIf(this.job.id);
      } catch (error) {
        this.root.querySelector<HTMLElement>(".whatif-status")!.textContent = `${t("error")}: ${String(error)}`;
        this.root.querySelector<HTMLButtonElement>("button[type=submit]")!.disabled = false;
        return;
      }
      this.renderJob(this.job);
      if (this.job.status === "running") this.poll();
      else this.root.querySelector<HTMLButtonElement>("button[type=submit]")!.disabled = false;
    }, POLL_MS);
  }

  private renderJob(job: WhatIfJob): void {
    const status = this.root.querySelector<HTMLElement>(".whatif-status")!;
    status.dataset.status = job.status;
    const word = t(job.status === "running" ? "running" : job.status === "done" ? "done" : "failed");
    status.textContent = `${this.label || job.event}: ${word}${job.error ? ` — ${job.error}` : ""}`;
    for (const run of ["baseline", "variant"] as const) {
      const bar = this.root.querySelector<HTMLProgressElement>(`progress[data-run=${run}]`)!;
      bar.value = job.progress[run];
      bar.setAttribute("aria-valuetext", `${Math.round(job.progress[run] * 100)}%`);
    }
    if (job.status === "done" && job.kpis) this.renderResult(job.kpis);
  }

  private renderResult(kpis: WhatIfKpi[]): void {
    const result = this.root.querySelector<HTMLElement>(".whatif-result")!;
    result.hidden = false;
    const ko = language() === "ko";
    const name = (k: WhatIfKpi): string => (ko ? k.ko : k.en);
    const table = result.querySelector("table")!;
    const body = table.tBodies[0];
    body.replaceChildren();
    for (const k of kpis) {
      const row = body.insertRow();
      const th = document.createElement("th");
      th.scope = "row";
      th.textContent = `${name(k)}${k.unit ? ` (${k.unit})` : ""}`;
      row.append(th);
      row.insertCell().textContent = formatNumber(k.baseline, 2);
      row.insertCell().textContent = formatNumber(k.variant, 2);
      const change = row.insertCell();
      change.textContent = k.change === null ? "—" : `${k.change > 0 ? "+" : ""}${formatNumber(k.change * 100, 1)}%`;
      if (k.better !== null && k.change !== null && k.change !== 0) {
        change.className = k.better ? "better" : "worse";
        change.textContent += ` (${t(k.better ? "better" : "worse")})`;
      }
    }
    // Bars: each KPI with a non-zero baseline, as % of that baseline (different units side by side).
    const shown = kpis.filter((k) => k.baseline !== 0);
    const canvas = result.querySelector<HTMLCanvasElement>("canvas")!;
    canvas.setAttribute("aria-label", `${t("baseline")} / ${t("variant")}: ${t("percentOfBaseline")}`);
    this.chart?.destroy();
    this.chart = new Chart(canvas, {
      type: "bar",
      data: {
        labels: shown.map(name),
        datasets: [
          { label: t("baseline"), data: shown.map(() => 100), backgroundColor: "#8a8f98" },
          { label: t("variant"), data: shown.map((k) => (100 * k.variant) / k.baseline), backgroundColor: shown.map((k) => (k.better === false ? "#b2182b" : k.better ? "#1b7837" : "#2166ac")) },
        ],
      },
      options: {
        animation: false,
        indexAxis: "y",
        responsive: true,
        maintainAspectRatio: false,
        scales: { x: { title: { display: true, text: t("percentOfBaseline") } } },
        plugins: {
          tooltip: {
            callbacks: {
              label: (item) => {
                const k = shown[item.dataIndex];
                const value = item.datasetIndex === 0 ? k.baseline : k.variant;
                return `${item.dataset.label}: ${formatNumber(value, 2)} ${k.unit}`;
              },
            },
          },
        },
      },
    });
  }
}
