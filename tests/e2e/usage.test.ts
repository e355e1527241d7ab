// Token usage per model call and per turn (in the store, on the
// streaming answer frame, in /sessions/<user_id> and in the turn_end log line), and the daily
// token quota, which lives in the store: it survives a restart and holds across cluster instances.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import Database from "better-sqlite3";
import { Redis } from "ioredis";
import { lastUserText, startModelServer, toolDirective, type ModelServer } from "../helpers/model-server.ts";
import { ask, baseConfig, connectUser, readLog, startServer, testServerEntry, type Frame, type TestClient } from "../helpers/harness.ts";
import { clusterSkip, REDIS_SERVER } from "../helpers/cluster.ts";
import { freePorts, startRedis } from "../../deploy/processes.ts";
import { utcDay } from "../../lib/model/usage.ts";
import { keys } from "../../lib/store/redis-keys.ts";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";

let model: ModelServer;
before(async () => {
  model = await startModelServer({ responder: (request) => toolDirective(request) ?? { content: `echo: ${lastUserText(request)}` } });
});
after(() => model.close());

const secrets = { openai: { api_key: "sk-test-usage" } };

async function turnEnd(client: TestClient, message: string): Promise<Frame> {
  client.send({ message });
  return client.nextMatching((frame) => frame.type === "answer" || frame.type === "error");
}

async function getJson(url: string): Promise<Record<string, unknown>> {
  const res = await fetch(url);
  assert.equal(res.status, 200, `${url}: ${res.status}`);
  return (await res.json()) as Record<string, unknown>;
}

describe("usage", () => {
  test("a turn's usage reaches the streaming answer, the store, /sessions/<user_id> and the log; seed answers are unchanged", async () => {
    const running = await startServer({ config: baseConfig(model.baseUrl, { test: testServerEntry }), secrets });
    try {
      const { client } = await connectUser(running, "counted", "?stream=1");
      const first = model.requests.length;
      const answer = await turnEnd(client, 'CALL test_echo {"text":"hi"}');
      assert.equal(answer.type, "answer");
      const requests = model.requests.slice(first);
      assert.equal(requests.length, 2);
      assert.ok(
        requests.every((request) => request.stream_options?.include_usage === true),
        "usage is asked for in streamed responses",
      );
      // What the model reported for its two calls, summed.
      const usage = answer.usage as Record<string, number>;
      assert.equal(usage.model_calls, 2);
      assert.ok(usage.prompt_tokens > 0 && usage.completion_tokens > 0, JSON.stringify(usage));
      assert.equal(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens);
      assert.equal(usage.cached_tokens, 0);
      assert.equal(usage.estimated, undefined, "reported, not estimated");

      // Per model call, in the store (SQLite), with the turn they belong to.
      const db = new Database(path.join(running.configDir, "data/sessions.db"), { readonly: true });
      const calls = db.prepare("SELECT * FROM usage_calls WHERE user_id = ? ORDER BY at").all("counted") as Record<string, unknown>[];
      db.close();
      assert.equal(calls.length, 2);
      assert.equal(calls[0]?.turn_id, answer.turn_id);
      assert.equal(
        calls.reduce((sum, call) => sum + Number(call.prompt_tokens), 0),
        usage.prompt_tokens,
      );

      // A second turn adds up in /sessions/<user_id>; a long prompt shared with the previous one is cached.
      const second = await turnEnd(client, `again ${"many words to make the prompt long. ".repeat(200)}`);
      const third = await turnEnd(client, "and once more");
      assert.ok((third.usage as Record<string, number>).cached_tokens > 0, "cached prompt tokens are reported");
      const info = await getJson(`${running.url}/sessions/counted`);
      const totals = info.usage as Record<string, number>;
      for (const kind of ["prompt_tokens", "completion_tokens", "cached_tokens", "total_tokens", "model_calls"]) {
        const sum = [answer, second, third].reduce((acc, frame) => acc + (frame.usage as Record<string, number>)[kind]!, 0);
        assert.equal(totals[kind], sum, kind);
      }
      assert.equal(totals.tokens_today, totals.total_tokens);
      assert.equal(totals.tokens_per_day, null, "no quota by default");

      // Per turn in the log.
      const ends = readLog(running.logPath).filter((line) => line.event === "turn_end" && line.user_id === "counted");
      assert.deepEqual(ends[0]?.usage, answer.usage);

      // A seed socket's answer frame keeps the seed's three keys.
      const seed = await connectUser(running, "counted");
      const seedAnswer = await ask(seed.client, "plain");
      assert.deepEqual(Object.keys(seedAnswer), ["message", "user_id", "session_id"]);
      await seed.client.close();
      await client.close();

      // Usage belongs to the user: a New chat does not reset it.
      const again = await connectUser(running, "counted", "?stream=1");
      again.client.send({ type: "reset" });
      await again.client.nextMatching((frame) => frame.type === "reset");
      const after = (await getJson(`${running.url}/sessions/counted`)).usage as Record<string, number>;
      assert.ok(after.total_tokens > totals.total_tokens, "the seed turn was counted too, and nothing was reset");
      await again.client.close();
    } finally {
      await running.close();
    }
  });

  test("an endpoint that reports no usage is counted with the tokenizer (estimated)", async () => {
    const running = await startServer({ config: baseConfig(model.baseUrl), secrets });
    try {
      const { client } = await connectUser(running, "uncounted", "?stream=1");
      model.queue({ content: "no usage here", noUsage: true });
      const answer = await turnEnd(client, "hello");
      const usage = answer.usage as Record<string, unknown>;
      assert.equal(usage.estimated, true);
      assert.ok(Number(usage.prompt_tokens) > 10 && Number(usage.completion_tokens) >= 3, JSON.stringify(usage));
      await client.close();
    } finally {
      await running.close();
    }
  });
});

