// Churn: users come, send one message, leave, and the sweep ends their sessions, thousands of
// times over. Our server runs in bench/server-host.ts, which runs the sweep on request and reads
// its memory after a forced GC. Two runs:
// - sessions: the built-in fetch only (no per-user child), so every cycle can have a turn (a
//   child per cycle would add minutes: even the bench's echo server takes ~20 ms of the machine
//   to start); RSS after the measured cycles against RSS after the warm-up cycles, each the median
//   of three readings after a forced GC;
// - children: a stdio MCP server per session (started on connect, one tool call), then swept;
//   how many of those children are left.
import path from "node:path";
import { tempDir } from "../cleanup.ts";
import { round2 } from "../contenders.ts";
import { BenchClient, median } from "../load.ts";
import type { BenchModel } from "../model.ts";
import type { Settings } from "../options.ts";
import { commandOf, descendants, MB } from "../../tests/helpers/proc.ts";
import type { Figure } from "../report.ts";
import type { HostReply, HostRequest } from "../server-host.ts";
import { benchConfig, ECHO_SERVER, echoEntry, startTarget, writeConfig, type Target } from "../targets.ts";

export const CHURN_GROWTH_GOAL_MB = 20;

type HostQuery = { type: "sweep" } | { type: "memory" };

/** Request/response over the host's IPC channel. */
function hostChannel(target: Target): Host {
  let nextId = 1;
  const waiting = new Map<number, (reply: HostReply) => void>();
  target.child.on("message", (message: HostReply) => {
    waiting.get(message.id)?.(message);
    waiting.delete(message.id);
  });
  return {
    ask: (query) =>
      new Promise((resolve, reject) => {
        const id = nextId++;
        const request: HostRequest = { id, ...query };
        const timer = setTimeout(() => reject(new Error(`host did not answer ${query.type}`)), 60_000);
        waiting.set(id, (reply) => {
          clearTimeout(timer);
          if (reply.type === "error") reject(new Error(reply.error));
          else resolve(reply);
        });
        target.child.send(request);
      }),
  };
}

async function sweep(host: Host): Promise<number> {
  const reply = await host.ask({ type: "sweep" });
  if (reply.type !== "swept") throw new Error(`unexpected reply ${reply.type}`);
  return reply.count;
}

async function memory(host: Host): Promise<{ rssBytes: number; heapUsedBytes: number; sessions: number }> {
  const reply = await host.ask({ type: "memory" });
  if (reply.type !== "memory") throw new Error(`unexpected reply ${reply.type}`);
  return reply;
}

/** `count` cycles in batches: connect, one turn, disconnect; then the sweep. Returns sessions swept. */
async function cycles(target: Target, host: Host, prefix: string, count: number, batch: number): Promise<number> {
  let swept = 0;
  for (let at = 0; at < count; at += batch) {
    const ids = Array.from({ length: Math.min(batch, count - at) }, (_, n) => `${prefix}-${at + n}`);
    await Promise.all(
      ids.map(async (id) => {
        const client = await BenchClient.connect(target.wsUrl, id);
        try {
          await client.turn("hello");
        } finally {
          await client.close();
        }
      }),
    );
    swept += await sweep(host);
  }
  // The client sees its close a moment before the server has detached the socket: a session
  // still attached then is swept by the next sweep.
  const deadline = Date.now() + 10_000;
  while (swept < count && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 10));
    swept += await sweep(host);
  }
  if (swept !== count) throw new Error(`the sweeps ended ${swept} sessions, expected ${count}`);
  return swept;
}

interface HostRun {
  target: Target;
  host: Host;
  remove: () => Promise<void>;
}

type Host = { ask(query: HostQuery): Promise<HostReply> };

async function startHost(model: BenchModel, name: string, servers: Record<string, unknown>): Promise<HostRun> {
  const { dir, remove } = tempDir(name);
  try {
    const target = await startTarget(
      "host",
      name,
      writeConfig(dir, benchConfig({ modelUrl: model.baseUrl, servers, store: "memory", log: "file" })),
    );
    return { target, host: hostChannel(target), remove };
  } catch (error) {
    await remove();
    throw error;
  }
}

async function stopHost(run: HostRun | undefined): Promise<void> {
  if (!run) return;
  await run.target.stop();
  await run.remove();
}

/** Least-squares slope of y over x. */
function slope(points: readonly { x: number; y: number }[]): number {
  const n = points.length;
  if (n < 2) return 0;
  const meanX = points.reduce((sum, point) => sum + point.x, 0) / n;
  const meanY = points.reduce((sum, point) => sum + point.y, 0) / n;
  const numerator = points.reduce((sum, point) => sum + (point.x - meanX) * (point.y - meanY), 0);
  const denominator = points.reduce((sum, point) => sum + (point.x - meanX) ** 2, 0);
  return denominator > 0 ? numerator / denominator : 0;
}

