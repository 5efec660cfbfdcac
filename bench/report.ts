// The markdown tables and the SVG chart of `deno task bench`, from the
// medians bench.ts aggregates. No dependencies: the SVG is written by hand.

/** The three systems. */
export const SYSTEMS = ["privsep", "oslo", "sudo"] as const;
/** One of {@linkcode SYSTEMS}. */
export type System = typeof SYSTEMS[number];

/**
 * What runs in a round, in order: each system as the scheduler places it,
 * then the two daemons with their caller started on one CPU (`taskset`),
 * which the daemon inherits through sudo. sudo per call is not run pinned:
 * its cost is process creation, not a wake-up.
 */
export const SERIES = [
  "privsep",
  "oslo",
  "sudo",
  "privsep@1cpu",
  "oslo@1cpu",
] as const;
/** One of {@linkcode SERIES}. */
export type Series = typeof SERIES[number];
/** The system a series runs. */
export const SERIES_SYSTEM: Record<Series, System> = {
  privsep: "privsep",
  oslo: "oslo",
  sudo: "sudo",
  "privsep@1cpu": "privsep",
  "oslo@1cpu": "oslo",
};
/** Whether a series runs with its caller (and so its daemon) on one CPU. */
export const isPinned = (s: Series): boolean => s.endsWith("@1cpu");

/** How each series is called in the tables and the chart. */
export const SERIES_LABELS: Record<Series, string> = {
  privsep: "privsep (this)",
  oslo: "oslo.privsep",
  sudo: "sudo -n per call",
  "privsep@1cpu": "privsep, one CPU",
  "oslo@1cpu": "oslo.privsep, one CPU",
};
const COLORS: Record<Series, string> = {
  privsep: "#2f6fdd",
  oslo: "#e08a1e",
  sudo: "#8a8a8a",
  "privsep@1cpu": "#8fb3f0",
  "oslo@1cpu": "#f2c48a",
};

/** The unit a metric is stored in. */
export type Unit = "ms" | "us" | "rate" | "mib";

/** One row of the table. */
export interface Metric {
  key: string;
  label: string;
  unit: Unit;
}

/** Every figure, in table order. */
export const METRICS: Metric[] = [
  { key: "coldStartMs", label: "cold start to first reply", unit: "ms" },
  { key: "seqP50Us", label: "sequential no-op call p50", unit: "us" },
  { key: "seqP99Us", label: "sequential no-op call p99", unit: "us" },
  { key: "seqCallsPerSec", label: "sequential calls/s", unit: "rate" },
  { key: "inFlight8CallsPerSec", label: "8 in flight, calls/s", unit: "rate" },
  { key: "inFlight8P50Us", label: "8 in flight, p50", unit: "us" },
  { key: "inFlight8P99Us", label: "8 in flight, p99", unit: "us" },
  {
    key: "inFlight64CallsPerSec",
    label: "64 in flight, calls/s",
    unit: "rate",
  },
  { key: "inFlight64P50Us", label: "64 in flight, p50", unit: "us" },
  { key: "inFlight64P99Us", label: "64 in flight, p99", unit: "us" },
  { key: "echo1MiBMs", label: "1 MiB bytes echo (p50)", unit: "ms" },
  {
    key: "echo1MiBFresh5Ms",
    label: "1 MiB echo, first 5 calls of a fresh daemon (mean)",
    unit: "ms",
  },
  { key: "chownP50Ms", label: "chown (narrow op) p50", unit: "ms" },
  { key: "chownP99Ms", label: "chown (narrow op) p99", unit: "ms" },
  { key: "daemonPeakRssMiB", label: "daemon peak RSS (VmHWM)", unit: "mib" },
  {
    key: "daemonRssAnonMiB",
    label: "daemon's own memory at the end (RssAnon)",
    unit: "mib",
  },
  {
    key: "callerCpuUsPerCall",
    label: "caller CPU per sequential call",
    unit: "us",
  },
];

/** Medians per series and metric (absent: not applicable). */
export type Figures = Record<Series, Record<string, number | undefined>>;

/** What the report says about where and how it was measured. */
export interface Machine {
  date: string;
  profile: string;
  rounds: number;
  nproc: number;
  model: string;
  kernel: string;
  /** The cpuidle driver, and halt polling where it is the haltpoll one. */
  cpuidle: string;
  deno: string;
  python: string;
  oslo: string;
  sudo: string;
  /** The CPU the pinned series run on. */
  pinnedCpu: number;
}

const group = (n: number) =>
  Math.round(n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, " ");

/** A time in µs, in the unit that reads best. */
export function formatUs(us: number): string {
  if (us < 1000) return `${us < 10 ? us.toFixed(1) : us.toFixed(0)} µs`;
  const ms = us / 1000;
  if (ms < 1000) {
    const digits = ms < 10 ? 2 : ms < 100 ? 1 : 0;
    return `${ms.toFixed(digits)} ms`;
  }
  return `${(ms / 1000).toFixed(2)} s`;
}

