// @ts-check
// A tool call that needs a person's approval: shown inside its tool card, answered with Approve,
// Deny (with an optional reason) or Always allow. The first answer from any tab wins; every tab
// shows how it was resolved.
import {
  ALREADY_SETTLED,
  approvalAnnouncement,
  approvalAnswer,
  approvalOutcome,
  approvalQuestion,
  countdownText,
  statusAfter,
  TURN_ENDED,
} from "./approval-text.js";
import { isOpen, send } from "./connection.js";
import { announce, button, el, ui } from "./dom.js";
import { waitText } from "./format.js";
import { follow, notice } from "./render.js";
import { addTool, conversation, endTool } from "./turns.js";

/** @typedef {import("../lib/protocol.ts").ApprovalRequestFrame} ApprovalRequestFrame */
/** @typedef {import("../lib/protocol.ts").ApprovalResolvedFrame} ApprovalResolvedFrame */
/** @typedef {import("./turns.js").Turn} Turn */
/** @typedef {import("./turns.js").Card} Card */
/** @typedef {import("./approval-text.js").Outcome} Outcome */
/**
 * @typedef {object} Request an approval request shown in its tool card
 * @property {string} callId
 * @property {"sampling" | undefined} kind
 * @property {Turn} turn
 * @property {Card} card
 * @property {HTMLDivElement} box
 * @property {boolean} settled
 * @property {import("./approval-text.js").ApprovalAnswer | ""} answer this tab's answer, once sent
 * @property {number} deadline epoch ms; 0 for a request replayed after a reconnect
 * @property {HTMLSpanElement | null} countdown
 * @property {HTMLButtonElement} approve
 * @property {HTMLParagraphElement} status
 */

/** @type {Map<string, Request>} call_id -> request */
const approvals = new Map();
let countdownTimer = 0;

/** @param {ApprovalRequestFrame} frame */
export function onApprovalRequest(frame) {
  const turn = conversation.turns.get(frame.turn_id);
  if (!turn) return;
  const known = approvals.get(frame.call_id);
  if (known && known.box.isConnected) return;
  const card = turn.tools.get(frame.call_id) ?? addTool(turn, frame);
  const heading = el("p", "ask", approvalQuestion(frame));
  heading.id = `ask-${Math.random().toString(36).slice(2)}`;
  const box = el("div", "approval");
  box.setAttribute("role", "group");
  box.setAttribute("aria-labelledby", heading.id);
  const wait = el("p", "wait", `Waits up to ${waitText(frame.timeout_ms ?? 0)} for an answer, then counts as denied.`);
  /** @type {Request} */
  const request = {
    callId: frame.call_id,
    kind: frame.kind,
    turn,
    card,
    box,
    settled: false,
    answer: "",
    deadline: 0,
    countdown: null,
    approve: button("Approve", "approve", () => answerApproval(request, true, false)),
    status: el("p", "wait"),
  };
  if (!conversation.replaying) {
    // A request replayed to a page that just connected was asked earlier: no countdown for it.
    request.deadline = Date.now() + (frame.timeout_ms ?? 0);
    request.countdown = el("span", "countdown");
    request.countdown.setAttribute("aria-hidden", "true");
    wait.append(" ", request.countdown);
  }
  const reason = el("input", "reason");
  reason.type = "text";
  reason.maxLength = 1000;
  reason.placeholder = "Reason for denying (optional)";
  reason.setAttribute("aria-label", "Reason for denying (optional; Enter denies)");
  reason.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.isComposing) {
      event.preventDefault();
      answerApproval(request, false, false, reason.value);
    }
  });
  const deny = button("Deny", "deny", () => answerApproval(request, false, false, reason.value));
  const always = button("Always allow", "always", () => answerApproval(request, true, true));
  always.title = `Approve, and run ${frame.name} without asking for the rest of this session`;
  const actions = el("div", "actions");
  actions.append(request.approve, deny, always, reason);
  request.status.setAttribute("role", "status");
  box.append(heading, wait, actions, request.status);
  card.node.insertBefore(box, card.resultHeading);
  card.node.open = true;
  card.node.classList.add("waiting");
  card.status.textContent = "waiting for approval";
  card.badge.className = "tapproval waiting";
  card.badge.textContent = "approval needed";
  approvals.set(frame.call_id, request);
  tickCountdowns();
  announce(approvalAnnouncement(frame));
  if (mayTakeFocus()) request.approve.focus();
  follow();
}

