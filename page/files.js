// @ts-check
// The Files panel: the user's workspace over /files/<user_id> (docs/files.md): a tree with
// Download, Attach and Delete, previews, uploads with progress. Names from the workspace are only
// ever set as textContent or attribute values, never as HTML.
import { currentUser } from "./connection.js";
import { announce, autosize, button, el, store, ui } from "./dom.js";
import { filesUrl, insertReference, PREVIEW_BYTES, previewKind, readListing, tooBigText, uploadRefusal } from "./file-refs.js";
import { formatBytes } from "./format.js";

/** @typedef {import("./file-refs.js").Entry} Entry */
/** @typedef {import("./file-refs.js").Limits} Limits */

const state = {
  /** @type {Entry[]} */
  entries: [],
  /** @type {Limits | null} */
  limits: null,
  used: 0,
  loading: false,
  again: false,
  /** @type {Set<string>} folders the user folded */
  collapsed: new Set(),
  previewUrl: "",
};
const timeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "short", timeStyle: "short" });

/**
 * The token in a header (never in the URL); X-Requested-With proves a script, not a cross-site form, sent it.
 * @param {Record<string, string>} [extra]
 * @returns {Record<string, string>}
 */
function filesHeaders(extra = {}) {
  const token = ui.token.value.trim();
  return { "X-Requested-With": "mcp-agent-page", ...(token ? { Authorization: `Bearer ${token}` } : {}), ...extra };
}

/** @param {string} relative */
const urlOf = (relative) => filesUrl(currentUser(), relative);

/**
 * @param {Response} response
 * @returns {Promise<string>}
 */
async function errorText(response) {
  try {
    /** @type {unknown} */
    const body = await response.json();
    if (typeof body === "object" && body !== null && "error" in body && typeof body.error === "string") return body.error;
  } catch {
    // Not JSON: the status says it.
  }
  return `the server answered HTTP ${response.status}`;
}

/**
 * @param {string} text
 * @param {boolean} [isError]
 */
export function filesNote(text, isError = false) {
  ui.filesNote.textContent = text;
  ui.filesNote.className = isError ? "files-note error" : "files-note";
  delete ui.filesNote.dataset.listing;
}

/**
 * The note says the listing failed: the next listing that works clears it (and only such a note).
 * @param {string} text
 */
function listingFailed(text) {
  filesNote(text, true);
  ui.filesNote.dataset.listing = "failed";
}

/**
 * @param {boolean} open
 * @param {boolean} [focus]
 */
export function setFilesOpen(open, focus = true) {
  ui.files.hidden = !open;
  document.body.classList.toggle("files-open", open);
  ui.filesToggle.setAttribute("aria-expanded", String(open));
  store.set("chat.files_open", open ? "1" : "");
  if (open) {
    ui.filesToggle.removeAttribute("data-changed");
    if (focus) ui.filesTitle.focus();
    void refreshFiles();
  }
}

/** `files_changed`: list again; with the panel closed, the Files button gets a dot. */
export function filesChanged() {
  if (ui.files.hidden) ui.filesToggle.dataset.changed = "";
  void refreshFiles();
}

/** Lists the workspace again; calls while one listing runs are folded into one more after it. */
export async function refreshFiles() {
  const forUser = currentUser();
  if (!forUser) return;
  if (state.loading) {
    state.again = true;
    return;
  }
  state.loading = true;
  try {
    const response = await fetch(urlOf(""), { headers: filesHeaders(), cache: "no-store", credentials: "omit" });
    if (forUser !== currentUser()) return;
    if (!response.ok) return listingFailed(`Cannot list your files: ${await errorText(response)}`);
    const listing = readListing(await response.json());
    state.entries = listing.entries;
    state.limits = listing.limits;
    state.used = listing.used;
    if (ui.filesNote.dataset.listing === "failed") filesNote("");
    if (listing.truncated) filesNote(`Only the first ${state.entries.length} entries are shown.`);
    renderFiles();
  } catch {
    listingFailed("Cannot list your files: the server is unreachable.");
  } finally {
    state.loading = false;
    if (state.again) {
      state.again = false;
      void refreshFiles();
    }
  }
}

