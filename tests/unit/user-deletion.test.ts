// A user whose session the retention purge deletes is gone: their sealed OAuth records and the
// servers they added go with it, in SQLite and in Redis (real redis-server), while a New chat
// (the store's remove) keeps them and other users keep theirs.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import Database from "better-sqlite3";
import { Redis } from "ioredis";
import { freePorts, REDIS_CANDIDATES, startRedis } from "../../deploy/processes.ts";
import { SealedRecords } from "../../lib/oauth/records.ts";
import { Vault } from "../../lib/oauth/vault.ts";
import { KEY_PREFIX } from "../../lib/store/redis-keys.ts";
import { RedisStore } from "../../lib/store/redis-store.ts";
import { SqliteStore } from "../../lib/store/sqlite-store.ts";
import type { SessionStore } from "../../lib/store/store.ts";
import { externalSkip, findExecutable } from "../helpers/external.ts";

const DAY_MS = 86_400_000;
const NOW = Date.now();

/** u-old: idle 40 days (purged at a 30-day retention); u-new: active now; u-chat: started a New chat. */
async function seed(store: SessionStore): Promise<SealedRecords> {
  const records = new SealedRecords(store, () => new Vault(randomBytes(32)));
  for (const [userId, lastActivity] of [
    ["u-old", NOW - 40 * DAY_MS],
    ["u-new", NOW],
    ["u-chat", NOW - 40 * DAY_MS],
  ] as const) {
    await store.saveSession({ userId, sessionId: `s-${userId}`, createdAt: lastActivity, lastActivity, messageCount: 1 });
    await records.set(userId, "oauth:github", "tokens", { tokens: { access_token: `at-${userId}`, token_type: "Bearer" } });
    await records.set(userId, "oauth:github", "client", { client_id: `client-${userId}` });
    await records.set(userId, "user_servers", "linear", { url: "https://mcp.linear.app/mcp", headers: {} });
  }
  return records;
}

async function assertPurged(store: SessionStore, records: SealedRecords): Promise<void> {
  // A New chat deletes the conversation only: the user's tokens and servers stay.
  await store.remove("u-chat");
  assert.deepEqual(await records.get("u-chat", "oauth:github", "tokens"), { tokens: { access_token: "at-u-chat", token_type: "Bearer" } });
  const purged = await store.purge(NOW - 30 * DAY_MS, new Set());
  assert.deepEqual(purged, ["u-old"]);
  assert.equal(await store.load("u-old", 10), undefined);
  assert.equal(await records.get("u-old", "oauth:github", "tokens"), undefined, "the purged user's tokens are gone");
  assert.equal(await records.get("u-old", "oauth:github", "client"), undefined, "and their client registration");
  assert.deepEqual(await records.list("u-old", "user_servers"), [], "and the servers they added");
  assert.deepEqual(await records.list("u-new", "user_servers"), [
    { name: "linear", value: { url: "https://mcp.linear.app/mcp", headers: {} } },
  ]);
  assert.deepEqual(await records.get("u-new", "oauth:github", "tokens"), { tokens: { access_token: "at-u-new", token_type: "Bearer" } });
  assert.deepEqual(await records.get("u-chat", "oauth:github", "client"), { client_id: "client-u-chat" });
}

describe("deleting a user with the retention purge", () => {
  test("SQLite: the user's user_data rows are deleted with their session", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "mcp-agent-user-deletion-"));
    const file = path.join(dir, "sessions.db");
    try {
      const store = new SqliteStore(file);
      const records = await seed(store);
      await assertPurged(store, records);
      await store.close();
      const db = new Database(file, { readonly: true });
      const rows = db.prepare("SELECT user_id, count(*) AS n FROM user_data GROUP BY user_id ORDER BY user_id").all();
      db.close();
      assert.deepEqual(rows, [
        { user_id: "u-chat", n: 3 },
        { user_id: "u-new", n: 3 },
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  const redisServer = findExecutable("REDIS_SERVER_PATH", REDIS_CANDIDATES);
  const skip = externalSkip("redis-server", redisServer, "redis-server");
  const cleanup: (() => unknown)[] = [];
  after(async () => {
    for (const step of cleanup.reverse()) await step();
  });

  test("Redis: the user's userdata hashes are deleted with their session", { skip }, async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "redis-user-deletion-"));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const [port = 0] = await freePorts(1);
    const redis = await startRedis({ bin: redisServer ?? "redis-server", port, dir });
    cleanup.push(() => redis.stop());
    const client = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    cleanup.push(() => client.disconnect());
    const store = new RedisStore(client);
    const records = await seed(store);
    await assertPurged(store, records);
    const left = (await client.keys(`${KEY_PREFIX}userdata*`)).sort();
    assert.equal(left.filter((key) => key.includes("u-old")).length, 0, left.join(", "));
    assert.ok(left.includes(`${KEY_PREFIX}userdata:u-new:user_servers`), left.join(", "));
  });
});
