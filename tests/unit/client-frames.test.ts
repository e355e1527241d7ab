// client/frames.ts: frames from the server checked field by field, typed approval answers, and
// errors told apart by their code.
import { test } from "node:test";
import assert from "node:assert/strict";
import { classifyFrame, lateApprovalCallId, parseApprovalAnswer } from "../../client/frames.ts";

test("a typed approval answer: y, n with an optional reason, a; anything else is asked again", () => {
  assert.deepEqual(parseApprovalAnswer("y"), { approved: true, always: false });
  assert.deepEqual(parseApprovalAnswer(" YES "), { approved: true, always: false });
  assert.deepEqual(parseApprovalAnswer("a"), { approved: true, always: true });
  assert.deepEqual(parseApprovalAnswer("always"), { approved: true, always: true });
  assert.deepEqual(parseApprovalAnswer("n"), { approved: false, always: false });
  assert.deepEqual(parseApprovalAnswer("no"), { approved: false, always: false });
  assert.deepEqual(parseApprovalAnswer("n not now"), { approved: false, reason: "not now", always: false });
  for (const junk of ["", "nope", "maybe", "y sure", "ya", "a b"]) assert.equal(parseApprovalAnswer(junk), undefined, junk);
});

test("frames are checked field by field; seed frames have no type", () => {
  assert.deepEqual(classifyFrame({ type: "delta", turn_id: "t", text: "x" }), {
    kind: "delta",
    frame: { type: "delta", turn_id: "t", text: "x" },
  });
  assert.equal(classifyFrame({ type: "delta", turn_id: "t" }).kind, "other");
  assert.deepEqual(classifyFrame({ error: "e", code: "invalid_frame" }), {
    kind: "error",
    frame: { error: "e" },
    code: "invalid_frame",
    turnId: undefined,
    clientId: undefined,
  });
  assert.deepEqual(classifyFrame({ type: "error", turn_id: "t", error: "e", code: "turn_failed" }), {
    kind: "error",
    frame: { error: "e" },
    code: "turn_failed",
    turnId: "t",
    clientId: undefined,
  });
  // A code this client does not know (a newer server's) is read as none.
  const unknown = classifyFrame({ error: "e", code: "from_the_future" });
  assert.equal(unknown.kind === "error" ? unknown.code : "not an error", undefined);
  assert.deepEqual(classifyFrame({ type: "turn_start", turn_id: "t", input: "i", client_id: "c" }), {
    kind: "turn_start",
    frame: { type: "turn_start", turn_id: "t", input: "i" },
    clientId: "c",
  });
  assert.deepEqual(classifyFrame({ message: "m", user_id: "u", session_id: "s" }), {
    kind: "answer",
    frame: { message: "m", user_id: "u", session_id: "s" },
    turnId: undefined,
  });
  const welcome = classifyFrame({ type: "welcome", message: "m", user_id: "u", session_id: "s", stream: true });
  assert.equal(welcome.kind === "welcome" && welcome.streaming, true);
  const history = classifyFrame({
    type: "history",
    user_id: "u",
    session_id: "s",
    items: [{ role: "user", turn_id: "t", content: "c", status: "cancelled" }, { role: "bogus" }, 7],
  });
  assert.equal(history.kind === "history" && history.frame.items.length, 1);
  for (const junk of [null, 3, "text", [], { type: "answer", message: 1 }, { type: "mystery" }])
    assert.equal(classifyFrame(junk).kind, "other");
});

test("approval frames are checked too; a late answer's error is told apart from a refusal", () => {
  const request = {
    type: "approval_request",
    turn_id: "t",
    call_id: "c",
    name: "s_tool",
    server: "s",
    tool: "tool",
    arguments: { a: 1 },
    timeout_ms: 5000,
  };
  assert.deepEqual(classifyFrame(request), { kind: "approval_request", frame: request });
  assert.equal(classifyFrame({ ...request, call_id: "" }).kind, "other");
  assert.equal(classifyFrame({ ...request, turn_id: undefined }).kind, "other");
  const resolved = {
    type: "approval_resolved",
    turn_id: "t",
    call_id: "c",
    approved: false,
    reason: "denied: nobody answered",
    by: "timeout",
  };
  assert.deepEqual(classifyFrame(resolved), { kind: "approval_resolved", frame: resolved });
  assert.equal(classifyFrame({ ...resolved, by: "nobody" }).kind, "other");
  assert.equal(classifyFrame({ ...resolved, approved: "no" }).kind, "other");
  const late = classifyFrame({ type: "error", error: "no approval is waiting for call c1", code: "no_pending_approval", call_id: "c1" });
  assert.ok(late.kind === "error");
  assert.equal(lateApprovalCallId(late), "c1");
  // Known by its code, not its words.
  assert.equal(lateApprovalCallId({ ...late, code: "queue_full" }), undefined);
  assert.equal(lateApprovalCallId({ ...late, turnId: "t" }), undefined);
});
