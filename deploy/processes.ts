// The pieces of a local cluster as child processes: redis-server, server instances, nginx.
// Used by `npm run cluster` (deploy/run-cluster.ts), the cluster bench and tests/e2e/cluster.test.ts.
// Every child runs in its own process group, so stopping it also stops what it started (an
// instance's MCP servers, nginx's workers), and a terminal's Ctrl-C reaches only the parent,
// which stops them in order.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { accessSync, chmodSync, constants, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parse, stringify } from "yaml";
import { renderTemplate } from "./nginx.ts";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Child {
  readonly name: string;
  readonly pid: number;
  readonly process: ChildProcess;
  /** Resolves when the process has exited (never rejects). */
  readonly exited: Promise<ExitInfo>;
  /** Whether the process has not exited yet. */
  running(): boolean;
  /** What it wrote to stdout and stderr so far (the last 64 KiB). */
  output(): string;
  /** Sends a signal to the child's whole process group (nothing if it is gone). */
  signal(signal: NodeJS.Signals): void;
  /**
   * Asks it to stop (`signal`, SIGTERM by default), kills its group after `timeoutMs`, and
   * resolves once it has exited and its group is gone.
   */
  stop(options?: { signal?: NodeJS.Signals; timeoutMs?: number }): Promise<ExitInfo>;
}

const OUTPUT_CAP = 64 * 1024;

/** Every child spawned here that has not exited yet: what a clean-up must stop. */
export const liveChildren = new Set<Child>();

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // The group is gone already.
  }
}

export interface SpawnOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Each complete line the child writes, as it comes. */
  onLine?: (line: string, stream: "stdout" | "stderr") => void;
}

export function spawnChild(name: string, command: string, args: readonly string[], options: SpawnOptions = {}): Child {
  const child = spawn(command, args, {
    cwd: options.cwd ?? ROOT,
    env: options.env ?? process.env,
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  if (child.pid === undefined) throw new Error(`${name}: could not start ${command}`);
  const pid = child.pid;
  let output = "";
  let done = false;
  for (const stream of ["stdout", "stderr"] as const) {
    let partial = "";
    child[stream].on("data", (chunk: Buffer) => {
      const text = chunk.toString();
      output = (output + text).slice(-OUTPUT_CAP);
      if (!options.onLine) return;
      const lines = (partial + text).split("\n");
      partial = lines.pop() ?? "";
      for (const line of lines) options.onLine(line, stream);
    });
  }
  const exited = new Promise<ExitInfo>((resolve) => {
    child.once("exit", (code, signal) => {
      done = true;
      resolve({ code, signal });
    });
    child.once("error", () => {
      done = true;
      resolve({ code: null, signal: null });
    });
  });
  const handle: Child = {
    name,
    pid,
    process: child,
    exited,
    running: () => !done,
    output: () => output,
    signal: (signal) => {
      if (!done) signalGroup(pid, signal);
    },
    stop: async ({ signal = "SIGTERM", timeoutMs = 6000 } = {}) => {
      if (!done) signalGroup(pid, signal);
      const timer = setTimeout(() => signalGroup(pid, "SIGKILL"), timeoutMs);
      const info = await exited;
      clearTimeout(timer);
      // Whatever it started and left behind goes with it.
      signalGroup(pid, "SIGKILL");
      return info;
    },
  };
  liveChildren.add(handle);
  void exited.then(() => liveChildren.delete(handle));
  return handle;
}

/** Order of stopping: the load balancer (no new sockets), the instances, then Redis last. */
const STOP_ORDER = ["nginx", "instance", "redis"];

/** Stops the children (default: every live one) in that order, each kind at once. */
export async function stopAll(children: Iterable<Child> = liveChildren, timeoutMs = 6000): Promise<void> {
  const list = [...children];
  const rank = (child: Child) => {
    const at = STOP_ORDER.findIndex((prefix) => child.name.startsWith(prefix));
    return at === -1 ? STOP_ORDER.length : at;
  };
  for (let step = 0; step <= STOP_ORDER.length; step++) {
    await Promise.all(list.filter((child) => rank(child) === step).map((child) => child.stop({ timeoutMs })));
  }
}

/** Last resort (process `exit`, synchronous): kills every live child's group at once. */
export function killAllNow(): void {
  for (const child of liveChildren) child.signal("SIGKILL");
}

/** Resolves with the first line matching `pattern`; rejects if the child exits first or after `timeoutMs`. */
export function waitForOutput(child: Child, pattern: RegExp, timeoutMs: number): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    const check = () => {
      const found = pattern.exec(child.output());
      if (!found) return false;
      finish();
      resolve(found);
      return true;
    };
    const onData = () => void check();
    const timer = setTimeout(() => {
      finish();
      reject(new Error(`${child.name} did not get ready within ${timeoutMs} ms:\n${child.output()}`));
    }, timeoutMs);
    const finish = () => {
      clearTimeout(timer);
      child.process.stdout?.off("data", onData);
      child.process.stderr?.off("data", onData);
    };
    if (check()) return;
    // Listeners added after spawnChild's: `output()` already holds the chunk when they run.
    child.process.stdout?.on("data", onData);
    child.process.stderr?.on("data", onData);
    void child.exited.then((info) => {
      if (check()) return;
      finish();
      reject(new Error(`${child.name} exited (${describeExit(info)}) before it was ready:\n${child.output()}`));
    });
  });
}

