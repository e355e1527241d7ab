// Test harness: a temp config folder, the real server on port 0 (in-process or as a child),
// and a WebSocket client that waits for frames instead of sleeping.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, writeFileSync, rmSync, existsSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { stringify } from "yaml";
import WebSocket from "ws";
import { loadConfig } from "../../lib/config.ts";
import { createLogger } from "../../lib/log.ts";
import { createAgentServer, type AgentServer } from "../../server.ts";

export { descendants } from "./proc.ts";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const TEST_MCP_SERVER = path.join(ROOT, "tests/fixtures/test-mcp-server.mjs");

/** The test MCP server fixture as a config entry. */
export const testServerEntry = { command: process.execPath, args: [TEST_MCP_SERVER] };
/** The real filesystem server, as the shipped config spells it. */
export const filesystemEntry = { command: "npx", args: ["-y", "@modelcontextprotocol/server-filesystem"] };

export interface ConfigDirOptions {
  config?: Record<string, unknown>;
  secrets?: Record<string, unknown>;
}

export function makeConfigDir({ config = {}, secrets }: ConfigDirOptions = {}): string {
  const dir = mkdtempSync(path.join(tmpdir(), "mcp-agent-test-"));
  writeFileSync(path.join(dir, "mcp_agent.config.yaml"), stringify(config));
  if (secrets) writeFileSync(path.join(dir, "mcp_agent.secrets.yaml"), stringify(secrets));
  return dir;
}

export function baseConfig(modelBaseUrl: string, servers: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) {
  return {
    logger: { transports: ["file"], level: "debug", path: "logs/test.jsonl" },
    mcp: { servers },
    openai: { base_url: modelBaseUrl, default_model: "test-model", max_retries: 0 },
    ...extra,
  };
}

export interface RunningServer {
  server: AgentServer;
  url: string;
  wsUrl(userId: string, query?: string): string;
  configDir: string;
  logPath: string;
  close(): Promise<void>;
}

export async function startServer(
  options: ConfigDirOptions & {
    env?: Record<string, string | undefined>;
    keepDir?: boolean;
    /** Default 0: a free port. */
    port?: number;
    /** Reuse this config folder (and its database) instead of writing a new one; it is kept. */
    configDir?: string;
  } = {},
): Promise<RunningServer> {
  const configDir = options.configDir ?? makeConfigDir(options);
  const config = loadConfig(path.join(configDir, "mcp_agent.config.yaml"), options.env ?? {});
  const logPath = path.join(configDir, "logs/test.jsonl");
  const log = createLogger({ level: "debug", console: false, filePath: logPath, secrets: [config.openai.api_key ?? ""].filter(Boolean) });
  // The OTEL_* variables come from the test's env too, never from the shell that runs the tests.
  const server = createAgentServer({ config, log, host: "127.0.0.1", port: options.port ?? 0, env: options.env ?? {} });
  const { url } = await server.listen();
  return {
    server,
    url,
    wsUrl: (userId, query = "") => `${url.replace(/^http/, "ws")}/ws/${userId}${query}`,
    configDir,
    logPath,
    close: async () => {
      await server.close();
      await log.close();
      if (!options.keepDir && !options.configDir) rmSync(configDir, { recursive: true, force: true });
    },
  };
}

export type Frame = Record<string, unknown>;

/** A WebSocket client whose frames are read in order with `next()`. */
export class TestClient {
  readonly ws: WebSocket;
  readonly frames: Frame[] = [];
  /** `servers` frames (the state of the user's MCP servers) arrive at any time: kept apart, so `next()` reads the rest in order. */
  readonly servers: Frame[] = [];
  #read = 0;
  #waiters: (() => void)[] = [];
  closed: Promise<{ code: number; reason: string }>;

