// Cluster bench: turn throughput and latency of 1 instance vs N instances (default 3), each
// behind nginx with session.store: redis, on this machine. Every user runs turns back to back
// (closed loop) on a streaming socket; a turn is one streamed model answer (no tools), so what is
// measured is the server's own cost per turn: Redis lease + reload + fenced writes, pub/sub
// fan-out, the frames, nginx. The scripted model runs in its own process; the CPU time of every
// process is read from /proc, which gives the cost of a turn per component.
//
//   npx tsx deploy/bench-cluster.ts [--users 48] [--seconds 10] [--instances 3] [--deltas 25]
//                                   [--latency-ms 0] [--json FILE]
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { stringify } from "yaml";
import WebSocket from "ws";
import {
  freePorts,
  redisProgram,
  killAllNow,
  nginxProgram,
  spawnChild,
  startInstances,
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
}

async function runPhase(options: {
  instances: number;
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
    const redis = await startRedis({ bin: options.redisBin, port: redisPort, dir: path.join(dir, "redis"), password: randomSecret() });
    children.push(redis);
    const instances = await startInstances(
      ports,
      (port) => ({
        sourcePath: configPath,
        sourceDir: dir,
        redisUrl: redis.url,
        clusterSecret,
        port,
        dir: path.join(dir, `instance-${port}`),
        env: { PATH: process.env.PATH, HOME: process.env.HOME },
      }),
      (instance) => children.push(instance),
    );
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
    options.say(`  ${options.instances} instance(s): ${options.users} users connected and warmed up; measuring ${options.seconds} s`);

    const cpu = () => ({
      instances: instances.reduce((sum, instance) => sum + treeCpuMs(instance.pid), 0),
      redis: treeCpuMs(redis.pid),
      nginx: treeCpuMs(nginx.pid),
      model: treeCpuMs(options.model.pid),
      load_generator: (process.cpuUsage().user + process.cpuUsage().system) / 1000,
    });
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
    const perTurn = (key: keyof typeof before) => Math.round(((after[key] - before[key]) / turns) * 100) / 100;
    const cores = (key: keyof typeof before) => Math.round(((after[key] - before[key]) / (elapsedS * 1000)) * 100) / 100;
    const placement = await Promise.all(
      instances.map(
        async (instance) => ((await (await fetch(`${instance.url}/health`)).json()) as { active_sessions: number }).active_sessions,
      ),
    );
    return {
      instances: options.instances,
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
    };
  } finally {
    for (const user of users) user.close();
    await stopAll(children);
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---- main ---------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      "model-server": { type: "boolean" },
      users: { type: "string", default: "48" },
      seconds: { type: "string", default: "10" },
      instances: { type: "string", default: "3" },
      "latency-ms": { type: "string", default: "0" },
      deltas: { type: "string", default: "25" },
      json: { type: "string" },
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
  const many = Number(values.instances);
  process.on("exit", killAllNow);
  for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => void stopAll().finally(() => process.exit(130)));

  const say = (text: string) => console.log(text);
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
    for (const instances of [1, many]) {
      phases.push(await runPhase({ instances, users, seconds, modelUrl, model, redisBin, nginxBin, say }));
    }
    say("");
    say(
      "| instances | turns/s | p50 ms | p99 ms | max ms | CPU ms per turn: instances / redis / nginx / model / load | cores used: instances / redis / nginx / model / load | users per instance | RSS MB per instance |",
    );
    say("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for (const phase of phases) {
      const c = phase.cpu_ms_per_turn;
      const k = phase.cores_used;
      say(
        `| ${phase.instances} | ${phase.turns_per_second} | ${phase.p50_ms} | ${phase.p99_ms} | ${phase.max_ms} | ${c.instances} / ${c.redis} / ${c.nginx} / ${c.model} / ${c.load_generator} | ${k.instances} / ${k.redis} / ${k.nginx} / ${k.model} / ${k.load_generator} | ${phase.users_per_instance.join(", ")} | ${phase.instance_rss_mb.join(", ")} |`,
      );
    }
    if (values.json)
      writeFileSync(
        values.json,
        `${JSON.stringify({ users, seconds, deltas, latency_ms: latencyMs, cores: availableParallelism(), phases }, null, 2)}\n`,
      );
  } finally {
    await stopAll();
  }
}

await main();
