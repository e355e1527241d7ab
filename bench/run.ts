// `npm run bench [-- --quick] [--latency 0,50] [--out FILE] [--only ready,turns,scale,churn,filesystem,history]`
// Starts the scripted model server, runs each part against our server and its baseline, prints
// the Markdown table and writes every raw number to a JSON file; a full run of every part also
// writes the table to bench/results.md.
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { cleanupAll, setTempRoot } from "./cleanup.ts";
import { startBenchModel, type BenchModel } from "./model.ts";
import { parseSettings, USAGE, type Phase, type Settings } from "./options.ts";
import { machineCpuMs, processesWithEnv, selfTreeCpuMs } from "../tests/helpers/proc.ts";
import { runChurn } from "./phases/churn.ts";
import { runFilesystem } from "./phases/filesystem.ts";
import { runHistory } from "./phases/history.ts";
import { runReady } from "./phases/ready.ts";
import { runScale } from "./phases/scale.ts";
import { runTurns } from "./phases/turns.ts";
import { describeMachine, machine, markdownTable, resultsMarkdown, type Figure } from "./report.ts";
import { ROOT, RUN_MARKER } from "./targets.ts";

type PhaseRunner = (
  model: BenchModel,
  settings: Settings,
  say: (text: string) => void,
) => Promise<{ figures: Figure[]; raw: Record<string, unknown> }>;

const RUNNERS: Record<Phase, PhaseRunner> = {
  ready: runReady,
  turns: runTurns,
  scale: runScale,
  churn: runChurn,
  filesystem: runFilesystem,
  history: runHistory,
};

export interface Results {
  date: string;
  mode: Settings["mode"];
  machine: ReturnType<typeof machine>;
  settings: Settings;
  duration_ms: number;
  /** CPU the machine spent on other work (not this bench and its processes): the noise in the numbers. */
  machine_load: { busy_before_percent: number; other_work_during_percent: number; bench_during_percent: number };
  /** Processes of this run still running after every part ended (they are killed): must be 0. */
  leftover_processes: number;
  figures: Figure[];
  raw: Partial<Record<Phase, Record<string, unknown>>>;
}

async function main(): Promise<number> {
  let settings: Settings | "help";
  try {
    settings = parseSettings(process.argv.slice(2), ROOT);
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (settings === "help") {
    console.log(USAGE);
    return 0;
  }
  if (process.platform !== "linux") {
    console.error("The bench reads process memory from /proc: it runs on Linux only.");
    return 2;
  }
  setTempRoot(settings.tmpdir);
  const started = performance.now();
  const say = (text: string) => console.error(`[bench ${((performance.now() - started) / 1000).toFixed(1).padStart(6)} s] ${text}`);
  const info = machine();
  // How busy the machine is before we start: other work on it makes every number noisier.
  const idleCheck = machineCpuMs();
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const idleCheckEnd = machineCpuMs();
  const busyBefore = (100 * (idleCheckEnd.busyMs - idleCheck.busyMs)) / Math.max(1, idleCheckEnd.totalMs - idleCheck.totalMs);
  const machineStart = machineCpuMs();
  const benchStart = selfTreeCpuMs();
  say(
    `${settings.mode} run on ${describeMachine(info)}; model latencies ${settings.latencies.join(", ")} ms; parts ${settings.phases.join(", ")}`,
  );
  const model = await startBenchModel();
  const results: Results = {
    date: new Date().toISOString(),
    mode: settings.mode,
    machine: info,
    settings,
    duration_ms: 0,
    machine_load: { busy_before_percent: Math.round(busyBefore), other_work_during_percent: 0, bench_during_percent: 0 },
    leftover_processes: 0,
    figures: [],
    raw: {},
  };
  try {
    for (const phase of settings.phases) {
      const { figures, raw } = await RUNNERS[phase](model, settings, say);
      results.figures.push(...figures);
      results.raw[phase] = raw;
    }
  } finally {
    await model.close();
  }
  results.duration_ms = Math.round(performance.now() - started);
  results.leftover_processes = killLeftovers();
  // Every child has exited by now, so the bench's own counters hold the whole tree's CPU.
  const machineEnd = machineCpuMs();
  const total = Math.max(1, machineEnd.totalMs - machineStart.totalMs);
  const benchMs = selfTreeCpuMs() - benchStart;
  results.machine_load.bench_during_percent = Math.round((100 * benchMs) / total);
  results.machine_load.other_work_during_percent = Math.max(
    0,
    Math.round((100 * (machineEnd.busyMs - machineStart.busyMs - benchMs)) / total),
  );
  mkdirSync(path.dirname(settings.out), { recursive: true });
  writeFileSync(settings.out, `${JSON.stringify(results, null, 2)}\n`);
  console.log(`\n${markdownTable(results.figures)}\n`);
  console.log(`Machine: ${describeMachine(info)}. ${settings.mode} run, ${(results.duration_ms / 1000).toFixed(0)} s, ${results.date}.`);
  const load = results.machine_load;
  if (load.busy_before_percent > 10 || load.other_work_during_percent > 10) {
    console.log(
      `Warning: the machine was busy with other work (${load.busy_before_percent}% of its CPU before the run, ${load.other_work_during_percent}% during it): the ratios are noisy. Run again on a quiet machine.`,
    );
  }
  console.log(`Raw numbers: ${path.relative(process.cwd(), settings.out) || settings.out}`);
  // A full run of every part replaces bench/results.md; a quick or partial run leaves it alone.
  if (settings.markdownOut) {
    writeFileSync(settings.markdownOut, resultsMarkdown(results));
    console.log(`Table: ${path.relative(process.cwd(), settings.markdownOut) || settings.markdownOut}`);
  }
  return 0;
}

/** Kills (by pid) any process of this run that outlived its part; returns how many there were. */
function killLeftovers(): number {
  const left = processesWithEnv(RUN_MARKER.name, RUN_MARKER.value);
  for (const pid of left) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }
  if (left.length > 0) console.error(`${left.length} processes of this run were still running: killed`);
  return left.length;
}

// Ctrl-C or a kill: stop every process and remove every folder the bench made, then leave.
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    console.error(`\n${signal}: cleaning up`);
    void cleanupAll().finally(() => {
      killLeftovers();
      process.exit(130);
    });
  });
}

let code = 1;
try {
  code = await main();
} catch (error) {
  console.error(`bench failed: ${(error as Error).stack ?? String(error)}`);
} finally {
  await cleanupAll();
  killLeftovers();
}
process.exit(code);
