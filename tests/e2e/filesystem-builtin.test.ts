// The built-in filesystem (`builtin: filesystem`) through real chat turns on a real server:
// one in-process instance for every user, each call rooted in its caller's workspace; caps on
// reads, listings, trees and searches; failures are tool errors; workspaces made on first write.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { startModelServer, toolDirective, type ModelServer } from "../helpers/model-server.ts";
import {
  ask,
  baseConfig,
  connectUser,
  descendants,
  filesystemEntry,
  ROOT,
  startServer,
  until,
  type RunningServer,
  type TestClient,
} from "../helpers/harness.ts";
import { loadConfig } from "../../lib/config.ts";
import { commandOf } from "../helpers/proc.ts";

const builtinEntry = { ...filesystemEntry, builtin: "filesystem" };
const LIMITS = { max_read_bytes: 1000, max_media_bytes: 100, max_entries: 50 };

let model: ModelServer;
let running: RunningServer;

before(async () => {
  model = await startModelServer({ responder: (request) => toolDirective(request) ?? { content: "no directive" } });
  running = await startServer({
    config: baseConfig(
      model.baseUrl,
      { filesystem: { ...builtinEntry, ...LIMITS } },
      { session: { store: "memory" }, limits: { messages_per_minute: 6000, message_burst: 200 } },
    ),
    secrets: { openai: { api_key: "sk-builtin-test-key" } },
  });
});
after(async () => {
  await running?.close();
  await model?.close();
});

const call = async (client: TestClient, tool: string, args: unknown = {}) => {
  const frame = await ask(client, `CALL filesystem_${tool} ${JSON.stringify(args)}`);
  return typeof frame.message === "string" ? frame.message : JSON.stringify(frame);
};
const home = (user: string) => path.join(running.configDir, "workspace", user);
const mode = (file: string) => (statSync(file).mode & 0o777).toString(8);

