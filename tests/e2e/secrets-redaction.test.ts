// One redactor for everything that leaves the server. An MCP server whose URL
// carries credentials and an api_key, and whose headers carry a key, fails to connect with an
// error that quotes all of them: /sessions/<id>, the frames and the log must show none of them,
// nor the server's absolute folders.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { echoResponder, startModelServer, toolDirective, type ModelServer } from "../helpers/model-server.ts";
import {
  ask,
  baseConfig,
  connect,
  connectUser,
  readLog,
  startServer,
  testServerEntry,
  until,
  type RunningServer,
} from "../helpers/harness.ts";
import { mcpServerSecrets, Redactor, StreamRedactor } from "../../lib/secrets/redactor.ts";
import { mcpServerDefaults } from "../../lib/config.ts";

const URL_PASSWORD = "urlpass-9f8e7d6c";
const QUERY_KEY = "query-api-key-0a1b2c3d4e";
const HEADER_KEY = "header-key-5f6e7d8c9b";
const BEARER = "bearer-cred-1234abcd5678";
const API_KEY = "sk-redaction-test-key-777";

let model: ModelServer;
let running: RunningServer;
/** An MCP endpoint that refuses everyone and quotes the whole request back, as careless servers do. */
let echoing: http.Server;

before(async () => {
  model = await startModelServer({ responder: (request, index) => toolDirective(request) ?? echoResponder(request, index) });
  echoing = http.createServer((req, res) => {
    res.writeHead(401, { "content-type": "text/plain" });
    res.end(`denied ${req.method} ${req.url} with headers ${JSON.stringify(req.headers)}`);
  });
  await new Promise<void>((resolve) => echoing.listen(0, "127.0.0.1", resolve));
  const port = (echoing.address() as AddressInfo).port;
  running = await startServer({
    config: baseConfig(model.baseUrl, {
      remote: {
        transport: "streamable_http",
        url: `http://agent:${URL_PASSWORD}@127.0.0.1:${port}/mcp?api_key=${QUERY_KEY}&format=json`,
        headers: { "X-Api-Key": HEADER_KEY, Authorization: `Bearer ${BEARER}` },
      },
      // The same without user info: it reaches the endpoint, whose 401 quotes the URL and headers.
      echoed: {
        transport: "streamable_http",
        url: `http://127.0.0.1:${port}/mcp?api_key=${QUERY_KEY}`,
        headers: { "X-Api-Key": HEADER_KEY, Authorization: `Bearer ${BEARER}` },
      },
      test: testServerEntry,
    }),
    secrets: { openai: { api_key: API_KEY } },
  });
});

after(async () => {
  await running?.close();
  await model?.close();
  await new Promise((resolve) => echoing?.close(resolve));
});

const LEAKS = [URL_PASSWORD, QUERY_KEY, HEADER_KEY, BEARER, API_KEY];

function assertClean(text: string, where: string, { paths }: { paths: boolean }): void {
  for (const leak of LEAKS) assert.ok(!text.includes(leak), `${where} shows ${leak}: ${text.slice(0, 2000)}`);
  if (paths) {
    assert.ok(!text.includes(running.configDir), `${where} shows the config folder: ${text.slice(0, 2000)}`);
    assert.ok(!text.includes(homedir() + "/"), `${where} shows the home folder`);
  }
}

test("an MCP server's failed connection shows in /sessions/<id>, in frames and in the log without its credentials or server paths", async () => {
  const { client } = await connectUser(running, "alice", "?stream=1");
  // A tool call makes the hub start; the failing servers fail, and the model is told why.
  const answerText = JSON.stringify(await ask(client, `CALL remote_anything {}`));
  await client.nextMatching((frame) => frame.type === "answer" || frame.type === "error");
  const frames = JSON.stringify(client.frames);
  await client.close();

  const info = (await (await fetch(`${running.url}/sessions/alice`)).json()) as {
    mcp_servers: { name: string; state: string; error?: string }[];
  };
  const remote = info.mcp_servers.find((server) => server.name === "remote");
  const echoed = info.mcp_servers.find((server) => server.name === "echoed");
  assert.equal(remote?.state, "failed");
  assert.equal(echoed?.state, "failed");
  // The errors are there (what failed and why), only without what must not be shown.
  assert.match(String(remote?.error), /credentials: http:\/\/agent:\[REDACTED\]@127\.0\.0\.1/);
  assert.match(String(echoed?.error), /denied GET|denied POST/);
  assert.match(String(echoed?.error), /"x-api-key":"\[REDACTED\]"/);
  // What is not a credential stays readable.
  assert.match(String(echoed?.error), /"content-type":"application\/json"/);
  assertClean(JSON.stringify(info), "/sessions/alice", { paths: true });
  assertClean(frames + answerText, "the frames", { paths: true });

  await until(() => readLog(running.logPath).some((line) => line.event === "mcp_server_failed"), "the failure in the log");
  assertClean(readFileSync(running.logPath, "utf8"), "the log", { paths: false });
});

