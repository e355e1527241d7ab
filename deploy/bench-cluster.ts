// Cluster bench: turn throughput at saturation and latency of 1, 2 and 3 instances (--instances)
// behind nginx with session.store: redis (Redis with a password), against the same run's single
// instance without Redis (the default SQLite store, behind the same nginx). Every user runs turns
// back to back (closed loop) on a streaming socket; a turn is one streamed model answer (no tools),
// so what is measured is the server's own cost per turn: Redis lease + reload + fenced writes,
// pub/sub fan-out, the frames, nginx. The scripted model runs in its own process; the CPU time of
// every process is read from /proc, which gives the cost of a turn per component; Redis' own
// `INFO commandstats` before and after the measured window gives its commands per turn.
//
//   npx tsx deploy/bench-cluster.ts [--users 48] [--seconds 10] [--instances 1,2,3] [--deltas 25]
//                                   [--latency-ms 0] [--json FILE] [--markdown FILE]
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Redis } from "ioredis";
import { stringify } from "yaml";
import WebSocket from "ws";
import { describeMachine, machine, markdownTable, ratioFigure, type Figure } from "../bench/report.ts";
import {
  freePorts,
  ROOT,
  redisProgram,
  killAllNow,
  nginxProgram,
  spawnChild,
  startInstances,
  type Instance,
  startNginx,
  startRedis,
  randomSecret,
  stopAll,
  waitForOutput,
  type Child,
} from "./processes.ts";

const HERE = fileURLToPath(import.meta.url);
/** What the model answers: `deltas` deltas of 8 characters each. */
function answer(deltas: number): string {
  return "The cluster answered this turn. ".repeat(Math.ceil((deltas * 8) / 32)).slice(0, deltas * 8);
}

// ---- the model, as its own process (`--model-server`) ------------------------------------------

async function modelServerMain(latencyMs: number, deltas: number): Promise<void> {
  const { startModelServer } = await import("../tests/helpers/model-server.ts");
  const content = answer(deltas);
  const model = await startModelServer({ latencyMs, responder: () => ({ content, chunkChars: 8 }) });
  console.log(`model ${model.baseUrl}`);
  const stop = () => void model.close().finally(() => process.exit(0));
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

// ---- load -------------------------------------------------------------------------------------

interface Frame {
  type?: string;
  message?: unknown;
  error?: unknown;
}

/** A user's streaming socket; `turn()` resolves when the turn's answer frame arrives. */
class User {
  readonly #ws: WebSocket;
  #waiter: ((frame: Frame) => void) | undefined;
  readonly opened: Promise<void>;

  constructor(url: string) {
    this.#ws = new WebSocket(url, { perMessageDeflate: false });
    let welcomed: () => void = () => undefined;
    this.opened = new Promise((resolve, reject) => {
      welcomed = resolve;
      this.#ws.once("error", reject);
      this.#ws.once("close", () => reject(new Error(`${url} closed`)));
    });
    this.#ws.on("message", (data) => {
      const frame = JSON.parse(data.toString()) as Frame;
      if (frame.type === "welcome") return welcomed();
      if (frame.type === "answer" || frame.type === "error" || (frame.error !== undefined && frame.type === undefined))
        this.#waiter?.(frame);
    });
  }

  async turn(text: string): Promise<number> {
    const started = performance.now();
    const frame = await new Promise<Frame>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no answer within 60 s")), 60_000);
      this.#waiter = (answer) => {
        clearTimeout(timer);
        resolve(answer);
      };
      this.#ws.send(JSON.stringify({ message: text }));
    });
    this.#waiter = undefined;
    if (frame.type !== "answer") throw new Error(`the turn failed: ${JSON.stringify(frame)}`);
    return performance.now() - started;
  }

  close(): void {
    this.#ws.terminate();
  }
}

function percentile(samples: readonly number[], q: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length))) - 1] ?? Number.NaN;
}

// ---- CPU time from /proc ------------------------------------------------------------------------

const TICK_MS = 10; // USER_HZ is 100 on Linux

/** CPU ms (user + system) of a process and its living descendants. */
function treeCpuMs(root: number): number {
  const parents = new Map<number, number>();
  const cpu = new Map<number, number>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      parents.set(Number(entry), Number(fields[1]));
      cpu.set(Number(entry), (Number(fields[11]) + Number(fields[12])) * TICK_MS);
    } catch {
      // gone while we read
    }
  }
  let total = cpu.get(root) ?? 0;
  const stack = [root];
  while (stack.length > 0) {
    const pid = stack.pop();
    for (const [child, parent] of parents) {
      if (parent !== pid) continue;
      total += cpu.get(child) ?? 0;
      stack.push(child);
    }
  }
  return total;
}

