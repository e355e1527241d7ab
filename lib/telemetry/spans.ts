// The spans a turn makes, named and shaped by the GenAI semantic conventions, as small functions
// for the call sites: `invoke_agent` per turn, `chat <model>` per model call, `execute_tool <name>`
// per tool call, and spans for a session's start, an approval and an MCP server's start. Only
// names, models, counts and outcomes go in unless observability.capture_content is on; content is
// passed as a function, so it is never serialised when it is off.
import * as names from "./names.ts";
import { SpanKind, type TraceParent, type TraceSpan, type Tracing } from "./tracer.ts";

export const AGENT_NAME = "mcp-agent-ws";

export interface TurnInfo {
  userId: string;
  sessionId: string;
  turnId: string;
  model: string;
  /** The turn's message, captured only with observability.capture_content. */
  input?: () => unknown;
  /** A remote parent: the context another instance handed over with the turn. */
  parent?: TraceParent;
  /** When the socket frame that asked for it arrived (epoch ms): queueing and the lease wait are part of the turn. */
  startTime?: number;
}

/** From the socket frame that asked for the turn to its last frame. */
export function turnSpan(tracing: Tracing, info: TurnInfo): TraceSpan {
  const input = info.input && tracing.content(info.input);
  return tracing.start(
    `invoke_agent ${AGENT_NAME}`,
    SpanKind.SERVER,
    {
      [names.GEN_AI_OPERATION_NAME]: "invoke_agent",
      [names.GEN_AI_AGENT_NAME]: AGENT_NAME,
      [names.GEN_AI_PROVIDER_NAME]: "openai",
      [names.GEN_AI_CONVERSATION_ID]: info.sessionId,
      [names.GEN_AI_REQUEST_MODEL]: info.model,
      [names.USER_ID]: info.userId,
      [names.TURN_ID]: info.turnId,
      ...(input !== undefined ? { [names.GEN_AI_INPUT_MESSAGES]: input } : {}),
    },
    info.parent,
    info.startTime,
  );
}

/** How a turn ended, as the metrics count it. */
export function endTurn(
  span: TraceSpan,
  outcome: "ok" | "error" | "cancelled" | "interrupted",
  error?: { code?: string; message?: string },
): void {
  if (outcome !== "ok" && outcome !== "cancelled") span.fail(error?.code ?? outcome, error?.message);
  span.end({ [names.OUTCOME]: outcome });
}

export interface ModelCallInfo {
  model: string;
  /** The model endpoint's host and port (server.address / server.port). */
  baseUrl?: string;
  messages?: () => unknown;
}

/** One streamed request to the model, to the end of its stream (CLIENT). */
export function modelCallSpan(tracing: Tracing, parent: TraceParent, info: ModelCallInfo): TraceSpan {
  if (!tracing.enabled) return tracing.start("", SpanKind.CLIENT, {});
  const server = endpoint(info.baseUrl);
  const input = info.messages && tracing.content(info.messages);
  return tracing.start(
    `chat ${info.model}`,
    SpanKind.CLIENT,
    {
      [names.GEN_AI_OPERATION_NAME]: "chat",
      [names.GEN_AI_PROVIDER_NAME]: "openai",
      [names.GEN_AI_REQUEST_MODEL]: info.model,
      [names.GEN_AI_REQUEST_STREAM]: true,
      ...(server ? { [names.SERVER_ADDRESS]: server.address, [names.SERVER_PORT]: server.port } : {}),
      ...(input !== undefined ? { [names.GEN_AI_INPUT_MESSAGES]: input } : {}),
    },
    parent,
  );
}

export interface ModelCallResult {
  inputTokens?: number;
  outputTokens?: number;
  cachedTokens?: number;
  finishReasons?: string[];
  responseModel?: string;
  responseId?: string;
  output?: () => unknown;
  /** Set when the call failed: the error's code or class. */
  errorType?: string;
  errorMessage?: string;
}

export function endModelCall(tracing: Tracing, span: TraceSpan, result: ModelCallResult): void {
  if (!span.recording) return;
  if (result.errorType) span.fail(result.errorType, result.errorMessage);
  const output = result.output && tracing.content(result.output);
  span.end({
    ...(result.inputTokens !== undefined ? { [names.GEN_AI_USAGE_INPUT_TOKENS]: result.inputTokens } : {}),
    ...(result.outputTokens !== undefined ? { [names.GEN_AI_USAGE_OUTPUT_TOKENS]: result.outputTokens } : {}),
    ...(result.cachedTokens ? { [names.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS]: result.cachedTokens } : {}),
    ...(result.finishReasons?.length ? { [names.GEN_AI_RESPONSE_FINISH_REASONS]: result.finishReasons } : {}),
    ...(result.responseModel ? { [names.GEN_AI_RESPONSE_MODEL]: result.responseModel } : {}),
    ...(result.responseId ? { [names.GEN_AI_RESPONSE_ID]: result.responseId } : {}),
    ...(output !== undefined ? { [names.GEN_AI_OUTPUT_MESSAGES]: output } : {}),
    [names.OUTCOME]: result.errorType ? "error" : "ok",
  });
}

