// The MCP client's parts one by one — the content mapping and elicitation forms (pure),
// sampling and elicitation policies as the user's sockets see them, progress restarting the
// timeout, tools/list_changed, the stdio restart rules, config as written (npx pins, cwd), and
// DELETE for a closed streamable HTTP session. Real servers as children, the real server on port 0.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdirSync, rmSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { startModelServer, toolDirective, type ChatRequest, type ModelServer } from "../helpers/model-server.ts";
import {
  baseConfig,
  connect,
  connectUser,
  makeConfigDir,
  readLog,
  ROOT,
  startServer,
  type Frame,
  type RunningServer,
  type TestClient,
} from "../helpers/harness.ts";

const EVERYTHING = path.join(ROOT, "node_modules/@modelcontextprotocol/server-everything/dist/index.js");
const CHANGING = path.join(ROOT, "tests/fixtures/changing-mcp-server.mjs");
const SAMPLING_SYSTEM = "You are a helpful test server.";

function responder(request: ChatRequest) {
  if (request.messages[0]?.content === SAMPLING_SYSTEM) return { content: "SAMPLED" };
  return toolDirective(request) ?? { content: "no script" };
}

/** One turn; `onFrame` may answer what is asked. Resolves with its frames and the last tool result the model got. */
async function turn(client: TestClient, model: ModelServer, message: string, onFrame: (frame: Frame) => void = () => undefined) {
  const before = model.requests.length;
  client.send({ message });
  const frames: Frame[] = [];
  for (;;) {
    const frame = await client.next(30_000);
    frames.push(frame);
    onFrame(frame);
    if (frame.type === "answer" || frame.type === "error" || frame.type === "cancelled") break;
  }
  const last = model.requests.slice(before).at(-1);
  const tool = [...(last?.messages ?? [])].reverse().find((entry) => entry.role === "tool");
  return {
    frames,
    toolText: typeof tool?.content === "string" ? tool.content : "",
    tools: (last?.tools ?? []).map((t) => t.function.name),
  };
}

describe("config as written", () => {
  test("a relative cwd is the config folder's; a missing cwd and a missing command get different errors", async () => {
    const model = await startModelServer({ responder });
    const configDir = makeConfigDir({
      config: baseConfig(model.baseUrl, {
        rel: { command: process.execPath, args: [CHANGING], cwd: "servers/here" },
        nocwd: { command: process.execPath, args: [CHANGING], cwd: "no/such/folder" },
        nocmd: { command: "no-such-command-xyz" },
      }),
      secrets: { openai: { api_key: "sk-test-cwd" } },
    });
    mkdirSync(path.join(configDir, "servers", "here"), { recursive: true });
    const running = await startServer({ configDir });
    try {
      const { client } = await connectUser(running, "cwd-user", "?stream=1");
      const result = await turn(client, model, "CALL rel_cwd {}");
      assert.equal(result.toolText, path.join(running.configDir, "servers", "here"));
      const info = (await (await fetch(`${running.url}/sessions/cwd-user`)).json()) as { mcp_servers: Record<string, unknown>[] };
      const byName = new Map(info.mcp_servers.map((server) => [server.name, server]));
      assert.equal(byName.get("nocwd")?.state, "failed");
      assert.match(String(byName.get("nocwd")?.error), /the working folder .*no\/such\/folder does not exist \(mcp\.servers\.nocwd\.cwd\)/);
      assert.equal(byName.get("nocmd")?.state, "failed");
      assert.match(String(byName.get("nocmd")?.error), /command not found .*\(mcp\.servers\.nocmd\.command\)/);
      await client.close();
    } finally {
      await running.close();
      rmSync(running.configDir, { recursive: true, force: true });
      await model.close();
    }
  });
});

