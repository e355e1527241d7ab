// @ts-check
// A reasoning model's thinking (`reasoning_delta` frames, or an assistant item's `reasoning` in
// the history): shown collapsed as "Thinking" in the reply, never as part of the answer.
import { el } from "./dom.js";

/** The thinking box each reply writes into now, while it is the reply's last part. */
const boxes = new WeakMap();

/**
 * @param {HTMLElement} reply the turn's reply
 * @param {string} text more of the thinking
 */
export function addThinking(reply, text) {
  if (!text) return;
  /** @type {{ node: HTMLDetailsElement, body: HTMLPreElement } | undefined} */
  let box = boxes.get(reply);
  if (!box || reply.lastElementChild !== box.node) {
    const node = el("details", "thinking");
    const body = el("pre", "thinking-text");
    node.append(el("summary", "", "Thinking"), body);
    reply.append(node);
    box = { node, body };
    boxes.set(reply, box);
  }
  box.body.textContent += text;
}