/** Focus moves to a new request unless the person is typing or already deciding another one. */
function mayTakeFocus() {
  if (ui.resetDialog.open) return false;
  const active = document.activeElement;
  if (
    (active instanceof HTMLTextAreaElement || active instanceof HTMLInputElement) &&
    active.matches("textarea, input[type=text], input[type=password]") &&
    active.value.trim() !== ""
  )
    return false;
  return !active?.closest(".approval");
}

/**
 * @param {Request} request
 * @param {boolean} approved
 * @param {boolean} always
 * @param {string} [reasonText]
 */
function answerApproval(request, approved, always, reasonText = "") {
  if (request.settled || request.answer) return;
  if (!isOpen()) {
    request.status.textContent = "Not connected: answer again once the page has reconnected.";
    return;
  }
  const { frame, answer } = approvalAnswer(request.callId, approved, always, reasonText);
  send(frame);
  request.answer = answer;
  // aria-disabled rather than disabled: the focused button keeps its focus until the outcome is in.
  for (const control of request.box.querySelectorAll("button, input")) {
    control.setAttribute("aria-disabled", "true");
    if (control instanceof HTMLInputElement) control.readOnly = true;
  }
  request.status.textContent = "Sending your answer…";
}

/** @param {ApprovalResolvedFrame} frame */
export function onApprovalResolved(frame) {
  const request = approvals.get(frame.call_id);
  if (!request || request.settled) return;
  // A sampling request has no tool_end of its own: its card ends with the decision.
  if (request.kind === "sampling")
    endTool(request.card, frame.approved, frame.approved ? "approved: the model answered the server" : "not allowed");
  settleApproval(request, approvalOutcome(frame, request.answer));
}

/**
 * An answer came too late (another tab, or the timeout, was first).
 * @param {string} callId
 * @param {string} text the server's reason, shown when the page does not know the request
 */
export function approvalGone(callId, text) {
  const request = approvals.get(callId);
  if (request && !request.settled) settleApproval(request, ALREADY_SETTLED);
  else if (!request) notice(text, "notice error");
}

/**
 * The turn ended: its requests that still wait are settled as cancelled.
 * @param {Turn} turn
 */
export function turnEnded(turn) {
  for (const request of approvals.values()) {
    if (request.turn === turn && !request.settled) settleApproval(request, TURN_ENDED);
  }
}

/**
 * @param {Request} request
 * @param {Outcome} outcome
 */
function settleApproval(request, { kind, text, badge }) {
  request.settled = true;
  const hadFocus = request.box.contains(document.activeElement);
  request.box.className = `approval ${kind}`;
  request.box.replaceChildren(el("p", "outcome", text));
  request.card.node.classList.remove("waiting");
  request.card.badge.className = `tapproval ${kind}`;
  request.card.badge.textContent = badge;
  if (kind === "denied" || kind === "timeout") request.card.denied = true;
  if (request.card.node.classList.contains("running")) request.card.status.textContent = statusAfter(kind);
  announce(text);
  if (hadFocus) {
    const next = [...approvals.values()].find((other) => !other.settled && other.box.isConnected);
    (next ? next.approve : ui.input).focus();
  }
  tickCountdowns();
}

function tickCountdowns() {
  let waiting = false;
  for (const [callId, request] of approvals) {
    if (!request.box.isConnected && !request.settled) {
      approvals.delete(callId);
      continue;
    }
    if (request.settled || !request.countdown) continue;
    waiting = true;
    request.countdown.textContent = countdownText(request.deadline, Date.now());
  }
  clearTimeout(countdownTimer);
  if (waiting) countdownTimer = setTimeout(tickCountdowns, 1000);
}

/**
 * Forgets the requests of that turn (all of them without one): its cards are gone or start over.
 * @param {Turn} [turn]
 */
export function dropApprovals(turn) {
  for (const [callId, request] of approvals) if (!turn || request.turn === turn) approvals.delete(callId);
  tickCountdowns();
}
