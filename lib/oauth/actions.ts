// The socket's "Connect <server>" and "Disconnect" (server_connect / server_disconnect frames).
import { streamErrorFrame } from "../protocol.ts";
import type { ServerActionHandlers } from "../mcp/server-actions.ts";
import type { OAuthManager } from "./oauth.ts";

export function oauthActions(oauth: OAuthManager): Pick<ServerActionHandlers, "connect" | "disconnect"> {
  return {
    // Starting the server again is what asks for authorization: its 401 sends auth_required.
    connect(session, peer, server) {
      if (!session.hub.retry(server)) peer.send(streamErrorFrame("unknown_server", `no MCP server named "${server}" in this session`));
    },
    disconnect(session, peer, server) {
      oauth.disconnect(session.userId, server).then(
        () => {
          if (!session.hub.restart(server))
            peer.send(streamErrorFrame("unknown_server", `no MCP server named "${server}" in this session`));
        },
        (error: unknown) =>
          peer.send(streamErrorFrame("internal_error", `cannot forget the tokens of "${server}": ${(error as Error).message}`)),
      );
    },
  };
}
