// Memory and children of a process tree, read from /proc (Linux only). Shared by the tests and bench/.
import { readdirSync, readFileSync } from "node:fs";

export interface ProcessMemory {
  pid: number;
  /** Resident set size (VmRSS), bytes: counts shared pages (the node binary) once per process. */
  rssBytes: number;
  /** Proportional set size (smaps_rollup Pss), bytes: shared pages split between their users. 0 if unreadable. */
  pssBytes: number;
}

export interface TreeMemory {
  root: ProcessMemory;
  descendants: ProcessMemory[];
  /** Root plus every descendant, VmRSS. */
  totalRssBytes: number;
  /** Root plus every descendant, Pss: closer to what the machine really spends. */
  totalPssBytes: number;
}

/** The fields of /proc/<pid>/stat after the command name (field 3, "state", is index 0). */
function statFields(pid: number | string): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name may hold spaces and parentheses: the fields start after the last ")".
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined; // the process left while we read
  }
}

function parentPid(pid: string): number | undefined {
  const fields = statFields(pid);
  return fields ? Number(fields[1]) : undefined;
}

/** When the process started (clock ticks since boot): with the pid, it names one process even if pids are reused. */
export function startTime(pid: number): string | undefined {
  return statFields(pid)?.[19];
}

/** A process, identified so that a reused pid is not mistaken for it. */
export interface ProcessId {
  pid: number;
  started: string;
}

export function identify(pids: readonly number[]): ProcessId[] {
  return pids.flatMap((pid) => {
    const started = startTime(pid);
    return started === undefined ? [] : [{ pid, started }];
  });
}

/** Is this very process (same pid and start time) still there? */
export function stillRunning(id: ProcessId): boolean {
  const fields = statFields(id.pid);
  return fields !== undefined && fields[19] === id.started && fields[0] !== "Z";
}

/** Every descendant pid of `pid` (children, their children, ...). */
export function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const ppid = parentPid(entry);
    if (ppid === undefined) continue;
    const list = children.get(ppid) ?? [];
    list.push(Number(entry));
    children.set(ppid, list);
  }
  const out: number[] = [];
  const stack = [pid];
  while (stack.length > 0) {
    const next = stack.pop();
    for (const child of children.get(next ?? -1) ?? []) {
      out.push(child);
      stack.push(child);
    }
  }
  return out;
}

function kilobytesField(text: string, field: string): number {
  const found = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text);
  return found?.[1] ? Number(found[1]) * 1024 : 0;
}

/**
 * One process's memory, or undefined if it is gone. Pss (`withPss`) walks the process's page
 * tables under its memory lock, which can stall it: leave it out while measuring latency.
 */
export function processMemory(pid: number, withPss = true): ProcessMemory | undefined {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, "utf8");
  } catch {
    return undefined;
  }
  let pssBytes = 0;
  if (withPss) {
    try {
      pssBytes = kilobytesField(readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"), "Pss");
    } catch {
      // Older kernels have no smaps_rollup: Pss stays 0 and only VmRSS is reported.
    }
  }
  return { pid, rssBytes: kilobytesField(status, "VmRSS"), pssBytes };
}

/** Memory of a process and all its descendants (Pss only `withPss`: see processMemory). */
export function treeMemory(pid: number, withPss = true): TreeMemory {
  const root = processMemory(pid, withPss) ?? { pid, rssBytes: 0, pssBytes: 0 };
  const children = descendants(pid)
    .map((child) => processMemory(child, withPss))
    .filter((memory): memory is ProcessMemory => memory !== undefined);
  const all = [root, ...children];
  return {
    root,
    descendants: children,
    totalRssBytes: all.reduce((sum, memory) => sum + memory.rssBytes, 0),
    totalPssBytes: all.reduce((sum, memory) => sum + memory.pssBytes, 0),
  };
}

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ: 100 on every Linux the bench runs on). */
const TICKS_PER_SECOND = 100;

