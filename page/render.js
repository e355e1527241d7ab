// @ts-check
// Model text as sanitised Markdown, re-rendered at most once a frame while it streams, and the
// log that follows the newest message unless the user scrolled up to read.
import { button, el, ui } from "./dom.js";

/** @typedef {{ node: HTMLDivElement, text: string }} Segment one bubble of model text */

/** No scripts, event handlers, styles, forms or buttons: a fake "Approve" in model output cannot render. */
const PURIFY = {
  FORBID_TAGS: ["style", "form", "button", "textarea", "select"],
  FORBID_ATTR: ["style"],
  SANITIZE_NAMED_PROPS: true,
  RETURN_DOM_FRAGMENT: /** @type {const} */ (true),
};
window.DOMPurify?.addHook("afterSanitizeAttributes", (node) => {
  if (node instanceof Element && node.tagName === "A") {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer");
  }
});

/**
 * Model text as sanitised Markdown; plain text if the libraries did not load.
 * @param {HTMLElement} target
 * @param {string} text
 */
export function renderMarkdown(target, text) {
  const { marked, DOMPurify } = window;
  if (!marked || !DOMPurify) {
    target.textContent = text;
    return;
  }
  target.replaceChildren(DOMPurify.sanitize(marked.parse(text, { gfm: true, async: false }), PURIFY));
  if (!navigator.clipboard) return;
  for (const pre of target.querySelectorAll("pre")) {
    const copy = button("Copy", "copy", () =>
      navigator.clipboard.writeText(pre.querySelector("code")?.textContent ?? "").then(
        () => {
          copy.textContent = "Copied";
        },
        () => {
          copy.textContent = "Copy failed";
        },
      ),
    );
    pre.prepend(copy);
  }
}

// Deltas re-render their segment at most once a frame.
/** @type {Set<Segment>} */
const dirty = new Set();

/** @param {Segment} segment */
export function scheduleRender(segment) {
  if (dirty.size === 0) requestAnimationFrame(flush);
  dirty.add(segment);
}

export function flush() {
  for (const segment of dirty) renderMarkdown(segment.node, segment.text);
  dirty.clear();
  follow();
}

/**
 * Renders a segment now, not at the next frame (its turn ended).
 * @param {Segment} segment
 */
export function renderNow(segment) {
  dirty.delete(segment);
  renderMarkdown(segment.node, segment.text);
}

/** The conversation is gone: nothing waits to be rendered. */
export function dropRenders() {
  dirty.clear();
}

// Keep the newest message in view, unless the user has scrolled up to read.
let atBottom = true;
ui.log.addEventListener("scroll", () => {
  atBottom = ui.log.scrollHeight - ui.log.scrollTop - ui.log.clientHeight < 60;
});

export function follow() {
  if (atBottom) ui.log.scrollTop = ui.log.scrollHeight;
}

/** The newest message goes into view, wherever the user had scrolled to. */
export function followAgain() {
  atBottom = true;
  follow();
}

/**
 * A line of its own in the conversation (not part of a turn).
 * @param {string} text
 * @param {string} [className]
 */
export function notice(text, className = "notice") {
  ui.current.append(el("p", className, text));
  follow();
}
