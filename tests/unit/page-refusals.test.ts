// Which part of the page an error frame is about (page/refusals.js): by its ids and its code,
// never its English text.
import { test } from "node:test";
import assert from "node:assert/strict";
import { routeError } from "../../page/refusals.js";

const none = { hasForm: () => false, pending: 0 };

test("a refused message is found by its client_id; a refused answer to a question by its form", () => {
  assert.deepEqual(routeError({ type: "error", error: "Rate limit", code: "rate_limited", client_id: "c1" }, none), {
    kind: "refused",
    clientId: "c1",
  });
  const withForm = { hasForm: (id: string) => id === "r1", pending: 0 };
  assert.deepEqual(routeError({ type: "error", error: "field x is required", request_id: "r1" }, withForm), {
    kind: "form",
    requestId: "r1",
  });
  assert.deepEqual(routeError({ type: "error", error: "no question is waiting", request_id: "r2" }, withForm), { kind: "notice" });
});

test("the codes say what the page does: a late approval, a message too long, a failed reset", () => {
  assert.deepEqual(routeError({ type: "error", error: "whatever the words", code: "no_pending_approval", call_id: "call_1" }, none), {
    kind: "late_approval",
    callId: "call_1",
  });
  assert.deepEqual(routeError({ error: "anything", code: "message_too_long" }, { hasForm: () => false, pending: 2 }), { kind: "too_long" });
  assert.deepEqual(routeError({ error: "anything", code: "message_too_long" }, none), { kind: "notice" }, "nothing of ours waits");
  assert.deepEqual(routeError({ error: "anything", code: "reset_failed" }, none), { kind: "reset_failed" });
});

test("English text alone decides nothing: without a code these are notices", () => {
  for (const error of [
    "no approval is waiting for call call_1 (it was already answered, timed out or cancelled)",
    "Message too long: 1001 characters, the limit is 1000 (limits.max_message_chars)",
    "Reset failed: disk full",
  ]) {
    assert.deepEqual(routeError({ error }, { hasForm: () => false, pending: 1 }), { kind: "notice" }, error);
  }
  assert.deepEqual(
    routeError({ type: "error", error: "x", code: "no_pending_approval" }, none),
    { kind: "notice" },
    "no call_id: nothing to settle",
  );
  assert.deepEqual(routeError({ error: "x", code: "some_new_code" }, none), { kind: "notice" });
});