/** A figure in its metric's unit, for people. */
export function format(value: number | undefined, unit: Unit): string {
  if (value === undefined || !Number.isFinite(value)) return "—";
  switch (unit) {
    case "ms":
      return formatUs(value * 1000);
    case "us":
      return formatUs(value);
    case "rate":
      return group(value);
    case "mib":
      return `${value.toFixed(0)} MiB`;
  }
}

function ratio(a: number | undefined, b: number | undefined): string {
  if (a === undefined || b === undefined || !b) return "—";
  const r = a / b;
  return `${
    r >= 10 ? r.toFixed(0) : r >= 0.1 ? r.toFixed(2) : r.toPrecision(2)
  }×`;
}

function table(
  figures: Figures,
  series: readonly Series[],
  ratios: [Series, Series, string][],
): string[] {
  const head = [
    "what",
    ...series.map((s) => SERIES_LABELS[s]),
    ...ratios.map(([, , label]) => label),
  ];
  const rows = METRICS.map((metric) => [
    metric.label,
    ...series.map((s) => format(figures[s][metric.key], metric.unit)),
    ...ratios.map(([a, b]) =>
      ratio(figures[a][metric.key], figures[b][metric.key])
    ),
  ]).filter((row) => row.slice(1).some((cell) => cell !== "—"));
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  return [
    line(head),
    line(head.map((_, i) => i === 0 ? "---" : "---:")),
    ...rows.map(line),
  ];
}

/**
 * The markdown tables: every figure of the three systems as the scheduler
 * places them, with the ratios; then the two daemons on one CPU.
 */
export function markdown(figures: Figures, m: Machine): string {
  return [
    `Measured ${
      m.date.slice(0, 10)
    } on ${m.model}, nproc ${m.nproc} (${m.kernel}, ${m.cpuidle}), ` +
    `${m.profile} profile, median of ${m.rounds} alternating rounds; ` +
    `Deno ${m.deno}, oslo.privsep ${m.oslo} on Python ${m.python}, ${m.sudo}. ` +
    "Every caller is an unprivileged user going through real sudo.",
    "",
    "Placed by the scheduler (nothing pinned):",
    "",
    ...table(figures, ["privsep", "oslo", "sudo"], [
      ["privsep", "oslo", "this / oslo.privsep"],
      ["privsep", "sudo", "this / sudo"],
    ]),
    "",
    "Ratios are this ÷ the other: below 1 is better for times, memory and " +
    "CPU, above 1 is better for calls/s. For `sudo -n` every call is a cold " +
    "start (`/usr/bin/true` for a no-op, `/usr/bin/cat` for the echo, " +
    "`/usr/bin/chown` for the narrow operation) and there is no daemon.",
    "",
    `Caller started on one CPU (\`taskset -c ${m.pinnedCpu}\`), which sudo ` +
    "and the daemon inherit, so that caller and daemon wake each other on " +
    "the same CPU:",
    "",
    ...table(figures, ["privsep@1cpu", "oslo@1cpu"], [
      ["privsep@1cpu", "oslo@1cpu", "this / oslo.privsep"],
      ["privsep@1cpu", "privsep", "one CPU / placed by the scheduler"],
    ]),
    "",
  ].join("\n");
}

const esc = (s: string) =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

interface Panel {
  title: string;
  rows: { label: string; values: (number | undefined)[] }[];
  fmt: (v: number) => string;
  tick: (v: number) => string;
}

function decades(values: number[]): [number, number] {
  const lo = Math.floor(Math.log10(Math.min(...values) * 0.6));
  const hi = Math.ceil(Math.log10(Math.max(...values)));
  return [lo, hi === lo ? hi + 1 : hi];
}

function panel(p: Panel, x0: number, y0: number, width: number): {
  svg: string;
  height: number;
} {
  const labelW = 150;
  const barH = 13;
  const gap = 14;
  const plotX = x0 + labelW;
  const plotW = width - labelW - 70;
  const vals = p.rows.flatMap((r) =>
    r.values.filter((v): v is number => v !== undefined && v > 0)
  );
  const [lo, hi] = decades(vals);
  const xOf = (v: number) => plotX + (Math.log10(v) - lo) / (hi - lo) * plotW;
  const out: string[] = [
    `<text x="${x0}" y="${y0}" class="h">${esc(p.title)}</text>`,
  ];
  const top = y0 + 14;
  const groupH = SERIES.length * barH + gap;
  const plotH = p.rows.length * groupH;
  for (let d = lo; d <= hi; d++) {
    const x = xOf(10 ** d);
    out.push(
      `<line x1="${x}" y1="${top}" x2="${x}" y2="${
        top + plotH
      }" class="grid"/>`,
      `<text x="${x}" y="${top + plotH + 14}" class="tick">${
        esc(p.tick(10 ** d))
      }</text>`,
    );
  }
  p.rows.forEach((row, i) => {
    const gy = top + i * groupH + gap / 2;
    out.push(
      `<text x="${plotX - 8}" y="${
        gy + SERIES.length * barH / 2 + 4
      }" class="label">${esc(row.label)}</text>`,
    );
    SERIES.forEach((s, j) => {
      const v = row.values[j];
      const y = gy + j * barH;
      if (v === undefined || !(v > 0)) return;
      const w = Math.max(1, xOf(v) - plotX);
      out.push(
        `<rect x="${plotX}" y="${y}" width="${w.toFixed(1)}" height="${
          barH - 2
        }" fill="${COLORS[s]}"/>`,
        `<text x="${(plotX + w + 4).toFixed(1)}" y="${
          y + barH - 3
        }" class="val">${esc(p.fmt(v))}</text>`,
      );
    });
  });
  return { svg: out.join("\n"), height: plotH + 34 };
}

