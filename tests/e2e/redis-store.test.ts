// The Redis store and lease against a real redis-server (with a password): a turn's writes are
// one fenced script call, refused whole for an instance whose lease was taken over; a lease and
// its fence token come in one round trip. Counts Redis' own commandstats to show the round trips.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { Redis } from "ioredis";
import { ClusterCoordinator } from "../../lib/cluster/redis-coordinator.ts";
import { createLogger } from "../../lib/log.ts";
import { RedisStore } from "../../lib/store/redis-store.ts";
import { freePorts, randomSecret, startRedis, stopAll, type Child } from "../../deploy/processes.ts";
import { REDIS_SERVER } from "../helpers/cluster.ts";
import { externalSkip } from "../helpers/external.ts";

const skip = externalSkip("redis-server", REDIS_SERVER, "redis-server");
let dir = "";
let redis: (Child & { url: string }) | undefined;
let coordinator: ClusterCoordinator | undefined;
let admin: Redis | undefined;

before(async () => {
  if (skip || !REDIS_SERVER) return;
  dir = mkdtempSync(path.join(tmpdir(), "mcp-agent-redis-store-"));
  const [port = 0] = await freePorts(1);
  redis = await startRedis({ bin: REDIS_SERVER, port, dir, password: randomSecret() });
  const log = createLogger({ level: "error", console: false, filePath: path.join(dir, "log.jsonl"), secrets: [] });
  coordinator = new ClusterCoordinator({ url: redis.url, log, leaseMs: 10_000, secret: randomSecret() });
  await coordinator.connected();
  admin = new Redis(redis.url);
});

after(async () => {
  await coordinator?.close();
  admin?.disconnect();
  if (redis) await stopAll([redis]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function commandCalls(): Promise<number> {
  const info = (await admin?.info("commandstats")) ?? "";
  let total = 0;
  for (const found of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) if (found[1] !== "info") total += Number(found[2]);
  return total;
}

async function evalCalls(): Promise<number> {
  const info = (await admin?.info("commandstats")) ?? "";
  return Number(/^cmdstat_eval:calls=(\d+)/m.exec(info)?.[1] ?? 0);
}

test("a lease and its fence token are one script call; a second instance waits for the release", { skip }, async () => {
  assert.ok(coordinator);
  const evalsBefore = await evalCalls();
  const lease = await coordinator.acquire("alice", new AbortController().signal);
  assert.equal(await evalCalls(), evalsBefore + 1);
  assert.ok(lease.fence && lease.fence.token >= 1);
  const second = coordinator.acquire("alice", AbortSignal.timeout(5000));
  let secondGot = false;
  void second.then(() => (secondGot = true));
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(secondGot, false);
  await lease.release();
  const next = await second;
  assert.equal(next.fence?.token, (lease.fence?.token ?? 0) + 1);
  await next.release();
});

test("a turn's end is one fenced write: entries, status and session record; a stale fence writes nothing", { skip }, async () => {
  assert.ok(coordinator && admin);
  const store = new RedisStore(coordinator.redis);
  const lease = await coordinator.acquire("bob", new AbortController().signal);
  const fence = lease.fence;
  assert.ok(fence);
  const record = { userId: "bob", sessionId: "s-bob", createdAt: 1000, lastActivity: 2000, messageCount: 2 };
  await store.append("s-bob", [{ turnId: "t1", message: { role: "user", content: "hi" }, status: "running" }], fence);
  const callsBefore = await commandCalls();
  const evalsBefore = await evalCalls();
  await store.endTurn("s-bob", [{ turnId: "t1", message: { role: "assistant", content: "hello" } }], "t1", "ok", record, fence);
  assert.equal((await evalCalls()) - evalsBefore, 1, "one script call for the whole end of the turn");
  assert.ok((await commandCalls()) - callsBefore >= 5, "the script ran every write");
  const loaded = await store.load("bob", 100);
  assert.deepEqual(
    loaded?.entries.map((entry) => [entry.message.role, entry.status]),
    [
      ["user", "ok"],
      ["assistant", undefined],
    ],
  );
  assert.deepEqual(loaded?.record, record);
  await lease.release();

  // Another instance took the lease over: the old token's writes are refused, all of them.
  const taken = await coordinator.acquire("bob", new AbortController().signal);
  await assert.rejects(
    store.endTurn(
      "s-bob",
      [{ turnId: "t2", message: { role: "user", content: "late" } }],
      "t2",
      "ok",
      { ...record, messageCount: 9 },
      fence,
    ),
    /lost the user's turn lease/,
  );
  const after = await store.load("bob", 100);
  assert.equal(after?.entries.length, 2);
  assert.equal(after?.record.messageCount, 2);
  await store.setTurnStatus("s-bob", "t1", "error", taken.fence);
  assert.equal((await store.load("bob", 100))?.entries[0]?.status, "error");
  await taken.release();
});
