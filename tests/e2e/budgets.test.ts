// Budgets on what a model endpoint and an MCP server send: each attack runs against a server in
// its own process while another user chats, and after it the server's memory is measured. The
// bounds are generous (this machine is shared): /health answers, the bystander's turn completes,
// the attacker hears which limit it hit, and the server grows by less than a stated budget.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import { rmSync, statSync } from "node:fs";
import { startHostileModel, type HostileModel } from "../helpers/hostile-model.ts";
import {
  ask,
  baseConfig,
  connect,
  connectUser,
  makeConfigDir,
  ROOT,
  spawnServer,
  startServer,
  stopSpawned,
  testServerEntry,
  type SpawnedServer,
} from "../helpers/harness.ts";
import { startModelServer } from "../helpers/model-server.ts";
import { MB, processMemory } from "../helpers/proc.ts";

/** What one attack may leave the server holding, beyond where it started (RSS). */
const MEMORY_BUDGET = 400 * MB;

let model: HostileModel;
let mcp: ChildProcess;
let mcpUrl: string;
let server: SpawnedServer;
let dir: string;

before(async () => {
  model = await startHostileModel();
  mcp = spawn(process.execPath, [path.join(ROOT, "tests/fixtures/hostile-remote-mcp.mjs")], { stdio: ["ignore", "pipe", "inherit"] });
  mcpUrl = await new Promise<string>((resolve, reject) => {
    let out = "";
    mcp.stdout?.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      const port = /listening (\d+)/.exec(out)?.[1];
      if (port) resolve(`http://127.0.0.1:${port}/mcp`);
    });
    mcp.once("exit", (code) => reject(new Error(`hostile MCP server exited with ${code}`)));
  });
  dir = makeConfigDir({
    config: baseConfig(model.baseUrl, { test: testServerEntry, hostile: { transport: "streamable_http", url: mcpUrl } }),
    secrets: { openai: { api_key: "test-key" } },
  });
  server = await spawnServer(["--config", path.join(dir, "mcp_agent.config.yaml"), "--port", "0"]).ready;
});

after(async () => {
  await stopSpawned([server]);
  mcp.kill();
  await model.close();
  rmSync(dir, { recursive: true, force: true });
});

const wsUrl = (user: string) => `${server.url.replace(/^http/, "ws")}/ws/${user}`;

function rss(): number {
  const memory = processMemory(server.child.pid ?? 0, false);
  assert.ok(memory, "the server process is running");
  return memory.rssBytes;
}

/**
 * Runs `attack` (it resolves with the attacker's answer) while a bystander checks /health and
 * runs a turn; returns the answer and the server's growth after it.
 */
async function underAttack(user: string, message: string): Promise<{ answer: string; code: unknown; growth: number }> {
  const start = rss();
  const attacker = await connect(wsUrl(user));
  await attacker.next();
  const attack = ask(attacker, message);
  const bystander = await connect(wsUrl(`${user}_bystander`));
  await bystander.next();
  const health = await fetch(`${server.url}/health`);
  assert.equal(health.status, 200, "/health answered during the attack");
  assert.equal((await ask(bystander, "hello")).message, "echo: hello", "the bystander's turn completed");
  const frame = await attack.then((answer) => answer);
  await attacker.close();
  await bystander.close();
  const answer = String(frame.message ?? frame.error ?? JSON.stringify(frame));
  return { answer, code: frame.code, growth: rss() - start };
}

test("a plain JSON answer of 64 MB is refused before it is parsed, naming limits.max_answer_bytes", async () => {
  const { answer, code, growth } = await underAttack("json_attacker", "json-huge");
  assert.match(answer, /larger than 8388608 bytes \(limits\.max_answer_bytes\)/);
  assert.equal(code, "output_too_large");
  assert.ok(growth < MEMORY_BUDGET, `the server grew by ${Math.round(growth / MB)} MB`);
});

test("128 parallel tool calls are refused, naming limits.max_parallel_tool_calls", async () => {
  const { answer, code } = await underAttack("calls_attacker", "calls-many");
  assert.match(answer, /more than 32 tool calls in one answer \(limits\.max_parallel_tool_calls\)/);
  assert.equal(code, "too_many_tool_calls");
});

