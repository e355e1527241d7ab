// @ts-check
// Frames from the server (lib/protocol.ts), each to the part of the page it is about.
import { approvalGone, dropApprovals, onApprovalRequest, onApprovalResolved, turnEnded } from "./approvals.js";
import { send, welcomed } from "./connection.js";
import { updateControls } from "./controls.js";
import { announce, el, ui } from "./dom.js";
import { formRefused, hasForm, onElicitationRequest, onElicitationResolved } from "./elicitation.js";
import { filesChanged, refreshFiles } from "./files.js";
import { routeError } from "./refusals.js";
import { onAuthCompleted, onAuthRequired, showServers } from "./servers.js";
import { dropRenders, flush, follow, followAgain, notice } from "./render.js";
import {
  addText,
  addTool,
  conversation,
  endTool,
  finishTurn,
  markLost,
  placeQueued,
  placeRunning,
  restartReply,
  setStatus,
  showProgress,
  turnFromHistory,
} from "./turns.js";

/** @typedef {import("../lib/protocol.ts").StreamFrame} StreamFrame */
/** @typedef {import("../lib/protocol.ts").ErrorFrame} ErrorFrame */
/** @typedef {import("../lib/protocol.ts").StreamWelcomeFrame} StreamWelcomeFrame */
/** @typedef {import("../lib/protocol.ts").HistoryFrame} HistoryFrame */
/** @typedef {import("../lib/protocol.ts").ResetFrame} ResetFrame */
/** @typedef {import("./turns.js").Turn} Turn */
/** @typedef {import("./conversation.js").TurnStatus} TurnStatus */

/**
 * A frame of a streaming socket: the streaming frames, or a seed error (bad input, a failed reset).
 * The page's own server sends them (lib/protocol.ts builds every frame), so they are taken as
 * typed once they are JSON objects; each handler still checks the ids it looks up.
 * @param {unknown} data a parsed JSON object
 */
export function onFrame(data) {
  const frame = /** @type {StreamFrame | ErrorFrame} */ (data);
  if (!("type" in frame)) {
    if (typeof frame.error === "string") onLooseError(frame);
  } else {
    dispatch(frame);
  }
  updateControls();
}

/** @param {StreamFrame} frame */
function dispatch(frame) {
  const turn = "turn_id" in frame && frame.turn_id !== undefined ? conversation.turns.get(frame.turn_id) : undefined;
  switch (frame.type) {
    case "welcome":
      return onWelcome(frame);
    case "history":
      return onHistory(frame);
    case "reset":
      return onReset(frame);
    case "queued": {
      const queued = conversation.queued(frame);
      if (!queued) return;
      setStatus(queued, "queued");
      placeQueued(queued);
      return follow();
    }
    case "turn_start": {
      const { turn: started, kind } = conversation.turnStart(frame);
      if (kind === "replay") {
        dropApprovals(started);
        restartReply(started);
      } else if (kind === "new") placeRunning(started);
      setStatus(started, "running");
      return follow();
    }
    case "delta":
      return turn && addText(turn, frame.text);
    case "tool_start":
      if (turn && !turn.tools.has(frame.call_id)) addTool(turn, frame);
      return turn && follow();
    case "tool_end": {
      const card = turn?.tools.get(frame.call_id);
      return card && endTool(card, frame.ok, frame.preview, frame.duration_ms, frame.images);
    }
    case "tool_progress": {
      const card = turn?.tools.get(frame.call_id);
      return card && showProgress(card, frame);
    }
    case "elicitation_request":
      return onElicitationRequest(frame, turn);
    case "elicitation_resolved":
      return onElicitationResolved(frame);
    case "files_changed":
      return filesChanged();
    case "servers":
      return showServers(frame.servers);
    case "auth_required":
      return onAuthRequired(frame);
    case "auth_completed":
      return onAuthCompleted(frame);
    case "approval_request":
      return onApprovalRequest(frame);
    case "approval_resolved":
      return onApprovalResolved(frame);
    case "answer":
      if (!turn) return;
      // The final message is the last model call's text: it is what the last bubble must say.
      if (!turn.segment && frame.message) addText(turn, "");
      if (turn.segment) turn.segment.text = frame.message;
      return endTurn(turn, "ok");
    case "cancelled":
      return turn && endTurn(turn, "cancelled");
    case "error":
      if (frame.turn_id === undefined) return onLooseError(frame);
      if (!turn) return;
      turn.segment = null;
      turn.reply.append(el("div", "error-line", frame.error));
      return endTurn(turn, "error");
    default: {
      /** @type {never} a new frame type is handled above, or the typecheck fails here */
      const unknown = frame;
      return onUnknown(unknown);
    }
  }
}

