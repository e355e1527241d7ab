// What an MCP server may ask of us, the client: roots (the user's workspace), sampling (a model
// call) and elicitation (a question to the user). The connection installs the SDK's request
// handlers here; the answers that need a person or the model come from the user's session through
// the small ClientRequests seam, so the MCP code knows nothing of sockets or models.
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  ListRootsRequestSchema,
  LoggingMessageNotificationSchema,
  McpError,
  type ClientCapabilities,
  type CreateMessageRequest,
  type CreateMessageResult,
  type ElicitRequest,
  type ElicitResult,
  type LoggingLevel,
} from "@modelcontextprotocol/sdk/types.js";
import type { McpServerConfig } from "../config.ts";
import type { Logger } from "../log.ts";
import { cutLogData, DEFAULT_MCP_BUDGETS } from "./budgets.ts";

export type SamplingParams = CreateMessageRequest["params"];
export type ElicitParams = ElicitRequest["params"];
export type SamplingPolicy = McpServerConfig["sampling"];

/** The session's side: a person and the session's model, reached from an MCP server's request. */
export interface ClientRequests {
  /** Runs the session's model on a server's sampling request; `approve`: a person must allow it first. Throws McpError to refuse. */
  sample(server: string, params: SamplingParams, options: { approve: boolean; signal: AbortSignal }): Promise<CreateMessageResult>;
  /** Asks the user; never throws: no one to ask, or no answer in time, is a decline. */
  elicit(server: string, params: ElicitParams, signal: AbortSignal): Promise<ElicitResult>;
}

/** A server's sampling request that was refused: the spec's "user rejected" code. */
export function samplingRefused(reason: string): McpError {
  return new McpError(-1, reason);
}

/** What we announce: only a connection of one user's own can ask that user (a shared one cannot). */
export function clientCapabilities(asksBack: boolean): ClientCapabilities {
  if (!asksBack) return {};
  return { roots: { listChanged: true }, sampling: {}, elicitation: { form: {}, url: {} } };
}

export interface ClientHandlerOptions {
  server: string;
  /** file:// URIs of the user's folders (the workspace). */
  roots: { uri: string; name: string }[];
  sampling: SamplingPolicy;
  /** The session's seam; undefined until the session is attached (then requests are refused). */
  requests: () => ClientRequests | undefined;
  log: Logger;
  logFields: Record<string, unknown>;
  /** A server log's data is cut to this (limits.mcp_max_log_chars). */
  maxLogChars?: number;
}

/** MCP logging levels → ours: notice is info; critical, alert and emergency are errors. */
export function logLevelFor(level: LoggingLevel): "debug" | "info" | "warn" | "error" {
  switch (level) {
    case "debug":
      return "debug";
    case "info":
    case "notice":
      return "info";
    case "warning":
      return "warn";
    case "error":
    case "critical":
    case "alert":
    case "emergency":
      return "error";
    default:
      return level satisfies never;
  }
}

/** Installs the handlers for the server → client requests and the server's log notifications. */
export function installClientHandlers(client: Client, options: ClientHandlerOptions): void {
  const { server, log, logFields } = options;
  client.setRequestHandler(ListRootsRequestSchema, () => ({ roots: options.roots }));
  client.setRequestHandler(CreateMessageRequestSchema, async (request, extra) => {
    log.info("mcp_sampling_request", { ...logFields, policy: options.sampling, max_tokens: request.params.maxTokens });
    if (options.sampling === "deny")
      throw samplingRefused(`sampling is turned off for MCP server "${server}" (mcp.servers.${server}.sampling: deny)`);
    const requests = options.requests();
    if (!requests) throw samplingRefused("no user session is attached to this connection");
    return requests.sample(server, request.params, { approve: options.sampling === "approve", signal: extra.signal });
  });
  client.setRequestHandler(ElicitRequestSchema, async (request, extra) => {
    log.info("mcp_elicitation_request", { ...logFields, mode: request.params.mode ?? "form" });
    const requests = options.requests();
    if (!requests) return { action: "decline" };
    return requests.elicit(server, request.params, extra.signal);
  });
  installLogHandler(client, log, logFields, options.maxLogChars);
}

/** A server's log messages (notifications/message) go to our log, with the server's name, at the mapped level. */
export function installLogHandler(
  client: Client,
  log: Logger,
  logFields: Record<string, unknown>,
  maxLogChars = DEFAULT_MCP_BUDGETS.maxLogChars,
): void {
  client.setNotificationHandler(LoggingMessageNotificationSchema, (notification) => {
    const { level, logger, data } = notification.params;
    // Rate-limited at the transport (budgets.ts); each one's size is cut here.
    log[logLevelFor(level)]("mcp_server_log", {
      ...logFields,
      level_mcp: level,
      ...(logger ? { logger: logger.slice(0, 100) } : {}),
      data: cutLogData(data, maxLogChars),
    });
  });
}
