// Which upgrade requests become a user's socket (lib/socket/upgrade.ts): pure decisions on the
// method, raw path, Host, Origin and token.
import assert from "node:assert/strict";
import { test } from "node:test";
import { configDefaults } from "../../lib/config.ts";
import { decideUpgrade, wantsStreaming } from "../../lib/socket/upgrade.ts";

const server = configDefaults().server;
const headers = (extra: Record<string, string> = {}) => ({
  host: "127.0.0.1:8000",
  upgrade: "websocket",
  connection: "Upgrade",
  "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
  "sec-websocket-version": "13",
  ...extra,
});

test("a good request to /ws/<user_id> names the user; ?stream=1 or true asks for streaming", () => {
  assert.deepEqual(decideUpgrade({ method: "GET", url: "/ws/alice", headers: headers() }, server, "127.0.0.1"), {
    ok: true,
    userId: "alice",
    streaming: false,
  });
  assert.deepEqual(decideUpgrade({ method: "GET", url: "/ws/a%2Eb?stream=1", headers: headers() }, server, "127.0.0.1"), {
    ok: true,
    userId: "a.b",
    streaming: true,
  });
  assert.equal(wantsStreaming("/ws/x?stream=true"), true);
  assert.equal(wantsStreaming("/ws/x?stream=0"), false);
});

test("refusals: other paths 404, bad ids 400 (raw `..` included), foreign Host and Origin 403, missing token 401", () => {
  const refused = (url: string, extra: Record<string, string> = {}, config = server) => {
    const decision = decideUpgrade({ method: "GET", url, headers: headers(extra) }, config, "127.0.0.1");
    return decision.ok ? 0 : decision.status;
  };
  assert.equal(refused("/other"), 404);
  assert.equal(refused("/ws/.."), 400);
  assert.equal(refused("/ws/%E0%A4%A"), 400);
  assert.equal(refused("/ws/" + "x".repeat(65)), 400);
  assert.equal(refused("/ws/alice", { host: "evil.example" }), 403);
  assert.equal(refused("/ws/alice", { origin: "http://evil.example" }), 403);
  const withToken = { ...server, auth_token: "a-long-token" };
  assert.equal(refused("/ws/alice", {}, withToken), 401);
  assert.equal(refused("/ws/alice?token=a-long-token", {}, withToken), 0);
});
