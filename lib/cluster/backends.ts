// Where sessions live and how instances coordinate, from `session.store`: memory or SQLite on one
// instance (LocalCoordinator), or Redis shared by a cluster (ClusterCoordinator).
import { ClusterCoordinator } from "./redis-coordinator.ts";
import { readFileSync } from "node:fs";
import type { ConnectionOptions } from "node:tls";
import { ConfigError, resolveConfigPath, type Config } from "../config.ts";
import type { Logger } from "../log.ts";
import { LocalCoordinator, type Coordinator } from "../session/coordinator.ts";
import { RedisStore } from "../store/redis-store.ts";
import { SqliteStore } from "../store/sqlite-store.ts";
import { MemoryStore, type SessionStore } from "../store/store.ts";

export interface Backends {
  store: SessionStore;
  coordinator: Coordinator;
  /** Cluster mode only: its health and the users live on any instance, for the routes. */
  cluster: ClusterCoordinator | undefined;
}

/** TLS options for ioredis from `redis.tls`; undefined leaves it to the URL (rediss:// turns TLS on). */
function redisTlsOptions(config: Config): ConnectionOptions | undefined {
  const tls = config.redis.tls;
  if (!tls) return undefined;
  const read = (file: string | undefined, key: string) => {
    if (file === undefined) return undefined;
    try {
      return readFileSync(resolveConfigPath(config, file));
    } catch (error) {
      throw new ConfigError(`redis.tls.${key}: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
    }
  };
  const ca = read(tls.ca_file, "ca_file");
  const cert = read(tls.cert_file, "cert_file");
  const key = read(tls.key_file, "key_file");
  return { rejectUnauthorized: tls.reject_unauthorized, ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}) };
}

export function openBackends(config: Config, log: Logger): Backends {
  switch (config.session.store) {
    case "redis": {
      const cluster = new ClusterCoordinator({
        url: config.redis.url,
        log,
        leaseMs: config.redis.lease_seconds * 1000,
        // parseConfig refuses session.store: redis without it.
        secret: config.redis.cluster_secret ?? "",
        tls: redisTlsOptions(config),
      });
      return { store: new RedisStore(cluster.redis), coordinator: cluster, cluster };
    }
    case "sqlite":
      return {
        store: new SqliteStore(resolveConfigPath(config, config.session.sqlite_path)),
        coordinator: new LocalCoordinator(),
        cluster: undefined,
      };
    case "memory":
      return { store: new MemoryStore(), coordinator: new LocalCoordinator(), cluster: undefined };
    default:
      return config.session.store satisfies never;
  }
}
