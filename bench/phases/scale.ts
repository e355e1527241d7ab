// Scale: many connected users with a real filesystem server each (started as our server starts
// it: on connect for the first limits.max_warm_sessions sessions, else on the first turn), a
// fraction of them with a turn in flight at all times; our server (store sqlite, the default)
// against the bare baseline at the same concurrency, the two taking turns. Reports the p99 turn
// overhead over the baseline's p99 and the memory of each server plus all its children, sampled
// while the turns run.
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { byName, cpuPerTurn, measure, rotate, round2, startContenders, stopContenders, type Contender } from "../contenders.ts";
import { closedLoop, connectMany, summarize, type BenchClient } from "../load.ts";
import type { BenchModel } from "../model.ts";
import type { Settings } from "../options.ts";
import { childCommands, MB, treeMemory, type TreeMemory } from "../../tests/helpers/proc.ts";
import type { Figure } from "../report.ts";
import { benchConfig, filesystemEntry, sleep } from "../targets.ts";

export const SCALE_OVERHEAD_GOAL_MS = 100;
export const SCALE_MEMORY_GOAL_MB = 8 * 1024;
const MESSAGE = "Which folders can you read?";

type Name = "baseline" | "ours";

interface MemoryPeak {
  totalRssBytes: number;
  totalPssBytes: number;
  serverRssBytes: number;
  children: number;
}

/**
 * Samples a process tree's VmRSS every `everyMs` while turns run, keeping the peak; Pss (which
 * can stall the processes it reads) once they have ended.
 */
function sampleMemory(pid: number, everyMs: number, peak: MemoryPeak): () => void {
  const take = () => {
    const tree = treeMemory(pid, false);
    if (tree.totalRssBytes > peak.totalRssBytes) {
      peak.totalRssBytes = tree.totalRssBytes;
      peak.children = tree.descendants.length;
    }
    peak.serverRssBytes = Math.max(peak.serverRssBytes, tree.root.rssBytes);
  };
  take();
  const timer = setInterval(take, everyMs);
  return () => {
    clearInterval(timer);
    take();
    peak.totalPssBytes = Math.max(peak.totalPssBytes, treeMemory(pid).totalPssBytes);
  };
}

/** Waits until every MCP server start our log reports has ended (ready or failed). */
async function startsSettled(logPath: string, timeoutMs: number): Promise<{ started: number; ready: number }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const counts = { started: 0, ready: 0, failed: 0 };
    const text = existsSync(logPath) ? readFileSync(logPath, "utf8") : "";
    for (const line of text.split("\n")) {
      if (line.includes('"event":"mcp_server_starting"')) counts.started++;
      else if (line.includes('"event":"mcp_server_ready"')) counts.ready++;
      else if (line.includes('"event":"mcp_server_failed"')) counts.failed++;
    }
    if (counts.failed > 0) throw new Error(`scale: ${counts.failed} MCP servers failed to start; see ${logPath}`);
    if (counts.ready === counts.started) return counts;
    if (Date.now() > deadline) throw new Error(`scale: ${counts.started - counts.ready} MCP servers still starting after ${timeoutMs} ms`);
    await sleep(100);
  }
}

/** The memory of a process tree now, in MB, with its children counted by command. */
const memoryNow = (pid: number) => {
  const tree: TreeMemory = treeMemory(pid);
  return {
    server_rss: round2(tree.root.rssBytes / MB),
    total_rss: round2(tree.totalRssBytes / MB),
    total_pss: round2(tree.totalPssBytes / MB),
    children: tree.descendants.length,
    children_by_command: childCommands(pid),
  };
};

