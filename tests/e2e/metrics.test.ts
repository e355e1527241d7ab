// GET /metrics in the Prometheus text format, behind the token when one is set,
// with live numbers: scraped before and after a turn, they move.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { lastUserText, startModelServer, toolDirective, type ModelServer } from "../helpers/model-server.ts";
import { isErrorCode } from "../../lib/protocol.ts";
import { baseConfig, connect, startServer, testServerEntry, until, type RunningServer, TestClient } from "../helpers/harness.ts";

const TOKEN = "metrics-token-123456";
let model: ModelServer;
let running: RunningServer;

before(async () => {
  model = await startModelServer({ responder: (request) => toolDirective(request) ?? { content: `echo: ${lastUserText(request)}` } });
  running = await startServer({
    config: baseConfig(model.baseUrl, { test: testServerEntry }, { limits: { max_message_chars: 50, max_sockets_per_user: 2 } }),
    secrets: { openai: { api_key: "sk-test-metrics" }, server: { auth_token: TOKEN } },
  });
});
after(async () => {
  await running.close();
  await model.close();
});

async function scrape(): Promise<Map<string, number>> {
  const res = await fetch(`${running.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
  const samples = new Map<string, number>();
  for (const line of (await res.text()).split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const at = line.lastIndexOf(" ");
    samples.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return samples;
}

const value = (samples: Map<string, number>, name: string) => samples.get(name) ?? 0;

async function turnEnd(client: TestClient, message: string) {
  client.send({ message });
  return client.nextMatching((frame) => frame.type === "answer" || frame.type === "error");
}

test("/metrics needs the token when one is set", async () => {
  const res = await fetch(`${running.url}/metrics`);
  assert.equal(res.status, 401);
  assert.equal(res.headers.get("www-authenticate"), "Bearer");
});

test("the numbers move with a turn: sessions, sockets, turns, durations, tool calls, MCP servers, tokens, refusals", async () => {
  const before = await scrape();
  const client = await connect(running.wsUrl("watched", `?stream=1&token=${TOKEN}`));
  await client.next();
  const answer = await turnEnd(client, 'CALL test_echo {"text":"hi"}');
  assert.equal(answer.type, "answer");
  client.send({ message: "x".repeat(51) });
  assert.equal((await client.nextMatching((frame) => frame.type === "error")).code, "message_too_long");
  const during = await scrape();
  assert.equal(value(during, 'mcp_agent_sessions{state="live"}') - value(before, 'mcp_agent_sessions{state="live"}'), 1);
  assert.ok(value(during, 'mcp_agent_sessions{state="stored"}') >= 1);
  assert.equal(value(during, "mcp_agent_open_sockets") - value(before, "mcp_agent_open_sockets"), 1);
  assert.equal(value(during, 'mcp_agent_turns_total{outcome="ok"}') - value(before, 'mcp_agent_turns_total{outcome="ok"}'), 1);
  assert.equal(
    value(during, 'mcp_agent_turn_duration_seconds_count{outcome="ok"}') -
      value(before, 'mcp_agent_turn_duration_seconds_count{outcome="ok"}'),
    1,
  );
  assert.equal(
    value(during, 'mcp_agent_model_call_duration_seconds_count{outcome="ok"}') -
      value(before, 'mcp_agent_model_call_duration_seconds_count{outcome="ok"}'),
    2,
  );
  assert.equal(value(during, 'mcp_agent_tool_calls_total{server="test",tool="echo",outcome="ok"}'), 1);
  assert.ok(
    value(during, 'mcp_agent_mcp_servers{state="ready"}') >= 1,
    JSON.stringify([...during].filter(([k]) => k.includes("mcp_servers"))),
  );
  const usage = answer.usage as Record<string, number>;
  assert.equal(
    value(during, 'mcp_agent_tokens_total{kind="prompt"}') - value(before, 'mcp_agent_tokens_total{kind="prompt"}'),
    usage.prompt_tokens,
  );
  assert.equal(
    value(during, 'mcp_agent_tokens_total{kind="completion"}') - value(before, 'mcp_agent_tokens_total{kind="completion"}'),
    usage.completion_tokens,
  );
  // Refusals are counted by their code, the one the refused frame carried.
  assert.equal(value(during, 'mcp_agent_refusals_total{code="message_too_long"}'), 1);
  await client.close();
  // The socket count goes back down once the server has seen the close.
  await until(
    async () => value(await scrape(), "mcp_agent_open_sockets") === value(before, "mcp_agent_open_sockets"),
    "the open socket gauge to go back down",
  );
});

test("a refused connection is counted by the code its close reason starts with", async () => {
  const before = await scrape();
  const url = running.wsUrl("crowded", `?token=${TOKEN}`);
  const open = [await connect(url), await connect(url)];
  await Promise.all(open.map((client) => client.next()));
  const closed = await new TestClient(url).closed;
  assert.equal(closed.code, 1013);
  const code = closed.reason.split(":")[0];
  assert.equal(code, "too_many_sockets");
  const after = await scrape();
  assert.equal(value(after, `mcp_agent_refusals_total{code="${code}"}`) - value(before, `mcp_agent_refusals_total{code="${code}"}`), 1);
  // Each label is one of the protocol's codes: no English reason reaches a label.
  for (const [name] of after) {
    const label = /^mcp_agent_refusals_total\{code="([^"]*)"\}$/.exec(name)?.[1];
    if (label !== undefined) assert.ok(isErrorCode(label), `${label} is an error code`);
  }
  await Promise.all(open.map((client) => client.close()));
});

test("two servers in one process keep their own numbers", async () => {
  const other = await startServer({ config: baseConfig(model.baseUrl), secrets: { openai: { api_key: "sk-test-metrics" } } });
  try {
    const text = await (await fetch(`${other.url}/metrics`)).text();
    assert.doesNotMatch(text, /mcp_agent_turns_total\{outcome="ok"\} [1-9]/, "the other server's turns are not counted here");
    assert.match(text, /# TYPE mcp_agent_turns_total counter/);
  } finally {
    await other.close();
  }
});
