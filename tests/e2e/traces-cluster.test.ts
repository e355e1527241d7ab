// Traces in a cluster: two instances sharing one Redis, one user with a tab on each. The turn runs
// on the instance whose tab sent the message; the other tab answers its approval, on the other
// instance. Both instances' spans land in the one trace of the turn.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { freePorts, randomSecret, REDIS_CANDIDATES, startRedis, type Child } from "../../deploy/processes.ts";
import { externalSkip, findExecutable } from "../helpers/external.ts";
import { baseConfig, connectUser, startServer, testServerEntry, type RunningServer } from "../helpers/harness.ts";
import { afterTool, lastUserText, startModelServer, type ModelServer } from "../helpers/model-server.ts";
import { startOtlpReceiver, type OtlpReceiver } from "../helpers/otlp-receiver.ts";

const REDIS_SERVER = findExecutable("REDIS_SERVER_PATH", REDIS_CANDIDATES);
const skip = externalSkip("redis-server", REDIS_SERVER, "redis-server");

let model: ModelServer | undefined;
let receiver: OtlpReceiver | undefined;
let redis: (Child & { url: string }) | undefined;
let redisDir = "";
const servers: RunningServer[] = [];

before(async () => {
  if (skip) return;
  model = await startModelServer({
    responder: (request) =>
      afterTool(request)
        ? { content: `MODEL SAW: ${String(request.messages.at(-1)?.content)}` }
        : { toolCalls: [{ name: "test_echo", arguments: { text: lastUserText(request) } }] },
  });
  receiver = await startOtlpReceiver();
  redisDir = mkdtempSync(path.join(tmpdir(), "redis-traces-"));
  const [port = 0] = await freePorts(1);
  redis = await startRedis({ bin: REDIS_SERVER ?? "redis-server", port, dir: redisDir, password: randomSecret() });
  const clusterSecret = randomSecret();
  for (const name of ["a", "b"]) {
    servers.push(
      await startServer({
        config: baseConfig(
          model.baseUrl,
          { test: { ...testServerEntry, require_approval: ["echo"] } },
          { session: { store: "redis" }, agent: { approval_timeout_seconds: 30 } },
        ),
        secrets: { openai: { api_key: "sk-test-traces-cluster" }, redis: { url: redis.url, cluster_secret: clusterSecret } },
        env: { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, OTEL_SERVICE_NAME: `instance-${name}` },
      }),
    );
  }
});

after(async () => {
  for (const server of servers) await server.close();
  await redis?.stop();
  await receiver?.close();
  await model?.close();
  if (redisDir) rmSync(redisDir, { recursive: true, force: true });
});

test("an approval answered on another instance is a span in the turn's trace", { skip }, async () => {
  const [a, b] = servers;
  assert.ok(a && b && receiver);
  const { client: onA } = await connectUser(a, "twotabs", "?stream=1");
  const { client: onB } = await connectUser(b, "twotabs", "?stream=1");
  onA.send({ message: "across" });
  // The tab on B sees the approval request of the turn running on A, and answers it there.
  const request = await onB.nextMatching((frame) => frame.type === "approval_request");
  onB.send({ type: "approval", call_id: request.call_id, approved: true });
  const answer = await onA.nextMatching((frame) => frame.type === "answer");
  assert.match(String(answer.message), /echo:across/);
  onA.ws.close();
  onB.ws.close();
  // Closing flushes both instances' spans.
  for (const server of servers.splice(0)) await server.close();

  const root = receiver.spans.find((span) => span.name === "invoke_agent mcp-agent-ws" && span.attributes["user.id"] === "twotabs");
  assert.ok(root, "the turn's span");
  assert.equal(root.resource["service.name"], "instance-a");
  const answered = receiver.spans.find((span) => span.name === "approval answer");
  assert.ok(answered, `the other instance's span (got ${receiver.spans.map((span) => span.name).join(", ")})`);
  assert.equal(answered.resource["service.name"], "instance-b");
  assert.equal(answered.traceId, root.traceId, "one trace across the two instances");
  assert.equal(answered.parentSpanId, root.spanId);
  assert.equal(answered.attributes["mcp_agent.outcome"], "approved");
  assert.notEqual(answered.resource["service.instance.id"], root.resource["service.instance.id"]);
});
