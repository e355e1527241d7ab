// The `servers` frame: each streaming socket sees its MCP servers' state after the welcome and on
// every change, a failure says why (with the child's last stderr lines), Retry starts it again.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startModelServer, type ModelServer } from "../helpers/model-server.ts";
import { baseConfig, connectUser, readLog, startServer, testServerEntry, type Frame, type RunningServer } from "../helpers/harness.ts";

let model: ModelServer;
let running: RunningServer;

// Writes why it cannot start, as real servers do, then exits before answering initialize.
const complaining = {
  command: process.execPath,
  args: ["-e", 'process.stderr.write("Error: GITHUB_TOKEN is not set\\n", () => process.exit(1))'],
};

before(async () => {
  model = await startModelServer();
  running = await startServer({
    config: {
      ...baseConfig(model.baseUrl, { test: testServerEntry, complaining }),
      logger: { transports: ["file"], level: "info", path: "logs/test.jsonl" },
    },
    secrets: { openai: { api_key: "sk-test-state" } },
  });
});
after(async () => {
  await running.close();
  await model.close();
});

const byName = (servers: Frame[], name: string) => servers.find((server) => server.name === name);

test("a streaming socket gets a servers frame right after the welcome, and again as the servers start or fail", async () => {
  const { client, welcome } = await connectUser(running, "state_user", "?stream=1");
  try {
    assert.equal(welcome.type, "welcome");
    const first = await client.serversMatching(() => true);
    assert.deepEqual(
      first.map((server) => [server.name, server.state, server.needs_auth, server.user_added]),
      [
        ["test", "stopped", false, false],
        ["complaining", "stopped", false, false],
      ],
    );
    client.send({ message: "hello" });
    await client.nextMatching((frame) => frame.type === "answer");
    const settled = await client.serversMatching(
      (servers) => byName(servers, "test")?.state === "ready" && byName(servers, "complaining")?.state === "failed",
    );
    assert.ok(Number(byName(settled, "test")?.tools) > 0);
    const error = String(byName(settled, "complaining")?.error);
    assert.match(error, /MCP server "complaining" exited during start-up/);
    assert.match(error, /GITHUB_TOKEN is not set/, "the child's own words reach the user");
    assert.doesNotMatch(error, /MCP error -\d+: MCP error/);
  } finally {
    await client.close();
  }
});

test("the failure's stderr lines are in the log at the default level (info), not only at debug", async () => {
  const failed = readLog(running.logPath).find((line) => line.event === "mcp_server_failed" && line.server === "complaining");
  assert.ok(failed, "mcp_server_failed was logged");
  assert.match(String(failed.error), /GITHUB_TOKEN is not set/);
});

test("Retry starts a failed server again: the tab sees it starting, then failed again", async () => {
  const { client } = await connectUser(running, "retry_user", "?stream=1");
  try {
    client.send({ message: "hi" });
    await client.nextMatching((frame) => frame.type === "answer");
    await client.serversMatching((servers) => byName(servers, "complaining")?.state === "failed");
    const seen = client.servers.length;
    client.send({ type: "server_retry", server: "complaining" });
    await client.serversMatching((servers) => byName(servers, "complaining")?.state === "starting", 15000, seen);
    await client.serversMatching((servers) => byName(servers, "complaining")?.state === "failed", 15000, seen + 1);
    client.send({ type: "server_retry", server: "nope" });
    const refused = await client.nextMatching((frame) => frame.type === "error");
    assert.match(String(refused.error), /no MCP server named "nope"/);
  } finally {
    await client.close();
  }
});

test("a seed socket gets no servers frame: its frames are exactly the original's", async () => {
  const { client, welcome } = await connectUser(running, "seed_state_user");
  try {
    assert.equal(welcome.type, undefined);
    client.send({ message: "hello" });
    const answer = await client.next();
    assert.deepEqual(Object.keys(answer), ["message", "user_id", "session_id"]);
    assert.equal(client.servers.length, 0);
  } finally {
    await client.close();
  }
});
