// @ts-check
// The socket to the server that served the page: connect, reconnect with backoff, find out why a
// socket failed before its welcome (a wrong or missing token), and send frames.
import { ui } from "./dom.js";
import { FIRST_DELAY_MS, nextDelay, probeVerdict, reconnectText, socketUrl } from "./reconnect.js";

/**
 * What the rest of the page does with the socket (wired by page/app.js).
 * @typedef {object} Handlers
 * @property {(data: unknown) => void} onFrame a parsed JSON frame
 * @property {() => void} onChange the connection's state changed: the controls follow
 * @property {() => void} onClose the socket is gone
 */

/** @type {Handlers} */
let handlers = { onFrame: () => {}, onChange: () => {}, onClose: () => {} };

/** @type {WebSocket | null} the open (or opening) socket; handlers of any other socket are ignored */
let ws = null;
/** @type {WeakSet<WebSocket>} sockets that got their welcome */
const welcomedSockets = new WeakSet();
let wanted = false; // the user wants to be connected: reconnect when the socket drops
let delay = FIRST_DELAY_MS; // next reconnect wait, reset by a welcome
let timer = 0;
let retryAt = 0; // when the next reconnect attempt starts
let problem = ""; // why the last attempt failed, when the page could find out
let userId = "";
let probes = 0;

/** @param {Handlers} next */
export function setHandlers(next) {
  handlers = next;
}

/** @returns {string} the user id the page connects as ("" before the first Connect) */
export function currentUser() {
  return userId;
}

/** @returns {boolean} */
export function wantsConnection() {
  return wanted;
}

/**
 * @param {string} state connected, connecting, reconnecting, disconnected or error (the dot's colour)
 * @param {string} text
 */
export function setState(state, text) {
  ui.state.dataset.state = state;
  ui.state.textContent = text;
  handlers.onChange();
}

/** @param {string} text */
export function setTokenNote(text) {
  ui.tokenNote.textContent = text;
  if (text) ui.token.setAttribute("aria-invalid", "true");
  else ui.token.removeAttribute("aria-invalid");
}

/** @returns {boolean} whether frames can be sent now */
export function isOpen() {
  return ws !== null && ws.readyState === WebSocket.OPEN && ui.state.dataset.state === "connected";
}

/**
 * Sends a client frame (lib/protocol.ts ClientFrame, as JSON); callers check isOpen() first.
 * @param {Record<string, unknown>} frame
 */
export function send(frame) {
  ws?.send(JSON.stringify(frame));
}

/**
 * The welcome came: the socket is connected and the backoff starts over.
 * @param {string} welcomedAs
 */
export function welcomed(welcomedAs) {
  delay = FIRST_DELAY_MS;
  problem = "";
  if (ws) welcomedSockets.add(ws);
  setTokenNote("");
  setState("connected", `Connected as ${welcomedAs}`);
}

/**
 * A refused upgrade (401 without the right token) is invisible to a page: the socket just fails.
 * /sessions answers 401 when a token is configured and the one given is not it, so ask there.
 * @param {string} token
 */
async function probeToken(token) {
  const probe = ++probes;
  /** @type {number} */
  let status;
  try {
    // The user's own session: with per-user tokens (server.auth) a token for another user id is a 403.
    const probeUrl = `/sessions/${encodeURIComponent(userId)}?token=${encodeURIComponent(token)}`;
    status = (await fetch(probeUrl, { cache: "no-store", credentials: "omit" })).status;
  } catch {
    status = 0;
  }
  if (probe !== probes || (ws && welcomedSockets.has(ws))) return;
  const verdict = probeVerdict(status, token);
  if (verdict.required) ui.token.placeholder = "Token (required)";
  setTokenNote(verdict.note);
  problem = verdict.problem;
  if (ui.state.dataset.state === "reconnecting") setState("reconnecting", reconnectText(retryAt, Date.now(), problem));
}

function open() {
  clearTimeout(timer);
  if (ws) {
    const old = ws;
    ws = null;
    old.close();
  }
  setState("connecting", "Connecting…");
  const token = ui.token.value.trim();
  const socket = new WebSocket(socketUrl(location, userId, token));
  let opened = false;
  ws = socket;
  socket.onopen = () => {
    opened = true;
  };
  socket.onmessage = (event) => {
    if (ws !== socket) return;
    /** @type {unknown} */
    let data;
    try {
      data = JSON.parse(String(event.data));
    } catch {
      return;
    }
    if (data && typeof data === "object") handlers.onFrame(data);
  };
  socket.onclose = (event) => {
    if (ws !== socket) return;
    ws = null;
    handlers.onClose();
    if (!wanted) return setState("disconnected", "Disconnected");
    const wait = delay;
    delay = nextDelay(delay);
    retryAt = Date.now() + wait;
    if (event.reason) problem = event.reason;
    setState("reconnecting", reconnectText(retryAt, Date.now(), problem));
    timer = setTimeout(open, wait);
    // Failed before the upgrade: find out whether the token is why.
    if (!opened && !welcomedSockets.has(socket)) void probeToken(token);
  };
}

/**
 * Connects as that user (already checked), and stays connected until disconnect().
 * @param {string} id
 */
export function connectAs(id) {
  userId = id;
  wanted = true;
  delay = FIRST_DELAY_MS;
  problem = "";
  open();
}

export function disconnect() {
  wanted = false;
  clearTimeout(timer);
  if (ws) ws.close();
  else setState("disconnected", "Disconnected");
}

/** The browser is back online: try now rather than at the end of the wait. */
export function online() {
  if (wanted && !ws) {
    delay = FIRST_DELAY_MS;
    open();
  }
}
