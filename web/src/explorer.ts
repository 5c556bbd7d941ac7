// A small NGSI-LD explorer: the query an operator would type with curl, as a form.

import { ApiError, getJson, query } from "./api";
import { t } from "./i18n";

const SHOWN = 100;

export class Explorer {
  constructor(
    private readonly root: HTMLElement,
    private readonly onSelect: (id: string) => void,
  ) {
    const form = root.querySelector<HTMLFormElement>("form")!;
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      void this.run(new FormData(form));
    });
  }

  async loadTypes(): Promise<void> {
    const select = this.root.querySelector<HTMLSelectElement>("select[name=type]")!;
    const list = await getJson<{ typeList?: string[] }>("/ngsi-ld/v1/types");
    for (const type of list.typeList ?? []) select.add(new Option(type, type));
  }

  private async run(form: FormData): Promise<void> {
    const params = new URLSearchParams();
    const field = (name: string): string => String(form.get(name) ?? "").trim();
    if (field("type")) params.set("type", field("type"));
    if (field("q")) params.set("q", field("q"));
    if (field("idPattern")) params.set("idPattern", field("idPattern"));
    if (field("near")) {
      params.set("georel", `near;maxDistance==${field("maxDistance") || "500"}`);
      params.set("geometry", "Point");
      params.set("coordinates", `[${field("near")}]`);
    }
    if (!params.has("type") && !params.has("q") && !params.has("idPattern") && !params.has("georel")) {
      params.set("type", "TrafficSignal"); // the hub asks for at least one filter
    }
    params.set("limit", String(Math.min(Number(field("limit")) || 20, SHOWN)));
    params.set("options", "keyValues");
    const request = this.root.querySelector<HTMLElement>(".explorer-request")!;
    const summary = this.root.querySelector<HTMLElement>(".explorer-summary")!;
    const table = this.root.querySelector<HTMLTableElement>(".explorer-results")!;
    const raw = this.root.querySelector<HTMLElement>(".explorer-raw")!;
    table.tBodies[0].replaceChildren();
    try {
      const { url, count, body } = await query(params);
      request.textContent = `GET ${url}`;
      const rows = body as Array<Record<string, unknown>>;
      summary.textContent = t("resultCount", { n: count, shown: rows.length });
      summary.removeAttribute("role");
      for (const row of rows) {
        const tr = table.tBodies[0].insertRow();
        const button = document.createElement("button");
        button.type = "button";
        button.className = "link";
        button.textContent = String(row.id);
        button.addEventListener("click", () => this.onSelect(String(row.id)));
        tr.insertCell().append(button);
        tr.insertCell().textContent = String(row.type);
        tr.insertCell().textContent = String(row.name ?? "");
      }
      raw.textContent = JSON.stringify(body, null, 2);
    } catch (error) {
      request.textContent = `GET /ngsi-ld/v1/entities?${params}`;
      summary.setAttribute("role", "alert");
      summary.textContent = error instanceof ApiError ? `${t("error")} ${error.status}: ${error.message}` : String(error);
      raw.textContent = "";
    }
  }
}
