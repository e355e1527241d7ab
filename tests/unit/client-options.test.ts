// client/options.ts: the CLI's flags and environment, checked before anything connects.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseOptions, socketTarget, UsageError } from "../../client/options.ts";
import { policyAnswer } from "../../client/frames.ts";

test("--url takes ws(s) and http(s), keeps a path prefix, appends /ws/<user> and asks for streaming", () => {
  assert.deepEqual(socketTarget("ws://127.0.0.1:8000", "alice"), {
    url: "ws://127.0.0.1:8000/ws/alice?stream=1",
    display: "ws://127.0.0.1:8000/ws/alice",
  });
  assert.equal(socketTarget("http://h:1/", "a").url, "ws://h:1/ws/a?stream=1");
  assert.equal(socketTarget("https://h/agent/", "a").url, "wss://h/agent/ws/a?stream=1");
  assert.equal(socketTarget("wss://u:p@h", "a").display, "wss://h/ws/a");
  assert.throws(() => socketTarget("ftp://h", "a"), UsageError);
  assert.throws(() => socketTarget("localhost:8000", "a"), UsageError);
  assert.throws(() => socketTarget("not a url", "a"), UsageError);
});

test("defaults: $USER, else test_user; timeout 300 s; token from MCP_AGENT_TOKEN", () => {
  assert.equal(parseOptions([], { USER: "bob" }).user, "bob");
  assert.equal(parseOptions([], {}).user, "test_user");
  assert.equal(parseOptions([], { USER: "" }).user, "test_user");
  const options = parseOptions([], { MCP_AGENT_TOKEN: "t1" });
  assert.equal(options.timeoutMs, 300000);
  assert.equal(options.token, "t1");
  assert.equal(options.target.url, "ws://127.0.0.1:8000/ws/test_user?stream=1");
  assert.equal(parseOptions(["--token", "t2"], { MCP_AGENT_TOKEN: "t1" }).token, "t2");
  assert.deepEqual(parseOptions(["-m", "a", "--message", "b"], {}).messages, ["a", "b"]);
  assert.equal(parseOptions(["--timeout", "0.5"], {}).timeoutMs, 500);
});

test("token: --token, else MCP_AGENT_AUTH_TOKEN (the server's name), else MCP_AGENT_TOKEN", () => {
  assert.equal(parseOptions([], { MCP_AGENT_AUTH_TOKEN: "auth" }).token, "auth");
  assert.equal(parseOptions([], { MCP_AGENT_AUTH_TOKEN: "auth", MCP_AGENT_TOKEN: "old" }).token, "auth");
  assert.equal(parseOptions([], { MCP_AGENT_AUTH_TOKEN: "", MCP_AGENT_TOKEN: "old" }).token, "old");
  assert.equal(parseOptions(["--token", "flag"], { MCP_AGENT_AUTH_TOKEN: "auth", MCP_AGENT_TOKEN: "old" }).token, "flag");
  assert.equal(parseOptions([], {}).token, undefined);
});

test("approvals: asked by default, --approve-all / --deny-all answer, both at once is a usage error", () => {
  assert.equal(parseOptions([], {}).approvals, "ask");
  assert.equal(parseOptions(["--approve-all"], {}).approvals, "approve-all");
  assert.equal(parseOptions(["--deny-all"], {}).approvals, "deny-all");
  assert.throws(() => parseOptions(["--approve-all", "--deny-all"], {}), /--approve-all and --deny-all cannot be used together/);
  assert.equal(policyAnswer("ask"), undefined);
  assert.deepEqual(policyAnswer("approve-all"), { approved: true, always: false });
  assert.deepEqual(policyAnswer("deny-all"), { approved: false, reason: "denied by --deny-all", always: false });
});

test("bad values are usage errors", () => {
  for (const argv of [
    ["--user", "a b"],
    ["--user", ".."],
    ["--timeout", "0"],
    ["--timeout", "x"],
    ["--timeout", "-1"],
    ["-m", " "],
    ["--token", ""],
    ["--nope"],
    ["word"],
  ]) {
    assert.throws(() => parseOptions(argv, {}), UsageError, argv.join(" "));
  }
  assert.throws(() => parseOptions([], { USER: "has space" }), /invalid user id "has space"/);
});
