// The command line and the counts of each mode.
import path from "node:path";
import { parseArgs } from "node:util";

export const PHASES = ["ready", "turns", "scale", "churn", "filesystem", "history"] as const;
export type Phase = (typeof PHASES)[number];

export interface Settings {
  mode: "full" | "quick";
  latencies: number[];
  out: string;
  /**
   * The Markdown results (date, machine, table) for bench/results.md: set on a full run of every
   * part, undefined otherwise (a quick run, as the test suite's, or `--only`, never overwrites it).
   */
  markdownOut: string | undefined;
  /** Where the bench makes its temp folders; undefined: the system's temp folder. */
  tmpdir: string | undefined;
  phases: Phase[];
  turns: {
    /** Measured turns of the one sequential user, per latency and target. */
    sequentialTurns: number;
    /** Unmeasured turns first (JIT, connections, the MCP child). */
    sequentialWarmup: number;
    /** Measured in this many blocks, the targets taking turns, so drift hits them alike. */
    blocks: number;
    concurrentUsers: number;
    /** Rounds of `concurrentUsers` simultaneous turns, per latency and target. */
    concurrentRounds: number;
  };
  /** warmupRounds: unmeasured rounds first (disk cache, JIT). */
  ready: { repeats: number; warmupRounds: number };
  /** maxWarmSessions: limits.max_warm_sessions for the scale server; undefined keeps the default (50). */
  scale: { users: number; inFlight: number; turnsEach: number; maxWarmSessions?: number };
  /** samples: RSS readings over the measured cycles (a trend needs several). */
  churn: { cycles: number; warmupCycles: number; batch: number; childCycles: number; samples: number };
  /**
   * activeUsers: users who each made a filesystem call in the last minute; childUsers: as many
   * with the npm server, to compare per user; burstUsers × burstRounds connecting at once;
   * idleSockets: connected and idle; files: in the workspace a tree and a search walk.
   */
  filesystem: { activeUsers: number; childUsers: number; burstUsers: number; burstRounds: number; idleSockets: number; files: number };
  /** turns: of the long conversation; repeats: of each opening (median). */
  history: { turns: number; repeats: number };
}

export const USAGE = `Usage: npm run bench -- [options]

  --quick            seconds instead of minutes: small counts (for the test suite)
  --latency LIST     model latencies in ms, comma-separated (default: 0,50)
  --out FILE         JSON results (default: bench/results/latest.json)
                     a full run of every part also writes the table to bench/results.md
  --only LIST        run only these parts: ${PHASES.join(",")}
  --fs-users N       users who each made a filesystem call (default 10000; quick: 50)
  --history-turns N  turns of the conversation the history part opens (default 1000; quick: 20)
  --tmpdir DIR       make the temp folders (configs, logs, databases, workspaces) in DIR
  -h, --help         this help`;

function full(): Omit<Settings, "latencies" | "out" | "markdownOut" | "phases" | "tmpdir"> {
  return {
    mode: "full",
    turns: { sequentialTurns: 100, sequentialWarmup: 20, blocks: 10, concurrentUsers: 200, concurrentRounds: 5 },
    ready: { repeats: 10, warmupRounds: 1 },
    scale: { users: 1000, inFlight: 100, turnsEach: 16 },
    // RSS grows for the first ~1,500 cycles (heap and allocator settling), then stays flat.
    churn: { cycles: 10_000, warmupCycles: 2000, batch: 50, childCycles: 50, samples: 10 },
    filesystem: { activeUsers: 10_000, childUsers: 50, burstUsers: 100, burstRounds: 3, idleSockets: 10_000, files: 100_000 },
    history: { turns: 1000, repeats: 5 },
  };
}

function quick(): Omit<Settings, "latencies" | "out" | "markdownOut" | "phases" | "tmpdir"> {
  return {
    mode: "quick",
    turns: { sequentialTurns: 20, sequentialWarmup: 5, blocks: 2, concurrentUsers: 20, concurrentRounds: 2 },
    ready: { repeats: 2, warmupRounds: 0 },
    // Fewer warm sessions than the default 50, or the quick run would start 50 filesystem servers.
    scale: { users: 50, inFlight: 10, turnsEach: 4, maxWarmSessions: 10 },
    churn: { cycles: 100, warmupCycles: 20, batch: 20, childCycles: 4, samples: 4 },
    filesystem: { activeUsers: 50, childUsers: 4, burstUsers: 10, burstRounds: 1, idleSockets: 200, files: 2000 },
    history: { turns: 20, repeats: 1 },
  };
}

export function parseSettings(argv: string[], root: string): Settings | "help" {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: "boolean", default: false },
      latency: { type: "string", default: "0,50" },
      out: { type: "string" },
      only: { type: "string" },
      tmpdir: { type: "string" },
      "fs-users": { type: "string" },
      "history-turns": { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) return "help";
  const latencies = values.latency.split(",").map((part) => Number(part.trim()));
  if (latencies.length === 0 || latencies.some((ms) => !Number.isFinite(ms) || ms < 0)) {
    throw new Error(`--latency wants milliseconds separated by commas, e.g. 0,50; got "${values.latency}"`);
  }
  const phases = values.only ? values.only.split(",").map((part) => part.trim()) : [...PHASES];
  const unknown = phases.filter((phase) => !(PHASES as readonly string[]).includes(phase));
  if (unknown.length > 0) throw new Error(`--only: unknown part ${unknown.join(", ")}; the parts are ${PHASES.join(", ")}`);
  const everyPart = PHASES.every((phase) => phases.includes(phase));
  const counts = values.quick ? quick() : full();
  const count = (name: string, text: string | undefined, fallback: number): number => {
    if (text === undefined) return fallback;
    const parsed = Number(text);
    if (!Number.isInteger(parsed) || parsed < 1) throw new Error(`--${name} wants a whole number above 0; got "${text}"`);
    return parsed;
  };
  counts.filesystem.activeUsers = count("fs-users", values["fs-users"], counts.filesystem.activeUsers);
  counts.history.turns = count("history-turns", values["history-turns"], counts.history.turns);
  return {
    ...counts,
    latencies: [...new Set(latencies)],
    out: path.resolve(values.out ?? path.join(root, "bench/results/latest.json")),
    // Only the standard counts go in bench/results.md.
    markdownOut:
      !values.quick && everyPart && values["fs-users"] === undefined && values["history-turns"] === undefined
        ? path.join(root, "bench/results.md")
        : undefined,
    tmpdir: values.tmpdir === undefined ? undefined : path.resolve(values.tmpdir),
    phases: PHASES.filter((phase) => phases.includes(phase)),
  };
}