export async function runChurn(
  model: BenchModel,
  settings: Settings,
  say: (text: string) => void,
): Promise<{ figures: Figure[]; raw: Record<string, unknown> }> {
  const { cycles: count, warmupCycles, batch, childCycles, samples } = settings.churn;
  model.setLatency(0);
  const figures: Figure[] = [];
  const raw: Record<string, unknown> = { settings: settings.churn };
  let sessionsHost: HostRun | undefined;
  let childrenHost: HostRun | undefined;
  try {
    // Both load at once (seconds each); the second waits idle while the first is measured.
    const hosts = await Promise.allSettled([
      startHost(model, "churn-sessions", { fetch: { builtin: "fetch" } }),
      startHost(model, "churn-children", { test: echoEntry() }),
    ]);
    sessionsHost = hosts[0].status === "fulfilled" ? hosts[0].value : undefined;
    childrenHost = hosts[1].status === "fulfilled" ? hosts[1].value : undefined;
    const failed = hosts.find((outcome): outcome is PromiseRejectedResult => outcome.status === "rejected");
    if (failed || !sessionsHost || !childrenHost) throw failed?.reason ?? new Error("churn hosts did not start");

    // Sessions: RSS sampled (after a forced GC) every `count / samples` cycles after the warm-up.
    const { target, host } = sessionsHost;
    await cycles(target, host, "warm", warmupCycles, batch);
    const trajectory: { cycles: number; rssMb: number; heapMb: number }[] = [];
    const record = async (done: number) => {
      const reading = await memory(host);
      trajectory.push({ cycles: done, rssMb: round2(reading.rssBytes / MB), heapMb: round2(reading.heapUsedBytes / MB) });
    };
    await record(0);
    const started = performance.now();
    const step = Math.ceil(count / samples);
    for (let done = 0; done < count;) {
      const next = Math.min(count, done + step);
      await cycles(target, host, `churn-${done}`, next - done, batch);
      done = next;
      await record(done);
    }
    const elapsedMs = performance.now() - started;
    const sessionsLeft = (await memory(host)).sessions;
    // Robust ends: the median of the first three and of the last three readings.
    const first = median(trajectory.slice(0, 3).map((point) => point.rssMb));
    const last = median(trajectory.slice(-3).map((point) => point.rssMb));
    const growthMb = last - first;
    const slopePer10k = slope(trajectory.map((point) => ({ x: point.cycles, y: point.rssMb }))) * 10_000;
    const sign = (value: number) => `${value >= 0 ? "+" : ""}${value.toFixed(1)}`;
    say(
      `churn: ${count} cycles in ${(elapsedMs / 1000).toFixed(1)} s, RSS ${sign(growthMb)} MB (trend ${sign(slopePer10k)} MB per 10,000 cycles, heap ${trajectory[0]?.heapMb ?? 0} → ${trajectory.at(-1)?.heapMb ?? 0} MB)`,
    );
    figures.push({
      key: "churn.rss_growth.memory",
      label: `churn: server RSS after ${count} session create/turn/sweep cycles (store memory)`,
      unit: "MB",
      ours: last,
      baseline: first,
      ratio: first > 0 ? last / first : null,
      goal: `growth < ${CHURN_GROWTH_GOAL_MB} MB`,
      met: growthMb < CHURN_GROWTH_GOAL_MB,
      oursText: `${last.toFixed(1)} MB (${sign(growthMb)} MB)`,
      baselineText: `${first.toFixed(1)} MB (after ${warmupCycles} warm-up cycles)`,
    });
    raw.sessions = {
      cycles: count,
      elapsed_ms: Math.round(elapsedMs),
      rss_first_mb: first,
      rss_last_mb: last,
      growth_mb: round2(growthMb),
      trend_mb_per_10k_cycles: round2(slopePer10k),
      trajectory,
      sessions_left: sessionsLeft,
      children: descendants(target.pid).map((pid) => commandOf(pid)),
    };
    await stopHost(sessionsHost);
    sessionsHost = undefined;

    // Children: each cycle's session starts its stdio MCP server on connect and calls its tool.
    const toolsBefore = model.toolResults.ok;
    const before = await memory(childrenHost.host);
    await cycles(childrenHost.target, childrenHost.host, "child", childCycles, Math.min(batch, 5));
    const after = await memory(childrenHost.host);
    // Only MCP servers count: the host may have other children (tsx starts an esbuild service
    // when a source file changed since its cache was filled).
    const children = descendants(childrenHost.target.pid).map((pid) => ({ pid, command: commandOf(pid) }));
    const left = children.filter((child) => child.command.endsWith(path.basename(ECHO_SERVER))).map((child) => child.pid);
    const otherChildren = children.filter((child) => !left.includes(child.pid));
    const toolCalls = model.toolResults.ok - toolsBefore;
    model.assertToolsOk("churn");
    if (toolCalls < childCycles) throw new Error(`churn: only ${toolCalls} of ${childCycles} cycles called their MCP tool`);
    say(`churn: ${childCycles} cycles with an MCP child each, ${left.length} children left`);
    figures.push({
      key: "churn.children_left",
      label: `churn: MCP children left after ${childCycles} cycles that each started one, all swept`,
      unit: "count",
      ours: left.length,
      baseline: toolCalls,
      ratio: left.length / toolCalls,
      goal: "0",
      met: left.length === 0,
      oursText: `${left.length} left`,
      baselineText: `${toolCalls} started`,
    });
    raw.children = {
      cycles: childCycles,
      tool_calls: toolCalls,
      left_pids: left,
      other_children: otherChildren,
      rss_before_mb: round2(before.rssBytes / MB),
      rss_after_mb: round2(after.rssBytes / MB),
    };
    return { figures, raw };
  } finally {
    await stopHost(sessionsHost);
    await stopHost(childrenHost);
  }
}
