// Korean first, English second: every visible label comes from here.

export type Language = "ko" | "en";

const STRINGS = {
  title: ["도시 운영 현황", "City operations"],
  skip: ["본문으로 건너뛰기", "Skip to content"],
  language: ["English", "한국어"],
  tabMap: ["지도", "Map"],
  tabExplorer: ["데이터 탐색", "Data explorer"],
  tabWhatIf: ["시나리오 분석", "What-if"],
  simTime: ["시뮬레이션 시각", "Simulated time"],
  live: ["실시간 연결됨", "Live"],
  offline: ["연결 끊김 — 다시 연결 중", "Disconnected — reconnecting"],
  connecting: ["연결 중", "Connecting"],
  mapLabel: ["지구 지도: 도로, 상수도관, 전력선, 센서", "District map: roads, water pipes, power lines, sensors"],
  layers: ["레이어", "Layers"],
  layerRoads: ["도로", "Roads"],
  layerPipes: ["상수도관", "Water pipes"],
  layerGrid: ["전력선", "Power lines"],
  layerSensors: ["센서", "Sensors"],
  layerSignals: ["신호등", "Traffic signals"],
  layerAir: ["대기질 격자", "Air-quality cells"],
  roadColour: ["도로 색", "Road colour"],
  bySpeed: ["속도", "Speed"],
  byCongestion: ["혼잡도(점유율)", "Congestion (occupancy)"],
  find: ["개체 찾기", "Find an entity"],
  findPlaceholder: ["이름 또는 ID", "Name or id"],
  open: ["열기", "Open"],
  kpis: ["핵심 지표", "Key figures"],
  kpiWaiting: ["트윈의 첫 지표를 기다리는 중", "Waiting for the twin's first figures"],
  alerts: ["경보", "Alerts"],
  noAlerts: ["경보 없음", "No alerts"],
  inspector: ["개체 정보", "Entity inspector"],
  inspectorHint: ["지도에서 센서나 시설을 선택하세요", "Select a sensor or asset on the map"],
  close: ["닫기", "Close"],
  attribute: ["속성", "Attribute"],
  value: ["값", "Value"],
  observedAt: ["관측 시각", "Observed"],
  history: ["이력", "History"],
  lastHour: ["최근 1시간", "Last hour"],
  lastDay: ["최근 1일 (15분 평균)", "Last day (15-min mean)"],
  noHistory: ["이 속성의 이력이 아직 없습니다", "No history for this attribute yet"],
  related: ["관련 개체", "Related"],
  legendSpeed: ["제한속도 대비 속도", "Speed vs limit"],
  legendOccupancy: ["점유율", "Occupancy"],
  legendPressure: ["수압", "Pressure"],
  legendLoading: ["선로 부하율", "Line loading"],
  legendNoData: ["자료 없음", "no data"],
  signalGreen: ["녹색", "green"],
  signalYellow: ["황색", "yellow"],
  signalRed: ["적색", "red"],
  explorerTitle: ["NGSI-LD 데이터 탐색", "NGSI-LD explorer"],
  entityType: ["개체 유형", "Entity type"],
  anyType: ["(모든 유형)", "(any type)"],
  query: ["조건 (q)", "Condition (q)"],
  idPattern: ["ID 패턴", "Id pattern"],
  nearPoint: ["이 지점 근처 (경도,위도)", "Near this point (lon,lat)"],
  maxDistance: ["최대 거리 (m)", "Max distance (m)"],
  limit: ["최대 개수", "Limit"],
  run: ["조회", "Run query"],
  request: ["요청", "Request"],
  results: ["결과", "Results"],
  resultCount: ["{n}개 중 {shown}개 표시", "{shown} of {n} shown"],
  error: ["오류", "Error"],
  whatIfTitle: ["시나리오 분석: 결정하기 전에 시험하기", "What-if: test a decision before making it"],
  whatIfIntro: [
    "같은 조건과 난수로 기준 실행과 변경 실행을 나란히 시뮬레이션합니다. 결과는 허브에 기록되지 않습니다.",
    "Runs the baseline and the variant side by side with the same seed. Nothing is written to the hub.",
  ],
  eventKind: ["사건", "Event"],
  roadClosure: ["도로 폐쇄", "Road closure"],
  pipeBurst: ["상수도관 파열", "Pipe burst"],
  pvDrop: ["태양광 출력 감소", "PV output drop"],
  demandSurge: ["수요 급증", "Demand surge"],
  target: ["대상", "Target"],
  fraction: ["감소 비율", "Share lost"],
  factor: ["배수", "Factor"],
  duration: ["시뮬레이션 시간 (분)", "Simulated minutes"],
  start: ["분석 시작", "Start"],
  baseline: ["기준", "Baseline"],
  variant: ["변경", "Variant"],
  running: ["실행 중", "Running"],
  done: ["완료", "Done"],
  failed: ["실패", "Failed"],
  kpi: ["지표", "Figure"],
  change: ["변화", "Change"],
  better: ["개선", "better"],
  worse: ["악화", "worse"],
  percentOfBaseline: ["기준 대비 %", "% of baseline"],
  alertLowPressure: ["저수압 {v} m: {name}", "Low pressure {v} m: {name}"],
  alertLoading: ["선로 과부하 {v}%: {name}", "Line overload {v}%: {name}"],
  alertVoltage: ["전압 범위 이탈 {v} pu: {name}", "Voltage out of band {v} pu: {name}"],
  alertCongestion: ["정체: {name}", "Congestion: {name}"],
} as const satisfies Record<string, readonly [string, string]>;

export type Key = keyof typeof STRINGS;

const STORAGE_KEY = "dosi.language";
let current: Language = (localStorage.getItem(STORAGE_KEY) as Language | null) ?? "ko";
const listeners: Array<() => void> = [];

export function language(): Language {
  return current;
}

/** The label for `key` in the current language, with `{name}` placeholders filled. */
export function t(key: Key, params: Record<string, string | number> = {}): string {
  const text = STRINGS[key][current === "ko" ? 0 : 1];
  return text.replace(/\{(\w+)\}/g, (_, name: string) => String(params[name] ?? ""));
}

export function setLanguage(next: Language): void {
  current = next;
  localStorage.setItem(STORAGE_KEY, next);
  applyLanguage(document);
  for (const listener of listeners) listener();
}

export function onLanguageChange(listener: () => void): void {
  listeners.push(listener);
}

/** Fills `data-i18n` text, `data-i18n-aria` labels and `data-i18n-placeholder` hints. */
export function applyLanguage(root: ParentNode): void {
  document.documentElement.lang = current;
  // The switch names the other language in that language (its own `lang`), as sites do.
  document.getElementById("language")?.setAttribute("lang", current === "ko" ? "en" : "ko");
  for (const el of root.querySelectorAll<HTMLElement>("[data-i18n]")) {
    el.textContent = t(el.dataset.i18n as Key);
  }
  for (const el of root.querySelectorAll<HTMLElement>("[data-i18n-aria]")) {
    el.setAttribute("aria-label", t(el.dataset.i18nAria as Key));
  }
  for (const el of root.querySelectorAll<HTMLInputElement>("[data-i18n-placeholder]")) {
    el.placeholder = t(el.dataset.i18nPlaceholder as Key);
  }
}

/** Numbers in the reader's convention (the same digits in both languages here). */
export function formatNumber(value: number, digits = 1): string {
  return value.toLocaleString(current === "ko" ? "ko-KR" : "en-GB", {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}
