// @ts-check
// The user's MCP servers (the `servers` frame): one line each with its state, "Connect <server>"
// (the sign-in link from auth_required) for one that needs the user, Retry for one that failed.
import { isOpen, send } from "./connection.js";
import { button, el } from "./dom.js";
import { notice } from "./render.js";

/** @typedef {import("../lib/protocol.ts").ServerStatus} ServerStatus */

/** Authorization URLs by server, from auth_required: "Connect" opens the latest one. */
const authUrls = new Map();
/** @type {ServerStatus[] | null} */
let lastServers = null;

/** @returns {HTMLElement | null} */
function list() {
  return document.getElementById("servers");
}

/** @param {ServerStatus[]} servers */
export function showServers(servers) {
  lastServers = servers;
  const target = list();
  if (!target) return;
  target.replaceChildren(
    ...servers.map((server) => {
      const item = el("li", "", `${server.name}: ${server.state}${server.state === "ready" ? ` (${server.tools} tools)` : ""}`);
      item.dataset.state = server.state;
      if (server.error) item.title = server.error;
      /** @param {string} type */
      const act = (type) => isOpen() && send({ type, server: server.name });
      const url = authUrls.get(server.name);
      if (server.needs_auth && url) {
        // The sign-in page of the server's authorization server, in a tab of its own.
        const link = el("a", "connect", `Connect ${server.name}`);
        link.href = url;
        link.target = "_blank";
        link.rel = "noopener noreferrer";
        item.append(" ", link);
      } else if (server.needs_auth) item.append(button(`Connect ${server.name}`, "", () => act("server_connect")));
      else if (server.state === "failed" || server.state === "exited") item.append(button("Retry", "", () => act("server_retry")));
      return item;
    }),
  );
}

/** @param {{ server: string, url: string }} frame */
export function onAuthRequired(frame) {
  authUrls.set(frame.server, frame.url);
  if (lastServers) showServers(lastServers);
  notice(`${frame.server} needs you to sign in: use "Connect ${frame.server}" above.`);
}

/** @param {{ server: string }} frame */
export function onAuthCompleted(frame) {
  authUrls.delete(frame.server);
  // The sign-in may have landed on another instance: this tab's own session starts the server again too.
  if (isOpen()) send({ type: "server_retry", server: frame.server });
  notice(`Signed in to ${frame.server}: its tools are ready.`);
}