test("tool calls with large arguments count against the answer's budget, naming limits.max_answer_chars", async () => {
  const { answer, code, growth } = await underAttack("args_attacker", "calls-large");
  assert.match(answer, /longer than 1000000 characters \(limits\.max_answer_chars\)/);
  assert.equal(code, "output_too_large");
  assert.ok(growth < MEMORY_BUDGET, `the server grew by ${Math.round(growth / MB)} MB`);
  // The refused answer was never stored: the conversation loads, with no tool item.
  const history = await (await fetch(`${server.url}/sessions/args_attacker/history`)).text();
  assert.ok(history.length < 2 * MB, `the stored history is ${history.length} characters`);
});

test("invented long tool names: counted without stalling, and /metrics gets one label for them", async () => {
  const { answer } = await underAttack("names_attacker", "names-long");
  assert.match(answer, /^done: Error: Unknown tool/);
  const metrics = await (await fetch(`${server.url}/metrics`)).text();
  assert.ok(metrics.length < 200_000, `/metrics is ${metrics.length} characters`);
  assert.match(metrics, /mcp_agent_tool_calls_total\{server="unknown",tool="unknown",outcome="error"\} 30/);
});

test("an MCP server's 64 MB result fails the call, naming limits.mcp_max_message_bytes", async () => {
  const { answer, growth } = await underAttack("mcp_huge", "MCP hostile_huge");
  assert.match(answer, /larger than 8388608 bytes \(limits\.mcp_max_message_bytes\)/);
  assert.ok(growth < MEMORY_BUDGET, `the server grew by ${Math.round(growth / MB)} MB`);
});

test("an MCP server's log flood is rate-limited, cut and counted", async () => {
  const { answer, growth } = await underAttack("mcp_flood", "MCP hostile_flood");
  assert.match(answer, /flooded/);
  assert.ok(growth < MEMORY_BUDGET, `the server grew by ${Math.round(growth / MB)} MB`);
  const metrics = await (await fetch(`${server.url}/metrics`)).text();
  const dropped = Number(/mcp_agent_mcp_messages_dropped_total\{reason="rate"\} (\d+)/.exec(metrics)?.[1] ?? 0);
  assert.ok(dropped > 5_000, `${dropped} notifications dropped`);
  // 80 MB of log data was sent: what reached our log is the burst and the rate, each cut.
  const logBytes = statSync(path.join(dir, "logs/test.jsonl")).size;
  assert.ok(logBytes < 20 * MB, `the log is ${Math.round(logBytes / MB)} MB`);
});

test("an MCP server's huge elicitation form fails its request, naming limits.mcp_max_elicitation_chars", async () => {
  const { answer, growth } = await underAttack("mcp_form", "MCP hostile_form");
  assert.match(answer, /form failed: .*limits\.mcp_max_elicitation_chars/);
  assert.ok(growth < MEMORY_BUDGET, `the server grew by ${Math.round(growth / MB)} MB`);
});

test("a turn's answers together are held to limits.max_turn_output_chars: past it the turn stops, the answer is not kept", async () => {
  // A model that calls a tool with 2,000 characters again and again: the second answer passes 3,000.
  const scripted = await startModelServer({
    responder: () => ({ toolCalls: [{ name: "test_echo", arguments: { text: "e".repeat(2000) } }] }),
  });
  const running = await startServer({
    config: baseConfig(scripted.baseUrl, { test: testServerEntry }, { limits: { max_turn_output_chars: 3000 } }),
    secrets: { openai: { api_key: "test-key" } },
  });
  try {
    const { client } = await connectUser(running, "looper");
    const frame = await ask(client, "go");
    assert.match(String(frame.error), /more than 3000 characters in this turn \(limits\.max_turn_output_chars\)/);
    assert.equal(frame.code, "output_too_large");
    assert.equal(scripted.requests.length, 2, "no model call after the budget was passed");
    await client.close();
  } finally {
    await running.close();
    await scripted.close();
  }
});
