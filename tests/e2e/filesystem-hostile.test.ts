// The hostile filesystem cases (those of mcp-children.test.ts and
// the corpus's fs rows, plus more) against BOTH the npm server (a child) and the built-in, through
// real chat turns; then the cases only the built-in can refuse (the server's own files inside a
// workspace) and a symlink swapped in while the server runs.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { startModelServer, toolDirective, type ModelServer } from "../helpers/model-server.ts";
import {
  ask,
  baseConfig,
  connectUser,
  filesystemEntry,
  startServer,
  testServerEntry,
  type RunningServer,
  type TestClient,
} from "../helpers/harness.ts";

const API_KEY = "sk-fs-hostile-SECRET-0a1b2c3d4e5f";

let model: ModelServer;
before(async () => {
  model = await startModelServer({ responder: (request) => toolDirective(request) ?? { content: "no directive" } });
});
after(async () => {
  await model?.close();
});

const call = async (client: TestClient, tool: string, args: unknown = {}) => {
  const frame = await ask(client, `CALL ${tool} ${JSON.stringify(args)}`);
  return typeof frame.message === "string" ? frame.message : JSON.stringify(frame);
};

function start(entry: Record<string, unknown>, extra: Record<string, unknown> = {}): Promise<RunningServer> {
  return startServer({
    config: baseConfig(
      model.baseUrl,
      { filesystem: entry },
      { session: { store: "memory" }, limits: { messages_per_minute: 6000, message_burst: 200 }, ...extra },
    ),
    secrets: { openai: { api_key: API_KEY } },
  });
}

const VARIANTS = [
  { name: "npm server (child)", entry: filesystemEntry },
  { name: "built-in", entry: { ...filesystemEntry, builtin: "filesystem" } },
];

