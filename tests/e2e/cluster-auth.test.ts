// The cluster's promises: Redis with a password, messages between instances
// signed with redis.cluster_secret (a forged approval published straight into Redis is
// ignored), and a New chat whose store refuses the delete changes nothing and says so.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { Redis } from "ioredis";
import { freePorts, randomSecret, REDIS_CANDIDATES, startRedis, withoutCredentials, type Child } from "../../deploy/processes.ts";
import { signMessage } from "../../lib/cluster/redis-coordinator.ts";
import { keys } from "../../lib/store/redis-keys.ts";
import { externalSkip, findExecutable } from "../helpers/external.ts";
import { startModelServer, lastUserText, afterTool, type ModelServer } from "../helpers/model-server.ts";
import {
  ask,
  baseConfig,
  connect,
  readLog,
  startServer,
  testServerEntry,
  until,
  type Frame,
  type RunningServer,
} from "../helpers/harness.ts";

const REDIS_SERVER = findExecutable("REDIS_SERVER_PATH", REDIS_CANDIDATES);
const skip = externalSkip("redis-server", REDIS_SERVER, "redis-server");
const CLUSTER_SECRET = "cluster-secret-for-tests-0123456789";

let model: ModelServer;
let redis: (Child & { url: string }) | undefined;
let running: RunningServer | undefined;
let redisDir = "";

before(async () => {
  if (skip) return;
  model = await startModelServer({
    responder: (request) => {
      if (afterTool(request)) return { content: `MODEL SAW: ${String(request.messages.at(-1)?.content)}` };
      const text = lastUserText(request);
      if (text.startsWith("echo ")) return { toolCalls: [{ name: "test_echo", arguments: { text: text.slice(5) } }] };
      return { content: `echo: ${text}` };
    },
  });
  redisDir = mkdtempSync(path.join(tmpdir(), "redis-auth-"));
  const [port = 0] = await freePorts(1);
  redis = await startRedis({ bin: REDIS_SERVER ?? "redis-server", port, dir: redisDir, password: randomSecret() });
  running = await startServer({
    config: baseConfig(
      model.baseUrl,
      { test: { ...testServerEntry, require_approval: ["echo"] } },
      { session: { store: "redis" }, agent: { approval_timeout_seconds: 30 } },
    ),
    // The password travels in the URL, from the secrets file.
    secrets: { openai: { api_key: "sk-test-cluster-auth" }, redis: { url: redis.url, cluster_secret: CLUSTER_SECRET } },
  });
});
after(async () => {
  await running?.close();
  await redis?.stop();
  await model?.close();
  if (redisDir) rmSync(redisDir, { recursive: true, force: true });
});

test("Redis started for the cluster refuses clients without its password; the server, given it, works", { skip }, async () => {
  // A plain client, as any local process could open: RESP by hand, no library retries in the way.
  const { port } = new URL(redis?.url ?? "");
  const reply = await new Promise<string>((resolve, reject) => {
    const socket = net.connect(Number(port), "127.0.0.1", () => socket.write("PING\r\n"));
    socket.once("data", (data) => {
      resolve(data.toString());
      socket.destroy();
    });
    socket.once("error", reject);
  });
  assert.match(reply, /^-NOAUTH Authentication required/);
  const client = await connect(running?.wsUrl("withpassword") ?? "");
  await client.next();
  assert.equal((await ask(client, "hello")).message, "echo: hello");
  await client.close();
});

test("a forged approval published straight into Redis is ignored; a signed one from a peer works", { skip }, async () => {
  const client = await connect(running?.wsUrl("victim", "?stream=1") ?? "");
  await client.next();
  client.send({ message: "echo secret plans" });
  const request = await client.nextMatching((frame) => frame.type === "approval_request");
  const writer = new Redis(redis?.url ?? "");
  const name = keys.channel("victim");
  const forged = { kind: "approval", call_id: request.call_id, approved: true, always: true, socket: 1, from: "attacker", at: Date.now() };
  // Unsigned, as the server used to accept it; signed with a guessed secret; signed but stale.
  await writer.publish(name, JSON.stringify(forged));
  await writer.publish(name, signMessage("not-the-cluster-secret-at-all", name, JSON.stringify(forged)));
  await writer.publish(name, signMessage(CLUSTER_SECRET, name, JSON.stringify({ ...forged, at: Date.now() - 10 * 60_000 })));
  // Signed for another user's channel, replayed onto this one.
  await writer.publish(name, signMessage(CLUSTER_SECRET, keys.channel("someone-else"), JSON.stringify(forged)));
  await until(
    () => readLog(running?.logPath ?? "").filter((line) => line.event === "cluster_message_rejected").length >= 1,
    "the forgeries noticed",
  );
  await until(
    () => readLog(running?.logPath ?? "").some((line) => line.event === "cluster_message_rejected" && line.rejected === 1),
    "the first logged",
  );
  // A correctly signed message goes through: a peer instance's answer, as another tab on it would send.
  const peer = {
    kind: "approval",
    call_id: request.call_id,
    approved: false,
    reason: "from the other instance",
    always: false,
    socket: 7,
    from: "peer0001",
    at: Date.now(),
  };
  await writer.publish(name, signMessage(CLUSTER_SECRET, name, JSON.stringify(peer)));
  const resolved = await client.nextMatching((frame) => frame.type === "approval_resolved");
  assert.equal(resolved.approved, false, "none of the forgeries approved it");
  assert.match(String(resolved.reason), /from the other instance/);
  const frames: Frame[] = client.frames.filter((frame) => frame.type === "approval_resolved");
  assert.equal(frames.length, 1);
  await client.nextMatching((frame) => frame.type === "answer");
  writer.disconnect();
  await client.close();
});

