// @ts-check
// The connection's rules without a socket: which user ids are valid, the socket's URL, the
// reconnect wait, and what a failed token probe means.

const USER_ID = /^[A-Za-z0-9_.-]{1,64}$/;
/** The first reconnect wait; it doubles up to MAX_DELAY_MS and starts over with a welcome. */
export const FIRST_DELAY_MS = 500;
export const MAX_DELAY_MS = 10000;

/**
 * The server's rule (lib/protocol.ts isValidUserId): 1-64 of A-Z a-z 0-9 _ . -, not "." or "..".
 * @param {string} id
 * @returns {boolean}
 */
export function isUserId(id) {
  return USER_ID.test(id) && id !== "." && id !== "..";
}

/**
 * @param {number} delay the wait just used
 * @returns {number} the next one
 */
export function nextDelay(delay) {
  return Math.min(delay * 2, MAX_DELAY_MS);
}

/**
 * The streaming socket of the server that served the page: same host and port.
 * @param {{ protocol: string, host: string }} location
 * @param {string} userId
 * @param {string} token
 * @returns {string}
 */
export function socketUrl(location, userId, token) {
  const query = `?stream=1${token ? `&token=${encodeURIComponent(token)}` : ""}`;
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/${encodeURIComponent(userId)}${query}`;
}

/**
 * @param {number} retryAt epoch ms of the next attempt
 * @param {number} now epoch ms
 * @param {string} problem why the last attempt failed, when the page could find out
 * @returns {string}
 */
export function reconnectText(retryAt, now, problem) {
  const wait = Math.max(0, Math.ceil((retryAt - now) / 1000));
  return `Reconnecting in ${wait} s${problem ? ` (${problem})` : ""}…`;
}

/**
 * What the answer of `GET /sessions/<user_id>?token=…` says about a socket that failed before
 * its welcome (a refused upgrade is invisible to a page). `note` goes next to the token field.
 * @param {number} status the HTTP status; 0 when the server could not be reached
 * @param {string} token the token that was tried
 * @returns {{ note: string, problem: string, required: boolean }}
 */
export function probeVerdict(status, token) {
  if (status === 401) {
    return {
      note: token
        ? "Token rejected: this server does not accept this token. Correct it and press Connect."
        : "Token required: this server needs a token. Enter it and press Connect.",
      problem: token ? "token rejected" : "token required",
      required: true,
    };
  }
  if (status === 403) {
    return {
      note: "This token is for another user id: a token opens only its own user. Change the user id or the token.",
      problem: "token is for another user",
      required: false,
    };
  }
  const problem =
    status === 0
      ? "server unreachable"
      : (status >= 200 && status < 300) || status === 404
        ? "the server refused the connection"
        : `the server answered HTTP ${status}`;
  return { note: "", problem, required: false };
}

/**
 * A random id for a message, echoed by the server in `queued`, `turn_start` and a refusal.
 * @param {Uint8Array} bytes random bytes (randomUUID needs a secure context)
 * @returns {string}
 */
export function clientIdFrom(bytes) {
  return `page-${Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("")}`;
}
