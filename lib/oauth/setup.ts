// The OAuth part of a server: the sealed records (the vault's key made on first use), the servers
// users add, the OAuth manager, and what they serve (routes, server_* socket actions). server.ts
// calls createOAuth() once; the live sessions and the hub factory are reached lazily, as they are
// made after this part and used only once requests come in.
import type { Authenticator } from "../auth/authenticator.ts";
import { resolveConfigPath, type Config, type McpServerConfig } from "../config.ts";
import type { Logger } from "../log.ts";
import type { McpConnection } from "../mcp/connection.ts";
import type { McpHub } from "../mcp/hub.ts";
import type { ServerActionHandlers } from "../mcp/server-actions.ts";
import { UserServers } from "../mcp/user-servers.ts";
import { UserServersApi } from "../mcp/user-servers-api.ts";
import { authCompletedFrame, authRequiredFrame, errorFrame, type ServerFrame, type StreamFrame } from "../protocol.ts";
import type { UserDataStore } from "../store/user-data.ts";
import { oauthActions } from "./actions.ts";
import { OAuthManager } from "./oauth.ts";
import { SealedRecords } from "./records.ts";
import { OAuthRoutes } from "./routes.ts";
import { Vault } from "./vault.ts";

/** The live sessions, as this part sees them. */
export interface OAuthSessions {
  broadcast(userId: string, frame: StreamFrame): void;
  get(userId: string): { sockets: { toSeed(frame: ServerFrame): void }; hub: McpHub; sessionId: string } | undefined;
}

/** Where a user's added server becomes a connection of their hub. */
export interface UserConnections {
  userConnection(userId: string, sessionId: string, name: string, entry: McpServerConfig, hub: McpHub): McpConnection;
}

export interface OAuthOptions {
  config: Config;
  store: UserDataStore;
  log: Logger;
  auth: Authenticator;
  sessions: () => OAuthSessions;
  hubs: () => UserConnections;
}

export interface OAuthPart {
  oauth: OAuthManager;
  userServers: UserServers;
  records: SealedRecords;
  /** /oauth/* and /servers/<user_id>. */
  routes: [OAuthRoutes, UserServersApi];
  /** server_connect / server_disconnect / server_add / server_remove. */
  actions: ServerActionHandlers;
  /** Known at listen (port 0 picks one); server.public_url wins when set. */
  setBaseUrl(url: string): void;
}

export function createOAuth({ config, store, log, auth, sessions, hubs }: OAuthOptions): OAuthPart {
  // Sealed with a key made on first use: a server that never stores a token never makes one.
  let vault: Vault | undefined;
  const records = new SealedRecords(
    store,
    () => (vault ??= Vault.open({ secret: config.oauth.encryption_key, keyFile: resolveConfigPath(config, config.oauth.key_file) })),
  );
  const userServers = new UserServers(config, records);
  let baseUrl = `http://localhost:${config.server.port}`;
  const oauth: OAuthManager = new OAuthManager({
    config,
    records,
    log,
    baseUrl: () => baseUrl,
    entryFor: async (userId, server) => config.mcp.servers[server] ?? (await userServers.entry(userId, server)),
    events: {
      authRequired: (userId, server, url) => {
        sessions().broadcast(userId, authRequiredFrame(server, url));
        sessions()
          .get(userId)
          ?.sockets.toSeed(errorFrame("unauthorized", `MCP server "${server}" needs your authorization: ${oauth.hint(server)}`));
      },
      authCompleted: (userId, server) => {
        sessions().get(userId)?.hub.retry(server);
        sessions().broadcast(userId, authCompletedFrame(server));
      },
    },
  });
  const userServersApi = new UserServersApi({
    servers: userServers,
    config,
    auth,
    log,
    hooks: {
      hubOf: (userId) => {
        const session = sessions().get(userId);
        return session && { hub: session.hub, sessionId: session.sessionId };
      },
      connect: async (userId, sessionId, name, hub) => {
        const entry = await userServers.entry(userId, name);
        if (entry) hub.add(hubs().userConnection(userId, sessionId, name, entry, hub));
      },
      forget: (userId, name) => oauth.disconnect(userId, name),
    },
  });
  return {
    oauth,
    userServers,
    records,
    routes: [new OAuthRoutes(oauth), userServersApi],
    actions: { ...oauthActions(oauth), ...userServersApi.socketActions() },
    setBaseUrl: (url) => {
      baseUrl = url;
    },
  };
}