function rssMb(pid: number): number {
  try {
    const found = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return Math.round(Number(found?.[1] ?? 0) / 1024);
  } catch {
    return 0;
  }
}

// ---- one phase: a cluster of `instances`, loaded for `seconds` ------------------------------------

interface PhaseResult {
  instances: number;
  /** false: the single instance without Redis (session.store sqlite). */
  redis: boolean;
  users: number;
  seconds: number;
  turns: number;
  turns_per_second: number;
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
  /** CPU ms per turn of each part, over the measured window. */
  cpu_ms_per_turn: { instances: number; redis: number; nginx: number; model: number; load_generator: number };
  /** Share of one core each part used on average (1 = a whole core). */
  cores_used: { instances: number; redis: number; nginx: number; model: number; load_generator: number };
  instance_rss_mb: number[];
  /** Users each instance served (consistent hashing). */
  users_per_instance: number[];
  /** Redis commands per turn over the measured window (INFO commandstats), by command; none without Redis. */
  redis_commands_per_turn: { total: number; by_command: Record<string, number> } | undefined;
  /**
   * Requests the instances sent Redis per turn, from MONITOR over one more round of turns after
   * the measured window: a MULTI…EXEC block counts once (ioredis sends it as one write), the
   * commands a Lua script runs not at all. Round trips on the turn's path, the publishes included.
   */
  redis_requests_per_turn: number | undefined;
}

/** Counts client requests in MONITOR lines: scripts' inner commands left out, MULTI…EXEC as one. */
class RequestCounter {
  requests = 0;
  readonly #inMulti = new Set<string>();

  add(args: readonly string[], source: string): void {
    if (source === "lua" || source.includes("lua")) return;
    const command = (args[0] ?? "").toLowerCase();
    if (command === "monitor" || command === "info") return;
    if (command === "multi") {
      this.#inMulti.add(source);
      this.requests++;
      return;
    }
    if (this.#inMulti.has(source)) {
      if (command === "exec" || command === "discard") this.#inMulti.delete(source);
      return;
    }
    this.requests++;
  }
}

/** `INFO commandstats` as calls per command (the INFO calls of this bench left out). */
function parseCommandStats(info: string): Map<string, number> {
  const calls = new Map<string, number>();
  for (const found of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
    if (found[1] && found[1] !== "info") calls.set(found[1], Number(found[2]));
  }
  return calls;
}

function commandsPerTurn(before: Map<string, number>, after: Map<string, number>, turns: number): PhaseResult["redis_commands_per_turn"] {
  const byCommand: Record<string, number> = {};
  let total = 0;
  for (const [name, calls] of after) {
    const spent = calls - (before.get(name) ?? 0);
    if (spent <= 0) continue;
    total += spent;
    byCommand[name] = Math.round((spent / turns) * 100) / 100;
  }
  return { total: Math.round((total / turns) * 100) / 100, by_command: byCommand };
}