test("a tool's arguments and result that name the server's folders reach the client as placeholders", async () => {
  const { client } = await connectUser(running, "carol", "?stream=1");
  const inside = `${running.configDir}/workspace/carol/notes.txt`;
  const answer = await ask(client, `CALL test_echo ${JSON.stringify({ text: inside })}`);
  const start = await client.nextMatching((frame) => frame.type === "tool_start");
  const end = await client.nextMatching((frame) => frame.type === "tool_end");
  const final = await client.nextMatching((frame) => frame.type === "answer");
  await client.close();
  // The answer streamed in pieces of a few characters: the path was cut between deltas, and is
  // still replaced whole in them.
  const streamed = client.frames
    .filter((frame) => frame.type === "delta")
    .map((frame) => String(frame.text))
    .join("");
  assert.equal(streamed, "RESULT echo:[workspace]/carol/notes.txt");
  assert.equal(answer.type, "queued");
  assert.deepEqual(start.arguments, { text: "[workspace]/carol/notes.txt" });
  assert.equal(end.preview, "echo:[workspace]/carol/notes.txt");
  assert.equal(final.message, "RESULT echo:[workspace]/carol/notes.txt");
  // The model itself worked with the real path: only what leaves for the client is changed.
  assert.ok(model.requests.some((request) => JSON.stringify(request).includes(inside)));
});

test("a user's own message holding a configured secret comes back redacted, and the bystander sees nothing", async () => {
  const client = await connect(running.wsUrl("bob"));
  await client.next();
  const answer = await ask(client, `echo this: https://example.com/x?api_key=${QUERY_KEY}`);
  assertClean(JSON.stringify(answer), "the answer", { paths: true });
  await client.close();
});

test("the redactor finds secrets inside longer text, in every spelling, and credentials by their shape", () => {
  const redactor = new Redactor(["s3cret/value+1"], { paths: [{ path: "/srv/app/workspace", label: "[workspace]" }] });
  assert.equal(redactor.redact("key=xs3cret/value+1y"), "key=x[REDACTED]y");
  assert.equal(redactor.redact(`url ${encodeURIComponent("s3cret/value+1")}`), "url [REDACTED]");
  assert.equal(redactor.redact(JSON.stringify({ a: 's3cret/value+1"' })), '{"a":"[REDACTED]\\""}');
  // Never configured, but shaped like credentials:
  assert.equal(redactor.redact("GET https://bob:hunter2@host/x"), "GET https://bob:[REDACTED]@host/x");
  assert.equal(redactor.redact("see https://h/p?q=1&access_token=abc123&page=2"), "see https://h/p?q=1&access_token=[REDACTED]&page=2");
  assert.equal(redactor.redact("Authorization: Bearer abcdefgh12345678"), "Authorization: Bearer [REDACTED]");
  // Paths: the folder and what is inside it, not a longer sibling name.
  assert.equal(redactor.redact("/srv/app/workspace/alice/a.txt"), "[workspace]/alice/a.txt");
  assert.equal(redactor.redact("/srv/app/workspace2/x"), "/srv/app/workspace2/x");
  assert.equal(redactor.redactSecrets("/srv/app/workspace/alice"), "/srv/app/workspace/alice");
  // Values of the MCP entries are collected: user info, query values, headers (and the bearer's credential alone).
  const found = mcpServerSecrets({
    x: {
      ...mcpServerDefaults(),
      transport: "sse",
      env: { GITHUB_TOKEN: "ghp_abcdef", LANG: "C.UTF-8" },
      headers: { "X-Key": "hk-1234", Authorization: "Bearer cred-9876" },
      url: "https://u:p%40ss@h/mcp?api_key=q-5678",
    },
  });
  for (const value of ["p@ss", "q-5678", "hk-1234", "cred-9876", "ghp_abcdef"]) assert.ok(found.includes(value), value);
  assert.ok(!found.includes("C.UTF-8"));
});

test("a stream of pieces is redacted as a whole, whatever the cuts", () => {
  const redactor = new Redactor(["sk-stream-secret-123"], { paths: [{ path: "/srv/app/ws", label: "[workspace]" }] });
  const text = "key sk-stream-secret-123 at /srv/app/ws/alice and /srv/app/wsx, sk-stream-secret-123.";
  for (const size of [1, 2, 3, 5, 7, 13]) {
    const stream = new StreamRedactor(redactor);
    let out = "";
    for (let at = 0; at < text.length; at += size) out += stream.push(text.slice(at, at + size));
    out += stream.flush();
    assert.equal(out, "key [REDACTED] at [workspace]/alice and /srv/app/wsx, [REDACTED].", `pieces of ${size}`);
  }
});

test("the credential patterns stay linear on hostile input", () => {
  const redactor = new Redactor([]);
  // Inputs that make a backtracking pattern quadratic: long runs with no terminator.
  const inputs = ["?" + "key".repeat(200_000), "//" + "a".repeat(600_000), "Bearer " + "x".repeat(600_000), "&".repeat(600_000) + "=x"];
  for (const input of inputs) {
    const started = process.hrtime.bigint();
    redactor.redact(input);
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    assert.ok(ms < 1000, `${input.slice(0, 12)}…: ${ms} ms`);
  }
});
