// Per-user values in server configs: what expands, what stays text, what is a config error.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseConfig } from "../../lib/config.ts";
import { checkTemplates, expandEntry, privateDirFor, safeFolderName, usesValue } from "../../lib/mcp/per-user-values.ts";
import { mcpServerSecrets, Redactor } from "../../lib/secrets/redactor.ts";

const values = { user_id: "alice", workspace: "/ws/alice", user_data: "/data/users/alice/servers/memory" };
const entry = (over: Partial<Parameters<typeof expandEntry>[0]> = {}) => ({ args: [], env: {}, headers: {}, ...over });

test("placeholders expand in args, env, cwd, url and headers", () => {
  const expanded = expandEntry(
    entry({
      args: ["--root={workspace}", "{user_id}"],
      env: { MEMORY_FILE_PATH: "{user_data}/memory.jsonl" },
      cwd: "{workspace}/src",
      url: "https://mcp.example.com/u/{user_id}",
      headers: { "X-User": "{user_id}" },
    }),
    values,
  );
  assert.deepEqual(expanded, {
    args: ["--root=/ws/alice", "alice"],
    env: { MEMORY_FILE_PATH: "/data/users/alice/servers/memory/memory.jsonl" },
    cwd: "/ws/alice/src",
    url: "https://mcp.example.com/u/alice",
    headers: { "X-User": "alice" },
  });
});

test("{{name}} is the text {name}; shell and JSON braces stay as written", () => {
  const expanded = expandEntry(entry({ args: ["{{user_id}}", "${HOME}", "f() { echo; }", '{"a":{"b":1}}', "{}", "{{"] }), values);
  assert.deepEqual(expanded.args, ["{user_id}", "${HOME}", "f() { echo; }", '{"a":{"b":1}}', "{}", "{{"]);
});

test("an unknown placeholder is an error naming the key", () => {
  assert.match(
    String(checkTemplates("memory", entry({ env: { PATH_X: "{user_dir}/x" } }), false)),
    /^mcp\.servers\.memory\.env\.PATH_X: unknown placeholder \{user_dir\}/,
  );
  assert.match(
    String(checkTemplates("m", entry({ args: ["ok", "{home}"] }), false)),
    /^mcp\.servers\.m\.args\[1\]: unknown placeholder \{home\}.*\{\{home\}\}/,
  );
  assert.equal(checkTemplates("m", entry({ args: ["{workspace}"], url: "http://x/{user_id}" }), false), undefined);
});

test("a shared server may not use per-user values, and says which key does", () => {
  assert.match(
    String(checkTemplates("notes", entry({ headers: { A: "{user_id}" } }), true)),
    /^mcp\.servers\.notes\.headers\.A: \{user_id\} is a per-user value.*scope is shared/,
  );
  assert.equal(checkTemplates("notes", entry({ args: ["{{user_id}}"] }), true), undefined);
});

test("the config refuses an unknown placeholder and a placeholder in a shared server, with file and key", () => {
  const parse = (text: string) => () => parseConfig({ file: "c.yaml", text }, undefined, {}, "/cfg");
  assert.throws(
    parse("mcp:\n  servers:\n    m:\n      command: x\n      args: ['{nope}']\n"),
    /c\.yaml:\d+: mcp\.servers\.m\.args\[0\]: unknown placeholder \{nope\}/,
  );
  assert.throws(
    parse("mcp:\n  servers:\n    m:\n      command: x\n      scope: shared\n      env: { A: '{user_data}' }\n"),
    /mcp\.servers\.m\.env\.A: \{user_data\} is a per-user value/,
  );
  const config = parseConfig(
    { file: "c.yaml", text: "mcp:\n  servers:\n    m:\n      command: x\n      args: ['{workspace}']\n" },
    undefined,
    {},
    "/cfg",
  );
  assert.equal(config.mcp.servers.m?.scope, "user");
  assert.equal(config.mcp.sandbox, "auto");
});

test("usesValue finds a placeholder, not its escaped text", () => {
  assert.equal(usesValue(entry({ args: ["{workspace}"] }), "workspace"), true);
  assert.equal(usesValue(entry({ args: ["{{workspace}}"] }), "workspace"), false);
});

test("private folders: one per user and server, server names made safe", () => {
  assert.equal(privateDirFor("/data", "memory", "alice"), "/data/users/alice/servers/memory");
  assert.equal(privateDirFor("/data", "memory", undefined), "/data/shared/servers/memory");
  assert.equal(safeFolderName("../x/y"), "..%2fx%2fy");
  assert.equal(safeFolderName(".."), "%2e%2e");
  assert.equal(privateDirFor("/data", "a/../../b", "alice").startsWith("/data/users/alice/servers/"), true);
});

test("a credential completed per user is still redacted: the redactor knows the parts the config wrote", () => {
  const config = parseConfig(
    {
      file: "c.yaml",
      text: "mcp:\n  servers:\n    r:\n      transport: streamable_http\n      url: http://x/mcp\n      headers: { Authorization: 'Bearer tok-9f8e7d6c5b4a-{user_id}' }\n",
    },
    undefined,
    {},
    "/cfg",
  );
  const redactor = new Redactor(mcpServerSecrets(config.mcp.servers));
  const expanded = expandEntry(config.mcp.servers.r ?? entry(), values).headers.Authorization ?? "";
  assert.equal(expanded, "Bearer tok-9f8e7d6c5b4a-alice");
  assert.doesNotMatch(redactor.redact(`the server said: ${expanded}`), /9f8e7d6c5b4a/);
});