async function runPhase(options: {
  instances: number;
  redis: boolean;
  users: number;
  seconds: number;
  modelUrl: string;
  model: Child;
  redisBin: string;
  nginxBin: string;
  say: (text: string) => void;
}): Promise<PhaseResult> {
  const dir = mkdtempSync(path.join(tmpdir(), "mcp-agent-bench-cluster-"));
  const children: Child[] = [];
  const users: User[] = [];
  try {
    const configPath = path.join(dir, "mcp_agent.config.yaml");
    writeFileSync(
      configPath,
      stringify({
        logger: { transports: ["file"], level: "info", path: "logs/bench.jsonl" },
        mcp: { servers: {} },
        openai: { base_url: options.modelUrl, default_model: "bench-model", max_retries: 0 },
        limits: {
          messages_per_minute: 1_000_000,
          message_burst: 1_000_000,
          max_sessions: 100_000,
          new_sessions_per_minute: 1_000_000,
          new_session_burst: 1_000_000,
        },
      }),
    );
    writeFileSync(path.join(dir, "mcp_agent.secrets.yaml"), stringify({ openai: { api_key: "sk-bench-cluster" } }));
    const [redisPort = 0, nginxPort = 0, ...ports] = await freePorts(options.instances + 2);
    const clusterSecret = randomSecret();
    let redis: (Child & { url: string }) | undefined;
    let instances: Instance[];
    if (options.redis) {
      const started = await startRedis({ bin: options.redisBin, port: redisPort, dir: path.join(dir, "redis"), password: randomSecret() });
      redis = started;
      children.push(started);
      instances = await startInstances(
        ports,
        (port) => ({
          sourcePath: configPath,
          sourceDir: dir,
          redisUrl: started.url,
          clusterSecret,
          port,
          dir: path.join(dir, `instance-${port}`),
          env: { PATH: process.env.PATH, HOME: process.env.HOME },
        }),
        (instance) => children.push(instance),
      );
    } else {
      // The source config as it is: one instance, the default SQLite store, no Redis.
      const port = ports[0] ?? 0;
      const child = spawnChild(
        `instance :${port}`,
        process.execPath,
        ["--import", "tsx", path.join(ROOT, "server.ts"), "--config", configPath, "--port", String(port)],
        {
          cwd: ROOT,
          env: { PATH: process.env.PATH, HOME: process.env.HOME },
        },
      );
      children.push(child);
      const found = await waitForOutput(child, /listening on (http:\/\/\S+)/, 30_000);
      instances = [Object.assign(child, { port, url: found[1] ?? `http://127.0.0.1:${port}`, configPath, logPattern: undefined })];
    }
    const nginx = await startNginx({
      bin: options.nginxBin,
      prefix: path.join(dir, "nginx"),
      listen: { host: "127.0.0.1", port: nginxPort },
      servers: instances.map((instance) => `127.0.0.1:${instance.port}`),
    });
    children.push(nginx);

    for (let i = 0; i < options.users; i++)
      users.push(new User(`ws://127.0.0.1:${nginxPort}/ws/bench${String(i).padStart(4, "0")}?stream=1`));
    await Promise.all(users.map((user) => user.opened));
    // Warm-up: every session loaded, every code path compiled.
    for (let round = 0; round < 3; round++) await Promise.all(users.map((user, i) => user.turn(`warm-up ${i} ${round}`)));
    options.say(
      `  ${options.instances} instance(s)${options.redis ? " with Redis" : " without Redis"}: ${options.users} users connected and warmed up; measuring ${options.seconds} s`,
    );

    const cpu = () => ({
      instances: instances.reduce((sum, instance) => sum + treeCpuMs(instance.pid), 0),
      redis: redis ? treeCpuMs(redis.pid) : 0,
      nginx: treeCpuMs(nginx.pid),
      model: treeCpuMs(options.model.pid),
      load_generator: (process.cpuUsage().user + process.cpuUsage().system) / 1000,
    });
    const stats = redis ? new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 }) : undefined;
    const commandStats = async () => (stats ? parseCommandStats(await stats.info("commandstats")) : new Map<string, number>());
    const commandsBefore = await commandStats();
    const before = cpu();
    const started = performance.now();
    const deadline = started + options.seconds * 1000;
    const latencies: number[] = [];
    await Promise.all(
      users.map(async (user, i) => {
        for (let n = 0; performance.now() < deadline; n++) latencies.push(await user.turn(`user ${i} turn ${n}`));
      }),
    );
    const elapsedS = (performance.now() - started) / 1000;
    const after = cpu();
    const turns = latencies.length;
    const commandsAfter = await commandStats();
    let requestsPerTurn: number | undefined;
    if (stats && redis) {
      // MONITOR slows Redis down: it only watches one round after the measured window.
      const monitor = await stats.monitor();
      const counter = new RequestCounter();
      monitor.on("monitor", (_time: string, args: string[], source: string) => counter.add(args, source));
      await Promise.all(users.map((user, i) => user.turn(`counted ${i}`)));
      // The last publishes and releases are fire-and-forget: let them reach MONITOR.
      await new Promise((resolve) => setTimeout(resolve, 300));
      monitor.disconnect();
      requestsPerTurn = Math.round((counter.requests / users.length) * 100) / 100;
    }
    stats?.disconnect();
    const perTurn = (key: keyof typeof before) => Math.round(((after[key] - before[key]) / turns) * 100) / 100;
    const cores = (key: keyof typeof before) => Math.round(((after[key] - before[key]) / (elapsedS * 1000)) * 100) / 100;
    const placement = await Promise.all(
      instances.map(
        async (instance) => ((await (await fetch(`${instance.url}/health`)).json()) as { active_sessions: number }).active_sessions,
      ),
    );
    return {
      instances: options.instances,
      redis: options.redis,
      users: options.users,
      seconds: Math.round(elapsedS * 10) / 10,
      turns,
      turns_per_second: Math.round((turns / elapsedS) * 10) / 10,
      p50_ms: Math.round(percentile(latencies, 0.5) * 10) / 10,
      p99_ms: Math.round(percentile(latencies, 0.99) * 10) / 10,
      max_ms: Math.round(Math.max(...latencies) * 10) / 10,
      cpu_ms_per_turn: {
        instances: perTurn("instances"),
        redis: perTurn("redis"),
        nginx: perTurn("nginx"),
        model: perTurn("model"),
        load_generator: perTurn("load_generator"),
      },
      cores_used: {
        instances: cores("instances"),
        redis: cores("redis"),
        nginx: cores("nginx"),
        model: cores("model"),
        load_generator: cores("load_generator"),
      },
      instance_rss_mb: instances.map((instance) => rssMb(instance.pid)),
      users_per_instance: placement,
      redis_commands_per_turn: redis ? commandsPerTurn(commandsBefore, commandsAfter, turns) : undefined,
      redis_requests_per_turn: requestsPerTurn,
    };
  } finally {
    for (const user of users) user.close();
    await stopAll(children);
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---- the table, in bench/results.md's format -------------------------------------------------------

/** Each cluster size against the one-instance cluster, and that against one instance without Redis. */
function clusterFigures(phases: readonly PhaseResult[]): Figure[] {
  const solo = phases.find((phase) => !phase.redis);
  const one = phases.find((phase) => phase.redis && phase.instances === 1);
  const figures: Figure[] = [];
  for (const phase of phases) {
    const name = phase.redis
      ? `${phase.instances} instance${phase.instances === 1 ? "" : "s"} behind nginx, Redis`
      : "1 instance behind nginx, no Redis (SQLite)";
    const base = phase.redis && phase.instances > 1 ? one : phase.redis ? solo : undefined;
    const baseName = phase.redis && phase.instances > 1 ? "1 instance, Redis" : phase.redis ? "1 instance, no Redis" : "—";
    if (!base) {
      figures.push({
        key: `cluster.solo.throughput`,
        label: `cluster: turns/s at saturation, ${name}`,
        unit: "count",
        ours: phase.turns_per_second,
        baseline: 0,
        ratio: null,
        goal: "—",
        met: null,
        oursText: `${phase.turns_per_second}/s (p99 ${phase.p99_ms} ms)`,
        baselineText: "—",
      });
      continue;
    }
    const throughput = ratioFigure(
      `cluster.${phase.instances}.throughput`,
      `cluster: turns/s at saturation, ${name}`,
      "count",
      phase.turns_per_second,
      base.turns_per_second,
      null,
    );
    figures.push({ ...throughput, oursText: `${phase.turns_per_second}/s`, baselineText: `${base.turns_per_second}/s (${baseName})` });
    const p99 = ratioFigure(
      `cluster.${phase.instances}.p99`,
      `cluster: turn p99 at saturation, ${name}`,
      "ms",
      phase.p99_ms,
      base.p99_ms,
      null,
    );
    figures.push({ ...p99, baselineText: `${p99.baseline} ms (${baseName})` });
    if (phase.redis_commands_per_turn) {
      const top = Object.entries(phase.redis_commands_per_turn.by_command)
        .sort((a, b) => b[1] - a[1])
        .slice(0, 6)
        .map(([command, calls]) => `${command} ${calls}`)
        .join(", ");
      figures.push({
        key: `cluster.${phase.instances}.redis_commands`,
        label: `cluster: Redis commands and requests (round trips) per turn, ${name}`,
        unit: "count",
        ours: phase.redis_commands_per_turn.total,
        baseline: 0,
        ratio: null,
        goal: "—",
        met: null,
        oursText: `${phase.redis_commands_per_turn.total} commands (${top}) in ${phase.redis_requests_per_turn ?? "?"} requests`,
        baselineText: "0 (no Redis)",
      });
    }
  }
  return figures;
}

// ---- main ---------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      "model-server": { type: "boolean" },
      users: { type: "string", default: "48" },
      seconds: { type: "string", default: "10" },
      instances: { type: "string", default: "1,2,3" },
      "latency-ms": { type: "string", default: "0" },
      deltas: { type: "string", default: "25" },
      json: { type: "string" },
      markdown: { type: "string" },
    },
  });
  const latencyMs = Number(values["latency-ms"]);
  const deltas = Number(values.deltas);
  if (values["model-server"]) return modelServerMain(latencyMs, deltas);
  const redisBin = redisProgram();
  const nginxBin = nginxProgram();
  if (!redisBin || !nginxBin) {
    console.error("redis-server and nginx are needed: apt-get install -y redis-server nginx");
    process.exit(1);
  }
  const users = Number(values.users);
  const seconds = Number(values.seconds);
  const sizes = values.instances.split(",").map(Number);
  if (sizes.some((size) => !Number.isInteger(size) || size < 1) || !Number.isInteger(users) || users < 1 || !(seconds > 0)) {
    console.error("--instances takes a list of counts (e.g. 1,2,3), --users a count, --seconds a positive number");
    process.exit(2);
  }
  process.on("exit", killAllNow);
  for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => void stopAll().finally(() => process.exit(130)));

  const say = (text: string) => console.log(text);
  const info = machine();
  say(
    `cluster bench: ${users} users, closed loop, ${seconds} s per phase, answers of ${deltas} deltas, model latency ${latencyMs} ms, ${availableParallelism()} CPU cores`,
  );
  const model = spawnChild("model", process.execPath, [
    "--import",
    "tsx",
    HERE,
    "--model-server",
    "--latency-ms",
    String(latencyMs),
    "--deltas",
    String(deltas),
  ]);
  try {
    const modelUrl = (await waitForOutput(model, /model (http:\/\/\S+)/, 30_000))[1] ?? "";
    const phases: PhaseResult[] = [];
    phases.push(await runPhase({ instances: 1, redis: false, users, seconds, modelUrl, model, redisBin, nginxBin, say }));
    for (const instances of sizes) {
      phases.push(await runPhase({ instances, redis: true, users, seconds, modelUrl, model, redisBin, nginxBin, say }));
    }
    say("");
    say(
      "| instances | Redis | turns/s | p50 ms | p99 ms | max ms | Redis commands / requests per turn | CPU ms per turn: instances / redis / nginx / model / load | cores used: instances / redis / nginx / model / load | users per instance | RSS MB per instance |",
    );
    say("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for (const phase of phases) {
      const c = phase.cpu_ms_per_turn;
      const k = phase.cores_used;
      say(
        `| ${phase.instances} | ${phase.redis ? "yes" : "no"} | ${phase.turns_per_second} | ${phase.p50_ms} | ${phase.p99_ms} | ${phase.max_ms} | ${phase.redis_commands_per_turn?.total ?? 0} / ${phase.redis_requests_per_turn ?? 0} | ${c.instances} / ${c.redis} / ${c.nginx} / ${c.model} / ${c.load_generator} | ${k.instances} / ${k.redis} / ${k.nginx} / ${k.model} / ${k.load_generator} | ${phase.users_per_instance.join(", ")} | ${phase.instance_rss_mb.join(", ")} |`,
      );
    }
    const figures = clusterFigures(phases);
    const table = markdownTable(figures);
    say("");
    say(table);
    const date = new Date().toISOString();
    if (values.json)
      writeFileSync(
        values.json,
        `${JSON.stringify({ date, machine: info, users, seconds, deltas, latency_ms: latencyMs, cores: availableParallelism(), phases, figures }, null, 2)}\n`,
      );
    if (values.markdown) {
      const commands = phases
        .filter((phase) => phase.redis_commands_per_turn)
        .map(
          (phase) =>
            `- ${phase.instances} instance(s), ${phase.redis_requests_per_turn ?? "?"} requests per turn: ${Object.entries(
              phase.redis_commands_per_turn?.by_command ?? {},
            )
              .sort((a, b) => b[1] - a[1])
              .map(([name, calls]) => `\`${name}\` ${calls}`)
              .join(", ")}`,
        );
      writeFileSync(
        values.markdown,
        [
          "# Cluster bench results",
          "",
          `${date}, \`npx tsx deploy/bench-cluster.ts --users ${users} --seconds ${seconds} --instances ${sizes.join(",")} --deltas ${deltas} --latency-ms ${latencyMs}\`. Machine: ${describeMachine(info)}. Every instance, Redis, nginx, the model and the load generator share this machine's cores.`,
          "",
          table,
          "",
          "Redis commands per turn, by command (`INFO commandstats` over the measured window, the bench's own `INFO` left out):",
          "",
          ...commands,
          "",
          "Written by `deploy/bench-cluster.ts --markdown FILE`; what limits the figures: [docs/cluster.md](../docs/cluster.md#how-much-it-serves).",
          "",
        ].join("\n"),
      );
    }
  } finally {
    await stopAll();
  }
}

await main();