function renderFiles() {
  const { entries, limits, used } = state;
  ui.filesUsage.textContent = limits ? `${formatBytes(used)} of ${formatBytes(limits.workspace_bytes)}` : "";
  if (entries.length === 0) {
    ui.filesTree.replaceChildren(el("p", "files-note", "No files yet. Drop files onto the chat, or use Upload…"));
    return;
  }
  // The flat, sorted list becomes a tree: each entry goes into its folder's list.
  const root = el("ul");
  /** @type {Map<string, HTMLUListElement>} */
  const lists = new Map([["", root]]);
  for (const entry of entries) {
    const slash = entry.path.lastIndexOf("/");
    const parent = lists.get(slash === -1 ? "" : entry.path.slice(0, slash)) ?? root;
    const item = el("li");
    item.dataset.path = entry.path;
    if (entry.type === "folder") {
      const details = el("details");
      details.open = !state.collapsed.has(entry.path);
      details.addEventListener("toggle", () => {
        if (details.open) state.collapsed.delete(entry.path);
        else state.collapsed.add(entry.path);
      });
      const summary = el("summary", "", `${entry.name}/`);
      const list = el("ul");
      details.append(summary, list);
      item.append(details);
      lists.set(entry.path, list);
    } else {
      item.className = "file-row";
      const name = el("button", "file-name", entry.name);
      name.type = "button";
      name.title = `Preview ${entry.path}`;
      name.addEventListener("click", () => void previewFile(entry));
      const meta = el("span", "file-meta", `${formatBytes(entry.size)} · ${timeFormat.format(new Date(entry.modified))}`);
      const download = el("a", "", "Download");
      download.href = urlOf(entry.path);
      download.download = entry.name;
      download.addEventListener("click", (event) => {
        // With a token the link cannot carry it: fetch with the header and save from memory.
        if (!ui.token.value.trim()) return;
        event.preventDefault();
        void downloadFile(entry);
      });
      const actions = el("span", "file-actions");
      actions.append(
        download,
        button("Attach", "", () => attachReference(entry.path)),
        button("Delete", "", () => void deleteEntry(entry)),
      );
      item.append(name, meta, actions);
    }
    parent.append(item);
  }
  ui.filesTree.replaceChildren(root);
}

/** @param {Entry} entry */
async function downloadFile(entry) {
  try {
    const response = await fetch(urlOf(entry.path), { headers: filesHeaders(), credentials: "omit" });
    if (!response.ok) return filesNote(`Cannot download ${entry.path}: ${await errorText(response)}`, true);
    const url = URL.createObjectURL(await response.blob());
    const link = el("a");
    link.href = url;
    link.download = entry.name;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  } catch {
    filesNote(`Cannot download ${entry.path}: the server is unreachable.`, true);
  }
}

/** @param {Entry} entry */
async function deleteEntry(entry) {
  if (!confirm(`Delete ${entry.path}? This cannot be undone.`)) return;
  try {
    const response = await fetch(urlOf(entry.path), { method: "DELETE", headers: filesHeaders(), credentials: "omit" });
    if (!response.ok) return filesNote(`Not deleted: ${await errorText(response)}`, true);
    filesNote(`Deleted ${entry.path}.`);
    if (ui.previewName.textContent === entry.path) closePreview();
  } catch {
    filesNote(`Not deleted: the server is unreachable.`, true);
  }
  void refreshFiles();
}

export function closePreview() {
  ui.preview.hidden = true;
  ui.previewBody.replaceChildren();
  if (state.previewUrl) URL.revokeObjectURL(state.previewUrl);
  state.previewUrl = "";
}