for (const variant of VARIANTS) {
  test(`${variant.name}: ../, absolute paths, a same-prefix sibling, symlinks out, the secrets file: all refused, nothing leaks or is planted`, async () => {
    const files = await start(variant.entry);
    const root = path.join(files.configDir, "workspace");
    const home = path.join(root, "alice");
    const secretsFile = path.join(files.configDir, "mcp_agent.secrets.yaml");
    mkdirSync(home, { recursive: true });
    mkdirSync(path.join(root, "alice2"), { recursive: true });
    writeFileSync(path.join(root, "alice2", "secret.txt"), "alice2 private words");
    writeFileSync(path.join(home, "ok.txt"), "alice's own file");
    symlinkSync(files.configDir, path.join(home, "link"));
    symlinkSync("/etc", path.join(home, "etc"));
    symlinkSync(secretsFile, path.join(home, "key.yaml"));
    symlinkSync(path.join(root, "alice2", "planted-by-link.txt"), path.join(home, "dangling-out"));
    const { client } = await connectUser(files, "alice");
    try {
      assert.equal(await call(client, "filesystem_read_text_file", { path: path.join(home, "ok.txt") }), "RESULT alice's own file");
      const refused: [string, Record<string, unknown>][] = [
        ["filesystem_read_text_file", { path: path.join(home, "..", "alice2", "secret.txt") }],
        ["filesystem_read_text_file", { path: "../alice2/secret.txt" }],
        ["filesystem_read_text_file", { path: path.join(root, "alice2", "secret.txt") }],
        ["filesystem_list_directory", { path: path.join(root, "alice2") }],
        ["filesystem_search_files", { path: path.join(root, "alice2"), pattern: "secret" }],
        ["filesystem_list_directory", { path: root }],
        ["filesystem_read_text_file", { path: "/etc/passwd" }],
        ["filesystem_read_text_file", { path: "~/.bashrc" }],
        ["filesystem_read_text_file", { path: path.join(home, "etc", "passwd") }],
        ["filesystem_list_directory", { path: path.join(home, "link") }],
        ["filesystem_list_directory_with_sizes", { path: "link" }],
        ["filesystem_directory_tree", { path: path.join(home, "link") }],
        ["filesystem_search_files", { path: path.join(home, "link"), pattern: "secrets" }],
        ["filesystem_read_text_file", { path: path.join(home, "link", "mcp_agent.secrets.yaml") }],
        ["filesystem_read_text_file", { path: secretsFile }],
        ["filesystem_read_text_file", { path: "mcp_agent.secrets.yaml" }],
        ["filesystem_read_text_file", { path: "link/mcp_agent.secrets.yaml" }],
        ["filesystem_read_text_file", { path: path.join(home, "key.yaml") }],
        ["filesystem_read_file", { path: path.join(home, "key.yaml") }],
        ["filesystem_read_text_file", { path: "key.yaml", head: 1 }],
        ["filesystem_read_text_file", { path: "key.yaml", tail: 1 }],
        ["filesystem_read_media_file", { path: secretsFile }],
        ["filesystem_read_media_file", { path: path.join(home, "key.yaml") }],
        ["filesystem_get_file_info", { path: path.join(home, "key.yaml") }],
        ["filesystem_edit_file", { path: path.join(home, "key.yaml"), edits: [{ oldText: "sk-", newText: "sk-" }], dryRun: true }],
        ["filesystem_move_file", { source: secretsFile, destination: path.join(home, "stolen.yaml") }],
        [
          "filesystem_move_file",
          { source: path.join(home, "link", "mcp_agent.secrets.yaml"), destination: path.join(home, "stolen2.yaml") },
        ],
        ["filesystem_move_file", { source: path.join(home, "ok.txt"), destination: path.join(root, "alice2", "pushed.txt") }],
        ["filesystem_write_file", { path: path.join(home, "link", "planted.txt"), content: "x" }],
        ["filesystem_write_file", { path: path.join(root, "alice2", "planted.txt"), content: "x" }],
        ["filesystem_write_file", { path: "dangling-out", content: "x" }],
        ["filesystem_create_directory", { path: path.join(home, "link", "planted-dir") }],
        ["filesystem_create_directory", { path: "../alice2/planted-dir" }],
      ];
      for (const [tool, args] of refused) {
        const reply = await call(client, tool, args);
        assert.match(reply, /^RESULT Error: /, `${tool} ${JSON.stringify(args)} must be refused, got ${reply.slice(0, 300)}`);
        assert.ok(
          !reply.includes(API_KEY) && !reply.includes("alice2 private") && !reply.includes("root:x:0"),
          `${tool} leaked: ${reply.slice(0, 300)}`,
        );
      }
      const several = await call(client, "filesystem_read_multiple_files", {
        paths: [
          secretsFile,
          path.join(home, "key.yaml"),
          path.join(home, "link", "mcp_agent.secrets.yaml"),
          path.join(root, "alice2", "secret.txt"),
        ],
      });
      assert.ok(!several.includes(API_KEY) && !several.includes("alice2 private"), several.slice(0, 500));
      // A search or a tree over the workspace does not follow the symlinks out.
      for (const [tool, args] of [
        ["filesystem_search_files", { path: ".", pattern: "**/*secret*" }],
        ["filesystem_directory_tree", { path: "." }],
      ] as const) {
        const reply = await call(client, tool, args);
        assert.ok(!reply.includes("mcp_agent.secrets.yaml") && !reply.includes("passwd"), `${tool}: ${reply.slice(0, 500)}`);
      }
      assert.match(readFileSync(secretsFile, "utf8"), new RegExp(API_KEY));
      for (const planted of [
        path.join(files.configDir, "planted.txt"),
        path.join(files.configDir, "planted-dir"),
        path.join(root, "alice2", "planted.txt"),
        path.join(root, "alice2", "planted-dir"),
        path.join(root, "alice2", "planted-by-link.txt"),
        path.join(root, "alice2", "pushed.txt"),
        path.join(home, "stolen.yaml"),
        path.join(home, "stolen2.yaml"),
      ]) {
        assert.equal(existsSync(planted), false, planted);
      }
      assert.ok(!client.frames.some((frame) => JSON.stringify(frame).includes(API_KEY)));
    } finally {
      await client.close();
      await files.close();
    }
  });
}

