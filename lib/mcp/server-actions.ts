// What a streaming socket's frames about the user's MCP servers do: retry a failed one, and
// (when configured) connect or disconnect its OAuth authorization, add or remove a server of the
// user's own. The session only forwards them here.
import { streamErrorFrame, type ServerClientFrame } from "../protocol.ts";
import type { Peer, UserSockets } from "../session/fanout.ts";
import type { McpHub } from "./hub.ts";

/** What the actions need of the user's session. */
export interface ServerActionSession {
  readonly userId: string;
  readonly hub: McpHub;
  readonly sockets: UserSockets;
}

/** Handles a socket's frames about the user's MCP servers. */
export interface ServerActions {
  handle(session: ServerActionSession, peer: Peer, frame: ServerClientFrame): void;
}

/** The parts that only exist when configured: OAuth, and servers users add. */
export interface ServerActionHandlers {
  connect?(session: ServerActionSession, peer: Peer, server: string): void;
  disconnect?(session: ServerActionSession, peer: Peer, server: string): void;
  add?(session: ServerActionSession, peer: Peer, frame: Extract<ServerClientFrame, { type: "server_add" }>): void;
  remove?(session: ServerActionSession, peer: Peer, server: string): void;
}

export function serverActions(handlers: ServerActionHandlers = {}): ServerActions {
  return {
    handle(session, peer, frame) {
      switch (frame.type) {
        case "server_retry":
          if (!session.hub.retry(frame.server))
            peer.send(streamErrorFrame("unknown_server", `no MCP server named "${frame.server}" in this session`));
          return;
        case "server_connect":
          if (handlers.connect) return handlers.connect(session, peer, frame.server);
          return peer.send(streamErrorFrame("oauth_not_used", `MCP server "${frame.server}" does not use OAuth here`));
        case "server_disconnect":
          if (handlers.disconnect) return handlers.disconnect(session, peer, frame.server);
          return peer.send(streamErrorFrame("oauth_not_used", `MCP server "${frame.server}" does not use OAuth here`));
        case "server_add":
          if (handlers.add) return handlers.add(session, peer, frame);
          return peer.send(streamErrorFrame("user_servers_disabled", "adding servers is turned off (mcp.user_servers.enabled)"));
        case "server_remove":
          if (handlers.remove) return handlers.remove(session, peer, frame.server);
          return peer.send(streamErrorFrame("user_servers_disabled", "adding servers is turned off (mcp.user_servers.enabled)"));
        default:
          return frame satisfies never;
      }
    },
  };
}
