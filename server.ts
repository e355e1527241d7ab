// The server: node:http for the routes and the page, a `ws` server for /ws/<user_id>, a Map of
// per-user sessions. This file only wires the parts together; each part's work is in lib/.
// createAgentServer() does nothing until listen(); tests make as many as they like.
import type { AddressInfo } from "node:net";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Authenticator } from "./lib/auth/authenticator.ts";
import { parseServerOptions, USAGE } from "./lib/cli/server-options.ts";
import { listenFailure, mutableLogger, printStartWarnings } from "./lib/cli/startup.ts";
import { ConfigError, loadConfig, resolveConfigPath, type Config } from "./lib/config.ts";
import { FilesApi } from "./lib/files/files-api.ts";
import { changesWorkspace, workspaceServers } from "./lib/files/workspace-writes.ts";
import { createHttpServer } from "./lib/http/listener.ts";
import { StaticFiles } from "./lib/http/static-files.ts";
import { loggerFromConfig, redactingLogger, Redactor, type Logger } from "./lib/log.ts";
import { HubFactory } from "./lib/mcp/hub-factory.ts";
import { serverActions } from "./lib/mcp/server-actions.ts";
import { agentSettingsFrom } from "./lib/agent/settings.ts";
import { ModelCheck } from "./lib/model/model-check.ts";
import { attachmentSettingsFrom } from "./lib/attachments/settings.ts";
import { SocketServer } from "./lib/socket/connections.ts";
import { openBackends } from "./lib/cluster/backends.ts";
import { tightenFolders } from "./lib/workspace/private-folders.ts";
import { Workspaces } from "./lib/workspace/workspaces.ts";
import { SessionManager } from "./session.ts";
import { Metrics } from "./lib/metrics/metrics.ts";
import type { Env } from "./lib/telemetry/settings.ts";
import { createTracing } from "./lib/telemetry/setup.ts";
import { createOAuth } from "./lib/oauth/setup.ts";
import { sessionLimitsFrom, sessionManagerLimitsFrom } from "./lib/session/settings.ts";

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
  const { tracing, settings: traceSettings } = createTracing({
    env: options.env ?? process.env,
    log,
    captureContent: config.observability.capture_content,
    redact: (text) => redactor.redact(text),
    serviceVersion: SERVICE_VERSION,
    ...(cluster ? { instanceId: cluster.instanceId } : {}),
  });
  // The sessions and hubs are made below and reached only once requests come in.
  const { oauth, userServers, routes, actions, setBaseUrl } = createOAuth({
    config,
    store,
    log,
    auth,
    sessions: () => sessions,
    hubs: () => hubs,
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
      ...sessionLimitsFrom(config),
      agent,
      log,
      redactor,
      store,
      coordinator,
      workspaces,
      attachments: attachmentSettingsFrom(config),
      changesWorkspace: (server, tool) => changesWorkspace(writers, server, tool),
      metrics,
      tracing,
      serverActions: serverActions(actions),
    },
    createHub: (userId, sessionId) => hubs.create(userId, sessionId),
    ...sessionManagerLimitsFrom(config),
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
    more: routes,
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
          setBaseUrl(url);
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
  const { log: serverLog, mute } = mutableLogger(log);
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
    console.error(`Cannot listen on ${host}:${port}: ${listenFailure(error)}`);
    mute();
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
  printStartWarnings(config, host, log);
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  await main(process.argv.slice(2), process.env);
}
