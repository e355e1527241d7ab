// Session ready: from opening a socket to every MCP server of the session listed (our log's
// mcp_server_ready events, read as they are written), against the bare SDK client starting the
// same servers in parallel (filesystem and the test fixture); goal: the slowest bare start.
import { mkdirSync } from "node:fs";
import path from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { tempDir } from "../cleanup.ts";
import { BenchClient, median } from "../load.ts";
import type { BenchModel } from "../model.ts";
import type { Settings } from "../options.ts";
import { ratioFigure, type Figure } from "../report.ts";
import { benchConfig, filesystemEntry, fixtureEntry, startTarget, writeConfig, type Target } from "../targets.ts";
import { round2 } from "../contenders.ts";

export const READY_GOAL = 1.15;
const TIMEOUT_MS = 60_000;

interface ServerEntry {
  command: string;
  args: string[];
  env: Record<string, string>;
}

function servers(): Record<string, ServerEntry> {
  return { filesystem: filesystemEntry(), test: fixtureEntry() };
}

/** Resolves with the time the last of the user's servers was logged ready. */
function watchReady(target: Target, userId: string, count: number): { ready: Promise<number>; stop: () => void } {
  let seen = 0;
  let stop = () => {};
  const ready = new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${userId}: MCP servers not ready within ${TIMEOUT_MS} ms`)), TIMEOUT_MS);
    const unlisten = target.onStderrLine((line) => {
      if (!line.startsWith("{")) return;
      let entry: { event?: unknown; user_id?: unknown; server?: unknown; error?: unknown };
      try {
        entry = JSON.parse(line) as typeof entry;
      } catch {
        return;
      }
      if (entry.user_id !== userId) return;
      if (entry.event === "mcp_server_failed")
        reject(new Error(`${userId}: MCP server ${String(entry.server)} failed: ${String(entry.error)}`));
      if (entry.event === "mcp_server_ready" && ++seen === count) resolve(performance.now());
    });
    stop = () => {
      clearTimeout(timer);
      unlisten();
    };
  });
  return { ready, stop };
}

async function oursReady(target: Target, userId: string): Promise<number> {
  const watcher = watchReady(target, userId, Object.keys(servers()).length);
  const started = performance.now();
  let client: BenchClient | undefined;
  try {
    client = await BenchClient.connect(target.wsUrl, userId);
    // A session's servers start with its first turn (a session that never chats costs no child):
    // the first message is what a user sends on opening the page. Its answer is not waited for.
    const first = client.turn("hello").catch(() => 0);
    const readyAt = await watcher.ready;
    await first;
    return readyAt - started;
  } finally {
    watcher.stop();
    client?.terminate();
  }
}

/** The bare SDK client starting the same servers in parallel; each one's time to its tool list. */
async function bareReady(workspace: string): Promise<Record<string, number>> {
  mkdirSync(workspace, { recursive: true });
  const clients: Client[] = [];
  try {
    const started = performance.now();
    const times = await Promise.all(
      Object.entries(servers()).map(async ([name, entry]) => {
        const client = new Client({ name: "bench-bare", version: "1.0.0" });
        clients.push(client);
        const args = name === "filesystem" ? [...entry.args, workspace] : entry.args;
        await client.connect(new StdioClientTransport({ command: entry.command, args, env: entry.env, stderr: "ignore" }));
        await client.listTools();
        return [name, performance.now() - started] as const;
      }),
    );
    return Object.fromEntries(times);
  } finally {
    await Promise.all(clients.map((client) => client.close().catch(() => undefined)));
  }
}

export async function runReady(
  model: BenchModel,
  settings: Settings,
  say: (text: string) => void,
): Promise<{ figures: Figure[]; raw: Record<string, unknown> }> {
  const { repeats, warmupRounds } = settings.ready;
  const { dir, remove } = tempDir("ready");
  let target: Target | undefined;
  try {
    const config = benchConfig({
      modelUrl: model.baseUrl,
      servers: servers(),
      store: "sqlite",
      log: "console",
      limits: { max_warm_sessions: repeats + warmupRounds + 10 },
    });
    target = await startTarget("ours", "ours", writeConfig(dir, config));
    const ours: number[] = [];
    const bare: Record<string, number>[] = [];
    // Unmeasured rounds first (disk cache, JIT); then ours and bare alternate who goes first.
    for (let round = -warmupRounds; round < repeats; round++) {
      const runOurs = () => oursReady(target as Target, `ready-${round + warmupRounds}`);
      const runBare = () => bareReady(path.join(dir, "bare-workspace", String(round + warmupRounds)));
      let oursMs: number;
      let bareMs: Record<string, number>;
      if (Math.abs(round) % 2 === 0) {
        oursMs = await runOurs();
        bareMs = await runBare();
      } else {
        bareMs = await runBare();
        oursMs = await runOurs();
      }
      if (round >= 0) {
        ours.push(oursMs);
        bare.push(bareMs);
      }
    }
    const slowest = bare.map((times) => Math.max(...Object.values(times)));
    say(`ready: ${repeats} rounds done`);
    const figure = ratioFigure(
      "ready.median",
      `session ready (filesystem + fixture), median of ${repeats}`,
      "ms",
      median(ours),
      median(slowest),
      READY_GOAL,
    );
    figure.baselineText = `${median(slowest).toFixed(1)} ms (slowest bare start)`;
    return {
      figures: [figure],
      raw: {
        servers: Object.keys(servers()),
        ours_ms: ours.map(round2),
        bare_slowest_ms: slowest.map(round2),
        bare_each_ms: bare.map((times) => Object.fromEntries(Object.entries(times).map(([name, ms]) => [name, round2(ms)]))),
      },
    };
  } finally {
    await target?.stop();
    await remove();
  }
}
