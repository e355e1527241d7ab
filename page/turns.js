// @ts-check
// A turn on the page: the user's message, the model's text in bubbles, a card per tool call, and
// the tag that says how it went. The conversation's state (page/conversation.js) holds these turns.
import { Conversation, historyOutcome, statusTag } from "./conversation.js";
import { el, ui } from "./dom.js";
import { formatMs, progressAmount, showArguments } from "./format.js";
import { follow, renderNow, scheduleRender } from "./render.js";

/** @typedef {import("../lib/protocol.ts").ToolCallFields} ToolCallFields */
/** @typedef {import("../lib/protocol.ts").ToolProgressFrame} ToolProgressFrame */
/** @typedef {import("../lib/protocol.ts").HistoryItem} HistoryItem */
/** @typedef {import("./conversation.js").TurnStatus} TurnStatus */
/** @typedef {import("./render.js").Segment} Segment */
/**
 * @typedef {object} Card a tool call's collapsible card
 * @property {HTMLDetailsElement} node
 * @property {HTMLSpanElement} status
 * @property {HTMLSpanElement} badge the approval's outcome
 * @property {HTMLHeadingElement} resultHeading
 * @property {HTMLPreElement} result
 * @property {boolean} denied
 * @property {{ box: HTMLDivElement, bar: HTMLProgressElement, text: HTMLSpanElement } | null} progress
 */
/**
 * @typedef {import("./conversation.js").TurnState & {
 *   article: HTMLElement,
 *   reply: HTMLDivElement,
 *   tag: HTMLSpanElement,
 *   segment: Segment | null,
 *   tools: Map<string, Card>,
 * }} Turn
 */

/**
 * @param {string} input the user's message
 * @returns {Turn}
 */
export function newTurn(input) {
  /** @type {Turn} */
  const turn = {
    id: null,
    clientId: undefined,
    input,
    status: "",
    done: false,
    epoch: conversation.epoch,
    article: el("article", "turn"),
    reply: el("div", "msg assistant"),
    tag: el("span", "tag"),
    segment: null,
    tools: new Map(),
  };
  const user = el("div", "msg user");
  user.append(el("div", "bubble", input), turn.tag);
  turn.article.append(user, turn.reply);
  return turn;
}

/** @type {Conversation<Turn>} */
export const conversation = new Conversation(newTurn);

/**
 * @param {Turn} turn
 * @param {TurnStatus} status
 */
export function setStatus(turn, status) {
  turn.status = status;
  turn.article.dataset.status = status;
  turn.tag.textContent = statusTag(status);
  turn.tag.className = `tag ${status}`;
  if (status === "running") turn.article.setAttribute("aria-busy", "true");
  else turn.article.removeAttribute("aria-busy");
}

/**
 * @param {Turn} turn
 * @param {string} text
 */
export function addText(turn, text) {
  if (!turn.segment) {
    turn.segment = { node: el("div", "md"), text: "" };
    turn.reply.append(turn.segment.node);
  }
  turn.segment.text += text;
  scheduleRender(turn.segment);
}

/**
 * @param {Turn} turn
 * @param {ToolCallFields} call
 * @returns {Card}
 */
export function addTool(turn, call) {
  turn.segment = null; // text after a tool call is a new bubble
  /** @type {Card} */
  const card = {
    node: el("details", "tool running"),
    status: el("span", "tstatus", "running"),
    badge: el("span", "tapproval"),
    resultHeading: el("h3", "", "Result"),
    result: el("pre", "tresult", "…"),
    denied: false,
    progress: null,
  };
  card.node.open = true;
  card.node.dataset.callId = call.call_id;
  const summary = el("summary");
  if (call.server) summary.append(el("span", "tserver", call.server));
  const name = el("span", "tname", call.tool || call.name);
  name.title = call.name;
  summary.append(name, el("span", "targs-short", showArguments(call.arguments)), card.badge, card.status);
  card.node.append(
    summary,
    el("h3", "", "Arguments"),
    el("pre", "targs", showArguments(call.arguments, 2)),
    card.resultHeading,
    card.result,
  );
  turn.reply.append(card.node);
  turn.tools.set(call.call_id, card);
  return card;
}

/**
 * A running tool's progress: a bar when the total is known, a moving (indeterminate) one otherwise.
 * @param {Card} card
 * @param {ToolProgressFrame} frame
 */
