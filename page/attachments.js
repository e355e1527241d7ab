// @ts-check
// Files the model reads with the next message: dropped, pasted or chosen with the composer's
// button, uploaded to the workspace (page/files.js), then listed as chips above the message box
// and sent as `attachments: [{path}]` (docs/models.md#attachments). What each became for the
// model — the server's `attachments` frame — is shown under the user's message, thumbnails too.
import { button, el, ui } from "./dom.js";

/** @typedef {import("../lib/protocol.ts").AttachmentInfo} AttachmentInfo */

/** Workspace paths attached to the message being written, in order. */
const pending = /** @type {string[]} */ ([]);

/**
 * A file that finished uploading goes with the next message.
 * @param {string} path workspace-relative
 */
export function addAttachment(path) {
  if (pending.includes(path)) return;
  pending.push(path);
  renderPending();
}

/**
 * The attachments of the message being sent; the composer starts empty again.
 * @returns {{ path: string }[]}
 */
export function takeAttachments() {
  const refs = pending.map((path) => ({ path }));
  pending.length = 0;
  renderPending();
  return refs;
}

/** Another user id, or a New chat: nothing stays attached. */
export function forgetAttachments() {
  pending.length = 0;
  renderPending();
}

function renderPending() {
  ui.attachments.replaceChildren(
    ...pending.map((path) => {
      const chip = el("li", "attachment", `📎 ${path}`);
      const remove = button("✕", "", () => {
        pending.splice(pending.indexOf(path), 1);
        renderPending();
      });
      remove.setAttribute("aria-label", `Do not attach ${path}`);
      chip.append(remove);
      return chip;
    }),
  );
  ui.attachments.hidden = pending.length === 0;
}

/**
 * What the attachments became for the model, under the user's message: a thumbnail for images,
 * and the summary ("report.pdf — 12 pages, 8,400 tokens").
 * @param {HTMLElement} userMessage the turn's user message
 * @param {unknown} items the server's AttachmentInfo list
 */
export function showSent(userMessage, items) {
  if (!Array.isArray(items) || items.length === 0) return;
  userMessage.querySelector(":scope > .sent-attachments")?.remove();
  const list = el("ul", "sent-attachments");
  list.setAttribute("aria-label", "Attached for the model");
  for (const item of items) {
    if (typeof item !== "object" || item === null) continue;
    const summary = "summary" in item && typeof item.summary === "string" ? item.summary : "";
    const entry = el("li", "sent-attachment");
    const thumbnail = "thumbnail" in item && typeof item.thumbnail === "string" ? item.thumbnail : "";
    if (/^data:image\/(png|jpeg|gif|webp);base64,/.test(thumbnail)) {
      const img = el("img");
      img.src = thumbnail;
      img.alt = summary;
      entry.append(img);
    }
    entry.append(el("span", "", summary));
    list.append(entry);
  }
  userMessage.append(list);
}
