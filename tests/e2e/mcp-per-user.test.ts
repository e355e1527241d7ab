// Every user's stdio servers are their own: per-user values in the config, a private folder for
// each server's state, the workspace as working folder — and `scope: shared` for one process for all.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { startModelServer, toolDirective, type ModelServer } from "../helpers/model-server.ts";
import {
  ask,
  baseConfig,
  connectUser,
  readLog,
  ROOT,
  startServer,
  until,
  type RunningServer,
  type TestClient,
} from "../helpers/harness.ts";

const HOSTILE = path.join(ROOT, "tests/fixtures/hostile-mcp-server.mjs");
const hostile = (extra: Record<string, unknown> = {}) => ({ command: process.execPath, args: [HOSTILE], ...extra });

let model: ModelServer;
let running: RunningServer;

before(async () => {
  model = await startModelServer({ responder: (request) => toolDirective(request) ?? { content: "ok" } });
  running = await startServer({
    secrets: { openai: { api_key: "sk-per-user-test-0000" } },
    config: baseConfig(model.baseUrl, {
      // As the shipped config and docs/mcp.md spell it.
      memory: {
        command: "npx",
        args: ["-y", "@modelcontextprotocol/server-memory"],
        env: { MEMORY_FILE_PATH: "{user_data}/memory.jsonl" },
      },
      who: hostile({
        args: [HOSTILE, "--user={user_id}", "--literal={{user_id}}", "--shell=${HOME}"],
        env: { WHO: "{user_id} in {workspace}", MCP_STATE: "{user_data}/state" },
      }),
      everyone: hostile({ scope: "shared" }),
    }),
  });
});

after(async () => {
  await running?.close();
  await model?.close();
});

/** One tool call through the model; the answer is `RESULT <the tool's text>`. */
async function call(client: TestClient, tool: string, args: unknown = {}): Promise<string> {
  const frame = await ask(client, `CALL ${tool} ${JSON.stringify(args)}`);
  return String(frame.message ?? JSON.stringify(frame)).replace(/^RESULT /, "");
}

interface Whoami {
  pid: number;
  nice: number;
  cwd: string;
  argv: string[];
  env: Record<string, string>;
}
const whoami = async (client: TestClient, server: string): Promise<Whoami> => JSON.parse(await call(client, `${server}_whoami`)) as Whoami;

test("two users of server-memory keep separate graphs, each in a private folder of their own", async () => {
  const alice = (await connectUser(running, "alice")).client;
  const bob = (await connectUser(running, "bob")).client;
  try {
    const created = await call(alice, "memory_create_entities", {
      entities: [{ name: "Alice_secret_project", entityType: "project", observations: ["only alice knows"] }],
    });
    assert.match(created, /Alice_secret_project/);
    assert.doesNotMatch(await call(bob, "memory_read_graph"), /Alice_secret_project/);
    await call(bob, "memory_create_entities", { entities: [{ name: "Bob_garden", entityType: "place", observations: [] }] });
    const aliceGraph = await call(alice, "memory_read_graph");
    assert.match(aliceGraph, /Alice_secret_project/);
    assert.doesNotMatch(aliceGraph, /Bob_garden/);

    const aliceFile = path.join(running.configDir, "data/users/alice/servers/memory/memory.jsonl");
    assert.match(readFileSync(aliceFile, "utf8"), /Alice_secret_project/);
    assert.doesNotMatch(readFileSync(path.join(running.configDir, "data/users/bob/servers/memory/memory.jsonl"), "utf8"), /Alice/);
    for (const dir of ["data/users", "data/users/alice", "data/users/alice/servers/memory"]) {
      assert.equal(statSync(path.join(running.configDir, dir)).mode & 0o777, 0o700, dir);
    }
    // Nothing was written beside the package, where every user would share it.
    assert.equal(existsSync(path.join(ROOT, "node_modules/@modelcontextprotocol/server-memory/dist/memory.jsonl")), false);
  } finally {
    await alice.close();
    await bob.close();
  }
});