/** @param {Entry} entry */
async function previewFile(entry) {
  closePreview();
  ui.preview.hidden = false;
  ui.previewName.textContent = entry.path;
  const kind = previewKind(entry.mime);
  if (kind === "none") return ui.previewBody.replaceChildren(el("p", "files-note", "No preview for this kind of file: download it."));
  try {
    const headers = filesHeaders(kind === "text" ? { Range: `bytes=0-${PREVIEW_BYTES - 1}` } : {});
    const response = await fetch(urlOf(entry.path), { headers, credentials: "omit" });
    if (!response.ok) return ui.previewBody.replaceChildren(el("p", "files-note error", await errorText(response)));
    if (ui.previewName.textContent !== entry.path) return;
    if (kind === "image") {
      state.previewUrl = URL.createObjectURL(await response.blob());
      const img = el("img");
      img.alt = entry.name;
      img.src = state.previewUrl;
      return ui.previewBody.replaceChildren(img);
    }
    const body = el("pre", "", await response.text());
    const cut =
      entry.size > PREVIEW_BYTES ? [el("p", "files-note", `The first ${formatBytes(PREVIEW_BYTES)} of ${formatBytes(entry.size)}.`)] : [];
    ui.previewBody.replaceChildren(body, ...cut);
  } catch {
    ui.previewBody.replaceChildren(el("p", "files-note error", "The server is unreachable."));
  }
}

/**
 * Puts a reference to the file (its path in backticks) into the message being typed, at the cursor.
 * @param {string} relative
 */
function attachReference(relative) {
  const { value, selectionStart, selectionEnd } = ui.input;
  const next = insertReference(value, selectionStart, selectionEnd, relative);
  ui.input.value = next.value;
  ui.input.setSelectionRange(next.caret, next.caret);
  autosize();
  ui.input.focus();
}

/**
 * One upload, with its own row: a progress bar, then done or a clear error.
 * @param {File} file
 * @param {boolean} attach put its reference into the message box once uploaded
 */
function uploadFile(file, attach) {
  if (!currentUser()) return filesNote("Connect first: uploads go to the workspace of the user id above.", true);
  const row = el("li", "upload");
  const name = el("span", "name", file.name);
  const dismiss = button("✕", "", () => row.remove());
  dismiss.setAttribute("aria-label", `Dismiss ${file.name}`);
  const progress = el("progress");
  progress.max = Math.max(file.size, 1);
  progress.value = 0;
  const status = el("span", "status", `Uploading ${formatBytes(file.size)}…`);
  row.append(name, dismiss, progress, status);
  ui.uploads.append(row);
  /** @param {string} text */
  const fail = (text) => {
    progress.remove();
    status.className = "status error";
    status.textContent = text;
    announce(`${file.name}: ${text}`);
  };
  const limits = state.limits;
  if (limits && file.size > limits.max_upload_bytes) return fail(tooBigText(file.size, limits.max_upload_bytes));
  const request = new XMLHttpRequest();
  request.open("PUT", urlOf(file.name));
  for (const [header, value] of Object.entries(filesHeaders())) request.setRequestHeader(header, value);
  request.upload.onprogress = (event) => {
    if (event.lengthComputable) progress.value = event.loaded;
  };
  request.onload = () => {
    if (request.status >= 200 && request.status < 300) {
      progress.value = progress.max;
      status.textContent = `Uploaded (${formatBytes(file.size)}).`;
      row.dataset.done = "true";
      if (attach) attachReference(file.name);
      setTimeout(() => row.remove(), 5000);
      return void refreshFiles();
    }
    fail(uploadRefusal(request.status, request.responseText));
  };
  request.onerror = () => fail("Not uploaded: the connection failed (the server may have refused a file this big).");
  request.send(file);
}

/**
 * @param {Iterable<File>} files
 * @param {boolean} attach
 */
export function uploadAll(files, attach) {
  if (ui.files.hidden) setFilesOpen(true);
  for (const file of files) uploadFile(file, attach);
}

/** Another user id: nothing of the old workspace stays on screen. */
export function forgetFiles() {
  state.entries = [];
  state.limits = null;
  closePreview();
  ui.uploads.replaceChildren();
  ui.filesTree.replaceChildren();
}
