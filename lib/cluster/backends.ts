// Where sessions live and how instances coordinate, from `session.store`: memory or SQLite on one
// instance (LocalCoordinator), or Redis shared by a cluster (ClusterCoordinator).
import { ClusterCoordinator } from "./redis-coordinator.ts";
import { resolveConfigPath, type Config } from "../config.ts";
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

export function openBackends(config: Config, log: Logger): Backends {
  switch (config.session.store) {
    case "redis": {
      const cluster = new ClusterCoordinator({ url: config.redis.url, log, leaseMs: config.redis.lease_seconds * 1000 });
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
