// @ts-check
// What an approval request says and how its outcome reads, without the DOM (page/approvals.js
// shows them in the tool card).

/** @typedef {import("../lib/protocol.ts").ApprovalRequestFrame} ApprovalRequestFrame */
/** @typedef {import("../lib/protocol.ts").ApprovalResolvedFrame} ApprovalResolvedFrame */
/** @typedef {"approve" | "always" | "deny"} ApprovalAnswer */
/** @typedef {"approved" | "denied" | "timeout" | "cancelled"} OutcomeKind */
/** @typedef {{ kind: OutcomeKind, text: string, badge: string }} Outcome */

/**
 * @param {ApprovalRequestFrame} frame
 * @returns {string}
 */
export function approvalQuestion(frame) {
  return frame.kind === "sampling"
    ? `Allow MCP server ${frame.server} to use the model with this prompt?`
    : `Allow ${frame.server ? `${frame.server} › ` : ""}${frame.tool || frame.name} to run with these arguments?`;
}

/**
 * What a screen reader announces when the request arrives.
 * @param {ApprovalRequestFrame} frame
 * @returns {string}
 */
export function approvalAnnouncement(frame) {
  return `Approval needed: ${frame.server ? `${frame.server} ` : ""}${frame.tool || frame.name} wants to run. Approve, Deny, or Always allow.`;
}

/**
 * The `approval` frame a button sends, and which answer it was.
 * @param {string} callId
 * @param {boolean} approved
 * @param {boolean} always
 * @param {string} [reasonText] a denial's reason, as typed
 * @returns {{ frame: { type: "approval", call_id: string, approved: boolean, reason?: string, always?: true }, answer: ApprovalAnswer }}
 */
export function approvalAnswer(callId, approved, always, reasonText = "") {
  const reason = approved ? "" : reasonText.trim();
  return {
    frame: { type: "approval", call_id: callId, approved, ...(reason ? { reason } : {}), ...(always ? { always: true } : {}) },
    answer: approved ? (always ? "always" : "approve") : "deny",
  };
}

/**
 * How a request ended, from the server's `approval_resolved` and this tab's own answer, if any.
 * @param {ApprovalResolvedFrame} frame
 * @param {ApprovalAnswer | ""} answer
 * @returns {Outcome}
 */
export function approvalOutcome(frame, answer) {
  // The reason reads "denied: …" or "denied by the user: …"; the outcome already says so.
  const reason = (typeof frame.reason === "string" ? frame.reason : "").replace(/^denied by the user: /, "").replace(/^denied: /, "");
  if (frame.approved) {
    return answer === "always"
      ? { kind: "approved", text: "Approved · always allowed for the rest of this session", badge: "always allowed" }
      : { kind: "approved", text: "Approved", badge: "approved" };
  }
  if (frame.by === "timeout") return { kind: "timeout", text: `Timed out: ${reason || "nobody answered in time"}`, badge: "timed out" };
  if (frame.by === "cancel") return { kind: "cancelled", text: `Cancelled: ${reason || "the turn was stopped"}`, badge: "cancelled" };
  return { kind: "denied", text: `Denied: ${reason || "no reason given"}`, badge: "denied" };
}

/** The turn ended while the request waited. @type {Outcome} */
export const TURN_ENDED = { kind: "cancelled", text: "No longer waiting: the turn ended", badge: "stopped" };
/** This tab's answer came too late: another tab, or the timeout, was first. @type {Outcome} */
export const ALREADY_SETTLED = {
  kind: "cancelled",
  text: "No longer waiting: it was already answered, timed out or cancelled",
  badge: "not waiting",
};

/**
 * The countdown beside the wait, in whole seconds.
 * @param {number} deadline epoch ms
 * @param {number} now epoch ms
 * @returns {string}
 */
export function countdownText(deadline, now) {
  return `(${Math.max(0, Math.ceil((deadline - now) / 1000))} s left)`;
}

/**
 * A running tool card's status once its request is settled.
 * @param {OutcomeKind} kind
 * @returns {string}
 */
export function statusAfter(kind) {
  return kind === "approved" ? "running" : kind === "denied" || kind === "timeout" ? "denied" : "stopping";
}
