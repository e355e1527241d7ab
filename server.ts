// The server: node:http for the routes and the page, a `ws` server for /ws/<user_id>, a Map of
// per-user sessions. This file only wires the parts together; each part's work is in lib/.
// createAgentServer() does nothing until listen(); tests make as many as they like.
import type { AddressInfo } from "node:net";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Authenticator } from "./lib/auth/authenticator.ts";
import { parseServerOptions, USAGE } from "./lib/cli/server-options.ts";
import { ConfigError, loadConfig, resolveConfigPath, type Config } from "./lib/config.ts";
import { isLoopbackBind } from "./lib/http/access.ts";
import { FilesApi } from "./lib/files/files-api.ts";
import { changesWorkspace, workspaceServers } from "./lib/files/workspace-writes.ts";
import { createHttpServer } from "./lib/http/listener.ts";
import { StaticFiles } from "./lib/http/static-files.ts";
import { loggerFromConfig, redactingLogger, Redactor, type Logger } from "./lib/log.ts";
import { HubFactory } from "./lib/mcp/hub-factory.ts";
import { serverActions } from "./lib/mcp/server-actions.ts";
import { oauthActions } from "./lib/oauth/actions.ts";
import { OAuthManager } from "./lib/oauth/oauth.ts";
import { SealedRecords } from "./lib/oauth/records.ts";
import { OAuthRoutes } from "./lib/oauth/routes.ts";
import { Vault } from "./lib/oauth/vault.ts";
import { UserServers } from "./lib/mcp/user-servers.ts";
import { UserServersApi } from "./lib/mcp/user-servers-api.ts";
import { authCompletedFrame, authRequiredFrame, errorFrame } from "./lib/protocol.ts";
import { agentSettingsFrom } from "./lib/agent/settings.ts";
import { ModelCheck } from "./lib/model/model-check.ts";
import { attachmentSettingsFrom } from "./lib/attachments/settings.ts";
import { NewSessionLimiter } from "./lib/session/admission.ts";
import { ApprovalPolicy } from "./lib/session/approvals.ts";
import { SocketServer } from "./lib/socket/connections.ts";
import { openBackends } from "./lib/cluster/backends.ts";
import { tightenFolders } from "./lib/workspace/private-folders.ts";
import { Workspaces } from "./lib/workspace/workspaces.ts";
import { SessionManager } from "./session.ts";
import { Metrics } from "./lib/metrics/metrics.ts";
import { traceSettingsFromEnv, type Env } from "./lib/telemetry/settings.ts";
import { Tracing } from "./lib/telemetry/tracer.ts";

const HERE = path.dirname(fileURLToPath(import.meta.url));
/** service.version of the traces: the package's version. */
const SERVICE_VERSION = "0.1.0";

export interface AgentServerOptions {
  config: Config;
  log: Logger;
  /** Default: the config's server.host. */
  host?: string;
  /** Default: the config's server.port; 0 picks a free one. */
  port?: number;
  /** Where the OTEL_* variables (traces) are read; default process.env. */
  env?: Env;
}

export interface AgentServer {
  listen(): Promise<{ url: string; port: number; host: string }>;
  close(): Promise<void>;
  readonly sessions: SessionManager;
}