describe("servers asking back, progress, list changes, restarts", () => {
  let model: ModelServer;
  let running: RunningServer;

  before(async () => {
    model = await startModelServer({ responder });
    running = await startServer({
      config: baseConfig(
        model.baseUrl,
        {
          ask: { command: process.execPath, args: [EVERYTHING, "stdio"] },
          denied: { command: process.execPath, args: [EVERYTHING, "stdio"], sampling: "deny", allowed_tools: ["trigger-sampling-request"] },
          slow: {
            command: process.execPath,
            args: [EVERYTHING, "stdio"],
            read_timeout_seconds: 2,
            max_call_seconds: 5,
            allowed_tools: ["trigger-long-running-operation"],
          },
          // Unsandboxed: its restarts are told apart by its pid, which is always 2 in a sandbox's own PID namespace.
          change: { command: process.execPath, args: [CHANGING], sandbox: false },
        },
        { agent: { approval_timeout_seconds: 1 }, limits: { message_burst: 100, messages_per_minute: 1000, mcp_max_restarts: 2 } },
      ),
      secrets: { openai: { api_key: "sk-test-features" } },
    });
  });
  after(async () => {
    await running.close();
    await model.close();
  });

  test("sampling: approve shows the prompt like a tool approval; approving runs the session's model", async () => {
    const { client } = await connectUser(running, "sampler", "?stream=1");
    const approved = await turn(client, model, 'CALL ask_trigger-sampling-request {"prompt":"weather?","maxTokens":100000}', (frame) => {
      if (frame.type !== "approval_request") return;
      assert.equal(frame.kind, "sampling");
      assert.equal(frame.server, "ask");
      assert.deepEqual(frame.arguments, {
        system_prompt: SAMPLING_SYSTEM,
        messages: [{ role: "user", text: "Resource trigger-sampling-request context: weather?" }],
        // maxTokens is capped by limits.max_sampling_tokens.
        max_tokens: 4096,
      });
      client.send({ type: "approval", call_id: frame.call_id, approved: true });
    });
    assert.match(approved.toolText, /"text": "SAMPLED"/);
    const denied = await turn(client, model, 'CALL ask_trigger-sampling-request {"prompt":"again"}', (frame) => {
      if (frame.type === "approval_request") client.send({ type: "approval", call_id: frame.call_id, approved: false, reason: "not now" });
    });
    assert.match(denied.toolText, /^Error: .*sampling was not allowed: denied by the user: not now/);
    // Policy deny: refused without asking anyone.
    const off = await turn(client, model, 'CALL denied_trigger-sampling-request {"prompt":"x"}');
    assert.ok(!off.frames.some((frame) => frame.type === "approval_request"));
    assert.match(off.toolText, /sampling is turned off for MCP server "denied" \(mcp\.servers\.denied\.sampling: deny\)/);
    await client.close();
  });

  test("sampling from a seed-only connection is denied at once", async () => {
    const seed = await connect(running.wsUrl("seed-sampler"));
    await seed.next();
    seed.send({ message: 'CALL ask_trigger-sampling-request {"prompt":"x"}' });
    const answer = await seed.next(30_000);
    assert.match(String(answer.message), /no client that can give it is connected/);
    await seed.close();
  });

  test("elicitation: an invalid answer keeps the form open; the first answer from any tab wins", async () => {
    const { client: tab1 } = await connectUser(running, "elicited", "?stream=1");
    const { client: tab2 } = await connectUser(running, "elicited", "?stream=1");
    const before = model.requests.length;
    tab1.send({ message: "CALL ask_trigger-elicitation-request {}" });
    const request = await tab1.nextMatching((frame) => frame.type === "elicitation_request");
    const seenInTab2 = await tab2.nextMatching((frame) => frame.type === "elicitation_request");
    assert.equal(seenInTab2.request_id, request.request_id);
    assert.equal(request.server, "ask");
    assert.equal(typeof request.turn_id, "string");
    // "name" is required: refused, naming the field and the request; the form stays open.
    tab1.send({ type: "elicitation", request_id: request.request_id, action: "accept", content: { email: "ada@example.com" } });
    const refused = await tab1.nextMatching((frame) => frame.type === "error");
    assert.deepEqual(
      [refused.error, refused.code, refused.request_id],
      ['"String" is required', "elicitation_invalid", request.request_id],
    );
    tab2.send({ type: "elicitation", request_id: request.request_id, action: "accept", content: { name: "Grace", check: true } });
    const resolved = await tab1.nextMatching((frame) => frame.type === "elicitation_resolved");
    assert.deepEqual([resolved.action, resolved.by], ["accept", "user"]);
    tab1.send({ type: "elicitation", request_id: request.request_id, action: "decline" });
    const late = await tab1.nextMatching((frame) => frame.type === "error");
    assert.match(String(late.error), /no question is waiting under elicit_/);
    assert.equal(late.code, "no_pending_elicitation");
    await tab1.nextMatching((frame) => frame.type === "answer");
    const last = model.requests.slice(before).at(-1);
    const tool = [...(last?.messages ?? [])].reverse().find((entry) => entry.role === "tool");
    assert.match(String(tool?.content), /Name: Grace\n- Agreed to terms: true/);
    await tab1.close();
    await tab2.close();
  });

  test("elicitation: no answer within the approval timeout is decline; a seed-only connection declines at once", async () => {
    const { client } = await connectUser(running, "silent", "?stream=1");
    const silent = await turn(client, model, "CALL ask_trigger-elicitation-request {}");
    assert.ok(silent.frames.some((frame) => frame.type === "elicitation_resolved" && frame.action === "decline" && frame.by === "timeout"));
    assert.match(silent.toolText, /User declined to provide the requested information/);
    await client.close();
    const seed = await connect(running.wsUrl("seed-elicited"));
    await seed.next();
    seed.send({ message: "CALL ask_trigger-elicitation-request {}" });
    const answer = await seed.next(30_000);
    assert.match(String(answer.message), /User declined to provide the requested information/);
    await seed.close();
  });

  test("progress restarts the read timeout, so a long tool that reports progress completes; the overall cap still applies", async () => {
    const { client } = await connectUser(running, "patient", "?stream=1");
    // 4 s in 8 steps with read_timeout_seconds 2: only progress keeps it alive.
    const done = await turn(client, model, 'CALL slow_trigger-long-running-operation {"duration":4,"steps":8}');
    assert.match(done.toolText, /Long running operation completed/);
    assert.ok(done.frames.filter((frame) => frame.type === "tool_progress").length >= 7);
    // No progress for 3 s: the read timeout ends it.
    const silent = await turn(client, model, 'CALL slow_trigger-long-running-operation {"duration":3,"steps":1}');
    assert.match(silent.toolText, /^Error: .*(timed out|Request timed out)/i);
    // Progress all along, but past max_call_seconds (5 s) in all.
    const capped = await turn(client, model, 'CALL slow_trigger-long-running-operation {"duration":8,"steps":16}');
    assert.match(capped.toolText, /^Error: .*(Maximum total timeout exceeded|timed out)/i);
    await client.close();
  });

  test("tools/list_changed refreshes that server's tools before the next model call", async () => {
    const { client } = await connectUser(running, "changer", "?stream=1");
    const before = model.requests.length;
    const added = await turn(client, model, 'CALL change_add_tool {"name":"fresh"}');
    assert.equal(added.toolText, "added fresh");
    const [first, next] = model.requests.slice(before);
    assert.ok(!first?.tools?.some((tool) => tool.function.name === "change_fresh"), "not offered before it was added");
    // The model call right after the tool already sees the new tool.
    assert.ok(next?.tools?.some((tool) => tool.function.name === "change_fresh"));
    const fresh = await turn(client, model, "CALL change_fresh {}");
    assert.equal(fresh.toolText, "I am fresh");
    assert.ok(readLog(running.logPath).some((line) => line.event === "mcp_tools_changed" && line.server === "change"));
    await client.close();
  });

  test("stdio: a first crash restarts at once; a call during a later backoff waits for it; the cap stops a crash loop", async () => {
    const { client } = await connectUser(running, "crasher", "?stream=1");
    const pid1 = (await turn(client, model, "CALL change_pid {}")).toolText;
    await turn(client, model, "CALL change_crash {}");
    const pid2 = (await turn(client, model, "CALL change_pid {}")).toolText;
    assert.match(pid2, /^\d+$/, "the next call started it again at once");
    assert.notEqual(pid2, pid1);
    await turn(client, model, "CALL change_crash {}");
    // Second crash: 1 s of backoff; the call waits for the restart instead of failing.
    const pid3 = (await turn(client, model, "CALL change_pid {}")).toolText;
    assert.match(pid3, /^\d+$/);
    assert.notEqual(pid3, pid2);
    await turn(client, model, "CALL change_crash {}");
    const stopped = await turn(client, model, "CALL change_pid {}");
    assert.match(stopped.toolText, /restarted 2 times \(limits\.mcp_max_restarts\); it is not started again/);
    await client.close();
  });
});