export interface ToolCallInfo {
  tool: string;
  server: string;
  callId: string;
  args?: () => unknown;
}

/** One tool call, approval wait included (INTERNAL); its context goes to the MCP server. */
export function toolCallSpan(tracing: Tracing, parent: TraceParent, info: ToolCallInfo): TraceSpan {
  if (!tracing.enabled) return tracing.start("", SpanKind.INTERNAL, {});
  const args = info.args && tracing.content(info.args);
  return tracing.start(
    `execute_tool ${info.tool}`,
    SpanKind.INTERNAL,
    {
      [names.GEN_AI_OPERATION_NAME]: "execute_tool",
      [names.GEN_AI_TOOL_NAME]: info.tool,
      [names.GEN_AI_TOOL_TYPE]: "extension",
      [names.GEN_AI_TOOL_CALL_ID]: info.callId,
      [names.MCP_SERVER]: info.server,
      [names.MCP_METHOD_NAME]: "tools/call",
      ...(args !== undefined ? { [names.GEN_AI_TOOL_CALL_ARGUMENTS]: args } : {}),
    },
    parent,
  );
}

/** `ok`, `error` (the tool said so, or the call failed), `denied` (an approval said no). */
export function endToolCall(tracing: Tracing, span: TraceSpan, outcome: "ok" | "error" | "denied", result?: () => unknown): void {
  if (!span.recording) return;
  if (outcome !== "ok") span.fail(outcome === "denied" ? "tool_denied" : "tool_error");
  const text = result && tracing.content(result);
  span.end({ [names.OUTCOME]: outcome, ...(text !== undefined ? { [names.GEN_AI_TOOL_CALL_RESULT]: text } : {}) });
}

/** From asking the user to approve a tool call to the answer (or the timeout). */
export function approvalSpan(tracing: Tracing, parent: TraceParent, info: { tool: string; server: string; callId: string }): TraceSpan {
  if (!tracing.enabled) return tracing.start("", SpanKind.INTERNAL, {});
  return tracing.start(
    `approval ${info.tool}`,
    SpanKind.INTERNAL,
    { [names.GEN_AI_TOOL_NAME]: info.tool, [names.GEN_AI_TOOL_CALL_ID]: info.callId, [names.MCP_SERVER]: info.server },
    parent,
  );
}

export function endApproval(span: TraceSpan, decision: "approved" | "denied" | "timeout" | "cancelled"): void {
  span.end({ [names.OUTCOME]: decision });
}

/** An approval answered on this instance for a turn running on another: a child of that turn's span. */
export function approvalAnswerSpan(tracing: Tracing, parent: TraceParent, info: { callId: string; approved: boolean }): TraceSpan {
  if (!tracing.enabled) return tracing.start("", SpanKind.INTERNAL, {});
  return tracing.start(
    "approval answer",
    SpanKind.INTERNAL,
    { [names.GEN_AI_TOOL_CALL_ID]: info.callId, [names.OUTCOME]: info.approved ? "approved" : "denied" },
    parent,
  );
}

/** A session made or loaded for a user (its servers start later, each with its own span). */
export function sessionStartSpan(tracing: Tracing, info: { userId: string; sessionId?: string }): TraceSpan {
  if (!tracing.enabled) return tracing.start("", SpanKind.INTERNAL, {});
  return tracing.start("session start", SpanKind.INTERNAL, {
    [names.USER_ID]: info.userId,
    ...(info.sessionId ? { [names.GEN_AI_CONVERSATION_ID]: info.sessionId } : {}),
  });
}

/** An MCP server's start: spawn or connect, initialize, tools/list. */
export function mcpServerStartSpan(tracing: Tracing, parent: TraceParent, info: { server: string; transport: string }): TraceSpan {
  if (!tracing.enabled) return tracing.start("", SpanKind.INTERNAL, {});
  return tracing.start(
    `mcp_server start ${info.server}`,
    SpanKind.CLIENT,
    { [names.MCP_SERVER]: info.server, [names.MCP_TRANSPORT]: info.transport, [names.MCP_METHOD_NAME]: "initialize" },
    parent,
  );
}

function endpoint(baseUrl: string | undefined): { address: string; port: number } | undefined {
  if (!baseUrl) return { address: "api.openai.com", port: 443 };
  try {
    const url = new URL(baseUrl);
    return { address: url.hostname, port: url.port ? Number(url.port) : url.protocol === "https:" ? 443 : 80 };
  } catch {
    return undefined;
  }
}