export function createAgentServer(options: AgentServerOptions): AgentServer {
  const { config } = options;
  const host = options.host ?? config.server.host;
  // One redactor for everything that leaves: frames, /sessions*, and (secrets only) the log.
  const redactor = Redactor.fromConfig(config, HERE);
  const log = redactingLogger(options.log, redactor);
  // Built once: reads the users file or the JWT key now, so a bad one stops the start.
  const auth = new Authenticator(config, log);
  // The store is opened here, before anything else can fail, and closed last in close().
  const { store, coordinator, cluster } = openBackends(config, log);
  const workspaces = new Workspaces(resolveConfigPath(config, config.workspace.root), config.limits.workspace_bytes);
  // Traces: off unless the OTEL_* variables ask for them; flushed and stopped by close().
  const traceSettings = traceSettingsFromEnv(options.env ?? process.env);
  for (const warning of traceSettings.warnings) log.warn("otel_setting_ignored", { warning });
  const tracing = new Tracing({
    settings: traceSettings,
    captureContent: config.observability.capture_content,
    redact: (text) => redactor.redact(text),
    serviceVersion: SERVICE_VERSION,
    ...(cluster ? { instanceId: cluster.instanceId } : {}),
  });
  // Sealed with a key made on first use: a server that never stores a token never makes one.
  let vault: Vault | undefined;
  const records = new SealedRecords(
    store,
    () => (vault ??= Vault.open({ secret: config.oauth.encryption_key, keyFile: resolveConfigPath(config, config.oauth.key_file) })),
  );
  const userServers = new UserServers(config, records);
  // Known at listen (port 0 picks one); server.public_url wins when set.
  let baseUrl = `http://localhost:${config.server.port}`;
  const oauth: OAuthManager = new OAuthManager({
    config,
    records,
    log,
    baseUrl: () => baseUrl,
    entryFor: async (userId, server) => config.mcp.servers[server] ?? (await userServers.entry(userId, server)),
    events: {
      authRequired: (userId, server, url) => {
        sessions.broadcast(userId, authRequiredFrame(server, url));
        sessions
          .get(userId)
          ?.sockets.toSeed(errorFrame("unauthorized", `MCP server "${server}" needs your authorization: ${oauth.hint(server)}`));
      },
      authCompleted: (userId, server) => {
        sessions.get(userId)?.hub.retry(server);
        sessions.broadcast(userId, authCompletedFrame(server));
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
        const session = sessions.get(userId);
        return session && { hub: session.hub, sessionId: session.sessionId };
      },
      connect: async (userId, sessionId, name, hub) => {
        const entry = await userServers.entry(userId, name);
        if (entry) hub.add(hubs.userConnection(userId, sessionId, name, entry, hub));
      },
      forget: (userId, name) => oauth.disconnect(userId, name),
    },
  });
  const writers = workspaceServers(config.mcp.servers);
  // Read at scrape time only, when `sessions` and `sockets` below exist.
  const metrics: Metrics = new Metrics({
    liveSessions: (): number => sessions.size,
    storedSessions: () => store.countSessions(),
    openSockets: (): number => sockets.openSockets,
    mcpServerStates: (): Iterable<string> => sessions.mcpServerStates(),
  });
  const hubs = new HubFactory(config, workspaces, log, [config.configDir, HERE], { oauth, userServers, metrics, tracing });
  const agent = agentSettingsFrom(config, log);
  const sessions: SessionManager = new SessionManager({
    deps: {
      agent,
      log,
      maxHistoryMessages: config.session.max_history_messages,
      maxQueuedTurns: config.limits.max_queued_turns,
      maxReplayBytes: config.limits.max_replay_bytes,
      rateLimit: { perMinute: config.limits.messages_per_minute, burst: config.limits.message_burst },
      redactor,
      store,
      approvalPolicy: new ApprovalPolicy(config.mcp.servers),
      approvalTimeoutMs: config.agent.approval_timeout_seconds * 1000,
      maxTurnMs: config.agent.max_turn_seconds * 1000,
      historyRateLimit: { perMinute: config.limits.history_requests_per_minute, burst: config.limits.history_burst },
      maxSamplingTokens: config.limits.max_sampling_tokens,
      maxElicitationChars: config.limits.mcp_max_elicitation_chars,
      maxMessageChars: config.limits.max_message_chars,
      coordinator,
      workspaces,
      attachments: attachmentSettingsFrom(config),
      changesWorkspace: (server, tool) => changesWorkspace(writers, server, tool),
      tokensPerDay: config.limits.tokens_per_day,
      metrics,
      tracing,
      serverActions: serverActions({ ...oauthActions(oauth), ...userServersApi.socketActions() }),
    },
    createHub: (userId, sessionId) => hubs.create(userId, sessionId),
    idleMs: config.session.idle_timeout_seconds * 1000,
    sweepIntervalMs: config.session.sweep_interval_seconds * 1000,
    retentionMs: config.session.retention_days * 24 * 60 * 60 * 1000,
    mcpIdleMs: config.session.mcp_idle_seconds * 1000,
    maxWarmSessions: config.limits.max_warm_sessions,
    idleNewMs: config.session.idle_new_session_seconds * 1000,
    maxSessions: config.limits.max_sessions,
    newSessions: new NewSessionLimiter(
      { perMinute: config.limits.new_sessions_per_minute, burst: config.limits.new_session_burst },
      { perMinute: config.limits.new_sessions_per_prefix_per_minute, burst: config.limits.new_session_prefix_burst },
    ),
  });

  const staticFiles = new StaticFiles(HERE);
  const clusterRoutes = cluster && { instance: cluster.instanceId, healthy: () => cluster.healthy(), liveUsers: () => cluster.liveUsers() };
  const files = new FilesApi({ config, workspaces, log, auth, notify: (userId, frame) => sessions.broadcast(userId, frame) });
  const httpServer = createHttpServer(config, host, {
    sessions,
    staticFiles,
    files,
    metrics,
    redactor,
    auth,
    more: [new OAuthRoutes(oauth), userServersApi],
    ...(clusterRoutes ? { cluster: clusterRoutes } : {}),
  });
  const sockets: SocketServer = new SocketServer({ config, bindHost: host, sessions, log, redactor, metrics, auth });
  httpServer.on("upgrade", (req, socket, head) => sockets.handleUpgrade(req, socket, head));

  let closing: Promise<void> | undefined;
  let modelCheck: ModelCheck | undefined;
  return {
    sessions,
    listen: async () => {
      // Folders made under a looser umask, or by an older version, become owner-only now.
      tightenFolders(config, log);
      // Start with Redis ready when it is there; without it, start anyway (unhealthy) and recover.
      await cluster?.connected().catch((error: unknown) => log.warn("redis_unreachable_at_start", { error }));
      return new Promise((resolve, reject) => {
        httpServer.once("error", reject);
        httpServer.listen(options.port ?? config.server.port, host, () => {
          httpServer.off("error", reject);
          const { port } = httpServer.address() as AddressInfo;
          sessions.startSweeper();
          hubs.startShared();
          const url = `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
          baseUrl = url;
          const servers = Object.keys(config.mcp.servers);
          log.info("server_start", {
            url,
            ...(cluster ? { instance: cluster.instanceId } : {}),
            ...(traceSettings.enabled ? { traces: traceSettings.url } : {}),
            model: config.openai.default_model,
            servers,
          });
          // Azure lists models, not deployments: its names are not checked.
          const client = agent.openai;
          if (client && config.openai.check_model && !config.azure) modelCheck = new ModelCheck(client, config.openai.default_model, log);
          resolve({ url, port, host });
        });
      });
    },
    close: () =>
      (closing ??= (async () => {
        httpServer.close();
        modelCheck?.close();
        sockets.closeAll();
        await Promise.all([sessions.close(), hubs.close()]);
        sockets.terminate();
        httpServer.closeAllConnections();
        await modelCheck?.done;
        await store.close();
        await cluster?.close();
        // Last: the spans of everything closed above are ended by now.
        await tracing.close();
        log.info("server_stop", {});
      })()),
  };
}

// ---- command line -----------------------------------------------------------------------------

export async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<void> {
  const parsed = parseServerOptions(argv, env);
  if (!parsed.ok) {
    console.error(parsed.error);
    process.exit(2);
  }
  const { options } = parsed;
  if (options.help) return console.log(USAGE);
  let config: Config;
  try {
    config = loadConfig(options.configPath, env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(`Invalid configuration: ${error.message}`);
    process.exit(2);
  }
  const log = loggerFromConfig(config, { level: options.level });
  // A server that never listened has nothing to log: its failed start is one line on stderr,
  // not that line plus a `server_stop` from the clean-up.
  let muted = false;
  const serverLog: Logger = {
    debug: (event, fields) => muted || log.debug(event, fields),
    info: (event, fields) => muted || log.info(event, fields),
    warn: (event, fields) => muted || log.warn(event, fields),
    error: (event, fields) => muted || log.error(event, fields),
    filePath: log.filePath,
    close: () => log.close(),
  };
  const host = options.host ?? config.server.host;
  const port = options.port ?? config.server.port;
  let server: AgentServer;
  try {
    server = createAgentServer({ config, log: serverLog, host, port });
  } catch (error) {
    // What is only checked when its part starts (fetch allow_hosts, the session database) stops
    // the start like a config error.
    console.error(`Cannot start: ${(error as Error).message}`);
    await log.close();
    process.exit(2);
  }
  let address;
  try {
    address = await server.listen();
  } catch (error) {
    const code = error instanceof Error && "code" in error ? error.code : undefined;
    const reason =
      code === "EADDRINUSE"
        ? "the port is already in use"
        : code === "EADDRNOTAVAIL"
          ? "that address is not on this machine"
          : (error as Error).message;
    console.error(`Cannot listen on ${host}:${port}: ${reason}`);
    muted = true;
    await server.close();
    await log.close();
    process.exit(1);
  }
  let shuttingDown = false;
  const shutdown = (signal: string) => {
    // A second Ctrl-C while closing must not kill us with a non-zero status: the first one wins.
    if (shuttingDown) return;
    shuttingDown = true;
    log.info("shutdown", { signal });
    // A stuck child must not keep us past the promised 5 seconds.
    setTimeout(() => process.exit(0), 4500).unref();
    void server
      .close()
      .then(() => log.close())
      .finally(() => process.exit(0));
  };
  // Handlers before the banner: whoever waits for the banner may signal us right away.
  process.on("SIGINT", () => shutdown("SIGINT"));
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  console.log(`MCP agent server listening on ${address.url} (WebSocket: ${address.url.replace(/^http/, "ws")}/ws/<user_id>)`);
  if (!isLoopbackBind(host) && !config.server.auth_token && config.server.auth.mode === "token") {
    console.log(
      `Warning: listening on ${host}, reachable from other machines, without a token: anyone who can reach it gets an agent with your API key. Set server.auth_token (or MCP_AGENT_AUTH_TOKEN).`,
    );
    log.warn("no_auth_token", { host });
  }
  if (!config.openai.api_key) {
    console.log(
      "No OpenAI API key is set: chat messages will get an error until you set openai.api_key in mcp_agent.secrets.yaml or OPENAI_API_KEY.",
    );
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  await main(process.argv.slice(2), process.env);
}