test("a sampling prompt is held to limits.max_message_chars, like a chat message", async () => {
  const model = await startModelServer({ responder });
  const running = await startServer({
    config: baseConfig(
      model.baseUrl,
      { ask: { command: process.execPath, args: [EVERYTHING, "stdio"], sampling: "allow" } },
      { limits: { max_message_chars: 200 } },
    ),
    secrets: { openai: { api_key: "sk-test-sampling-size" } },
  });
  try {
    const { client } = await connectUser(running, "wordy", "?stream=1");
    const long = await turn(client, model, `CALL ask_trigger-sampling-request {"prompt":"${"y".repeat(150)}"}`);
    assert.match(long.toolText, /the sampling prompt is too long: \d+ characters, the limit is 200 \(limits\.max_message_chars\)/);
    assert.ok(!model.requests.some((request) => request.messages[0]?.content === SAMPLING_SYSTEM), "the model was not called");
    await client.close();
  } finally {
    await running.close();
    await model.close();
  }
});

test("a sampling request counts against the user's rate limit like a message", async () => {
  const model = await startModelServer({ responder });
  const running = await startServer({
    config: baseConfig(
      model.baseUrl,
      { ask: { command: process.execPath, args: [EVERYTHING, "stdio"], sampling: "allow" } },
      // One message, then nothing for a minute: the user's message takes it, the sampling finds none.
      { limits: { message_burst: 1, messages_per_minute: 1 } },
    ),
    secrets: { openai: { api_key: "sk-test-sampling-limit" } },
  });
  try {
    const { client } = await connectUser(running, "limited", "?stream=1");
    const limited = await turn(client, model, 'CALL ask_trigger-sampling-request {"prompt":"x"}');
    assert.match(limited.toolText, /^Error: .*Too many messages: the limit is 1 per minute \(limits\.messages_per_minute\)/);
    assert.ok(!model.requests.some((request) => request.messages[0]?.content === SAMPLING_SYSTEM), "the model was not called");
    await client.close();
  } finally {
    await running.close();
    await model.close();
  }
});