  constructor(url: string, options?: WebSocket.ClientOptions) {
    this.ws = new WebSocket(url, options);
    this.ws.on("message", (data) => {
      const frame = JSON.parse(data.toString()) as Frame;
      (frame.type === "servers" ? this.servers : this.frames).push(frame);
      this.#wake();
    });
    this.closed = new Promise((resolve) => {
      this.ws.on("close", (code, reason) => {
        this.#wake();
        resolve({ code, reason: reason.toString() });
      });
    });
    this.ws.on("error", () => this.#wake());
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }

  opened(): Promise<void> {
    if (this.ws.readyState === WebSocket.OPEN) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.ws.once("open", () => resolve());
      this.ws.once("error", reject);
    });
  }

  /** The next unread frame; fails after `timeoutMs` so a broken test does not hang the run. */
  async next(timeoutMs = 15000): Promise<Frame> {
    const deadline = Date.now() + timeoutMs;
    while (this.#read >= this.frames.length) {
      if (this.ws.readyState === WebSocket.CLOSED)
        throw new Error(`socket closed while waiting for a frame (got ${JSON.stringify(this.frames)})`);
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new Error(`no frame within ${timeoutMs} ms (got ${JSON.stringify(this.frames)})`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, remaining);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.frames[this.#read++] as Frame;
  }

  /** Reads frames until one matches; returns it (the skipped ones stay in `frames`). */
  async nextMatching(predicate: (frame: Frame) => boolean, timeoutMs = 15000): Promise<Frame> {
    for (;;) {
      const frame = await this.next(timeoutMs);
      if (predicate(frame)) return frame;
    }
  }

  /** Waits for a `servers` frame that matches, among those from index `from` on (one already received counts). */
  async serversMatching(predicate: (servers: Frame[]) => boolean, timeoutMs = 15000, from = 0): Promise<Frame[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.servers.slice(from).find((frame) => predicate(frame.servers as Frame[]));
      if (found) return found.servers as Frame[];
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new Error(`no matching servers frame within ${timeoutMs} ms (got ${JSON.stringify(this.servers)})`);
      if (this.ws.readyState === WebSocket.CLOSED) throw new Error(`socket closed (servers frames: ${JSON.stringify(this.servers)})`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, remaining);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  get unread(): number {
    return this.frames.length - this.#read;
  }

  send(value: unknown): void {
    this.ws.send(typeof value === "string" ? value : JSON.stringify(value));
  }

  async close(): Promise<void> {
    if (this.ws.readyState !== WebSocket.CLOSED) {
      this.ws.close();
      await this.closed;
    }
  }
}

export async function connect(url: string, options?: WebSocket.ClientOptions): Promise<TestClient> {
  const client = new TestClient(url, options);
  await client.opened();
  return client;
}

/** Connects and reads the welcome frame. */
export async function connectUser(running: RunningServer, userId: string, query = ""): Promise<{ client: TestClient; welcome: Frame }> {
  const client = await connect(running.wsUrl(userId, query));
  const welcome = await client.next();
  return { client, welcome };
}

/** Sends a chat message and returns the frame that answers it (seed sockets: the next frame). */
export async function ask(client: TestClient, message: string): Promise<Frame> {
  client.send({ message });
  return client.next();
}

/** The server's JSON-lines log, parsed. */
export function readLog(logPath: string): Frame[] {
  if (!existsSync(logPath)) return [];
  return readFileSync(logPath, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Frame);
}

/** Is a process with this pid alive? */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Polls a condition; for facts the server offers no event for (a process that has exited). */
export async function until(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 10000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

export interface SpawnedServer {
  child: ChildProcess;
  url: string;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

/** Runs `server.ts` as its own process (for signals, exit codes and the command line). */
export function spawnServer(
  args: string[],
  env: Record<string, string | undefined> = {},
  cwd = ROOT,
): SpawnedServer & { ready: Promise<SpawnedServer> } {
  const child = spawn(process.execPath, ["--import", "tsx", path.join(ROOT, "server.ts"), ...args], {
    cwd,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout?.on("data", (chunk: Buffer) => (out += chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => (err += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const result: SpawnedServer = { child, url: "", stdout: () => out, stderr: () => err, exited };
  const ready = new Promise<SpawnedServer>((resolve, reject) => {
    const onData = () => {
      const found = /listening on (http:\/\/\S+)/.exec(out);
      if (found?.[1]) {
        child.stdout?.off("data", onData);
        result.url = found[1];
        resolve(result);
      }
    };
    child.stdout?.on("data", onData);
    void exited.then((code) => reject(new Error(`server exited with ${code} before listening: ${err}`)));
  });
  return {
    ...result,
    get url() {
      return result.url;
    },
    ready,
  };
}

/** The exit code; rejects if the process has not exited within `ms` (a guard against hangs). */
export async function exitWithin(spawned: SpawnedServer, ms: number): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`no exit within ${ms} ms; stderr: ${spawned.stderr()}`)), ms);
  });
  try {
    return await Promise.race([spawned.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Stops servers a test started and left running (it failed half-way): as a user would, so their
 * MCP children go too, and with SIGKILL only if that does not work.
 */
export async function stopSpawned(children: readonly SpawnedServer[]): Promise<void> {
  await Promise.all(
    children.map(async ({ child, exited }) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(timer);
    }),
  );
}