export function showProgress(card, frame) {
  if (!card.node.classList.contains("running")) return;
  if (!card.progress) {
    card.progress = { box: el("div", "tprogress"), bar: el("progress"), text: el("span", "tprogress-text") };
    card.progress.bar.setAttribute("aria-label", "Tool progress");
    card.progress.box.append(card.progress.bar, card.progress.text);
    card.node.insertBefore(card.progress.box, card.resultHeading);
  }
  const { bar, text } = card.progress;
  const total = typeof frame.total === "number" && frame.total > 0 ? frame.total : undefined;
  if (total !== undefined) {
    bar.max = total;
    bar.value = Math.min(frame.progress, total);
  } else bar.removeAttribute("value");
  text.textContent = [progressAmount(frame.progress, total), typeof frame.message === "string" ? frame.message : ""]
    .filter(Boolean)
    .join(" · ");
}

/**
 * @param {Card} card
 * @param {boolean} ok
 * @param {string} preview
 * @param {number} [durationMs]
 * @param {unknown} [images] data: URLs the server capped in size
 */
export function endTool(card, ok, preview, durationMs, images) {
  card.node.open = false;
  card.node.classList.remove("running", "waiting");
  if (card.progress) {
    card.progress.box.remove();
    card.progress = null;
  }
  const urls = Array.isArray(images)
    ? images.filter((url) => typeof url === "string" && /^data:image\/(png|jpeg|gif|webp);base64,/.test(url))
    : [];
  if (urls.length > 0) {
    const thumbs = el("div", "tthumbs");
    urls.forEach((url, index) => {
      const img = el("img");
      img.src = url;
      img.alt = `Image ${index + 1} returned by the tool`;
      thumbs.append(img);
    });
    card.node.append(thumbs);
  }
  card.node.classList.add(ok ? "ok" : "failed");
  card.status.textContent =
    (ok ? "done" : card.denied ? "not run" : "failed") + (durationMs === undefined ? "" : ` · ${formatMs(durationMs)}`);
  card.result.textContent = preview || "(empty)";
}

/**
 * The turn ended: its running tools stop, its last bubble is rendered now.
 * @param {Turn} turn
 * @param {TurnStatus} status
 */
export function finishTurn(turn, status) {
  for (const card of turn.tools.values()) {
    if (card.node.classList.contains("running")) endTool(card, false, "(stopped)");
  }
  turn.done = true;
  setStatus(turn, status);
  if (turn.segment) renderNow(turn.segment);
  follow();
}

/**
 * The server replays a running turn to a socket that joins mid-turn: its reply starts over.
 * @param {Turn} turn
 */
export function restartReply(turn) {
  turn.reply.replaceChildren();
  turn.segment = null;
  turn.tools.clear();
}

/**
 * A message the server refused, or that never reached it: tagged "not sent", the reason under it.
 * @param {Turn} turn
 * @param {string} text
 */
export function markLost(turn, text) {
  setStatus(turn, "lost");
  turn.done = true;
  turn.reply.append(el("div", "error-line", text));
  follow();
}

/**
 * Places a turn that waits in the server's queue after those already known, before unacknowledged ones.
 * @param {Turn} turn
 */
export function placeQueued(turn) {
  const before = conversation.pending.find((candidate) => candidate.article.parentNode === ui.current)?.article ?? null;
  ui.current.insertBefore(turn.article, before);
}

/**
 * Places a turn that starts now before every turn still waiting.
 * @param {Turn} turn
 */
export function placeRunning(turn) {
  ui.current.insertBefore(turn.article, ui.current.querySelector(':scope > article[data-status="queued"]'));
}

/**
 * A turn of the server's history, drawn from its items.
 * @param {string} id
 * @param {HistoryItem[]} items
 * @returns {Turn}
 */
export function turnFromHistory(id, items) {
  const outcome = historyOutcome(items);
  const turn = newTurn(outcome.input);
  turn.id = id;
  for (const item of items) {
    if (item.role === "assistant") {
      addText(turn, item.content);
      turn.segment = null;
    } else if (item.role === "tool") {
      endTool(addTool(turn, item), item.ok, item.preview, item.duration_ms, item.images);
    }
  }
  turn.done = outcome.done;
  setStatus(turn, outcome.status);
  return turn;
}
