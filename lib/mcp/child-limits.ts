// Limits per MCP child: memory, CPU time and open files through prlimit (util-linux); the process
// count through prlimit inside the sandbox's user namespace, or a pids cgroup where we may make one.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { randomUUID } from "node:crypto";

/** 0 turns a limit off. */
export interface ChildLimits {
  /** Private writable memory of each process (RLIMIT_DATA), in MiB. */
  memory_mb: number;
  /** CPU time of each process over its life (RLIMIT_CPU): SIGXCPU at the limit, SIGKILL a second later. */
  cpu_seconds: number;
  /** Open file descriptors of each process (RLIMIT_NOFILE). */
  open_files: number;
  /** Processes and threads of the child and everything it starts. */
  processes: number;
  /** Scheduling niceness (0: as our server's). */
  nice: number;
}

export const NICE_PATH = "/usr/bin/nice";

export const PRLIMIT_PATH = "/usr/bin/prlimit";

/**
 * prlimit's options for these limits. `withProcesses`: only where RLIMIT_NPROC counts this child
 * alone — inside a fresh user namespace (the sandbox, not as root). Outside one it counts every
 * process of our user, and root is never held to it.
 */
export function prlimitOptions(limits: ChildLimits, withProcesses: boolean): string[] {
  const options: string[] = [];
  if (limits.memory_mb > 0) options.push(`--data=${limits.memory_mb * 1024 * 1024}`);
  // The hard limit a second later: SIGXCPU first (a clear signal in the log), then SIGKILL.
  if (limits.cpu_seconds > 0) options.push(`--cpu=${limits.cpu_seconds}:${limits.cpu_seconds + 1}`);
  if (limits.open_files > 0) options.push(`--nofile=${limits.open_files}`);
  if (withProcesses && limits.processes > 0) options.push(`--nproc=${limits.processes}`);
  return options;
}

/** What a child's end says about the limits, for the user's tool error and the server's state. */
export function describeExit(code: number | null, signal: NodeJS.Signals | null, limitsKey: string): string {
  // Through bwrap a signal arrives as the exit code 128 + its number.
  const signalName = signal ?? (code !== null && code > 128 && code < 160 ? signalByNumber(code - 128) : undefined);
  if (signalName === "SIGXCPU") return `the server used up its CPU time and was stopped (${limitsKey}.cpu_seconds)`;
  if (signalName === "SIGKILL") return `the server process was killed (SIGKILL: a CPU time limit, ${limitsKey}.cpu_seconds, or the system)`;
  if (signalName === "SIGABRT" || signalName === "SIGTRAP" || signalName === "SIGSEGV") {
    return `the server process crashed (${signalName}; out of memory? ${limitsKey}.memory_mb)`;
  }
  if (signalName) return `the server process was ended by ${signalName}`;
  if (code !== null && code !== 0) return `the server process exited with code ${code}`;
  return "the server process exited";
}

function signalByNumber(number: number): NodeJS.Signals | undefined {
  const names: Partial<Record<number, NodeJS.Signals>> = {
    4: "SIGILL",
    5: "SIGTRAP",
    6: "SIGABRT",
    9: "SIGKILL",
    11: "SIGSEGV",
    15: "SIGTERM",
    24: "SIGXCPU",
    25: "SIGXFSZ",
  };
  return names[number];
}

/** A pids cgroup folder we may make children in (cgroup v2, or v1's pids hierarchy). */
export interface PidsCgroups {
  /** Our own folder; each child gets one below it. */
  base: string;
  /** A child folder with pids.max set, and the file a process writes its pid to. */
  create(maxProcesses: number): { dir: string; procsFile: string };
  remove(dir: string): void;
  /** Removes our base folder (at close). */
  close(): void;
}

/**
 * Finds a pids cgroup we may write, and proves it by moving a real process into one: v2 at
 * /sys/fs/cgroup (our own cgroup's folder), else v1 at /sys/fs/cgroup/pids. Undefined when neither
 * works (the usual case for a user without delegation; the sandbox's prlimit covers that one).
 */