test("a New chat the store refuses changes nothing, and every tab is told so", { skip }, async () => {
  const first = await connect(running?.wsUrl("keeper", "?stream=1") ?? "");
  await first.next();
  const second = await connect(running?.wsUrl("keeper", "?stream=1") ?? "");
  const welcome = await second.next();
  first.send({ message: "keep this" });
  await first.nextMatching((frame) => frame.type === "answer");
  const admin = new Redis(redis?.url ?? "");
  // Redis now refuses every write (no replica can confirm it): the delete of the history fails.
  await admin.config("SET", "min-replicas-to-write", "1");
  try {
    first.send({ type: "reset" });
    for (const tab of [first, second]) {
      const error = await tab.nextMatching((frame) => frame.type === "error" && !("turn_id" in frame));
      assert.match(String(error.error), /^New chat failed: the conversation could not be deleted \(.*\)\. Nothing was changed$/);
      assert.equal(error.code, "reset_failed");
      assert.ok(!String(error.error).includes(running?.configDir ?? "/"), "no server path");
    }
    assert.ok(!second.frames.some((frame) => frame.type === "reset"), "no tab was told of a reset that did not happen");
  } finally {
    await admin.config("SET", "min-replicas-to-write", "0");
    admin.disconnect();
  }
  second.send({ type: "history" });
  const history = await second.nextMatching((frame) => frame.type === "history");
  assert.equal(history.session_id, welcome.session_id, "same conversation");
  assert.deepEqual(
    (history.items as Frame[]).map((item) => item.content),
    ["keep this", "echo: keep this"],
  );
  await first.close();
  await second.close();
});

test("session.store: redis without redis.cluster_secret is refused at start, naming the key", { skip }, async () => {
  await assert.rejects(
    startServer({
      config: baseConfig(model.baseUrl, {}, { session: { store: "redis" }, redis: { url: withoutCredentials(redis?.url ?? "") } }),
    }),
    /session\.store: redis needs redis\.cluster_secret/,
  );
});

test("rediss:// with redis.tls.ca_file: a TLS Redis with a private CA and a password works", { skip }, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "redis-tls-"));
  const run = (args: string[]) => {
    const result = spawnSync("openssl", args, { cwd: dir, encoding: "utf8" });
    assert.equal(result.status, 0, result.stderr);
  };
  // A private CA, and a certificate for 127.0.0.1 signed by it.
  run(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "1", "-subj", "/CN=test-ca"]);
  run(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"]);
  writeFileSync(path.join(dir, "san.ext"), "subjectAltName=IP:127.0.0.1\n");
  run([
    "x509",
    "-req",
    "-in",
    "server.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "server.pem",
    "-days",
    "1",
    "-extfile",
    "san.ext",
  ]);
  const [port = 0] = await freePorts(1);
  const password = randomSecret();
  writeFileSync(path.join(dir, "redis.conf"), `requirepass ${password}\n`, { mode: 0o600 });
  const child = spawn(
    REDIS_SERVER ?? "redis-server",
    [
      "redis.conf",
      "--port",
      "0",
      "--tls-port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--tls-cert-file",
      "server.pem",
      "--tls-key-file",
      "server.key",
      "--tls-ca-cert-file",
      "ca.pem",
      "--tls-auth-clients",
      "no",
      "--save",
      "",
      "--appendonly",
      "no",
    ],
    { cwd: dir, stdio: ["ignore", "pipe", "pipe"] },
  );
  let out = "";
  child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
  const exited = new Promise((resolve) => child.once("exit", resolve));
  let tlsServer: RunningServer | undefined;
  try {
    await until(() => out.includes("Ready to accept connections"), "redis-server with TLS");
    tlsServer = await startServer({
      config: baseConfig(model.baseUrl, {}, { session: { store: "redis" }, redis: { tls: { ca_file: path.join(dir, "ca.pem") } } }),
      secrets: {
        openai: { api_key: "sk-test-tls" },
        redis: { url: `rediss://:${password}@127.0.0.1:${port}`, cluster_secret: CLUSTER_SECRET },
      },
    });
    const health = (await (await fetch(`${tlsServer.url}/health`)).json()) as Frame;
    assert.equal(health.redis, "ok");
    const client = await connect(tlsServer.wsUrl("overtls"));
    await client.next();
    assert.equal((await ask(client, "over TLS")).message, "echo: over TLS");
    await client.close();
  } finally {
    await tlsServer?.close();
    child.kill("SIGTERM");
    await exited;
    rmSync(dir, { recursive: true, force: true });
  }
});