test('built-in: the server\'s own files are refused even when a workspace holds them (workspace.root: ".", user "logs" or "data")', async () => {
  const files = await start(
    { builtin: "filesystem" },
    { workspace: { root: "." }, session: { store: "sqlite", sqlite_path: "data/sessions.db" } },
  );
  try {
    const logs = await connectUser(files, "logs");
    const data = await connectUser(files, "data");
    try {
      for (const [client, args] of [
        [logs.client, { path: "." }],
        [logs.client, { path: "test.jsonl" }],
        [data.client, { path: "sessions.db" }],
      ] as const) {
        const reply = await call(client, args.path === "." ? "filesystem_list_directory" : "filesystem_read_text_file", args);
        assert.match(reply, /^RESULT Error: Access denied - .* is one of the server's own files$/, reply.slice(0, 300));
      }
      // The folder itself is the user's, only the server's files in it are not.
      assert.equal(
        await call(data.client, "filesystem_write_file", { path: "mine.txt", content: "ok" }),
        "RESULT Successfully wrote to mine.txt",
      );
      const listing = await call(data.client, "filesystem_search_files", { path: ".", pattern: "*" });
      // Server paths never reach a client: the data folder reads as [data].
      assert.equal(listing, "RESULT [data]/mine.txt");
    } finally {
      await Promise.all([logs.client.close(), data.client.close()]);
    }
  } finally {
    await files.close();
  }
});

test("built-in: a folder swapped for a symlink out between two calls is refused on the next call", async () => {
  const files = await start({ builtin: "filesystem" });
  const home = path.join(files.configDir, "workspace", "swapper");
  const outside = path.join(files.configDir, "outside");
  mkdirSync(path.join(home, "dir"), { recursive: true });
  mkdirSync(outside);
  writeFileSync(path.join(home, "dir", "f.txt"), "inside");
  writeFileSync(path.join(outside, "f.txt"), "OUTSIDE SECRET");
  const { client } = await connectUser(files, "swapper");
  try {
    assert.equal(await call(client, "filesystem_read_text_file", { path: "dir/f.txt" }), "RESULT inside");
    renameSync(path.join(home, "dir"), path.join(home, "old"));
    symlinkSync(outside, path.join(home, "dir"));
    const reply = await call(client, "filesystem_read_text_file", { path: "dir/f.txt" });
    assert.match(reply, /^RESULT Error: Access denied/);
    assert.ok(!reply.includes("OUTSIDE SECRET"));
    rmSync(path.join(home, "dir"));
  } finally {
    await client.close();
    await files.close();
  }
});

test("a child's message over limits.mcp_max_message_bytes (the npm server's tree of a huge folder) is a tool error naming the key for that user, not the end of the server", async () => {
  const files = await startServer({
    config: baseConfig(model.baseUrl, { test: testServerEntry }, { session: { store: "memory" } }),
    secrets: { openai: { api_key: API_KEY } },
  });
  try {
    const big = await connectUser(files, "bigger");
    const other = await connectUser(files, "other");
    assert.match(
      await call(big.client, "test_big", { chars: 11_000_000 }),
      /^RESULT Error: .*larger than 8388608 bytes \(limits\.mcp_max_message_bytes\)/,
    );
    assert.equal((await fetch(`${files.url}/health`)).status, 200);
    assert.equal(await call(other.client, "test_echo", { text: "still here" }), "RESULT echo:still here");
    await Promise.all([big.client.close(), other.client.close()]);
  } finally {
    await files.close();
  }
});

test("built-in: a log written beside the config does not make the folder holding the workspaces one of the server's own files", async () => {
  const files = await start({ builtin: "filesystem" }, { logger: { transports: ["file"], level: "debug", path: "server.jsonl" } });
  try {
    const { client } = await connectUser(files, "beside");
    assert.equal(await call(client, "filesystem_write_file", { path: "ok.txt", content: "fine" }), "RESULT Successfully wrote to ok.txt");
    assert.equal(await call(client, "filesystem_read_text_file", { path: "ok.txt" }), "RESULT fine");
    assert.match(
      await call(client, "filesystem_read_text_file", { path: path.join(files.configDir, "server.jsonl") }),
      /^RESULT Error: Access denied/,
    );
    await client.close();
  } finally {
    await files.close();
  }
});