test("the shipped config runs the built-in; without its builtin line the same entry is the npm server as before", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "fs-shipped-"));
  try {
    const file = path.join(dir, "mcp_agent.config.yaml");
    copyFileSync(path.join(ROOT, "mcp_agent.config.yaml"), file);
    const shipped = loadConfig(file, {}).mcp.servers.filesystem;
    assert.equal(shipped?.builtin, "filesystem");
    assert.equal(shipped?.command, "npx");
    assert.deepEqual(shipped?.args, ["-y", "@modelcontextprotocol/server-filesystem"]);
    writeFileSync(file, readFileSync(file, "utf8").replace(/^\s*builtin: filesystem\n/m, ""));
    const fallback = loadConfig(file, {}).mcp.servers.filesystem;
    assert.equal(fallback?.builtin, undefined);
    assert.equal(fallback?.command, "npx");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("one in-process instance serves every user: no child process, each user's calls rooted in their own workspace, concurrently", async () => {
  const alice = await connectUser(running, "alice");
  const bob = await connectUser(running, "bob");
  try {
    assert.equal(await call(alice.client, "write_file", { path: "a.txt", content: "A" }), "RESULT Successfully wrote to a.txt");
    assert.equal(await call(bob.client, "write_file", { path: "b.txt", content: "B" }), "RESULT Successfully wrote to b.txt");
    // Many calls of both users in flight at once: each sees only its own folder.
    const rounds = await Promise.all(
      Array.from({ length: 10 }, async () => [
        await call(alice.client, "list_directory", { path: "." }),
        await call(bob.client, "list_directory", { path: "." }),
      ]),
    );
    for (const [a, b] of rounds) {
      assert.equal(a, "RESULT [FILE] a.txt");
      assert.equal(b, "RESULT [FILE] b.txt");
    }
    // The model is told the real folder; what reaches the user has server paths replaced (the redactor).
    assert.equal(await call(bob.client, "list_allowed_directories"), "RESULT Allowed directories:\n[workspace]/bob");
    const toolResults = model.requests.flatMap((request) => request.messages.filter((message) => message.role === "tool"));
    assert.ok(JSON.stringify(toolResults.at(-1)?.content).includes(realpathSync(home("bob"))));
    assert.match(
      await call(bob.client, "read_text_file", { path: "../alice/a.txt" }),
      /^RESULT Error: Access denied - path outside allowed directories/,
    );
    const info = (await (await fetch(`${running.url}/sessions/alice`)).json()) as {
      mcp_servers: { name: string; transport: string; shared: boolean; pid?: number; state: string }[];
    };
    assert.deepEqual(
      info.mcp_servers.map(({ name, transport, shared, pid, state }) => ({ name, transport, shared, pid, state })),
      [{ name: "filesystem", transport: "builtin", shared: true, pid: undefined, state: "ready" }],
    );
    const filesystemChildren = descendants(process.pid).filter((pid) => commandOf(pid).includes("server-filesystem"));
    assert.deepEqual(filesystemChildren, []);
  } finally {
    await Promise.all([alice.client.close(), bob.client.close()]);
  }
});

test("a workspace folder is made on the first write, not on connect nor on a read; what the built-in makes is owner-only", async () => {
  const { client } = await connectUser(running, "lazy");
  try {
    assert.equal(await call(client, "list_directory", { path: "." }), "RESULT ");
    assert.equal(await call(client, "search_files", { path: ".", pattern: "*" }), "RESULT No matches found");
    assert.equal(await call(client, "directory_tree", { path: "." }), "RESULT []");
    assert.match(await call(client, "read_text_file", { path: "x.txt" }), /^RESULT Error: ENOENT/);
    assert.equal(existsSync(home("lazy")), false, "no folder after connect and reads");
    assert.equal(await call(client, "create_directory", { path: "sub/deeper" }), "RESULT Successfully created directory sub/deeper");
    assert.equal(await call(client, "write_file", { path: "sub/new.txt", content: "hello" }), "RESULT Successfully wrote to sub/new.txt");
    assert.equal(mode(home("lazy")), "700");
    assert.equal(mode(path.join(home("lazy"), "sub", "deeper")), "700");
    assert.equal(mode(path.join(home("lazy"), "sub", "new.txt")), "600");
    // An overwrite keeps the file's own mode (the npm server's rule).
    assert.equal(await call(client, "write_file", { path: "sub/new.txt", content: "again" }), "RESULT Successfully wrote to sub/new.txt");
    assert.equal(mode(path.join(home("lazy"), "sub", "new.txt")), "600");
  } finally {
    await client.close();
  }
});

test("the npm server (no builtin line) still gets its workspace folder, made just before it starts", async () => {
  const child = await startServer({
    config: baseConfig(model.baseUrl, { filesystem: filesystemEntry }, { session: { store: "memory" } }),
    secrets: { openai: { api_key: "sk-builtin-test-key" } },
  });
  try {
    const { client } = await connectUser(child, "kid");
    const reply = await ask(client, `CALL filesystem_list_allowed_directories {}`);
    const dir = path.join(child.configDir, "workspace", "kid");
    assert.equal(reply.message, "RESULT Allowed directories:\n[workspace]/kid");
    assert.equal(mode(dir), "700");
    await client.close();
  } finally {
    await child.close();
  }
});

test("reads are capped: a huge file is cut with a note, head/tail of a huge file read a bounded window, media and edits over the cap are refused", async () => {
  const dir = home("reader");
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, "huge.txt"), "x".repeat(5_000_000));
  writeFileSync(path.join(dir, "lines.txt"), Array.from({ length: 200_000 }, (_, i) => `line ${i}`).join("\n"));
  writeFileSync(path.join(dir, "pic.png"), Buffer.alloc(500));
  const { client } = await connectUser(running, "reader");
  try {
    const cut = await call(client, "read_text_file", { path: "huge.txt" });
    assert.equal(
      cut,
      `RESULT ${"x".repeat(1000)}\n\n[file cut: 5000000 bytes, only the first 1000 are shown (mcp.servers.filesystem.max_read_bytes)]`,
    );
    assert.match(
      await call(client, "read_text_file", { path: "huge.txt", head: 2 }),
      /^RESULT x{1000}\n\n\[file cut: 5000000 bytes; only the first 1000 bytes were read/,
    );
    assert.equal(await call(client, "read_text_file", { path: "lines.txt", tail: 2 }), "RESULT line 199998\nline 199999");
    assert.equal(await call(client, "read_text_file", { path: "lines.txt", head: 2 }), "RESULT line 0\nline 1");
    assert.equal(
      await call(client, "read_media_file", { path: "pic.png" }),
      "RESULT Error: File too large for read_media_file: 500 bytes (the limit is 100, mcp.servers.filesystem.max_media_bytes)",
    );
    assert.match(
      await call(client, "edit_file", { path: "huge.txt", edits: [{ oldText: "x", newText: "y" }] }),
      /^RESULT Error: File too large to edit: 5000000 bytes/,
    );
    const several = await call(client, "read_multiple_files", { paths: ["huge.txt", "lines.txt"] });
    assert.match(several, /lines\.txt: Error - not read: this call already read 1000 bytes/);
  } finally {
    await client.close();
  }
});

