// The page's connection rules without a socket (page/reconnect.js).
import { test } from "node:test";
import assert from "node:assert/strict";
import { isValidUserId } from "../../lib/protocol.ts";
import { clientIdFrom, FIRST_DELAY_MS, isUserId, nextDelay, probeVerdict, reconnectText, socketUrl } from "../../page/reconnect.js";

test("user ids follow the server's rule", () => {
  for (const id of ["alice", "a.b-c_d", "x".repeat(64), "", ".", "..", "x".repeat(65), "a/b", "a b", "é"]) {
    assert.equal(isUserId(id), isValidUserId(id), JSON.stringify(id));
  }
});

test("the socket URL: same host, ws or wss by the page's scheme, the token encoded", () => {
  assert.equal(socketUrl({ protocol: "http:", host: "127.0.0.1:8000" }, "alice", ""), "ws://127.0.0.1:8000/ws/alice?stream=1");
  assert.equal(
    socketUrl({ protocol: "https:", host: "chat.example" }, "a.b", "t&k=1"),
    "wss://chat.example/ws/a.b?stream=1&token=t%26k%3D1",
  );
});

test("the reconnect wait doubles from 0.5 s to 10 s; the status line counts down and says why", () => {
  const waits = [FIRST_DELAY_MS];
  while (waits.length < 8) waits.push(nextDelay(waits.at(-1) ?? 0));
  assert.deepEqual(waits, [500, 1000, 2000, 4000, 8000, 10000, 10000, 10000]);
  assert.equal(reconnectText(5000, 1000, ""), "Reconnecting in 4 s…");
  assert.equal(reconnectText(5000, 1000, "token rejected"), "Reconnecting in 4 s (token rejected)…");
  assert.equal(reconnectText(1000, 5000, ""), "Reconnecting in 0 s…");
});

test("a failed socket's probe: token required, rejected, for another user, or the server's problem", () => {
  assert.deepEqual(probeVerdict(401, ""), {
    note: "Token required: this server needs a token. Enter it and press Connect.",
    problem: "token required",
    required: true,
  });
  assert.equal(probeVerdict(401, "wrong").problem, "token rejected");
  assert.equal(probeVerdict(403, "bob's").problem, "token is for another user");
  assert.deepEqual(probeVerdict(0, ""), { note: "", problem: "server unreachable", required: false });
  assert.equal(probeVerdict(200, "").problem, "the server refused the connection");
  assert.equal(probeVerdict(404, "").problem, "the server refused the connection");
  assert.equal(probeVerdict(503, "").problem, "the server answered HTTP 503");
});

test("client ids: page- and the bytes in hex", () => {
  assert.equal(clientIdFrom(new Uint8Array([0, 15, 255])), "page-000fff");
});