export function findPidsCgroups(root = "/sys/fs/cgroup"): PidsCgroups | undefined {
  const candidates: string[] = [];
  try {
    if (existsSync(path.join(root, "cgroup.controllers"))) {
      const own = /^0::(.*)$/m.exec(readFileSync("/proc/self/cgroup", "utf8"))?.[1];
      if (own !== undefined) candidates.push(path.join(root, own));
    }
  } catch {
    // No cgroup v2 view of our own process: try v1.
  }
  if (existsSync(path.join(root, "pids", "cgroup.procs"))) {
    const own = /^\d+:pids:(.*)$/m.exec(safeRead("/proc/self/cgroup"))?.[1] ?? "/";
    candidates.push(path.join(root, "pids", own));
  }
  for (const parent of candidates) {
    removeStale(parent);
    const base = path.join(parent, `mcp-agent-${process.pid}-${randomUUID().slice(0, 8)}`);
    try {
      mkdirSync(base);
      const cgroups = pidsCgroupsAt(base);
      if (probe(cgroups)) return cgroups;
      cgroups.close();
    } catch {
      // Not ours to write: the next candidate.
    }
  }
  return undefined;
}

let processCgroups: PidsCgroups | undefined | null = null;

/**
 * This process's pids cgroups, found on first use. One per process, not per server instance: the
 * folder is named by our pid, and an exit handler removes it (a test process runs many servers).
 */
export function pidsCgroups(): PidsCgroups | undefined {
  if (processCgroups === null) {
    processCgroups = findPidsCgroups();
    const found = processCgroups;
    if (found) process.once("exit", () => found.close());
  }
  return processCgroups;
}

/** Folders left by a process of ours that was killed (its exit handler never ran). */
function removeStale(parent: string): void {
  let names: string[];
  try {
    names = readdirSync(parent);
  } catch {
    return;
  }
  for (const name of names) {
    const pid = Number(/^mcp-agent-(\d+)-[0-9a-f]{8}$/.exec(name)?.[1]);
    if (!pid || existsSync(`/proc/${pid}`)) continue;
    pidsCgroupsAt(path.join(parent, name), false).close();
  }
}

function safeRead(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return "";
  }
}

function pidsCgroupsAt(base: string, fresh = true): PidsCgroups {
  // cgroup v2 distributes a controller to children only when asked to.
  if (fresh && existsSync(path.join(base, "cgroup.subtree_control"))) writeFileSync(path.join(base, "cgroup.subtree_control"), "+pids");
  return {
    base,
    create(maxProcesses) {
      const dir = path.join(base, randomUUID());
      mkdirSync(dir);
      writeFileSync(path.join(dir, "pids.max"), maxProcesses > 0 ? String(maxProcesses) : "max");
      return { dir, procsFile: path.join(dir, "cgroup.procs") };
    },
    remove(dir) {
      // EBUSY while the kernel still reaps the last processes of the group: try again shortly.
      const attempt = (left: number) => {
        try {
          rmdirSync(dir);
        } catch (error) {
          if (left > 0 && error instanceof Error && "code" in error && error.code === "EBUSY") {
            setTimeout(() => attempt(left - 1), 100).unref();
          }
        }
      };
      attempt(50);
    },
    close() {
      try {
        for (const entry of readdirNames(base)) {
          try {
            rmdirSync(path.join(base, entry));
          } catch {
            // Still busy: its processes are being reaped; the base stays with it.
          }
        }
        rmdirSync(base);
      } catch {
        // A child still exiting keeps its folder; the kernel frees an empty cgroup at reboot at the latest.
      }
    },
  };
}

function readdirNames(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && /^[0-9a-f-]{36}$/.test(entry.name))
    .map((entry) => entry.name);
}

/** Runs a process inside a fresh child cgroup with a pids.max: it must be able to join and be held to it. */
function probe(cgroups: PidsCgroups): boolean {
  const { dir, procsFile } = cgroups.create(8);
  try {
    const result = spawnSync("/bin/sh", ["-c", `${ENTER_CGROUP}; cat /proc/self/cgroup`, procsFile], { encoding: "utf8", timeout: 5000 });
    return result.status === 0 && result.stdout.includes(path.basename(dir));
  } finally {
    cgroups.remove(dir);
  }
}

/** The shell that moves itself into a cgroup ($0) and then runs the rest ("$@") in it. */
export const ENTER_CGROUP = 'echo $$ > "$0" || exit 126';

/** `sh -c … <procsFile> command args…`: command runs in the cgroup from its first instruction on. */
export function inCgroup(procsFile: string, command: string, args: string[]): { command: string; args: string[] } {
  // The shell exports PWD of its own: the command gets the environment it was given, no more.
  return { command: "/bin/sh", args: ["-c", `${ENTER_CGROUP}; unset PWD; exec "$@"`, procsFile, command, ...args] };
}
