// `npm run cluster`: a whole cluster on this machine, for local testing. Starts redis-server,
// N server instances (`session.store: redis`, each its own process) and nginx in front of them
// (deploy/nginx.conf.template), prints the URL, and stops them all on Ctrl-C.
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import {
  describeExit,
  killAllNow,
  liveChildren,
  nginxProgram,
  portFree,
  redisProgram,
  startInstances,
  startNginx,
  startRedis,
  randomSecret,
  withoutCredentials,
  SECRETS_FILE,
  stopAll,
  type Child,
  type SpawnOptions,
} from "./processes.ts";

const USAGE = `Usage: npm run cluster -- [options]

Starts redis-server, N server instances with session.store: redis, and nginx in front of them,
all on this machine. Ctrl-C stops every one of them and removes the temp folder.

Options:
  --port PORT         nginx's port: the cluster's URL (default 8000); instances listen on
                      PORT+1 ... PORT+N
  --instances N       how many server instances (default 3)
  --redis-port PORT   redis-server's port (default 6380; 6379 is left to a system Redis)
  --config FILE       the config every instance starts from (default ./mcp_agent.config.yaml);
                      mcp_agent.secrets.yaml beside it is used too
  -h, --help          show this help`;

function fail(message: string, code = 2): never {
  console.error(`${message}\n\n${USAGE}`);
  process.exit(code);
}

function portOption(value: string | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  const port = Number(value);
  if (!/^\d+$/.test(value) || port < 1 || port > 65535) fail(`${name} must be a port from 1 to 65535, got "${value}"`);
  return port;
}

let values;
try {
  ({ values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      port: { type: "string" },
      instances: { type: "string" },
      "redis-port": { type: "string" },
      config: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  }));
} catch (error) {
  fail((error as Error).message);
}
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}
const port = portOption(values.port, 8000, "--port");
const redisPort = portOption(values["redis-port"], 6380, "--redis-port");
const count = values.instances === undefined ? 3 : Number(values.instances);
if (!Number.isInteger(count) || count < 1 || count > 64) fail(`--instances must be a whole number from 1 to 64, got "${values.instances}"`);
const instancePorts = Array.from({ length: count }, (_, i) => port + 1 + i);
if ((instancePorts.at(-1) ?? 0) > 65535) fail(`--port ${port} leaves no room for ${count} instances above it`);
const configPath = path.resolve(values.config ?? "mcp_agent.config.yaml");
if (!existsSync(configPath)) fail(`${values.config ?? "mcp_agent.config.yaml"}: config file not found`);

const redisBin = redisProgram();
const nginxBin = nginxProgram();
const missing = [...(redisBin ? [] : ["redis-server"]), ...(nginxBin ? [] : ["nginx"])];
if (missing.length > 0) {
  console.error(`${missing.join(" and ")} not found: apt-get install -y ${missing.join(" ")}`);
  process.exit(1);
}
if (instancePorts.includes(redisPort) || redisPort === port)
  fail(`--redis-port ${redisPort} collides with the nginx or instance ports (${port}-${port + count})`);
for (const [name, wanted] of [
  ["nginx (--port)", port],
  ["redis-server (--redis-port)", redisPort],
  ...instancePorts.map((p, i) => [`instance ${i + 1}`, p] as const),
] as const) {
  if (!(await portFree(wanted))) fail(`port ${wanted} for ${name} is already in use: choose other ports with --port / --redis-port`, 1);
}

// Everything this run writes (generated configs, secrets copies, Redis' folder, nginx's prefix).
const tmp = mkdtempSync(path.join(tmpdir(), "mcp-agent-cluster-"));
const removeTmp = () => rmSync(tmp, { recursive: true, force: true });
// Last resort, also on an uncaught error: no child and no temp folder outlives this process.
process.on("exit", () => {
  killAllNow();
  removeTmp();
});

let stopping: Promise<void> | undefined;
let stopAsked = 0;
function stop(reason: string, code: number): void {
  if (stopping) {
    // Ctrl-C reaches us twice at once (from the terminal, and relayed by tsx): say so only after.
    if (Date.now() - stopAsked > 1000) console.log("Still stopping...");
    return;
  }
  stopAsked = Date.now();
  console.log(`\n${reason}: stopping nginx, the instances, then Redis...`);
  stopping = stopAll(liveChildren)
    .catch((error: unknown) => console.error(`stop failed: ${(error as Error).message}`))
    .finally(() => {
      removeTmp();
      console.log(`Cluster stopped; ${tmp} removed.`);
      process.exit(code);
    });
}
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(signal, () => stop(signal, 0));
// Whoever started us (npm, a shell) went away without passing a signal on: stop too.
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) stop("the parent process exited", 0);
}, 1000).unref();

/** Every line a child writes, with whose it is. */
const prefixed =
  (label: string): SpawnOptions["onLine"] =>
  (line, stream) =>
    (stream === "stderr" ? process.stderr : process.stdout).write(`[${label}] ${line}\n`);

/** A child that exits while the cluster runs is reported; the rest go on (that is the point). */
function watch(child: Child, consequence: string): void {
  void child.exited.then((info) => {
    if (!stopping) console.log(`${child.name} exited (${describeExit(info)}): ${consequence}`);
  });
}

try {
  // A password and a cluster secret of this run only: nobody else on the machine can use this Redis, nor forge an instance's message.
  const clusterSecret = randomSecret();
  const redis = await startRedis({
    bin: redisBin ?? "redis-server",
    port: redisPort,
    dir: path.join(tmp, "redis"),
    password: randomSecret(),
  });
  watch(redis, "instances answer /health with 503 and refuse new turns until a Redis is back on that port");
  console.log(
    `redis-server: ${withoutCredentials(redis.url)} (pid ${redis.pid}; password protected, see the instances' ${SECRETS_FILE}; no persistence: the data goes with it)`,
  );

  // Every child is in the registry stopAll() empties, so a failed start leaves none behind.
  const instances = await startInstances(instancePorts, (port) => ({
    sourcePath: configPath,
    sourceDir: path.dirname(configPath),
    redisUrl: redis.url,
    clusterSecret,
    port,
    dir: path.join(tmp, `instance-${port}`),
    onLine: prefixed(`:${port}`),
  }));
  for (const [i, instance] of instances.entries()) {
    watch(instance, "nginx sends its users to the other instances");
    console.log(`instance ${i + 1}: ${instance.url} (pid ${instance.pid}${instance.logPattern ? `, log ${instance.logPattern}` : ""})`);
  }

  const nginx = await startNginx({
    bin: nginxBin ?? "nginx",
    prefix: path.join(tmp, "nginx"),
    listen: { host: "127.0.0.1", port },
    servers: instances.map((instance) => `127.0.0.1:${instance.port}`),
    onLine: prefixed("nginx"),
  });
  watch(nginx, "the cluster's URL is gone; the instances still answer on their own ports");
  console.log(`nginx: ${nginx.url} (pid ${nginx.pid}, config ${nginx.configPath})`);
  console.log(`temp folder: ${tmp}`);
  console.log(`Cluster ready: ${nginx.url} (WebSocket: ${nginx.url.replace(/^http/, "ws")}/ws/<user_id>)`);
  console.log("Press Ctrl-C to stop everything.");
} catch (error) {
  console.error(`Cannot start the cluster: ${(error as Error).message}`);
  if (!stopping) stop("start failed", 1);
}
