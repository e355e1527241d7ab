// The seed wire protocol on /ws/<user_id> (what the original's clients send and read), over real
// sockets.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import WebSocket from "ws";
import { startModelServer, lastUserText, type ModelServer } from "../helpers/model-server.ts";
import { ask, baseConfig, connect, connectUser, startServer, type RunningServer } from "../helpers/harness.ts";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

let model: ModelServer;
let running: RunningServer;

before(async () => {
  model = await startModelServer();
  running = await startServer({ config: baseConfig(model.baseUrl), secrets: { openai: { api_key: "sk-test-protocol" } } });
});
after(async () => {
  await running.close();
  await model.close();
});

/** The raw HTTP answer to an upgrade request (status and JSON body). */
function upgradeAnswer(pathname: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    // A raw path (not a URL) so `..` reaches the server as typed.
    const { hostname, port } = new URL(running.url);
    const req = http.get({
      hostname,
      port,
      path: pathname,
      headers: {
        Connection: "Upgrade",
        Upgrade: "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
      },
    });
    req.on("response", (res) => {
      let body = "";
      res.on("data", (chunk: Buffer) => (body += chunk.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("upgrade", (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode ?? 101, body: "" });
    });
    req.on("error", reject);
  });
}

test("valid user ids are accepted: letters, digits, _ . - up to 64 characters", async () => {
  for (const userId of ["a", "Alice_1", "x.y-z", "...", "a".repeat(64)]) {
    const { status } = await upgradeAnswer(`/ws/${userId}`);
    assert.equal(status, 101, userId);
  }
});

test("invalid user ids are refused with 400 and a JSON body naming the rule", async () => {
  for (const bad of ["", ".", "..", "a".repeat(65), "a%20b", "a%2Fb", "%C3%A9", "a:b", "%ZZ"]) {
    const { status, body } = await upgradeAnswer(`/ws/${bad}`);
    assert.equal(status, 400, `user id ${JSON.stringify(bad)}`);
    const parsed = JSON.parse(body) as { error: string };
    assert.match(parsed.error, /1-64 characters of \[A-Za-z0-9_.-\]/);
  }
});

test("an upgrade on any other path is refused with 404", async () => {
  for (const pathname of ["/", "/ws", "/ws/a/b", "/socket/alice", "/health"]) {
    const { status, body } = await upgradeAnswer(pathname);
    assert.equal(status, 404, pathname);
    assert.ok((JSON.parse(body) as { error: string }).error);
  }
});

test("on open the server sends exactly the seed's welcome frame", async () => {
  const { client, welcome } = await connectUser(running, "welcome_user");
  assert.deepEqual(Object.keys(welcome), ["message", "user_id", "session_id"]);
  assert.equal(welcome.message, "Welcome! You are connected as user: welcome_user");
  assert.equal(welcome.user_id, "welcome_user");
  assert.match(String(welcome.session_id), UUID);
  await client.close();
});

test("a chat message gets exactly one answer frame with message, user_id, session_id", async () => {
  const { client, welcome } = await connectUser(running, "chatter");
  const answer = await ask(client, "Hello, AI!");
  assert.deepEqual(answer, { message: "echo: Hello, AI!", user_id: "chatter", session_id: welcome.session_id });
  assert.equal(lastUserText(model.requests.at(-1)!), "Hello, AI!");
  // Nothing else arrives: a ping-pong of one more message proves no stray frame was queued.
  const second = await ask(client, "again");
  assert.equal(second.message, "echo: again");
  await client.close();
});

test("a missing or blank message is ignored, as in the original", async () => {
  const { client } = await connectUser(running, "ignorer");
  const before = model.requests.length;
  client.send({});
  client.send({ message: "" });
  client.send({ message: "   \n" });
  client.send({ message: null });
  client.send({ other: "field" });
  const answer = await ask(client, "real one");
  assert.equal(answer.message, "echo: real one");
  assert.equal(model.requests.length, before + 1);
  await client.close();
});

test("bad frames get an error frame and the socket stays open", async () => {
  const { client } = await connectUser(running, "bad_input");
  const cases: [unknown, RegExp][] = [
    ["not json", /^Invalid JSON format$/],
    ['{"message": ', /^Invalid JSON format$/],
    ["[1,2]", /JSON object/],
    ["42", /JSON object/],
    ['"hello"', /JSON object/],
    ["null", /JSON object/],
    [{ message: 5 }, /"message" must be a string/],
    [{ message: ["a"] }, /"message" must be a string/],
    [{ message: { text: "x" } }, /"message" must be a string/],
  ];
  for (const [input, expected] of cases) {
    client.send(input);
    const frame = await client.next();
    // The seed's `error`, then the code: a seed client reads `error` as before.
    assert.deepEqual(Object.keys(frame), ["error", "code"], JSON.stringify(input));
    assert.match(String(frame.error), expected);
    assert.equal(frame.code, "invalid_frame");
  }
  client.ws.send(Buffer.from([1, 2, 3]), { binary: true });
  const binary = await client.next();
  assert.match(String(binary.error), /Binary frames are not supported/);
  assert.equal(binary.code, "invalid_frame");
  assert.equal(client.ws.readyState, WebSocket.OPEN);
  assert.equal((await ask(client, "still here?")).message, "echo: still here?");
  await client.close();
});

test("messages sent quickly are answered in order, one turn at a time, one frame each", async () => {
  let inFlight = 0;
  let maxInFlight = 0;
  model.setResponder(async (request) => {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    await new Promise((resolve) => setTimeout(resolve, 5));
    inFlight--;
    return { content: `echo: ${lastUserText(request)}` };
  });
  try {
    const { client } = await connectUser(running, "rapid");
    const count = 8;
    for (let i = 0; i < count; i++) client.send({ message: `m${i}` });
    const answers = [];
    for (let i = 0; i < count; i++) answers.push((await client.next()).message);
    assert.deepEqual(
      answers,
      Array.from({ length: count }, (_, i) => `echo: m${i}`),
    );
    assert.equal(maxInFlight, 1);
    // Exactly one frame per message: a final round trip finds nothing else waiting.
    assert.equal((await ask(client, "last")).message, "echo: last");
    await client.close();
  } finally {
    model.setResponder((request) => ({ content: `echo: ${lastUserText(request)}` }));
  }
});

test("a WebSocket client from the ws library can open and close cleanly many times", async () => {
  for (let i = 0; i < 5; i++) {
    const client = await connect(running.wsUrl("repeat"));
    assert.equal((await client.next()).user_id, "repeat");
    await client.close();
  }
});
