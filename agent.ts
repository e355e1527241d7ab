// The agent loop: call the model (streaming), run the tool calls it asks for, append the
// results, call again — with a hard cap on model calls per turn.
import type OpenAI from "openai";

export type ChatMessage = OpenAI.Chat.Completions.ChatCompletionMessageParam;
type AssistantMessage = OpenAI.Chat.Completions.ChatCompletionAssistantMessageParam;
type ToolCall = OpenAI.Chat.Completions.ChatCompletionMessageFunctionToolCall;

export const NO_API_KEY_MESSAGE =
  "no OpenAI API key is set. Put it in mcp_agent.secrets.yaml as openai.api_key " +
  "(copy mcp_agent.secrets.yaml.example), or set the OPENAI_API_KEY environment variable, then restart the server";

/** One model-visible tool name and the MCP tool it means. */
export interface ToolRoute {
  server: string;
  tool: string;
}

/** The tools the model is offered now, and where each of their names leads. */
export interface ToolCatalog {
  tools: OpenAI.Chat.Completions.ChatCompletionFunctionTool[];
  routes: Map<string, ToolRoute>;
}

/** Where the loop reports what it does (the server's Logger is one). */
export interface TurnLog {
  debug(event: string, fields?: Record<string, unknown>): void;
  info(event: string, fields?: Record<string, unknown>): void;
  warn(event: string, fields?: Record<string, unknown>): void;
}

export type ParsedArguments = { ok: true; args: Record<string, unknown> } | { ok: false; error: string };

/** The model's argument string to MCP arguments; an empty string means no arguments. */
export function parseToolArguments(json: string): ParsedArguments {
  if (json.trim() === "") return { ok: true, args: {} };
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (error) {
    return { ok: false, error: `the arguments are not valid JSON (${(error as Error).message})` };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value))
    return { ok: false, error: "the arguments must be a JSON object" };
  return { ok: true, args: value as Record<string, unknown> };
}

/** An image a tool returned: base64 data as the MCP server sent it. */
export interface ToolImage {
  mimeType: string;
  /** Base64, without a data: prefix. */
  data: string;
}

/** What a tool call gave back: the text the model sees, and whether it failed. */
export interface ToolOutcome {
  ok: boolean;
  text: string;
  /** Images the tool returned: the model gets them as image parts of a user message after the step's tool results. */
  images?: ToolImage[];
}

/** A progress notification of a running tool call (MCP `notifications/progress`). */
export interface ToolProgress {
  progress: number;
  total?: number;
  message?: string;
}

/** What a tool call may report while it runs. */
export interface ToolCallOptions {
  signal?: AbortSignal;
  onProgress?(progress: ToolProgress): void;
}

/** The tools of a session, as the agent needs them. */
export interface Toolbox {
  catalog(): ToolCatalog;
  /** Waits for tool lists being refreshed (a server said its tools changed) before the next catalog(). */
  prepare?(): Promise<void>;
  callTool(route: ToolRoute, args: Record<string, unknown>, options?: ToolCallOptions): Promise<ToolOutcome>;
}

export interface ToolStart {
  callId: string;
  name: string;
  server: string;
  tool: string;
  arguments: string;
}

export interface ToolEnd {
  callId: string;
  ok: boolean;
  result: string;
  durationMs: number;
  images?: ToolImage[];
}

/** A person's verdict on a tool call that needs approval; `reason` reaches the model on a denial. */
export type ApprovalDecision = { approved: true } | { approved: false; reason: string };

/** Asks whether a call may run (undefined: every call may). */
export type Approver = (call: ToolStart, signal?: AbortSignal) => Promise<ApprovalDecision>;

/** Live events of a turn, for streaming sockets and logs. */
export interface TurnHooks {
  onTextDelta?(text: string): void;
  onToolStart?(call: ToolStart): void;
  onToolEnd?(call: ToolEnd): void;
  onToolProgress?(callId: string, progress: ToolProgress): void;
  /** A complete step (an assistant message with tool calls and all their results) was added. */
  onStep?(messages: ChatMessage[]): Promise<void>;
}

export interface AgentSettings {
  /** Undefined when no API key is configured: every turn then fails with a how-to message. */
  openai: OpenAI | undefined;
  model: string;
  instruction: string;
  maxIterations: number;
  log: TurnLog;
}