const tickUs = (us: number) =>
  us < 1000 ? `${us} µs` : us < 1e6 ? `${us / 1000} ms` : `${us / 1e6} s`;
const tickRate = (x: number) =>
  x >= 1e6 ? `${x / 1e6}M` : x >= 1e3 ? `${x / 1e3}k` : `${x}`;
const fmtRate = (x: number) =>
  x >= 1e6
    ? `${+(x / 1e6).toFixed(1)}M`
    : x >= 1e3
    ? `${+(x / 1e3).toFixed(1)}k`
    : `${+x.toFixed(0)}`;

/** The chart: latency (left) and throughput (right), log scales. */
export function svg(figures: Figures, m: Machine): string {
  const v = (key: string, scale = 1) =>
    SERIES.map((s) => {
      const x = figures[s][key];
      return x === undefined ? undefined : x * scale;
    });
  const width = 1100;
  const half = width / 2;
  const top = 90;
  const latency = panel(
    {
      title: "Latency per call, log scale (shorter is better)",
      rows: [
        { label: "cold start", values: v("coldStartMs", 1000) },
        { label: "sequential p50", values: v("seqP50Us") },
        { label: "sequential p99", values: v("seqP99Us") },
        { label: "8 in flight p50", values: v("inFlight8P50Us") },
        { label: "64 in flight p50", values: v("inFlight64P50Us") },
        { label: "1 MiB echo p50", values: v("echo1MiBMs", 1000) },
        {
          label: "1 MiB, fresh daemon",
          values: v("echo1MiBFresh5Ms", 1000),
        },
        { label: "chown p50", values: v("chownP50Ms", 1000) },
      ],
      fmt: formatUs,
      tick: tickUs,
    },
    20,
    top,
    half - 20,
  );
  const throughput = panel(
    {
      title: "Throughput, calls/s, log scale (longer is better)",
      rows: [
        { label: "sequential", values: v("seqCallsPerSec") },
        { label: "8 in flight", values: v("inFlight8CallsPerSec") },
        { label: "64 in flight", values: v("inFlight64CallsPerSec") },
      ],
      fmt: fmtRate,
      tick: tickRate,
    },
    half + 10,
    top,
    half - 20,
  );
  const height = top + Math.max(latency.height, throughput.height) + 20;
  const legendY = top + throughput.height + 10;
  const legend = SERIES.map((s, i) => {
    const x = half + 10 + (i % 3) * 175;
    const y = legendY + Math.floor(i / 3) * 18;
    return `<rect x="${x}" y="${y}" width="12" height="12" fill="${
      COLORS[s]
    }"/><text x="${x + 18}" y="${y + 11}" class="legend">${
      esc(SERIES_LABELS[s])
    }</text>`;
  }).join("\n");
  const notes = [
    "Every caller is an unprivileged user; every daemon starts through",
    "real sudo with an exact sudoers rule. sudo -n per call: one process",
    "per call (true, cat, chown), so every call is a cold start.",
    "oslo.privsep: one Python client thread per call in flight.",
    `One CPU: the caller starts under taskset -c ${m.pinnedCpu}; sudo and`,
    "the daemon inherit it, so the two wake each other on one CPU.",
  ].map((t, i) =>
    `<text x="${half + 10}" y="${legendY + 58 + i * 16}" class="s">${
      esc(t)
    }</text>`
  ).join("\n");
  const subtitle =
    `Measured ${m.date.slice(0, 10)} on ${m.model}, nproc ${m.nproc}, ` +
    `${m.kernel}, ${m.cpuidle}; ${m.profile} profile, median of ${m.rounds} alternating rounds`;
  const versions =
    `privsep on Deno ${m.deno} · oslo.privsep ${m.oslo} on Python ${m.python} · ${m.sudo}`;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif">
<style>
.t { font-size: 17px; font-weight: 600; fill: #222; }
.s { font-size: 12px; fill: #555; }
.h { font-size: 13px; font-weight: 600; fill: #222; }
.label { font-size: 12px; fill: #333; text-anchor: end; }
.val { font-size: 10px; fill: #333; }
.tick { font-size: 10px; fill: #777; text-anchor: middle; }
.legend { font-size: 12px; fill: #333; }
.grid { stroke: #e3e3e3; stroke-width: 1; }
</style>
<rect width="100%" height="100%" fill="#fff"/>
<text x="20" y="26" class="t">privsep vs oslo.privsep vs sudo per call</text>
<text x="20" y="46" class="s">${esc(subtitle)}</text>
<text x="20" y="63" class="s">${esc(versions)}</text>
${latency.svg}
${throughput.svg}
${legend}
${notes}
</svg>
`;
}
