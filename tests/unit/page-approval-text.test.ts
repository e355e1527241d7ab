// What an approval request says and how its outcome reads on the page (page/approval-text.js).
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  ALREADY_SETTLED,
  approvalAnnouncement,
  approvalAnswer,
  approvalOutcome,
  approvalQuestion,
  countdownText,
  statusAfter,
  TURN_ENDED,
} from "../../page/approval-text.js";
import type { ApprovalRequestFrame, ApprovalResolvedFrame } from "../../lib/protocol.ts";

const request: ApprovalRequestFrame = {
  type: "approval_request",
  turn_id: "t1",
  call_id: "c1",
  name: "test_echo",
  server: "test",
  tool: "echo",
  arguments: { text: "hi" },
  timeout_ms: 120000,
};
const resolved = (fields: Partial<ApprovalResolvedFrame>): ApprovalResolvedFrame => ({
  type: "approval_resolved",
  turn_id: "t1",
  call_id: "c1",
  approved: false,
  by: "user",
  ...fields,
});

test("the question names the server and tool, or the server asking to use the model", () => {
  assert.equal(approvalQuestion(request), "Allow test › echo to run with these arguments?");
  assert.equal(approvalQuestion({ ...request, server: "", tool: "" }), "Allow test_echo to run with these arguments?");
  assert.equal(approvalQuestion({ ...request, kind: "sampling" }), "Allow MCP server test to use the model with this prompt?");
  assert.equal(approvalAnnouncement(request), "Approval needed: test echo wants to run. Approve, Deny, or Always allow.");
});

test("answers: the frame the buttons send", () => {
  assert.deepEqual(approvalAnswer("c1", true, false, "ignored"), {
    frame: { type: "approval", call_id: "c1", approved: true },
    answer: "approve",
  });
  assert.deepEqual(approvalAnswer("c1", true, true), {
    frame: { type: "approval", call_id: "c1", approved: true, always: true },
    answer: "always",
  });
  assert.deepEqual(approvalAnswer("c1", false, false, "  not now "), {
    frame: { type: "approval", call_id: "c1", approved: false, reason: "not now" },
    answer: "deny",
  });
  assert.deepEqual(approvalAnswer("c1", false, false, "   ").frame, { type: "approval", call_id: "c1", approved: false });
});

test("outcomes: approved (always), denied with the user's reason, timed out, cancelled", () => {
  assert.deepEqual(approvalOutcome(resolved({ approved: true }), "approve"), { kind: "approved", text: "Approved", badge: "approved" });
  assert.deepEqual(approvalOutcome(resolved({ approved: true }), "always"), {
    kind: "approved",
    text: "Approved · always allowed for the rest of this session",
    badge: "always allowed",
  });
  assert.deepEqual(approvalOutcome(resolved({ reason: "denied by the user: not now" }), "deny"), {
    kind: "denied",
    text: "Denied: not now",
    badge: "denied",
  });
  assert.equal(approvalOutcome(resolved({}), "").text, "Denied: no reason given");
  assert.deepEqual(approvalOutcome(resolved({ by: "timeout", reason: "denied: nobody answered within 120 s" }), ""), {
    kind: "timeout",
    text: "Timed out: nobody answered within 120 s",
    badge: "timed out",
  });
  assert.equal(approvalOutcome(resolved({ by: "timeout" }), "").text, "Timed out: nobody answered in time");
  assert.equal(approvalOutcome(resolved({ by: "cancel" }), "").text, "Cancelled: the turn was stopped");
  assert.equal(TURN_ENDED.kind, "cancelled");
  assert.equal(ALREADY_SETTLED.badge, "not waiting");
});

test("the countdown and the card's status after the outcome", () => {
  assert.equal(countdownText(10_000, 2_500), "(8 s left)");
  assert.equal(countdownText(10_000, 20_000), "(0 s left)");
  assert.deepEqual((["approved", "denied", "timeout", "cancelled"] as const).map(statusAfter), ["running", "denied", "denied", "stopping"]);
});
