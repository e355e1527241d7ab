// lib/secrets/redactor.ts without a server: secrets, credentials by their shape, server paths,
// streamed text cut anywhere, and linear time on hostile input.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mcpServerSecrets, Redactor, StreamRedactor } from "../../lib/secrets/redactor.ts";
import { mcpServerDefaults } from "../../lib/config.ts";

test("the redactor finds secrets inside longer text, in every spelling, and credentials by their shape", () => {
  const redactor = new Redactor(["s3cret/value+1"], { paths: [{ path: "/srv/app/workspace", label: "[workspace]" }] });
  assert.equal(redactor.redact("key=xs3cret/value+1y"), "key=x[REDACTED]y");
  assert.equal(redactor.redact(`url ${encodeURIComponent("s3cret/value+1")}`), "url [REDACTED]");
  assert.equal(redactor.redact(JSON.stringify({ a: 's3cret/value+1"' })), '{"a":"[REDACTED]\\""}');
  // Never configured, but shaped like credentials:
  assert.equal(redactor.redact("GET https://bob:hunter2@host/x"), "GET https://bob:[REDACTED]@host/x");
  assert.equal(redactor.redact("see https://h/p?q=1&access_token=abc123&page=2"), "see https://h/p?q=1&access_token=[REDACTED]&page=2");
  assert.equal(redactor.redact("Authorization: Bearer abcdefgh12345678"), "Authorization: Bearer [REDACTED]");
  // Paths: the folder and what is inside it, not a longer sibling name.
  assert.equal(redactor.redact("/srv/app/workspace/alice/a.txt"), "[workspace]/alice/a.txt");
  assert.equal(redactor.redact("/srv/app/workspace2/x"), "/srv/app/workspace2/x");
  assert.equal(redactor.redactSecrets("/srv/app/workspace/alice"), "/srv/app/workspace/alice");
  // Values of the MCP entries are collected: user info, query values, headers (and the bearer's credential alone).
  const found = mcpServerSecrets({
    x: {
      ...mcpServerDefaults(),
      transport: "sse",
      env: { GITHUB_TOKEN: "ghp_abcdef", LANG: "C.UTF-8" },
      headers: { "X-Key": "hk-1234", Authorization: "Bearer cred-9876" },
      url: "https://u:p%40ss@h/mcp?api_key=q-5678",
    },
  });
  for (const value of ["p@ss", "q-5678", "hk-1234", "cred-9876", "ghp_abcdef"]) assert.ok(found.includes(value), value);
  assert.ok(!found.includes("C.UTF-8"));
});

test("a stream of pieces is redacted as a whole, whatever the cuts", () => {
  const redactor = new Redactor(["sk-stream-secret-123"], { paths: [{ path: "/srv/app/ws", label: "[workspace]" }] });
  const text = "key sk-stream-secret-123 at /srv/app/ws/alice and /srv/app/wsx, sk-stream-secret-123.";
  for (const size of [1, 2, 3, 5, 7, 13]) {
    const stream = new StreamRedactor(redactor);
    let out = "";
    for (let at = 0; at < text.length; at += size) out += stream.push(text.slice(at, at + size));
    out += stream.flush();
    assert.equal(out, "key [REDACTED] at [workspace]/alice and /srv/app/wsx, [REDACTED].", `pieces of ${size}`);
  }
});

test("the credential patterns stay linear on hostile input", () => {
  const redactor = new Redactor([]);
  // Inputs that make a backtracking pattern quadratic: long runs with no terminator.
  const inputs = ["?" + "key".repeat(200_000), "//" + "a".repeat(600_000), "Bearer " + "x".repeat(600_000), "&".repeat(600_000) + "=x"];
  for (const input of inputs) {
    const started = process.hrtime.bigint();
    redactor.redact(input);
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    assert.ok(ms < 1000, `${input.slice(0, 12)}…: ${ms} ms`);
  }
});
