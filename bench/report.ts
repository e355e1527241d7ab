// Results: one Figure per line of the table (ours against a baseline measured in the same run),
// the Markdown table, and the machine the numbers come from.
import os from "node:os";

export type Unit = "ms" | "MB" | "count";

export interface Figure {
  /** Stable key, e.g. `turn.concurrent.p99.sqlite.50ms`. */
  key: string;
  label: string;
  unit: Unit;
  ours: number;
  baseline: number;
  /** ours / baseline; null when the baseline is 0. */
  ratio: number | null;
  /** The goal in words, e.g. "≤ 1.10×". */
  goal: string;
  /** null: reported for information, no goal. */
  met: boolean | null;
  /** Overrides of the table cells (the numbers stay in ours/baseline). */
  oursText?: string;
  baselineText?: string;
}

export function ratioOf(ours: number, baseline: number): number | null {
  return baseline > 0 ? ours / baseline : null;
}

/** A figure whose goal is a maximum ratio. */
export function ratioFigure(key: string, label: string, unit: Unit, ours: number, baseline: number, maxRatio: number | null): Figure {
  const ratio = ratioOf(ours, baseline);
  return {
    key,
    label,
    unit,
    ours,
    baseline,
    ratio,
    goal: maxRatio === null ? "—" : `≤ ${maxRatio.toFixed(2)}×`,
    met: maxRatio === null || ratio === null ? null : ratio <= maxRatio,
  };
}

export function formatValue(value: number, unit: Unit): string {
  if (!Number.isFinite(value)) return String(value);
  switch (unit) {
    case "ms":
      return `${value < 10 ? value.toFixed(2) : value.toFixed(1)} ms`;
    case "MB":
      return `${value.toFixed(1)} MB`;
    case "count":
      return String(Math.round(value));
    default:
      return unit satisfies never;
  }
}

export function markdownTable(figures: readonly Figure[]): string {
  const rows = figures.map((figure) => [
    figure.label,
    figure.oursText ?? formatValue(figure.ours, figure.unit),
    figure.baselineText ?? formatValue(figure.baseline, figure.unit),
    figure.ratio === null ? "—" : `${figure.ratio.toFixed(2)}×`,
    figure.goal,
    figure.met === null ? "—" : figure.met ? "yes" : "**no**",
  ]);
  const header = ["figure", "ours", "baseline", "ratio", "goal", "met?"];
  const line = (cells: string[]) => `| ${cells.map((cell) => cell.replace(/\|/g, "\\|")).join(" | ")} |`;
  return [line(header), line(header.map(() => "---")), ...rows.map(line)].join("\n");
}

export interface Machine {
  os: string;
  release: string;
  arch: string;
  cpus: number;
  cpuModel: string;
  node: string;
  totalMemoryBytes: number;
}

export function machine(): Machine {
  const cpus = os.cpus();
  return {
    os: os.type(),
    release: os.release(),
    arch: os.arch(),
    cpus: os.availableParallelism(),
    cpuModel: cpus[0]?.model ?? "unknown",
    node: process.version,
    totalMemoryBytes: os.totalmem(),
  };
}

export function describeMachine(info: Machine): string {
  return `${info.os} ${info.release} ${info.arch}, ${info.cpus} CPUs (${info.cpuModel}), ${(info.totalMemoryBytes / 1024 ** 3).toFixed(1)} GiB RAM, Node ${info.node}`;
}

/** bench/results.md: the date and the machine, then the table (rewritten by every full run). */
export function resultsMarkdown(results: {
  date: string;
  duration_ms: number;
  machine: Machine;
  machine_load: { busy_before_percent: number; other_work_during_percent: number };
  figures: readonly Figure[];
}): string {
  const load = results.machine_load;
  return [
    "# Bench results",
    "",
    `${results.date}, full run of \`npm run bench\`, ${(results.duration_ms / 1000).toFixed(0)} s. Machine: ${describeMachine(results.machine)}. ` +
      `Other work on the machine: ${load.busy_before_percent}% of its CPU before the run, ${load.other_work_during_percent}% during it.`,
    "",
    markdownTable(results.figures),
    "",
    "Written by `npm run bench` (bench/run.ts) at the end of every full run of every part; the raw numbers are in " +
      "the run's JSON file (bench/results/latest.json by default). What each figure measures: [docs/performance.md](../docs/performance.md).",
    "",
  ].join("\n");
}
