// The MCP client in a cluster (redis-server, nginx, two instances as processes): an MCP server's
// question (elicitation) asked by a turn on one instance is answered from the user's tab on the
// other instance, and the answer reaches the server.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { stopAll } from "../../deploy/processes.ts";
import { clusterSkip, startTestCluster, type TestCluster } from "../helpers/cluster.ts";
import { baseConfig, connect, ROOT, type TestClient } from "../helpers/harness.ts";
import { startModelServer, toolDirective, type ModelServer } from "../helpers/model-server.ts";

const skip = clusterSkip();
const EVERYTHING = path.join(ROOT, "node_modules/@modelcontextprotocol/server-everything/dist/index.js");

let model: ModelServer;
let cluster: TestCluster;

before(async () => {
  if (skip) return;
  model = await startModelServer({ responder: (request) => toolDirective(request) ?? { content: "no script" } });
  cluster = await startTestCluster({
    instances: 2,
    config: {
      ...baseConfig(model.baseUrl, { everything: { command: process.execPath, args: [EVERYTHING, "stdio"] } }),
      agent: { approval_timeout_seconds: 60 },
    },
    secrets: { openai: { api_key: "sk-test-mcp-cluster" } },
  });
});
after(async () => {
  await cluster?.close();
  await model?.close();
  await stopAll();
});

async function tab(port: number, user: string): Promise<TestClient> {
  const client = await connect(`ws://127.0.0.1:${port}/ws/${user}?stream=1`);
  await client.nextMatching((frame) => frame.type === "welcome");
  return client;
}

test("an elicitation asked on one instance is answered from a tab on another", { skip }, async () => {
  const [first, second] = cluster.instances;
  assert.ok(first && second);
  const asking = await tab(first.port, "spread");
  const answering = await tab(second.port, "spread");
  asking.send({ message: "CALL everything_trigger-elicitation-request {}" });
  const request = await answering.nextMatching((frame) => frame.type === "elicitation_request", 60_000);
  answering.send({ type: "elicitation", request_id: request.request_id, action: "accept", content: { name: "Across Instances" } });
  const resolved = await answering.nextMatching((frame) => frame.type === "elicitation_resolved");
  assert.deepEqual([resolved.action, resolved.by], ["accept", "user"]);
  const answer = await asking.nextMatching((frame) => frame.type === "answer", 60_000);
  assert.match(String(answer.message), /Name: Across Instances/);
  await asking.close();
  await answering.close();
});