/** A turn that failed; `messages` is the part of the turn that is safe to keep in the history. */
export class TurnError extends Error {
  readonly messages: ChatMessage[];
  /** True when the turn ended because its signal was aborted (a cancel), not because of a fault. */
  readonly cancelled: boolean;
  constructor(message: string, messages: ChatMessage[], options: { cause?: unknown; cancelled?: boolean } = {}) {
    super(message, { cause: options.cause });
    this.name = "TurnError";
    this.messages = messages;
    this.cancelled = options.cancelled ?? false;
  }
}

export interface TurnResult {
  answer: string;
  /** Every message the turn added: the user's, assistant messages, tool results. */
  messages: ChatMessage[];
}

export async function runTurn(
  settings: AgentSettings,
  toolbox: Toolbox,
  history: readonly ChatMessage[],
  userText: string,
  options: { signal?: AbortSignal; hooks?: TurnHooks; logFields?: Record<string, unknown>; approve?: Approver } = {},
): Promise<TurnResult> {
  const { signal, hooks = {}, logFields = {}, approve } = options;
  // Only complete steps go here: an assistant message with tool calls is added together with
  // all of its results, so whatever we keep after a failure is a valid conversation.
  const kept: ChatMessage[] = [{ role: "user", content: userText }];
  const fail = (message: string, cause?: unknown): never => {
    throw new TurnError(message, kept, { cause });
  };
  if (!settings.openai) return fail(NO_API_KEY_MESSAGE);
  try {
    return await loop(settings, settings.openai, toolbox, history, kept, signal, hooks, logFields, approve);
  } catch (error) {
    if (signal?.aborted) throw new TurnError("the turn was cancelled", kept, { cause: error, cancelled: true });
    throw error;
  }
}

async function loop(
  settings: AgentSettings,
  openai: OpenAI,
  toolbox: Toolbox,
  history: readonly ChatMessage[],
  kept: ChatMessage[],
  signal: AbortSignal | undefined,
  hooks: TurnHooks,
  logFields: Record<string, unknown>,
  approve: Approver | undefined,
): Promise<TurnResult> {
  const fail = (message: string, cause?: unknown): never => {
    throw new TurnError(message, kept, { cause });
  };
  for (let iteration = 1; iteration <= settings.maxIterations; iteration++) {
    await toolbox.prepare?.();
    const catalog = toolbox.catalog();
    const messages: ChatMessage[] = [{ role: "system", content: settings.instruction }, ...history, ...kept];
    let assistant: AssistantMessage;
    try {
      assistant = await streamCompletion(openai, settings.model, messages, catalog, signal, hooks);
    } catch (error) {
      if (signal?.aborted) throw error;
      return fail(modelErrorMessage(error), error);
    }
    signal?.throwIfAborted();
    const calls = (assistant.tool_calls ?? []).filter((call): call is ToolCall => call.type === "function");
    if (calls.length === 0) {
      const answer = typeof assistant.content === "string" ? assistant.content : "";
      kept.push({ role: "assistant", content: answer });
      return { answer, messages: kept };
    }
    if (iteration === settings.maxIterations) break;
    const ran = await Promise.all(
      calls.map((call) => runToolCall(toolbox, catalog, call, signal, hooks, settings.log, logFields, approve)),
    );
    signal?.throwIfAborted();
    const step: ChatMessage[] = [assistant, ...ran.map((result) => result.message)];
    const attachments = imageAttachments(ran);
    if (attachments) step.push(attachments);
    kept.push(...step);
    await hooks.onStep?.(step);
  }
  return fail(
    `the agent reached its limit of ${settings.maxIterations} model calls in one turn (agent.max_iterations) without a final answer`,
  );
}

