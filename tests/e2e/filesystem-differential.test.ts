// The differential test of the built-in filesystem: the same sequence of tool calls, through real chat turns, against the npm
// filesystem server (a child from node_modules) and the built-in, on the same workspace folder:
// the results are the same byte for byte, apart from the differences listed in DIFFERENCES.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import path from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { startModelServer, toolDirective, type ChatRequest, type ModelServer } from "../helpers/model-server.ts";
import { ask, baseConfig, connectUser, filesystemEntry, ROOT, startServer } from "../helpers/harness.ts";
import { createFilesystemServer, WORKSPACE_META } from "../../lib/filesystem/server.ts";

type Call = [tool: string, args: Record<string, unknown>];

/** At least 40 calls: reads, writes, edits with and without dryRun, moves, trees, searches with excludes, media, stats, errors of every kind. */
const SEQUENCE: Call[] = [
  ["list_allowed_directories", {}],
  ["list_directory", { path: "." }],
  ["list_directory", { path: "src" }],
  ["list_directory_with_sizes", { path: "." }],
  ["list_directory_with_sizes", { path: ".", sortBy: "size" }],
  ["directory_tree", { path: "." }],
  ["directory_tree", { path: ".", excludePatterns: ["node_modules"] }],
  ["directory_tree", { path: "src", excludePatterns: ["**/*.ts"] }],
  ["read_text_file", { path: "notes.txt" }],
  ["read_text_file", { path: "notes.txt", head: 3 }],
  ["read_text_file", { path: "notes.txt", tail: 2 }],
  ["read_text_file", { path: "crlf.txt", tail: 1 }],
  ["read_text_file", { path: "notes.txt", head: 2, tail: 2 }],
  ["read_file", { path: "notes.txt" }],
  ["read_text_file", { path: "missing.txt" }],
  ["read_text_file", { path: "src" }],
  ["read_text_file", { path: "link-in" }],
  ["read_text_file", { path: "link-out" }],
  ["read_text_file", { path: "../outside.txt" }],
  ["read_text_file", { path: "/etc/passwd" }],
  ["read_text_file", { path: "~/anything" }],
  ["read_text_file", { path: "dangling" }],
  ["read_multiple_files", { paths: ["notes.txt", "missing.txt", "src/a.ts", "../x", "link-out"] }],
  ["read_media_file", { path: "img.png" }],
  ["read_media_file", { path: "sound.mp3" }],
  ["read_media_file", { path: "data.bin" }],
  ["read_media_file", { path: "missing.png" }],
  ["write_file", { path: "new.txt", content: "alpha\n  beta\ngamma\n" }],
  ["read_text_file", { path: "new.txt" }],
  ["write_file", { path: "nodir/x.txt", content: "x" }],
  ["write_file", { path: "link-out", content: "x" }],
  ["write_file", { path: "dangling", content: "x" }],
  ["edit_file", { path: "new.txt", edits: [{ oldText: "alpha", newText: "ALPHA" }], dryRun: true }],
  ["read_text_file", { path: "new.txt" }],
  ["edit_file", { path: "new.txt", edits: [{ oldText: "alpha", newText: "ALPHA" }] }],
  ["edit_file", { path: "new.txt", edits: [{ oldText: "beta\ngamma", newText: "delta\nepsilon" }] }],
  ["edit_file", { path: "new.txt", edits: [{ oldText: "not there", newText: "x" }] }],
  ["edit_file", { path: "missing.txt", edits: [{ oldText: "a", newText: "b" }] }],
  ["read_text_file", { path: "new.txt" }],
  ["create_directory", { path: "made/deep/er" }],
  ["create_directory", { path: "made" }],
  ["create_directory", { path: "../escape" }],
  ["move_file", { source: "new.txt", destination: "made/moved.txt" }],
  ["move_file", { source: "made/moved.txt", destination: "notes.txt" }],
  ["move_file", { source: "missing.txt", destination: "made/x.txt" }],
  ["move_file", { source: "notes.txt", destination: "../stolen.txt" }],
  ["search_files", { path: ".", pattern: "**/*.ts" }],
  ["search_files", { path: ".", pattern: "*.txt" }],
  ["search_files", { path: ".", pattern: "**/*.ts", excludePatterns: ["**/lib/**"] }],
  ["search_files", { path: ".", pattern: "**/*", excludePatterns: ["src/**", "made"] }],
  ["search_files", { path: "src", pattern: "*.none" }],
  ["search_files", { path: "../", pattern: "*" }],
  ["get_file_info", { path: "notes.txt" }],
  ["get_file_info", { path: "src" }],
  ["get_file_info", { path: "made/moved.txt" }],
  ["get_file_info", { path: "missing.txt" }],
  ["list_directory", { path: "missingdir" }],
  ["list_directory", { path: "notes.txt" }],
  ["directory_tree", { path: "missingdir" }],
  ["list_directory", { path: "made" }],
  ["directory_tree", { path: "." }],
  ["read_text_file", {}],
  ["edit_file", { path: "notes.txt" }],
];

