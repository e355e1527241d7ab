// A real cluster for tests: redis-server and nginx (skipped with the apt command when missing,
// a failure with REQUIRE_EXTERNAL=1) and server instances as spawned processes with
// `session.store: redis`, started by the same code as `npm run cluster` (deploy/processes.ts).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { stringify } from "yaml";
import {
  NGINX_CANDIDATES,
  REDIS_CANDIDATES,
  freePorts,
  startInstances,
  startNginx,
  startRedis,
  randomSecret,
  stopAll,
  type Child,
  type Instance,
  type Nginx,
} from "../../deploy/processes.ts";
import { externalSkip, findExecutable } from "./external.ts";
import { readLog, type Frame } from "./harness.ts";

export const REDIS_SERVER = findExecutable("REDIS_SERVER_PATH", REDIS_CANDIDATES);
export const NGINX = findExecutable("NGINX_PATH", NGINX_CANDIDATES);

/** The `skip` option for tests that need redis-server and nginx. */
export function clusterSkip(): string | false {
  return externalSkip("redis-server", REDIS_SERVER, "redis-server") || externalSkip("nginx", NGINX, "nginx");
}

export interface TestCluster {
  /** Holds the source config (and its secrets), the instances' folders and logs, Redis and nginx. */
  dir: string;
  configPath: string;
  redis: Child & { url: string };
  redisPort: number;
  instances: Instance[];
  nginx: Nginx;
  /** ws://… of /ws/<user_id> through nginx. */
  wsUrl(userId: string, query?: string): string;
  /** Each instance's JSON-lines log. */
  log(instance: Instance): Frame[];
  /** Starts redis-server again on the same port (after the test stopped it). */
  restartRedis(): Promise<void>;
  close(): Promise<void>;
}

export async function startTestCluster(options: {
  instances: number;
  config: Record<string, unknown>;
  secrets?: Record<string, unknown>;
}): Promise<TestCluster> {
  const redisBin = REDIS_SERVER;
  const nginxBin = NGINX;
  if (!redisBin || !nginxBin) throw new Error("redis-server and nginx are needed (see clusterSkip)");
  const dir = mkdtempSync(path.join(tmpdir(), "mcp-agent-cluster-test-"));
  const configPath = path.join(dir, "mcp_agent.config.yaml");
  writeFileSync(configPath, stringify(options.config));
  if (options.secrets) writeFileSync(path.join(dir, "mcp_agent.secrets.yaml"), stringify(options.secrets));
  const started: Child[] = [];
  const stopStarted = () => stopAll(started, 3000);
  try {
    const [redisPort = 0, nginxPort = 0, ...instancePorts] = await freePorts(options.instances + 2);
    const redisDir = path.join(dir, "redis");
    // As `npm run cluster` does: a password on Redis and a secret that signs the instances' messages.
    const password = randomSecret();
    const clusterSecret = randomSecret();
    let redis = await startRedis({ bin: redisBin, port: redisPort, dir: redisDir, password });
    started.push(redis);
    // All of them are stopped if one fails.
    const instances = await startInstances(
      instancePorts,
      (port) => ({
        sourcePath: configPath,
        sourceDir: dir,
        redisUrl: redis.url,
        clusterSecret,
        port,
        dir: path.join(dir, `instance-${port}`),
        env: { PATH: process.env.PATH, HOME: process.env.HOME },
      }),
      (instance) => started.push(instance),
    );
    const nginx = await startNginx({
      bin: nginxBin,
      prefix: path.join(dir, "nginx"),
      listen: { host: "127.0.0.1", port: nginxPort },
      servers: instances.map((instance) => `127.0.0.1:${instance.port}`),
    });
    started.push(nginx);
    return {
      dir,
      configPath,
      get redis() {
        return redis;
      },
      redisPort,
      instances,
      nginx,
      wsUrl: (userId, query = "") => `ws://127.0.0.1:${nginxPort}/ws/${userId}${query}`,
      log: (instance) => (instance.logPattern ? readLog(instance.logPattern) : []),
      restartRedis: async () => {
        redis = await startRedis({ bin: redisBin, port: redisPort, dir: redisDir, password });
        started.push(redis);
      },
      close: async () => {
        await stopStarted();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await stopStarted();
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}
