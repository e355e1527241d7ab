// @ts-check
// The chat page of the MCP agent server: wires the parts together and to the page's controls.
// Wire protocol: lib/protocol.ts. No build step, no CDN; served by lib/http/static-files.ts.
import { dropApprovals } from "./approvals.js";
import { connectAs, currentUser, disconnect, isOpen, online, send, setHandlers, setState } from "./connection.js";
import { updateControls } from "./controls.js";
import { autosize, store, ui } from "./dom.js";
import { closePreview, filesNote, forgetFiles, setFilesOpen, uploadAll } from "./files.js";
import { onFrame } from "./frames.js";
import { clientIdFrom, isUserId } from "./reconnect.js";
import { followAgain } from "./render.js";
import { conversation, newTurn, setStatus } from "./turns.js";

setHandlers({
  onFrame,
  onChange: updateControls,
  onClose: () => {
    conversation.replaying = false;
  },
});

function connect() {
  const id = ui.user.value.trim();
  if (!isUserId(id)) {
    setState("error", "User id: 1-64 of A-Z a-z 0-9 _ . -");
    ui.user.focus();
    return;
  }
  if (id !== currentUser()) {
    forgetFiles();
    conversation.forget();
    dropApprovals();
    ui.archive.replaceChildren();
    ui.current.replaceChildren();
  }
  store.set("chat.user_id", id);
  store.set("chat.token", ui.token.value.trim());
  connectAs(id);
}

function sendMessage() {
  const text = ui.input.value;
  if (!text.trim() || !isOpen() || conversation.resetting) return;
  const turn = newTurn(text);
  turn.clientId = clientIdFrom(crypto.getRandomValues(new Uint8Array(12)));
  send({ message: text, client_id: turn.clientId });
  setStatus(turn, "queued");
  conversation.pending.push(turn);
  ui.current.append(turn.article);
  ui.input.value = "";
  autosize();
  followAgain();
}

ui.conn.addEventListener("submit", (event) => {
  event.preventDefault();
  connect();
});
ui.disconnect.addEventListener("click", disconnect);
ui.composer.addEventListener("submit", (event) => {
  event.preventDefault();
  sendMessage();
  ui.input.focus();
});
ui.stop.addEventListener("click", () => {
  if (isOpen()) send({ type: "cancel" });
  ui.stop.disabled = true;
});
ui.newChat.addEventListener("click", () => {
  ui.resetFiles.checked = false;
  ui.resetDialog.showModal();
  ui.resetCancel.focus();
});
ui.resetCancel.addEventListener("click", () => ui.resetDialog.close());
ui.resetConfirm.addEventListener("click", () => {
  const workspace = ui.resetFiles.checked;
  ui.resetDialog.close();
  if (!isOpen()) return setState(ui.state.dataset.state ?? "", "Not connected: New chat needs the connection");
  send(workspace ? { type: "reset", workspace: true } : { type: "reset" });
  conversation.resetting = true;
  updateControls();
});
ui.input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    sendMessage();
  }
});
ui.input.addEventListener("input", autosize);
addEventListener("online", online);

ui.filesToggle.addEventListener("click", () => setFilesOpen(Boolean(ui.files.hidden)));
ui.filesClose.addEventListener("click", () => {
  setFilesOpen(false);
  ui.filesToggle.focus();
});
ui.files.addEventListener("keydown", (event) => {
  if (event.key === "Escape") {
    setFilesOpen(false);
    ui.filesToggle.focus();
  }
});
ui.filesUpload.addEventListener("click", () => ui.filesInput.click());
ui.filesInput.addEventListener("change", () => {
  uploadAll([...(ui.filesInput.files ?? [])], false);
  ui.filesInput.value = "";
});
ui.previewClose.addEventListener("click", closePreview);

// Files dropped anywhere on the page are uploaded, and referenced in the message being typed.
/** @param {DragEvent} event */
const carriesFiles = (event) => [...(event.dataTransfer?.types ?? [])].includes("Files");
addEventListener("dragover", (event) => {
  if (!carriesFiles(event) || !event.dataTransfer) return;
  event.preventDefault();
  event.dataTransfer.dropEffect = "copy";
  ui.dropOverlay.hidden = false;
});
addEventListener("dragleave", (event) => {
  if (event.relatedTarget === null) ui.dropOverlay.hidden = true;
});
addEventListener("drop", (event) => {
  ui.dropOverlay.hidden = true;
  if (!carriesFiles(event) || !event.dataTransfer) return;
  event.preventDefault();
  // A dropped folder arrives as a File that cannot be read: say so instead of failing later.
  const items = [...event.dataTransfer.items].filter((item) => item.kind === "file");
  const folders = items.filter((item) => item.webkitGetAsEntry?.()?.isDirectory).map((item) => item.getAsFile()?.name);
  if (folders.length) filesNote(`Folders cannot be uploaded (${folders.join(", ")}): drop the files inside them.`, true);
  uploadAll(
    [...event.dataTransfer.files].filter((file) => !folders.includes(file.name)),
    true,
  );
});

ui.user.value = store.get("chat.user_id") || "test_user";
ui.token.value = store.get("chat.token") || "";
if (store.get("chat.files_open")) setFilesOpen(true, false);
connect();