/**
 * The differences allowed, each with its reason; applied to both results before comparing.
 * Absolute paths are NOT among them: both servers work on the same folder, so they are equal.
 */
const DIFFERENCES: { what: string; reason: string; normalize: (call: Call, text: string) => string }[] = [
  {
    what: "get_file_info: created, modified and accessed times",
    reason: "the two runs happen at different moments (birth times cannot be set), so the times differ",
    normalize: (call, text) => (call[0] === "get_file_info" ? text.replace(/^(created|modified|accessed): .*$/gm, "$1: <time>") : text),
  },
  {
    what: "get_file_info: permissions of a file a tool created",
    reason: "the built-in creates files 0600 (owner-only); the npm server leaves them to the umask (0644)",
    normalize: (call, text) =>
      call[0] === "get_file_info" && call[1].path === "made/moved.txt" ? text.replace(/^permissions: \d+$/m, "permissions: <mode>") : text,
  },
  {
    what: "list_directory_with_sizes: the size shown for a symlink that points out of the workspace (and so the combined size)",
    reason:
      "the npm server shows the size of the outside file (here /etc/hostname); the built-in shows 0 and tells nothing about files outside",
    normalize: (call, text) =>
      call[0] === "list_directory_with_sizes"
        ? text.replace(/^\[FILE\] link-out .*\n/m, "").replace(/^Combined size: .*$/m, "Combined size: <size>")
        : text,
  },
];

function makeFixture(home: string): void {
  rmSync(home, { recursive: true, force: true });
  mkdirSync(path.join(home, "src", "lib"), { recursive: true });
  mkdirSync(path.join(home, "src", "node_modules"), { recursive: true });
  mkdirSync(path.join(home, "docs"));
  mkdirSync(path.join(home, "empty"));
  writeFileSync(path.join(home, "notes.txt"), Array.from({ length: 10 }, (_, i) => `line ${i + 1}`).join("\n") + "\n");
  writeFileSync(path.join(home, "crlf.txt"), "one\r\ntwo\r\nthree\r\n");
  writeFileSync(path.join(home, "src", "a.ts"), "export const a = 1;\n");
  writeFileSync(path.join(home, "src", "b.ts"), "export const b = 2;\n".repeat(50));
  writeFileSync(path.join(home, "src", "lib", "c.ts"), "export const c = 3;\n");
  writeFileSync(path.join(home, "src", "node_modules", "x.js"), "module.exports = 1;\n");
  writeFileSync(path.join(home, "docs", "readme.md"), "# Docs\n");
  writeFileSync(path.join(home, ".hidden"), "dot file\n");
  writeFileSync(path.join(home, "img.png"), Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 1, 2, 3]));
  writeFileSync(path.join(home, "sound.mp3"), Buffer.from("ID3 fake audio"));
  writeFileSync(path.join(home, "data.bin"), Buffer.from([0, 1, 2, 255]));
  symlinkSync("src/a.ts", path.join(home, "link-in"));
  symlinkSync("/etc/hostname", path.join(home, "link-out"));
  symlinkSync("nowhere/file.txt", path.join(home, "dangling"));
  chmodSync(home, 0o755);
}

let model: ModelServer;
let base: string;
let home: string;
const requests: ChatRequest[] = [];

before(async () => {
  model = await startModelServer({
    responder: (request) => {
      requests.push(request);
      return toolDirective(request) ?? { content: "no directive" };
    },
  });
  base = mkdtempSync(path.join(tmpdir(), "fs-diff-"));
  home = path.join(base, "workspace", "differ");
});

after(async () => {
  await model?.close();
  rmSync(base, { recursive: true, force: true });
});