/**
 * A frame type this page does not know (a newer server): an error in it is still shown.
 * @param {unknown} frame
 */
function onUnknown(frame) {
  if (typeof frame === "object" && frame !== null && "error" in frame && typeof frame.error === "string") {
    onLooseError({ error: frame.error });
  }
}

/**
 * @param {Turn} turn
 * @param {TurnStatus} status
 */
function endTurn(turn, status) {
  finishTurn(turn, status);
  turnEnded(turn);
}

/**
 * An error not tied to a turn: a refused message (by its client_id), a refused answer to a
 * question, a late approval, a failed reset.
 * @param {import("./refusals.js").ErrorFields} frame
 */
function onLooseError(frame) {
  const text = String(frame.error);
  const route = routeError(frame, { hasForm, pending: conversation.pending.length });
  switch (route.kind) {
    case "form":
      return formRefused(route.requestId, text);
    case "refused": {
      const refused = conversation.takePending(route.clientId);
      return refused ? markLost(refused, text) : notice(text, "notice error");
    }
    case "late_approval":
      return approvalGone(route.callId, text);
    case "too_long": {
      const newest = conversation.pending.pop();
      return newest ? markLost(newest, text) : notice(text, "notice error");
    }
    case "reset_failed":
      conversation.resetting = false;
      return notice(text, "notice error");
    case "notice":
      return notice(text, "notice error");
    default: {
      /** @type {never} a new kind of route is handled above, or the typecheck fails here */
      const unhandled = route;
      return unhandled;
    }
  }
}

/** @param {StreamWelcomeFrame} frame */
function onWelcome(frame) {
  const resetWentThrough = conversation.welcome(frame.session_id);
  welcomed(frame.user_id);
  // This tab's reset went through while the socket was down.
  if (resetWentThrough) onReset({ type: "reset", user_id: frame.user_id, session_id: frame.session_id, workspace_cleared: false });
  send({ type: "history" });
  void refreshFiles();
}

/**
 * The server's conversation replaces ours; turns running now (replayed after welcome) and queued ones stay.
 * @param {HistoryFrame} frame
 */
function onHistory(frame) {
  const items = frame.items ?? [];
  const change = conversation.historyArrived(items.length);
  if (change === "archive") archiveTranscript();
  else if (change === "clear-archive") ui.archive.replaceChildren();
  for (const gone of conversation.mergeHistory(items, turnFromHistory)) dropApprovals(gone);
  const focused = document.activeElement;
  const notices = [...ui.current.children].filter((node) => node.classList.contains("notice") && node === ui.current.firstElementChild);
  ui.current.replaceChildren(
    ...notices,
    ...[...conversation.turns.values()].map((turn) => turn.article),
    ...conversation.pending.map((turn) => turn.article),
  );
  // Moving the live turns must not take the focus from an approval button.
  if (focused instanceof HTMLElement && focused !== document.activeElement && focused.isConnected) focused.focus({ preventScroll: true });
  flush();
  ui.log.scrollTop = ui.log.scrollHeight;
}

/** A new session with an empty history (the server restarted): keep what we had, greyed. */
function archiveTranscript() {
  if (!ui.current.hasChildNodes()) return;
  const { unfinished, unsent } = conversation.archive();
  for (const turn of unfinished) endTurn(turn, "interrupted");
  for (const turn of unsent) setStatus(turn, "lost");
  dropApprovals();
  const divider = el("div", "divider", "new session");
  divider.setAttribute("role", "separator");
  ui.archive.append(...ui.current.childNodes, divider);
}

/**
 * The session started over (New chat here or in another tab, or any client's reset): the
 * conversation is gone on the server, so it goes from the page too. Messages this tab sent that
 * the server has not acknowledged yet were sent after the reset: they stay.
 * @param {ResetFrame} frame
 */
function onReset(frame) {
  const mine = conversation.reset(frame.session_id);
  dropApprovals();
  dropRenders();
  ui.archive.replaceChildren();
  const text = frame.workspace_cleared ? "New chat started. Your files were deleted too." : "New chat started.";
  if (frame.workspace_cleared) void refreshFiles();
  const hadFocus = ui.log.contains(document.activeElement);
  ui.current.replaceChildren(el("p", "notice", text), ...conversation.pending.map((turn) => turn.article));
  announce(text);
  if (mine || hadFocus) ui.input.focus();
  followAgain();
}