test("{user_id}, {workspace} and {user_data} expand in args and env; {{user_id}} and ${HOME} stay text", async () => {
  const { client } = await connectUser(running, "carol");
  try {
    const seen = await whoami(client, "who");
    // What a client reads has the server's folders as [workspace] and [data] (the redactor's doing).
    const workspace = "[workspace]/carol";
    const own = "[data]/users/carol/servers/who";
    assert.deepEqual(seen.argv, ["--user=carol", "--literal={user_id}", "--shell=${HOME}"]);
    assert.equal(seen.env.WHO, `carol in ${workspace}`);
    assert.equal(seen.env.MCP_STATE, `${own}/state`);
    // The working folder is the user's workspace; home, temp and XDG folders are the server's own.
    assert.equal(seen.cwd, workspace);
    assert.equal(seen.nice, 10, "a busy child yields the CPU (mcp.child_limits.nice)");
    assert.equal(seen.env.HOME, `${own}/home`);
    assert.equal(seen.env.TMPDIR, `${own}/tmp`);
    assert.equal(seen.env.XDG_CONFIG_HOME, `${own}/home/.config`);
    assert.equal(seen.env.XDG_DATA_HOME, `${own}/home/.local/share`);
    assert.equal(seen.env.XDG_CACHE_HOME, `${own}/home/.cache`);
    assert.equal(seen.env.XDG_STATE_HOME, `${own}/home/.local/state`);
    const scratch = path.join(running.configDir, "data/users/carol/servers/who/tmp/scratch");
    assert.equal(await call(client, "who_write", { path: scratch, text: "x" }), "OK written");
    assert.equal(readFileSync(scratch, "utf8"), "x");
  } finally {
    await client.close();
  }
});

test("a scope: shared server is one process for every user, with a shared folder and no user's workspace", async () => {
  const dave = (await connectUser(running, "dave")).client;
  const erin = (await connectUser(running, "erin")).client;
  try {
    const [forDave, forErin] = [await whoami(dave, "everyone"), await whoami(erin, "everyone")];
    const sessions = async (user: string, server = "everyone") => {
      const body = (await (await fetch(`${running.url}/sessions/${user}`)).json()) as {
        mcp_servers: { name: string; pid?: number; shared: boolean }[];
      };
      return body.mcp_servers.find((info) => info.name === server);
    };
    const [daveInfo, erinInfo] = [await sessions("dave"), await sessions("erin")];
    assert.ok(daveInfo?.pid && daveInfo.pid === erinInfo?.pid, "one process");
    assert.equal(daveInfo.shared, true);
    assert.equal(forDave.env.HOME, forErin.env.HOME);
    const shared = "[data]/shared/servers/everyone";
    assert.equal(forDave.env.HOME, `${shared}/home`);
    assert.equal(forDave.cwd, shared);
    // A user's own server, by contrast, is one process each.
    assert.notEqual((await sessions("dave", "who"))?.pid, (await sessions("erin", "who"))?.pid);
  } finally {
    await dave.close();
    await erin.close();
  }
});

test("without bubblewrap the start says so with the apt command; a server that requires the sandbox does not start", async () => {
  const config = baseConfig(model.baseUrl, { loose: hostile(), strict: hostile({ sandbox: true }) });
  const missing = await startServer({
    secrets: { openai: { api_key: "sk-per-user-test-0000" } },
    config: { ...config, mcp: { ...config.mcp, bwrap_path: "/nonexistent/bwrap" } },
  });
  try {
    const warned = () => readLog(missing.logPath).find((line) => line.event === "mcp_sandbox_unavailable");
    await until(() => warned() !== undefined, "the mcp_sandbox_unavailable log line");
    const warning = warned();
    assert.match(String(warning?.message), /WITHOUT a sandbox.*apt-get install -y bubblewrap/);
    assert.match(String(warning?.message), /require a sandbox will not start: strict/);
    const { client } = await connectUser(missing, "frank");
    try {
      // The unsandboxed child still works in the user's workspace.
      assert.equal((await whoami(client, "loose")).cwd, "[workspace]/frank");
      const body = (await (await fetch(`${missing.url}/sessions/frank`)).json()) as {
        mcp_servers: { name: string; state: string; error?: string }[];
      };
      const strict = body.mcp_servers.find((info) => info.name === "strict");
      assert.equal(strict?.state, "failed");
      assert.match(
        String(strict?.error),
        /requires a sandbox \(mcp\.servers\.strict\.sandbox.*not installed.*apt-get install -y bubblewrap/,
      );
    } finally {
      await client.close();
    }
  } finally {
    await missing.close();
  }
});