/** Runs the sequence through chat turns on a fresh copy of the fixture; returns each result text and the tools the model was offered. */
async function runSequence(entry: Record<string, unknown>): Promise<{ results: string[]; tools: unknown }> {
  makeFixture(home);
  const running = await startServer({
    config: baseConfig(
      model.baseUrl,
      { filesystem: entry },
      {
        session: { store: "memory" },
        workspace: { root: path.join(base, "workspace") },
        limits: { messages_per_minute: 6000, message_burst: 200 },
      },
    ),
    secrets: { openai: { api_key: "sk-differential-test" } },
  });
  try {
    const { client } = await connectUser(running, "differ");
    const results: string[] = [];
    const seen = requests.length;
    for (const [tool, args] of SEQUENCE) {
      const frame = await ask(client, `CALL filesystem_${tool} ${JSON.stringify(args)}`);
      assert.equal(typeof frame.message, "string", JSON.stringify(frame));
      results.push(String(frame.message));
    }
    await client.close();
    return { results, tools: requests[seen]?.tools };
  } finally {
    await running.close();
  }
}

test("the sequence has at least 40 calls and covers every tool", () => {
  assert.ok(SEQUENCE.length >= 40, `${SEQUENCE.length} calls`);
  const tools = new Set(SEQUENCE.map(([tool]) => tool));
  assert.equal(tools.size, 14, [...tools].join(", "));
});

test("the built-in and the npm server give the same results, byte for byte, but for the listed differences", async () => {
  // The servers themselves are compared: the npm child runs as the built-in does, outside a sandbox
  // (which hides /etc/hostname behind link-out) and with the server's own home folder (for `~`).
  const child = await runSequence({ ...filesystemEntry, sandbox: false, env: { HOME: homedir() } });
  const builtin = await runSequence({ ...filesystemEntry, builtin: "filesystem" });
  // The model is offered the same tools: names, descriptions, input schemas.
  assert.ok(Array.isArray(child.tools) && child.tools.length === 14);
  assert.deepEqual(builtin.tools, child.tools);
  const normalize = (call: Call, text: string) => DIFFERENCES.reduce((acc, difference) => difference.normalize(call, acc), text);
  const mismatches: string[] = [];
  SEQUENCE.forEach((call, index) => {
    const want = normalize(call, child.results[index] ?? "");
    const got = normalize(call, builtin.results[index] ?? "");
    if (want !== got)
      mismatches.push(
        `#${index} ${call[0]} ${JSON.stringify(call[1])}\n  npm:      ${JSON.stringify(want)}\n  built-in: ${JSON.stringify(got)}`,
      );
  });
  assert.deepEqual(mismatches, []);
  // Errors of every kind really happened (a sequence of successes would prove little).
  assert.ok(child.results.filter((text) => text.startsWith("RESULT Error: ")).length >= 15);
});

test("media, raw: the full MCP results (base64 data, MIME types, resource URIs, structured content) are the same", async () => {
  makeFixture(home);
  const real = realpathSync(home);
  const npm = new Client({ name: "diff", version: "1" });
  await npm.connect(
    new StdioClientTransport({
      command: process.execPath,
      args: [path.join(ROOT, "node_modules/@modelcontextprotocol/server-filesystem/dist/index.js"), home],
      stderr: "ignore",
    }),
  );
  const ours = new Client({ name: "diff", version: "1" });
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  await createFilesystemServer({
    maxReadBytes: 1 << 20,
    maxMediaBytes: 10 << 20,
    maxEntries: 10_000,
    walkTimeoutMs: 10_000,
    deny: [],
    configKey: "test",
  }).connect(serverSide);
  await ours.connect(clientSide);
  try {
    const [npmTools, ourTools] = await Promise.all([npm.listTools(), ours.listTools()]);
    // Compared as they travel, as JSON (the in-memory transport hands over objects with undefined keys).
    const wire = (value: unknown) => JSON.parse(JSON.stringify(value)) as unknown;
    assert.deepEqual(wire(ourTools), wire(npmTools), "titles, annotations and output schemas too");
    for (const file of ["img.png", "sound.mp3", "data.bin", "notes.txt"]) {
      const args = { path: file };
      const want = await npm.callTool({ name: "read_media_file", arguments: args });
      const got = await ours.callTool({ name: "read_media_file", arguments: args, _meta: { [WORKSPACE_META]: real } });
      assert.deepEqual(wire(got), wire(want), file);
    }
  } finally {
    await Promise.all([npm.close(), ours.close()]);
  }
});
