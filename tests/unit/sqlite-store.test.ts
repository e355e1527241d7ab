// lib/store/sqlite-store.ts (and the memory store beside it) without a server: usage summed per
// user and per UTC day, and the migration of an older database.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import Database from "better-sqlite3";
import { utcDay } from "../../lib/model/usage.ts";
import { SCHEMA_VERSION, SqliteStore } from "../../lib/store/sqlite-store.ts";
import { MemoryStore, type SessionStore } from "../../lib/store/store.ts";

describe("usage in the store", () => {
  const call = (turnId: string, at: number, prompt: number, completion: number, cached = 0) => ({
    userId: "u1",
    sessionId: "s1",
    turnId,
    at,
    day: utcDay(at),
    usage: {
      prompt_tokens: prompt,
      completion_tokens: completion,
      cached_tokens: cached,
      total_tokens: prompt + completion,
      model_calls: 1,
    },
  });

  async function exercise(store: SessionStore): Promise<void> {
    const today = Date.UTC(2026, 10, 29, 12);
    const yesterday = today - 86_400_000;
    await store.recordUsage(call("t0", yesterday, 100, 10));
    await store.recordUsage(call("t1", today, 200, 20, 128));
    await store.recordUsage(call("t1", today + 1000, 300, 30));
    const summary = await store.usage("u1", utcDay(today));
    assert.deepEqual(summary, {
      total: { prompt_tokens: 600, completion_tokens: 60, cached_tokens: 128, total_tokens: 660, model_calls: 3 },
      today: 550,
    });
    assert.equal((await store.usage("u1", utcDay(yesterday))).today, 110);
    assert.deepEqual(await store.usage("nobody", utcDay(today)), {
      total: { prompt_tokens: 0, completion_tokens: 0, cached_tokens: 0, total_tokens: 0, model_calls: 0 },
      today: 0,
    });
  }

  test("SQLite and memory stores sum per user and per UTC day", async () => {
    for (const store of [new SqliteStore(":memory:"), new MemoryStore()]) {
      await exercise(store);
      await store.close();
    }
  });

  test("a database of schema version 1 is migrated, its conversations kept; usage outlives a New chat; the purge follows the retention", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "mcp-agent-migrate-"));
    const file = path.join(dir, "sessions.db");
    try {
      const old = new Database(file);
      old.exec(`CREATE TABLE sessions (user_id TEXT PRIMARY KEY, session_id TEXT NOT NULL UNIQUE, created_at INTEGER NOT NULL,
                  last_activity INTEGER NOT NULL, message_count INTEGER NOT NULL);
                CREATE TABLE entries (session_id TEXT NOT NULL, seq INTEGER NOT NULL, turn_id TEXT NOT NULL, message TEXT NOT NULL,
                  status TEXT, tool TEXT, PRIMARY KEY (session_id, seq)) WITHOUT ROWID;
                INSERT INTO sessions VALUES ('u1', 's1', 1, 2, 1);
                INSERT INTO entries VALUES ('s1', 0, 't0', '{"role":"user","content":"kept"}', 'ok', NULL);`);
      old.pragma("user_version = 1");
      old.close();
      const store = new SqliteStore(file);
      assert.equal(SCHEMA_VERSION, 3);
      const loaded = await store.load("u1", 10);
      assert.equal(loaded?.entries[0]?.message.content, "kept");
      const now = Date.now();
      await store.recordUsage({ ...call("t1", now, 10, 5), day: utcDay(now) });
      await store.remove("u1");
      assert.equal((await store.usage("u1", utcDay(now))).total.total_tokens, 15, "a New chat does not reset usage");
      await store.purge(now + 1, new Set());
      assert.equal((await store.usage("u1", utcDay(now))).total.total_tokens, 0, "usage older than the retention is purged");
      await store.close();
      const reopened = new Database(file, { readonly: true });
      assert.equal(reopened.pragma("user_version", { simple: true }), 3);
      reopened.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