export function describeExit(info: ExitInfo): string {
  return info.signal ? `signal ${info.signal}` : `code ${info.code}`;
}

/** Whether something accepts TCP connections on 127.0.0.1:port. */
export function portOpen(port: number, host = "127.0.0.1"): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/** Whether this process could listen on 127.0.0.1:port now. */
export function portFree(port: number, host = "127.0.0.1"): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once("error", () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}

/** `count` distinct ports that were free a moment ago. */
export async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<net.Server>((resolve, reject) => {
          const server = net.createServer();
          server.once("error", reject);
          server.listen(0, "127.0.0.1", () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((server) => (server.address() as net.AddressInfo).port);
  await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
  return ports;
}

/** The first executable among `candidates` (a name without a slash is looked up on PATH). */
export function findProgram(candidates: readonly string[]): string | undefined {
  const executable = (file: string) => {
    try {
      accessSync(file, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  };
  for (const candidate of candidates) {
    if (candidate.includes("/")) {
      if (executable(candidate)) return candidate;
      continue;
    }
    for (const dir of (process.env.PATH ?? "").split(path.delimiter).filter(Boolean)) {
      if (executable(path.join(dir, candidate))) return path.join(dir, candidate);
    }
  }
  return undefined;
}

export const REDIS_CANDIDATES = ["redis-server", "/usr/bin/redis-server"];
export const NGINX_CANDIDATES = ["nginx", "/usr/sbin/nginx"];

/** redis-server: $REDIS_SERVER when set (and only it), else the usual places. */
export function redisProgram(): string | undefined {
  return findProgram(process.env.REDIS_SERVER ? [process.env.REDIS_SERVER] : REDIS_CANDIDATES);
}

/** nginx: $NGINX when set (and only it), else the usual places. */
export function nginxProgram(): string | undefined {
  return findProgram(process.env.NGINX ? [process.env.NGINX] : NGINX_CANDIDATES);
}

// ---- redis-server ---------------------------------------------------------------------------

export interface RedisOptions {
  bin: string;
  port: number;
  /** Its working folder (created): the dump/AOF would go here; with `persist: false` nothing is written. */
  dir: string;
  /** Append-only file in `dir`, so a restart on the same dir keeps the data. Default false. */
  persist?: boolean;
  /** Clients must give it (AUTH); it goes in a 0600 file, not on the command line where `ps` shows it. */
  password?: string;
  onLine?: SpawnOptions["onLine"];
}

/** A password (or cluster secret) for one run: 32 random bytes, hex. */
export function randomSecret(): string {
  return randomBytes(32).toString("hex");
}

export async function startRedis(options: RedisOptions): Promise<Child & { url: string }> {
  mkdirSync(options.dir, { recursive: true, mode: 0o700 });
  const confFile = path.join(options.dir, "redis.conf");
  writeFileSync(confFile, options.password ? `requirepass ${options.password}\n` : "", { mode: 0o600 });
  chmodSync(confFile, 0o600);
  const args = [
    confFile,
    "--port",
    String(options.port),
    "--bind",
    "127.0.0.1",
    "--dir",
    options.dir,
    "--save",
    "",
    "--appendonly",
    options.persist ? "yes" : "no",
    "--daemonize",
    "no",
    "--logfile",
    "",
  ];
  const child = spawnChild(`redis :${options.port}`, options.bin, args, {
    cwd: options.dir,
    ...(options.onLine ? { onLine: options.onLine } : {}),
  });
  try {
    await waitForOutput(child, /Ready to accept connections/, 10_000);
  } catch (error) {
    await child.stop({ signal: "SIGKILL" });
    throw error;
  }
  const auth = options.password ? `:${encodeURIComponent(options.password)}@` : "";
  return Object.assign(child, { url: `redis://${auth}127.0.0.1:${options.port}` });
}

// ---- server instances -----------------------------------------------------------------------

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function section(config: Record<string, unknown>, key: string): Record<string, unknown> {
  const existing = config[key];
  if (isRecord(existing)) return existing;
  const created: Record<string, unknown> = {};
  config[key] = created;
  return created;
}

export interface InstanceConfigOptions {
  /** The config the cluster starts from (its text) and the folder it is in. */
  sourceText: string;
  sourceDir: string;
  redisUrl: string;
  /** The instance's port: its log file is named after it. */
  port: number;
}

/** The URL without its user and password (those go in the secrets file). */
export function withoutCredentials(url: string): string {
  const parsed = new URL(url);
  parsed.username = "";
  parsed.password = "";
  return parsed.href;
}

/**
 * The source config with `session.store: redis` and `redis.url` set. Paths that were relative to
 * the source's folder (workspace, log files) are made absolute, so the instances share the
 * user's workspace and write their logs beside the source's, one file per instance.
 */
export function instanceConfig(options: InstanceConfigOptions): { text: string; logPattern: string | undefined } {
  const parsed: unknown = parse(options.sourceText) ?? {};
  if (!isRecord(parsed)) throw new Error("the config must be a mapping of keys at the top level");
  const config = parsed;
  const absolute = (target: string) => path.resolve(options.sourceDir, target);
  const session = section(config, "session");
  session.store = "redis";
  if (typeof session.sqlite_path === "string") session.sqlite_path = absolute(session.sqlite_path);
  section(config, "redis").url = withoutCredentials(options.redisUrl);
  const workspace = section(config, "workspace");
  workspace.root = absolute(typeof workspace.root === "string" ? workspace.root : "workspace");
  const logger = section(config, "logger");
  const transports = Array.isArray(logger.transports) && logger.transports.length > 0 ? logger.transports : [logger.type ?? "console"];
  let logPattern: string | undefined;
  if (transports.includes("file")) {
    const tag = `instance-${options.port}`;
    if (typeof logger.path === "string") {
      const file = absolute(logger.path);
      const ext = path.extname(file);
      logger.path = logPattern = `${file.slice(0, file.length - ext.length)}-${tag}${ext}`;
    } else {
      const settings = section(logger, "path_settings");
      const pattern = absolute(typeof settings.path_pattern === "string" ? settings.path_pattern : "logs/mcp-agent-{unique_id}.jsonl");
      settings.path_pattern = logPattern = path.join(path.dirname(pattern), `${tag}-${path.basename(pattern)}`);
    }
  }
  return { text: stringify(config), logPattern };
}

export interface InstanceOptions extends Omit<InstanceConfigOptions, "sourceText"> {
  /** The source config file. */
  sourcePath: string;
  /** The instance's own folder (created, private): its config and a copy of the secrets file. */
  dir: string;
  /** redis.cluster_secret, the same for every instance of the cluster (written to its secrets file). */
  clusterSecret: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Extra arguments for server.ts (e.g. --log-level). */
  args?: readonly string[];
  onLine?: SpawnOptions["onLine"];
}

export interface Instance extends Child {
  port: number;
  url: string;
  configPath: string;
  /** The log file (or its pattern with {unique_id}), when the config logs to a file. */
  logPattern: string | undefined;
}

export const SECRETS_FILE = "mcp_agent.secrets.yaml";

/** Writes the instance's config (and a copy of the secrets file beside it) into `dir`. */
export function writeInstanceConfig(options: Omit<InstanceOptions, "env" | "cwd" | "args" | "onLine">): {
  configPath: string;
  logPattern: string | undefined;
} {
  mkdirSync(options.dir, { recursive: true, mode: 0o700 });
  chmodSync(options.dir, 0o700);
  const { text, logPattern } = instanceConfig({ ...options, sourceText: readFileSync(options.sourcePath, "utf8") });
  const configPath = path.join(options.dir, "mcp_agent.config.yaml");
  writeFileSync(configPath, text);
  // The source's secrets, plus the Redis URL with its password and the cluster secret: 0600.
  const source = path.join(options.sourceDir, SECRETS_FILE);
  const parsed: unknown = existsSync(source) ? (parse(readFileSync(source, "utf8")) ?? {}) : {};
  if (!isRecord(parsed)) throw new Error(`${source}: expected a mapping of keys at the top level`);
  const redis = section(parsed, "redis");
  redis.url = options.redisUrl;
  redis.cluster_secret = options.clusterSecret;
  const secretsPath = path.join(options.dir, SECRETS_FILE);
  writeFileSync(secretsPath, stringify(parsed), { mode: 0o600 });
  chmodSync(secretsPath, 0o600);
  return { configPath, logPattern };
}

/** `node --import tsx server.ts --config <generated> --port <port>`; resolves once it listens. */
export async function startInstance(options: InstanceOptions): Promise<Instance> {
  const { configPath, logPattern } = writeInstanceConfig(options);
  const child = spawnChild(
    `instance :${options.port}`,
    process.execPath,
    ["--import", "tsx", path.join(ROOT, "server.ts"), "--config", configPath, "--port", String(options.port), ...(options.args ?? [])],
    { cwd: options.cwd ?? process.cwd(), env: options.env ?? process.env, ...(options.onLine ? { onLine: options.onLine } : {}) },
  );
  let url: string;
  try {
    const found = await waitForOutput(child, /listening on (http:\/\/\S+)/, 30_000);
    url = found[1] ?? `http://127.0.0.1:${options.port}`;
  } catch (error) {
    await child.stop({ signal: "SIGKILL" });
    throw error;
  }
  return Object.assign(child, { port: options.port, url, configPath, logPattern });
}

/**
 * Starts one instance per port, together (each takes seconds to compile). Every instance that
 * started is handed to `keep` (its owner stops it) even when another failed; then the first
 * failure is thrown.
 */
export async function startInstances(
  ports: readonly number[],
  optionsFor: (port: number) => InstanceOptions,
  keep: (instance: Instance) => void = () => undefined,
): Promise<Instance[]> {
  const results = await Promise.allSettled(ports.map((port) => startInstance(optionsFor(port))));
  const instances = results.flatMap((result) => (result.status === "fulfilled" ? [result.value] : []));
  instances.forEach(keep);
  const failed = results.find((result) => result.status === "rejected");
  if (failed) throw failed.reason;
  return instances;
}

// ---- nginx ----------------------------------------------------------------------------------

export interface NginxRunOptions {
  bin: string;
  /** nginx's prefix folder (created): the rendered config, pid, logs and temp files go here. */
  prefix: string;
  listen: { host: string; port: number };
  servers: readonly string[];
  onLine?: SpawnOptions["onLine"];
}

export interface Nginx extends Child {
  url: string;
  configPath: string;
  accessLog: string;
}

/** Renders deploy/nginx.conf.template into `prefix` and runs nginx in the foreground. */
export async function startNginx(options: NginxRunOptions): Promise<Nginx> {
  mkdirSync(path.join(options.prefix, "logs"), { recursive: true });
  // Workers started by a root master run as nobody: they must reach the prefix folder.
  chmodSync(options.prefix, 0o755);
  const configPath = path.join(options.prefix, "nginx.conf");
  writeFileSync(configPath, renderTemplate({ listen: `${options.listen.host}:${options.listen.port}`, servers: options.servers }));
  const child = spawnChild(
    `nginx :${options.listen.port}`,
    options.bin,
    ["-p", `${options.prefix}/`, "-c", configPath, "-e", "stderr", "-g", "daemon off;"],
    { cwd: options.prefix, ...(options.onLine ? { onLine: options.onLine } : {}) },
  );
  // nginx says nothing when it is ready: wait until its port answers (or it exits).
  const deadline = Date.now() + 10_000;
  while (!(await portOpen(options.listen.port, options.listen.host))) {
    if (!child.running() || Date.now() > deadline) {
      const info = await child.stop({ signal: "SIGKILL" });
      throw new Error(`nginx did not start (${describeExit(info)}):\n${child.output()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return Object.assign(child, {
    url: `http://${options.listen.host}:${options.listen.port}`,
    configPath,
    accessLog: path.join(options.prefix, "logs", "access.log"),
  });
}