describe("daily token quota", () => {
  test("past the quota a message gets an error frame, on seed and streaming sockets, also after a restart", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "mcp-agent-quota-"));
    const config = baseConfig(model.baseUrl, {}, { limits: { tokens_per_day: 300 } });
    const first = await startServer({ config, secrets, keepDir: true });
    const configDir = first.configDir;
    try {
      const { client } = await connectUser(first, "thrifty", "?stream=1");
      let end = await turnEnd(client, "first");
      assert.equal(end.type, "answer");
      // A long message pushes the day's count past 300 (a turn that starts under the quota runs to its end).
      end = await turnEnd(client, "x ".repeat(400));
      assert.equal(end.type, "answer");
      const before = model.requests.length;
      end = await turnEnd(client, "one more");
      assert.equal(end.type, "error");
      assert.match(
        String(end.error),
        /^Daily token quota reached: \d+ of 300 tokens used today \(limits\.tokens_per_day\)\. It resets at midnight UTC \(\d{4}-\d\d-\d\dT00:00:00Z\), in /,
      );
      assert.equal(end.turn_id !== undefined, true);
      assert.equal(end.code, "quota_exceeded");
      assert.equal(model.requests.length, before, "the model was not called");
      await client.close();
    } finally {
      await first.close();
    }
    // A restart on the same database: still refused.
    const second = await startServer({ configDir, secrets });
    try {
      const seed = await connectUser(second, "thrifty");
      const refusal = await ask(seed.client, "after the restart");
      assert.deepEqual(refusal, { error: refusal.error, code: "quota_exceeded" });
      assert.match(String(refusal.error), /^Daily token quota reached: .*midnight UTC/);
      // Another user has their own quota.
      const other = await connectUser(second, "someone_else");
      assert.equal(typeof (await ask(other.client, "hi")).message, "string");
      const scrape = await (await fetch(`${second.url}/metrics`)).text();
      assert.match(scrape, /mcp_agent_refusals_total\{code="quota_exceeded"\} 1/);
      await seed.client.close();
      await other.client.close();
    } finally {
      await second.close();
      rmSync(configDir, { recursive: true, force: true });
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("the quota is shared by cluster instances (counted in Redis with INCRBY, expiring)", { skip: clusterSkip() }, async () => {
    const redisDir = mkdtempSync(path.join(tmpdir(), "mcp-agent-quota-redis-"));
    const [port = 0] = await freePorts(1);
    const redis = await startRedis({ bin: REDIS_SERVER ?? "redis-server", port, dir: redisDir });
    const config = baseConfig(
      model.baseUrl,
      {},
      {
        session: { store: "redis" },
        redis: { url: redis.url, cluster_secret: "quota-test-cluster-secret-0123456789" },
        limits: { tokens_per_day: 200 },
      },
    );
    const a = await startServer({ config, secrets });
    const b = await startServer({ config, secrets });
    const client = new Redis(redis.url, { lazyConnect: true });
    try {
      const onA = await connectUser(a, "shared_quota", "?stream=1");
      assert.equal((await turnEnd(onA.client, "x ".repeat(300))).type, "answer");
      await onA.client.close();
      // Instance B sees what A counted.
      const onB = await connectUser(b, "shared_quota", "?stream=1");
      const end = await turnEnd(onB.client, "on the other instance");
      assert.equal(end.type, "error");
      assert.match(String(end.error), /^Daily token quota reached: \d+ of 200 tokens/);
      assert.equal(end.code, "quota_exceeded");
      await onB.client.close();
      await client.connect();
      const day = utcDay(Date.now());
      const ttl = await client.ttl(keys.usageDay("shared_quota", day));
      assert.ok(ttl > 0 && ttl <= 2 * 86_400, `the day's counter expires (ttl ${ttl})`);
      const usage = (await getJson(`${b.url}/sessions/shared_quota`)).usage as Record<string, number>;
      assert.equal(usage.tokens_today, Number(await client.get(keys.usageDay("shared_quota", day))));
    } finally {
      client.disconnect();
      await a.close();
      await b.close();
      await redis.stop({ signal: "SIGTERM" });
      rmSync(redisDir, { recursive: true, force: true });
    }
  });
});
