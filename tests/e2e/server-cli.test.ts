// The server's command line and signals, with the server as its own process
// (`node --import tsx server.ts ...`). Logging end to end is in unit/config.test.ts.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { startModelServer, type ModelServer } from "../helpers/model-server.ts";
import {
  alive,
  connect,
  descendants,
  filesystemEntry,
  makeConfigDir,
  readLog,
  exitWithin,
  spawnServer,
  stopSpawned,
  testServerEntry,
  until,
  type ConfigDirOptions,
  type Frame,
  type SpawnedServer,
  type TestClient,
} from "../helpers/harness.ts";

let model: ModelServer;
const dirs: string[] = [];
const children: SpawnedServer[] = [];

before(async () => {
  model = await startModelServer();
});
after(async () => {
  await stopSpawned(children);
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  await model.close();
});

/** A temp config folder, removed after the file's tests. */
function configDir(options: ConfigDirOptions = {}): string {
  const dir = makeConfigDir(options);
  dirs.push(dir);
  return dir;
}

/** The server as a child process with `--config <dir>/mcp_agent.config.yaml`, stopped after the tests. */
function spawnWith(dir: string, args: string[] = [], env: Record<string, string | undefined> = {}) {
  const spawned = spawnServer(["--config", path.join(dir, "mcp_agent.config.yaml"), ...args], env);
  // Tests of failed starts never await `ready`; its rejection is expected there.
  spawned.ready.catch(() => undefined);
  children.push(spawned);
  return spawned;
}

/** Config for a server that talks to the scripted model. */
function modelConfig(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { openai: { base_url: model.baseUrl, default_model: "test-model", max_retries: 0 }, ...extra };
}

async function connectTo(url: string, userId: string): Promise<{ client: TestClient; welcome: Frame }> {
  const client = await connect(`${url.replace(/^http/, "ws")}/ws/${userId}`);
  return { client, welcome: await client.next() };
}

async function sessionInfo(url: string, userId: string): Promise<Record<string, unknown>> {
  const res = await fetch(`${url}/sessions/${userId}`);
  assert.equal(res.status, 200);
  return (await res.json()) as Record<string, unknown>;
}

/** A port nobody listens on right now. */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function lines(text: string): string[] {
  return text.split("\n").filter((line) => line.trim() !== "");
}

// ---- point 21: command line -------------------------------------------------------------------
// Each spawn costs about a second of CPU: the tests of a group run a few at a time.

