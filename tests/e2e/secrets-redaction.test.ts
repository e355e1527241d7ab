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