test("listings, trees and searches stop at max_entries, and at walk_timeout_seconds, with a note", async () => {
  const dir = home("walker");
  for (let d = 0; d < 4; d++) {
    mkdirSync(path.join(dir, `d${d}`), { recursive: true });
    for (let f = 0; f < 30; f++) writeFileSync(path.join(dir, `d${d}`, `f${f}.txt`), "");
  }
  const { client } = await connectUser(running, "walker");
  try {
    const listing = await call(client, "list_directory", { path: "d0" });
    assert.equal(listing.split("\n").filter((line) => line.startsWith("[FILE]") || line.startsWith("RESULT [FILE]")).length, 30);
    const note = "[listing cut: stopped after 50 entries (mcp.servers.filesystem.max_entries)]";
    for (const [tool, args] of [
      ["directory_tree", { path: "." }],
      ["search_files", { path: ".", pattern: "**/*.txt" }],
    ] as const) {
      const reply = await call(client, tool, args);
      assert.ok(reply.endsWith(`\n\n${note}`), `${tool}: ${reply.slice(-200)}`);
    }
    const search = await call(client, "search_files", { path: ".", pattern: "**/*.txt" });
    assert.ok(search.split("\n").length < 50);
  } finally {
    await client.close();
  }
  const slow = await startServer({
    config: baseConfig(
      model.baseUrl,
      { filesystem: { builtin: "filesystem", walk_timeout_seconds: 0.001, max_entries: 1_000_000 } },
      { session: { store: "memory" } },
    ),
    secrets: { openai: { api_key: "sk-builtin-test-key" } },
  });
  try {
    const big = path.join(slow.configDir, "workspace", "slowpoke");
    for (let d = 0; d < 30; d++) {
      mkdirSync(path.join(big, `d${d}`), { recursive: true });
      for (let f = 0; f < 100; f++) writeFileSync(path.join(big, `d${d}`, `f${f}`), "");
    }
    const { client: slowClient } = await connectUser(slow, "slowpoke");
    const reply = await call(slowClient, "directory_tree", { path: "." });
    assert.ok(reply.endsWith("\n\n[listing cut: stopped after 0.001 s (mcp.servers.filesystem.walk_timeout_seconds)]"), reply.slice(-200));
    await slowClient.close();
  } finally {
    await slow.close();
  }
});

test("a failure inside a tool is a tool error, never a crash or a stall: bad arguments, a FIFO read by five users at once", async () => {
  const users = ["fifo0", "fifo1", "fifo2", "fifo3", "fifo4"];
  for (const user of users) {
    mkdirSync(home(user), { recursive: true });
    execFileSync("mkfifo", [path.join(home(user), "pipe")]);
  }
  const clients = await Promise.all(users.map(async (user) => (await connectUser(running, user)).client));
  try {
    const replies = await Promise.all(clients.map((client) => call(client, "read_text_file", { path: "pipe" })));
    for (const reply of replies) assert.match(reply, /^RESULT Error: Not a regular file: /);
    assert.match(await call(clients[0] as TestClient, "read_media_file", { path: "pipe" }), /^RESULT Error: Not a regular file: /);
    assert.match(await call(clients[0] as TestClient, "read_text_file", { path: 42 }), /^RESULT Error: .*Input validation error/);
    assert.match(
      await call(clients[0] as TestClient, "edit_file", { path: "pipe", edits: "nope" }),
      /^RESULT Error: .*Input validation error/,
    );
    // The file system threads are free: another user's read still answers at once.
    assert.equal(
      await call(clients[1] as TestClient, "write_file", { path: "after.txt", content: "fine" }),
      "RESULT Successfully wrote to after.txt",
    );
    assert.equal(await call(clients[1] as TestClient, "read_text_file", { path: "after.txt" }), "RESULT fine");
    await until(async () => (await fetch(`${running.url}/health`)).ok, "the server to answer");
  } finally {
    await Promise.all(clients.map((client) => client.close()));
  }
});