describe("command line", { concurrency: 3 }, () => {
  test("--help prints usage and exits 0", async () => {
    const spawned = spawnWith(configDir(), ["--help"]);
    assert.equal(await exitWithin(spawned, 30000), 0);
    assert.match(spawned.stdout(), /usage/i);
    for (const option of ["--host", "--port", "--config", "--log-level"]) assert.ok(spawned.stdout().includes(option), option);
  });

  test("--port 0 picks a free port and prints its URL; /health answers; --log-level debug overrides the config", async () => {
    const dir = configDir({ config: { logger: { transports: ["console"], level: "error" } } });
    // The flag wins over PORT.
    const spawned = spawnWith(dir, ["--port", "0", "--log-level", "debug"], { PORT: "1" });
    await spawned.ready;
    const found = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(spawned.stdout());
    assert.ok(found, spawned.stdout());
    const port = Number(found[1]);
    assert.ok(port > 1, `port ${port}`);
    const res = await fetch(`http://127.0.0.1:${port}/health`);
    assert.deepEqual(await res.json(), { status: "healthy", active_sessions: 0 });
    spawned.child.kill("SIGTERM");
    assert.equal(await exitWithin(spawned, 5000), 0);
    // The config says error; the flag lets info lines through.
    const events = lines(spawned.stderr()).map((line) => (JSON.parse(line) as Frame).event);
    assert.ok(events.includes("server_start") && events.includes("server_stop"), spawned.stderr());
  });

  test("HOST and PORT from the environment are used when the flags are absent", async () => {
    const port = await freePort();
    const spawned = spawnWith(configDir(), [], { HOST: "localhost", PORT: String(port) });
    await spawned.ready;
    assert.equal(spawned.url, `http://localhost:${port}`);
    const res = await fetch(`http://localhost:${port}/health`);
    assert.equal(res.status, 200);
    spawned.child.kill("SIGTERM");
    assert.equal(await exitWithin(spawned, 5000), 0);
  });

  test("a port in use is a one-line error on stderr and exit code 1", async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    const { port } = blocker.address() as net.AddressInfo;
    try {
      // The default logger writes JSON lines to stderr: none of them may join the error.
      const spawned = spawnWith(configDir(), ["--port", String(port)]);
      assert.equal(await exitWithin(spawned, 30000), 1);
      const errorLines = lines(spawned.stderr());
      assert.equal(errorLines.length, 1, spawned.stderr());
      assert.match(errorLines[0]!, new RegExp(`${port}.*in use`));
      assert.equal(spawned.stdout(), "");
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });

  test("a bad --port is a usage error: exit 2", async () => {
    const spawned = spawnWith(configDir(), ["--port", "abc"]);
    assert.equal(await exitWithin(spawned, 30000), 2);
    assert.match(spawned.stderr(), /--port .*"abc"/);
    assert.equal(spawned.stdout(), "");
  });

  test("a bad --log-level is a usage error: exit 2", async () => {
    const spawned = spawnWith(configDir(), ["--port", "0", "--log-level", "loud"]);
    assert.equal(await exitWithin(spawned, 30000), 2);
    assert.match(spawned.stderr(), /--log-level .*"loud"/);
    assert.equal(spawned.stdout(), "");
  });
});

// ---- point 22: signals ------------------------------------------------------------------------

describe("signals", { concurrency: 2 }, () => {
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    test(`${signal}: sockets get 1001, every MCP child exits, the process exits 0 within 5 s`, async () => {
      // SIGTERM with the fixture and the real filesystem server; SIGINT with the fixture only.
      const servers: Record<string, unknown> =
        signal === "SIGTERM" ? { test: testServerEntry, filesystem: filesystemEntry } : { test: testServerEntry };
      const dir = configDir({
        config: modelConfig({ logger: { transports: ["file"], path: "logs/server.jsonl" }, mcp: { servers } }),
        secrets: { openai: { api_key: "sk-test-signals" } },
      });
      const spawned = spawnWith(dir, ["--port", "0"]);
      await spawned.ready;
      const { client } = await connectTo(spawned.url, "signal_user");
      // A turn starts only once the session's MCP servers have started, so they are running now.
      client.send({ message: "hi" });
      assert.equal((await client.next()).message, "echo: hi");

      const info = await sessionInfo(spawned.url, "signal_user");
      const listed = info.mcp_servers as { name: string; state: string; pid?: number }[];
      assert.deepEqual(
        listed.map((server) => [server.name, server.state]).sort(),
        Object.keys(servers)
          .sort()
          .map((name) => [name, "ready"]),
      );
      const pids = descendants(spawned.child.pid!);
      for (const { pid } of listed) assert.ok(pid !== undefined && pids.includes(pid), `MCP server pid ${pid} among ${pids.join(",")}`);

      const sent = Date.now();
      spawned.child.kill(signal);
      assert.equal((await client.closed).code, 1001);
      assert.equal(await exitWithin(spawned, 5000), 0);
      assert.ok(Date.now() - sent < 5000);
      // No event tells us a grandchild has gone: poll, briefly.
      await until(() => !pids.some(alive), `MCP processes ${pids.join(",")} to be gone`, 2000);
      const events = readLog(path.join(dir, "logs/server.jsonl")).map((line) => line.event);
      assert.ok(events.includes("server_stop"), events.join(","));
    });
  }
});
