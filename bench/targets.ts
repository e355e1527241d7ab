// The processes under test: our server (`node --import tsx server.ts --config ...`), the bare
// baseline, and the churn host; each a child of the bench so its memory is its own. Every one
// is stopped on every path, and whatever it left behind is killed by pid.
import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { stringify } from "yaml";
import { resolveLocalNpx } from "../lib/mcp/stdio-transport.ts";
import { onCleanup } from "./cleanup.ts";
import { descendants, identify, stillRunning } from "../tests/helpers/proc.ts";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
/** The bench's echo MCP server (the fixture's `echo` tool without the SDK): see its header. */
export const ECHO_SERVER = path.join(ROOT, "bench/echo-mcp-server.mjs");
/** The test suite's MCP server fixture. */
export const FIXTURE_SERVER = path.join(ROOT, "tests/fixtures/test-mcp-server.mjs");

/** The installed filesystem server's script, as our server runs it (`node <bin>`, no npx). */
export function filesystemBin(): string {
  const resolved = resolveLocalNpx("npx", ["-y", "@modelcontextprotocol/server-filesystem"], [ROOT]);
  const bin = resolved.args[0];
  if (resolved.command !== process.execPath || !bin)
    throw new Error("@modelcontextprotocol/server-filesystem is not installed: run npm install");
  return bin;
}

/**
 * Every process of this run carries this variable (servers through their environment, MCP
 * children through their config entry's env), so that the end of the run can prove none is left.
 */
export const RUN_MARKER = { name: "MCP_AGENT_BENCH_RUN", value: randomUUID() };
const markerEnv = () => ({ [RUN_MARKER.name]: RUN_MARKER.value });

export const echoEntry = () => ({ command: process.execPath, args: [ECHO_SERVER], env: markerEnv() });
export const fixtureEntry = () => ({ command: process.execPath, args: [FIXTURE_SERVER], env: markerEnv() });
export const filesystemEntry = () => ({ command: process.execPath, args: [filesystemBin()], env: markerEnv() });

export interface BenchConfigOptions {
  modelUrl: string;
  servers: Record<string, unknown>;
  store: "sqlite" | "memory";
  /** `file`: production-like (info level, to a file). `console`: to stderr, for the bench to watch events. */
  log: "file" | "console";
  limits?: Record<string, unknown>;
  session?: Record<string, unknown>;
}

/** A config with the limits a load test needs lifted (sessions, sockets, message rate). */
export function benchConfig(options: BenchConfigOptions): Record<string, unknown> {
  return {
    logger:
      options.log === "file"
        ? { transports: ["file"], level: "info", path: "logs/server.jsonl" }
        : { transports: ["console"], level: "info" },
    mcp: { servers: options.servers },
    openai: { base_url: options.modelUrl, api_key: "sk-bench", default_model: "bench-model", max_retries: 0 },
    session: { store: options.store, sqlite_path: "data/sessions.db", ...options.session },
    limits: { max_sessions: 100_000, messages_per_minute: 1_000_000, message_burst: 100_000, ...options.limits },
    workspace: { root: "workspace" },
  };
}

export function writeConfig(dir: string, config: Record<string, unknown>): string {
  const file = path.join(dir, "mcp_agent.config.yaml");
  writeFileSync(file, stringify(config));
  return file;
}

export type TargetKind = "ours" | "baseline" | "host";

const SCRIPTS: Record<TargetKind, string> = {
  ours: path.join(ROOT, "server.ts"),
  baseline: path.join(ROOT, "bench/baseline-server.ts"),
  host: path.join(ROOT, "bench/server-host.ts"),
};

export interface Target {
  name: string;
  kind: TargetKind;
  url: string;
  wsUrl: string;
  pid: number;
  child: ChildProcess;
  /** The folder of its config file (its log, database and workspaces are there). */
  configDir: string;
  /** Calls `listener` with each stderr line (our server's log, with the console transport). */
  onStderrLine(listener: (line: string) => void): () => void;
  output(): string;
  /** SIGTERM, then SIGKILL; then kills (by pid) any process it had started that is still there. Returns how many were. */
  stop(): Promise<number>;
}

const TAIL = 64 * 1024;
const STARTUP_TIMEOUT_MS = 120_000;

/** `extraNodeArgs`: e.g. --cpu-prof (bench/profile.ts); node refuses those in NODE_OPTIONS. */
export async function startTarget(
  kind: TargetKind,
  name: string,
  configPath: string,
  extraEnv: Record<string, string> = {},
  extraNodeArgs: string[] = [],
): Promise<Target> {
  const nodeArgs = [...(kind === "host" ? ["--expose-gc"] : []), ...extraNodeArgs];
  const args = [...nodeArgs, "--import", "tsx", SCRIPTS[kind], "--config", configPath, "--port", "0"];
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...markerEnv(), ...extraEnv },
    stdio: kind === "host" ? ["ignore", "pipe", "pipe", "ipc"] : ["ignore", "pipe", "pipe"],
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`cannot start ${name}`);
  let output = "";
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-TAIL);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const lineListeners = new Set<(line: string) => void>();
  let partial = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    const lines = (partial + chunk.toString()).split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) for (const listener of lineListeners) listener(line);
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));

  let stopping: Promise<number> | undefined;
  const stopNow = (): Promise<number> =>
    (stopping ??= (async () => {
      const started = identify(descendants(pid));
      child.kill("SIGTERM");
      const gone = await Promise.race([exited.then(() => true), sleep(10_000, true).then(() => false)]);
      if (!gone) {
        child.kill("SIGKILL");
        await exited;
      }
      // MCP children run in process groups of their own: anything the target left is ours to end.
      let left = 0;
      for (const id of started) {
        if (!stillRunning(id)) continue;
        left++;
        try {
          process.kill(id.pid, "SIGKILL");
        } catch {
          // Gone meanwhile.
        }
      }
      return left;
    })());
  const stop = onCleanup(async () => {
    await stopNow();
  });

  const url = await new Promise<string>((resolve, reject) => {
    let seen = "";
    const onData = (chunk: Buffer) => {
      seen += chunk.toString();
      const found = /listening on (http:\/\/\S+)/.exec(seen);
      if (found?.[1]) {
        child.stdout?.off("data", onData);
        resolve(found[1]);
      }
    };
    child.stdout?.on("data", onData);
    void exited.then(() => reject(new Error(`${name} exited before listening:\n${output}`)));
    void sleep(STARTUP_TIMEOUT_MS, true).then(() =>
      reject(new Error(`${name} did not listen within ${STARTUP_TIMEOUT_MS / 1000} s:\n${output}`)),
    );
  }).catch(async (error: unknown) => {
    await stop();
    throw error;
  });

  return {
    name,
    kind,
    url,
    wsUrl: url.replace(/^http/, "ws"),
    pid,
    child,
    configDir: path.dirname(configPath),
    onStderrLine: (listener) => {
      lineListeners.add(listener);
      return () => lineListeners.delete(listener);
    },
    output: () => output,
    stop: async () => {
      const left = await stopNow();
      await stop();
      return left;
    },
  };
}

/** `unref`: a timer that does not keep the process alive (a deadline, not a pause). */
export const sleep = (ms: number, unref = false) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    if (unref) timer.unref();
  });
