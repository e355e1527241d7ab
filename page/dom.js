// @ts-check
// The page's elements (index.html) and small DOM helpers. Module scripts run after the document is
// parsed, so the elements are looked up once, here; a missing one is a bug in index.html.

/**
 * @template {HTMLElement} T
 * @param {string} id
 * @param {{ new (): T, name: string }} type
 * @returns {T}
 */
function byId(id, type) {
  const node = document.getElementById(id);
  if (!(node instanceof type)) throw new Error(`index.html has no ${type.name} #${id}`);
  return node;
}

export const ui = {
  state: byId("state", HTMLParagraphElement),
  conn: byId("conn", HTMLFormElement),
  user: byId("user", HTMLInputElement),
  token: byId("token", HTMLInputElement),
  tokenNote: byId("token-note", HTMLParagraphElement),
  disconnect: byId("disconnect", HTMLButtonElement),
  log: byId("log", HTMLElement),
  archive: byId("archive", HTMLDivElement),
  current: byId("current", HTMLDivElement),
  composer: byId("composer", HTMLFormElement),
  input: byId("input", HTMLTextAreaElement),
  stop: byId("stop", HTMLButtonElement),
  send: byId("send", HTMLButtonElement),
  announcer: byId("announce", HTMLDivElement),
  newChat: byId("new-chat", HTMLButtonElement),
  resetDialog: byId("reset-dialog", HTMLDialogElement),
  resetFiles: byId("reset-files", HTMLInputElement),
  resetCancel: byId("reset-cancel", HTMLButtonElement),
  resetConfirm: byId("reset-confirm", HTMLButtonElement),
  filesToggle: byId("files-toggle", HTMLButtonElement),
  files: byId("files", HTMLElement),
  filesTitle: byId("files-title", HTMLHeadingElement),
  filesUsage: byId("files-usage", HTMLSpanElement),
  filesUpload: byId("files-upload", HTMLButtonElement),
  filesInput: byId("files-input", HTMLInputElement),
  filesClose: byId("files-close", HTMLButtonElement),
  filesNote: byId("files-note", HTMLParagraphElement),
  uploads: byId("uploads", HTMLUListElement),
  filesTree: byId("files-tree", HTMLDivElement),
  preview: byId("file-preview", HTMLElement),
  previewName: byId("preview-name", HTMLElement),
  previewBody: byId("preview-body", HTMLDivElement),
  previewClose: byId("preview-close", HTMLButtonElement),
  dropOverlay: byId("drop-overlay", HTMLDivElement),
};

/**
 * A new element; `text` is only ever set as text, never as HTML.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {string} [className]
 * @param {string} [text]
 * @returns {HTMLElementTagNameMap[K]}
 */
export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/**
 * @param {string} text
 * @param {string} className
 * @param {(event: MouseEvent) => void} onClick
 * @returns {HTMLButtonElement}
 */
export function button(text, className, onClick) {
  const node = el("button", className, text);
  node.type = "button";
  node.addEventListener("click", onClick);
  return node;
}

/**
 * Tells screen readers something that needs attention now (the log itself is only polite).
 * @param {string} text
 */
export function announce(text) {
  ui.announcer.textContent = "";
  setTimeout(() => {
    ui.announcer.textContent = text;
  }, 30);
}

/** The message box grows with its text. */
export function autosize() {
  ui.input.style.height = "auto";
  ui.input.style.height = `${ui.input.scrollHeight + 2}px`;
}

/** localStorage, which a browser may refuse (private mode, a full disk): then nothing is kept. */
export const store = {
  /**
   * @param {string} key
   * @returns {string | null}
   */
  get: (key) => {
    try {
      return localStorage.getItem(key);
    } catch {
      return null;
    }
  },
  /**
   * @param {string} key
   * @param {string} value "" removes it
   */
  set: (key, value) => {
    try {
      if (value) localStorage.setItem(key, value);
      else localStorage.removeItem(key);
    } catch {
      // Not kept: the page works without it.
    }
  },
};