export async function runScale(
  model: BenchModel,
  settings: Settings,
  say: (text: string) => void,
): Promise<{ figures: Figure[]; raw: Record<string, unknown> }> {
  const { users, inFlight, turnsEach, maxWarmSessions } = settings.scale;
  const config = benchConfig({
    modelUrl: model.baseUrl,
    servers: { filesystem: filesystemEntry() },
    store: "sqlite",
    log: "file",
    limits: maxWarmSessions === undefined ? {} : { max_warm_sessions: maxWarmSessions },
  });
  say(`scale: starting our server and the baseline (a filesystem server per user)`);
  const contenders = await startContenders<Name>("scale", [
    { name: "baseline", kind: "baseline", label: "baseline (scale)", config },
    { name: "ours", kind: "ours", label: "ours (scale, store sqlite)", config },
  ]);
  const clients = new Map<Contender<Name>, BenchClient[]>();
  const raw: Record<string, unknown> = {
    users,
    in_flight: inFlight,
    turns_each: turnsEach,
    mcp_server: "@modelcontextprotocol/server-filesystem (tool filesystem_list_allowed_directories)",
  };
  try {
    const idle = Object.fromEntries(contenders.map((contender) => [contender.name, memoryNow(contender.target.pid)]));
    const setup: Record<string, unknown> = {};
    for (const contender of contenders) {
      model.setLatency(0);
      const started = performance.now();
      const own = await connectMany(
        contender.target.wsUrl,
        Array.from({ length: users }, (_, n) => `scale-${String(n).padStart(5, "0")}`),
      );
      clients.set(contender, own);
      const connectMs = performance.now() - started;
      // The active users' first turn starts the MCP servers of those that did not start on connect.
      await closedLoop(own.slice(0, inFlight), 1, MESSAGE);
      const starts =
        contender.name === "ours" ? await startsSettled(path.join(contender.target.configDir, "logs/server.jsonl"), 180_000) : undefined;
      model.assertToolsOk(`scale warm-up (${contender.name})`);
      setup[contender.name] = {
        connect_ms: round2(connectMs),
        warmup_ms: round2(performance.now() - started - connectMs),
        mcp_starts: starts,
        memory_after_warmup_mb: memoryNow(contender.target.pid),
      };
      say(`scale: ${contender.target.name}: ${users} users connected in ${(connectMs / 1000).toFixed(1)} s, ${inFlight} active and warm`);
    }
    raw.setup = setup;
    raw.memory_idle_mb = idle;

    const peaks = new Map<Name, MemoryPeak>(
      contenders.map((contender) => [contender.name, { totalRssBytes: 0, totalPssBytes: 0, serverRssBytes: 0, children: 0 }]),
    );
    // Short blocks, taking turns: a burst of other work on the machine hits both alike.
    const blocks = Math.max(1, Math.min(turnsEach, 4));
    for (const latency of settings.latencies) {
      model.setLatency(latency);
      for (let block = 0; block < blocks; block++) {
        for (const contender of rotate(contenders, block)) {
          const active = (clients.get(contender) ?? []).slice(0, inFlight);
          const peak = peaks.get(contender.name);
          if (!peak) throw new Error("no peak");
          const stopSampling = sampleMemory(contender.target.pid, 500, peak);
          try {
            await measure(contender, `scale.${latency}ms`, () => closedLoop(active, Math.ceil(turnsEach / blocks), MESSAGE));
          } finally {
            stopSampling();
          }
        }
      }
      model.assertToolsOk(`scale at ${latency} ms`);
      say(`scale: model latency ${latency} ms done`);
    }

    const figures: Figure[] = [];
    const summaries: Record<string, unknown> = {};
    const ours = byName(contenders, "ours");
    const baseline = byName(contenders, "baseline");
    for (const latency of settings.latencies) {
      const key = `scale.${latency}ms`;
      const oursTurn = summarize(ours.samples.get(key) ?? []);
      const baseTurn = summarize(baseline.samples.get(key) ?? []);
      summaries[key] = { ours: oursTurn, baseline: baseTurn };
      const overhead = oursTurn.p99 - baseTurn.p99;
      figures.push({
        key: `scale.p99_overhead.${latency}ms`,
        label: `scale: p99 turn, ${users} users connected, ${inFlight} turns in flight, model ${latency} ms`,
        unit: "ms",
        ours: oursTurn.p99,
        baseline: baseTurn.p99,
        ratio: baseTurn.p99 > 0 ? oursTurn.p99 / baseTurn.p99 : null,
        goal: `overhead < ${SCALE_OVERHEAD_GOAL_MS} ms`,
        met: overhead < SCALE_OVERHEAD_GOAL_MS,
        oursText: `${oursTurn.p99.toFixed(1)} ms (${overhead >= 0 ? "+" : ""}${overhead.toFixed(1)} ms)`,
      });
    }
    const oursPeak = peaks.get("ours");
    const basePeak = peaks.get("baseline");
    if (!oursPeak || !basePeak) throw new Error("no memory samples");
    const oursMb = oursPeak.totalRssBytes / MB;
    const baseMb = basePeak.totalRssBytes / MB;
    figures.push({
      key: "scale.rss_total",
      label: `scale: RSS, server + all its children (peak VmRSS sum; PSS after the turns), ${users} users, ${inFlight} in flight`,
      unit: "MB",
      ours: oursMb,
      baseline: baseMb,
      ratio: baseMb > 0 ? oursMb / baseMb : null,
      goal: `< ${SCALE_MEMORY_GOAL_MB / 1024} GB`,
      met: oursMb < SCALE_MEMORY_GOAL_MB,
      oursText: `${oursMb.toFixed(0)} MB (${oursPeak.children} children; PSS ${(oursPeak.totalPssBytes / MB).toFixed(0)} MB)`,
      baselineText: `${baseMb.toFixed(0)} MB (${basePeak.children} children; PSS ${(basePeak.totalPssBytes / MB).toFixed(0)} MB)`,
    });
    raw.summaries = summaries;
    raw.peak_memory_mb = Object.fromEntries(
      [...peaks].map(([name, peak]) => [
        name,
        {
          total_rss: round2(peak.totalRssBytes / MB),
          total_pss: round2(peak.totalPssBytes / MB),
          server_rss: round2(peak.serverRssBytes / MB),
          children: peak.children,
        },
      ]),
    );
    raw.cpu_ms_per_turn = cpuPerTurn(contenders);
    raw.samples_ms = Object.fromEntries(
      contenders.map((contender) => [
        contender.name,
        Object.fromEntries([...contender.samples].map(([key, samples]) => [key, samples.map(round2)])),
      ]),
    );
    return { figures, raw };
  } finally {
    for (const own of clients.values()) for (const client of own) client.terminate();
    await stopContenders(contenders);
  }
}