/** CPU time (user + system) a process has used so far, ms; 0 if it is gone. */
export function cpuMs(pid: number): number {
  const fields = statFields(pid);
  if (!fields) return 0;
  // utime and stime are fields 14 and 15 of stat: indexes 11 and 12 here.
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_SECOND;
}

/** CPU time of a process and of its live descendants, ms. */
export function treeCpuMs(pid: number): { rootMs: number; descendantsMs: number } {
  return { rootMs: cpuMs(pid), descendantsMs: descendants(pid).reduce((sum, child) => sum + cpuMs(child), 0) };
}

/** CPU used between two readings: by the server under test, its children, the bench, and the rest of the machine. */
export class CpuMeter {
  readonly #pid: number;
  #root = 0;
  #children = 0;
  #bench: NodeJS.CpuUsage = process.cpuUsage();
  #machine = { busyMs: 0, totalMs: 0 };

  constructor(pid: number) {
    this.#pid = pid;
    this.start();
  }

  start(): void {
    const tree = treeCpuMs(this.#pid);
    this.#root = tree.rootMs;
    this.#children = tree.descendantsMs;
    this.#bench = process.cpuUsage();
    this.#machine = machineCpuMs();
  }

  /**
   * CPU ms since start(): the server, its children, the bench process (model server and clients),
   * and other work on the machine (everything else: other programs, which make timings noisy).
   */
  used(): { server: number; children: number; bench: number; other: number; capacity: number } {
    const tree = treeCpuMs(this.#pid);
    const bench = process.cpuUsage(this.#bench);
    const machine = machineCpuMs();
    const server = tree.rootMs - this.#root;
    const children = tree.descendantsMs - this.#children;
    const benchMs = (bench.user + bench.system) / 1000;
    const busy = machine.busyMs - this.#machine.busyMs;
    return {
      server,
      children,
      bench: benchMs,
      other: Math.max(0, busy - server - children - benchMs),
      capacity: machine.totalMs - this.#machine.totalMs,
    };
  }
}

/** The whole machine's CPU time so far, ms summed over all CPUs: busy, and busy + idle. */
export function machineCpuMs(): { busyMs: number; totalMs: number } {
  const line = readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "";
  const [user, nice, system, idle, iowait, irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number);
  const busy = (user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0);
  const toMs = (ticks: number) => (ticks * 1000) / TICKS_PER_SECOND;
  return { busyMs: toMs(busy), totalMs: toMs(busy + (idle ?? 0) + (iowait ?? 0)) };
}

/** CPU ms of this process plus every child it has waited for (and theirs): the bench's whole tree once its children are gone. */
export function selfTreeCpuMs(): number {
  const fields = statFields("self");
  if (!fields) return 0;
  // utime, stime, cutime, cstime: fields 14 to 17.
  return ((Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])) * 1000) / TICKS_PER_SECOND;
}

/** A short name for what a process runs: the script's file name for node, else the program's. */
export function commandOf(pid: number): string {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
    const program = argv[0]?.split("/").pop() ?? "?";
    const script = program === "node" ? argv.slice(1).find((arg) => !arg.startsWith("-")) : undefined;
    return script ? `node ${script.split("/").slice(-3).join("/")}` : program;
  } catch {
    return "(gone)";
  }
}

/** The descendants of a process, counted by command. */
export function childCommands(pid: number): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const child of descendants(pid)) {
    const command = commandOf(child);
    counts[command] = (counts[command] ?? 0) + 1;
  }
  return counts;
}

/** Processes (other than this one) whose environment holds `name=value`. */
export function processesWithEnv(name: string, value: string): number[] {
  const wanted = `${name}=${value}`;
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/environ`, "utf8").split("\0").includes(wanted)) found.push(Number(entry));
    } catch {
      // Gone, or not ours to read.
    }
  }
  return found;
}

export const MB = 1024 * 1024;
