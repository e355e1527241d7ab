// Which upgrade requests become a user's socket (lib/socket/upgrade.ts): decisions on the method,
// raw path, Host, Origin and token, with the server's Authenticator as the config makes it.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Authenticator } from "../../lib/auth/authenticator.ts";
import { parseConfig } from "../../lib/config.ts";
import { decideUpgrade, wantsStreaming } from "../../lib/socket/upgrade.ts";

const configWith = (yaml: string) => parseConfig({ file: "mcp_agent.config.yaml", text: yaml }, undefined, {}, "/tmp");
const open = configWith("");
const withToken = configWith("server:\n  auth_token: a-long-token\n");
const headers = (extra: Record<string, string> = {}) => ({
  host: "127.0.0.1:8000",
  upgrade: "websocket",
  connection: "Upgrade",
  "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
  "sec-websocket-version": "13",
  ...extra,
});
const decide = (url: string, extra: Record<string, string> = {}, config = open) =>
  decideUpgrade({ method: "GET", url, headers: headers(extra) }, config.server, "127.0.0.1", new Authenticator(config));

test("a good request to /ws/<user_id> names the user; ?stream=1 or true asks for streaming", async () => {
  assert.deepEqual(await decide("/ws/alice"), { ok: true, userId: "alice", streaming: false });
  assert.deepEqual(await decide("/ws/a%2Eb?stream=1"), { ok: true, userId: "a.b", streaming: true });
  assert.equal(wantsStreaming("/ws/x?stream=true"), true);
  assert.equal(wantsStreaming("/ws/x?stream=0"), false);
});

test("refusals: other paths 404, bad ids 400 (raw `..` included), foreign Host and Origin 403, missing token 401", async () => {
  const status = async (url: string, extra: Record<string, string> = {}, config = open) => {
    const decision = await decide(url, extra, config);
    return decision.ok ? 0 : decision.status;
  };
  assert.equal(await status("/other"), 404);
  assert.equal(await status("/ws/.."), 400);
  assert.equal(await status("/ws/%E0%A4%A"), 400);
  assert.equal(await status("/ws/" + "x".repeat(65)), 400);
  assert.equal(await status("/ws/alice", { host: "evil.example" }), 403);
  assert.equal(await status("/ws/alice", { origin: "http://evil.example" }), 403);
  assert.equal(await status("/ws/alice", {}, withToken), 401);
  assert.equal(await status("/ws/alice?token=a-long-token", {}, withToken), 0);
});