describe("remote sessions", () => {
  test("closing a session ends its streamable HTTP session with DELETE", async () => {
    const server = net.createServer();
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const { port } = server.address() as net.AddressInfo;
    await new Promise((resolve) => server.close(resolve));
    const child = spawn(process.execPath, [EVERYTHING, "streamableHttp"], {
      env: { ...process.env, PORT: String(port) },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const exited = once(child, "exit");
    let output = "";
    const listening = new Promise<void>((resolve) => {
      const onData = (chunk: Buffer) => {
        output += chunk.toString();
        if (/listening on port/.test(output)) resolve();
      };
      child.stdout.on("data", onData);
      child.stderr.on("data", onData);
    });
    await listening;
    const model = await startModelServer({ responder });
    const running = await startServer({
      config: baseConfig(model.baseUrl, { remote: { transport: "streamable_http", url: `http://127.0.0.1:${port}/mcp` } }),
      secrets: { openai: { api_key: "sk-test-delete" } },
    });
    try {
      const { client } = await connectUser(running, "deleter", "?stream=1");
      const echoed = await turn(client, model, 'CALL remote_echo {"message":"hi"}');
      assert.equal(echoed.toolText, "Echo: hi");
      await client.close();
    } finally {
      await running.close();
      await model.close();
    }
    assert.match(output, /Received session termination request for session/);
    child.kill("SIGKILL");
    await exited;
  });

  test("a remote server that was down when the session started is tried again on the next turn", async () => {
    const probe = net.createServer();
    probe.listen(0, "127.0.0.1");
    await once(probe, "listening");
    const { port } = probe.address() as net.AddressInfo;
    await new Promise((resolve) => probe.close(resolve));
    const model = await startModelServer({ responder });
    const running = await startServer({
      config: baseConfig(model.baseUrl, { later: { transport: "streamable_http", url: `http://127.0.0.1:${port}/mcp` } }),
      secrets: { openai: { api_key: "sk-test-later" } },
    });
    let child: ReturnType<typeof spawn> | undefined;
    try {
      const { client } = await connectUser(running, "early", "?stream=1");
      const down = await turn(client, model, 'CALL later_echo {"message":"too soon"}');
      assert.match(down.toolText, /Unknown tool "later_echo"/);
      const info = async () =>
        ((await (await fetch(`${running.url}/sessions/early`)).json()) as { mcp_servers: Record<string, unknown>[] }).mcp_servers[0];
      assert.equal((await info())?.state, "failed");
      child = spawn(process.execPath, [EVERYTHING, "streamableHttp"], {
        env: { ...process.env, PORT: String(port) },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let output = "";
      await new Promise<void>((resolve) => {
        const onData = (chunk: Buffer) => {
          output += chunk.toString();
          if (/listening on port/.test(output)) resolve();
        };
        child?.stdout?.on("data", onData);
        child?.stderr?.on("data", onData);
      });
      const up = await turn(client, model, 'CALL later_echo {"message":"now"}');
      assert.equal(up.toolText, "Echo: now");
      assert.equal((await info())?.state, "ready");
      await client.close();
    } finally {
      await running.close();
      await model.close();
      if (child) {
        const exited = once(child, "exit");
        child.kill("SIGKILL");
        await exited;
      }
    }
  });
});