async function runToolCall(
  toolbox: Toolbox,
  catalog: ToolCatalog,
  call: ToolCall,
  signal: AbortSignal | undefined,
  hooks: TurnHooks,
  log: TurnLog,
  logFields: Record<string, unknown>,
  approve: Approver | undefined,
): Promise<{ message: ChatMessage; callId: string; name: string; images: ToolImage[] }> {
  const started = Date.now();
  const route = catalog.routes.get(call.function.name);
  const start: ToolStart = {
    callId: call.id,
    name: call.function.name,
    server: route?.server ?? "",
    tool: route?.tool ?? call.function.name,
    arguments: call.function.arguments,
  };
  hooks.onToolStart?.(start);
  let outcome: ToolOutcome;
  const parsed = parseToolArguments(call.function.arguments);
  if (!route) outcome = { ok: false, text: `Unknown tool "${call.function.name}": it is not one of the tools offered` };
  else if (!parsed.ok) outcome = { ok: false, text: `Tool "${call.function.name}" was not called: ${parsed.error}` };
  else {
    const decision = approve ? await approve(start, signal) : { approved: true as const };
    signal?.throwIfAborted();
    const onProgress = (progress: ToolProgress) => hooks.onToolProgress?.(call.id, progress);
    outcome = decision.approved ? await toolbox.callTool(route, parsed.args, { signal, onProgress }) : { ok: false, text: decision.reason };
  }
  const durationMs = Date.now() - started;
  log.info("tool_call", {
    ...logFields,
    tool: call.function.name,
    server: route?.server,
    ok: outcome.ok,
    duration_ms: durationMs,
  });
  const images = outcome.images ?? [];
  hooks.onToolEnd?.({ callId: call.id, ok: outcome.ok, result: outcome.text, durationMs, ...(images.length > 0 ? { images } : {}) });
  // The model is told plainly when a tool failed, so it can recover instead of the turn failing.
  const content = outcome.ok ? outcome.text : `Error: ${outcome.text}`;
  return { message: { role: "tool", tool_call_id: call.id, content }, callId: call.id, name: call.function.name, images };
}

/**
 * Tool messages take text only in the chat API: images the step's tools returned follow them as
 * one user message of image parts (the original mcp-agent's OpenAI converter does the same).
 * Its content is an array, which is how the history tells it from a message the user typed.
 */
export function imageAttachments(
  results: readonly { callId: string; name: string; images: readonly ToolImage[] }[],
): ChatMessage | undefined {
  const parts: OpenAI.Chat.Completions.ChatCompletionContentPart[] = [];
  for (const result of results) {
    if (result.images.length === 0) continue;
    parts.push({ type: "text", text: `Images returned by tool ${result.name} (call ${result.callId}):` });
    for (const image of result.images) parts.push({ type: "image_url", image_url: { url: `data:${image.mimeType};base64,${image.data}` } });
  }
  return parts.length > 0 ? { role: "user", content: parts } : undefined;
}

/** One streamed model call, assembled into the assistant message it amounts to. */
async function streamCompletion(
  openai: OpenAI,
  model: string,
  messages: ChatMessage[],
  catalog: ToolCatalog,
  signal: AbortSignal | undefined,
  hooks: TurnHooks,
): Promise<AssistantMessage> {
  const stream = await openai.chat.completions.create(
    {
      model,
      messages,
      stream: true,
      ...(catalog.tools.length > 0 ? { tools: catalog.tools } : {}),
    },
    { signal },
  );
  let content = "";
  const calls: { id: string; name: string; arguments: string }[] = [];
  for await (const chunk of stream) {
    const delta = chunk.choices[0]?.delta;
    if (!delta) continue;
    if (delta.content) {
      content += delta.content;
      hooks.onTextDelta?.(delta.content);
    }
    for (const part of delta.tool_calls ?? []) {
      const slot = (calls[part.index] ??= { id: "", name: "", arguments: "" });
      if (part.id) slot.id = part.id;
      if (part.function?.name) slot.name += part.function.name;
      if (part.function?.arguments) slot.arguments += part.function.arguments;
    }
  }
  const toolCalls = calls.filter(Boolean).map((call, index) => ({
    id: call.id || `call_${index}`,
    type: "function" as const,
    function: { name: call.name, arguments: call.arguments },
  }));
  return {
    role: "assistant",
    content: content || null,
    ...(toolCalls.length > 0 ? { tool_calls: toolCalls } : {}),
  };
}

/** The model SDK's error, worded for a person. */
function modelErrorMessage(error: unknown): string {
  if (error instanceof Error) {
    const status = "status" in error && typeof error.status === "number" ? error.status : undefined;
    const message = error.message.replace(/\s+/g, " ").trim();
    if (status !== undefined && !message.startsWith(String(status))) return `the model API answered ${status}: ${message}`;
    return `model request failed: ${message}`;
  }
  return `model request failed: ${String(error)}`;
}
