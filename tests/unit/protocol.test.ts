// lib/protocol.ts without a server: the error codes, the error frame builders, the close reasons.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import {
  closeReason,
  ERROR_CODES,
  errorAnswer,
  errorFrame,
  isErrorCode,
  refusalFrame,
  streamErrorFrame,
  turnErrorFrame,
} from "../../lib/protocol.ts";

const protocolDoc = readFileSync(new URL("../../docs/protocol.md", import.meta.url), "utf8");

/** The rows of the "Error codes" table in docs/protocol.md: code → meaning. */
function documentedCodes(): Map<string, string> {
  const section = protocolDoc.slice(protocolDoc.indexOf("## Error codes"));
  const rows = new Map<string, string>();
  for (const found of section.matchAll(/^\| `([a-z_]+)` \| (.+) \|$/gm)) rows.set(found[1] ?? "", found[2] ?? "");
  return rows;
}

test("every error code is explained in docs/protocol.md, and the table names no other", () => {
  const documented = documentedCodes();
  for (const code of ERROR_CODES) assert.ok((documented.get(code) ?? "").length > 20, `docs/protocol.md explains ${code}`);
  assert.deepEqual(
    [...documented.keys()].filter((code) => !isErrorCode(code)),
    [],
    "codes in the table that lib/protocol.ts does not have",
  );
});

test("the codes are unique snake_case names", () => {
  assert.equal(new Set(ERROR_CODES).size, ERROR_CODES.length);
  for (const code of ERROR_CODES) assert.match(code, /^[a-z]+(_[a-z]+)*$/);
  assert.equal(isErrorCode("rate_limited"), true);
  assert.equal(isErrorCode("Rate limited"), false);
  assert.equal(isErrorCode(undefined), false);
});

test("a seed error frame keeps the seed's `error` first and adds the code after it", () => {
  const frame = errorFrame("invalid_frame", "Invalid JSON format");
  assert.equal(JSON.stringify(frame), '{"error":"Invalid JSON format","code":"invalid_frame"}');
  assert.deepEqual(turnErrorFrame("turn_cancelled", "the turn was cancelled"), {
    error: "An error occurred: the turn was cancelled",
    code: "turn_cancelled",
  });
});

test("a streaming error frame carries the code beside the ids it is about", () => {
  assert.equal(
    JSON.stringify(streamErrorFrame("no_pending_approval", "no approval is waiting for call c1", { callId: "c1" })),
    '{"type":"error","error":"no approval is waiting for call c1","code":"no_pending_approval","call_id":"c1"}',
  );
  assert.deepEqual(streamErrorFrame("turn_timeout", "An error occurred: too slow", { turnId: "t1" }), {
    type: "error",
    turn_id: "t1",
    error: "An error occurred: too slow",
    code: "turn_timeout",
  });
});

test("a refused message is a seed error frame on a seed socket, a streaming one with its client_id on a streaming socket", () => {
  const refusal = { code: "message_too_long", error: "Message too long" } as const;
  assert.deepEqual(refusalFrame(false, refusal, "c9"), { error: "Message too long", code: "message_too_long" });
  assert.deepEqual(refusalFrame(true, refusal, "c9"), {
    type: "error",
    error: "Message too long",
    code: "message_too_long",
    client_id: "c9",
  });
});

test("an HTTP error answer is {error, code} plus its extra fields", () => {
  assert.deepEqual(errorAnswer({ code: "workspace_full", error: "the workspace is full" }, { limit: "limits.workspace_bytes" }), {
    error: "the workspace is full",
    code: "workspace_full",
    limit: "limits.workspace_bytes",
  });
});

test("a close reason starts with the code and fits the 123 bytes a close frame allows", () => {
  assert.equal(
    closeReason({ code: "too_many_sockets", error: "too many sockets for this user: 2 open (limits.max_sockets_per_user)" }),
    "too_many_sockets: too many sockets for this user: 2 open (limits.max_sockets_per_user)",
  );
  const long = closeReason({ code: "too_many_new_sessions", error: `é${"x".repeat(300)}` });
  assert.ok(new TextEncoder().encode(long).length <= 123, `${new TextEncoder().encode(long).length} bytes`);
  assert.match(long, /^too_many_new_sessions: éx+…$/);
  // The longest reason the server sends today fits whole.
  const newSessions = closeReason({
    code: "too_many_new_sessions",
    error: "too many new sessions from your address (limits.new_sessions_per_minute: 100000). Retry in 3600 s",
  });
  assert.ok(newSessions.endsWith("Retry in 3600 s"), newSessions);
});
