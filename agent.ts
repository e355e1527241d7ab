// The agent loop: call the model (streaming), run the tool calls it asks for, append the
// results, call again — with a hard cap on model calls per turn.
import { randomUUID } from "node:crypto";
import type OpenAI from "openai";
import type { Logger } from "./lib/log.ts";
import { parseToolArguments, type ToolCatalog, type ToolRoute } from "./lib/mcp/tools.ts";

export type ChatMessage = OpenAI.Chat.Completions.ChatCompletionMessageParam;
type AssistantMessage = OpenAI.Chat.Completions.ChatCompletionAssistantMessageParam;
type ToolCall = OpenAI.Chat.Completions.ChatCompletionMessageFunctionToolCall;

export const NO_API_KEY_MESSAGE =
  "no OpenAI API key is set. Put it in mcp_agent.secrets.yaml as openai.api_key " +
  "(copy mcp_agent.secrets.yaml.example), or set the OPENAI_API_KEY environment variable, then restart the server";

/** What a tool call gave back: the text the model sees, and whether it failed. */
export interface ToolOutcome {
  ok: boolean;
  text: string;
}

/** The tools of a session, as the agent needs them. */
export interface Toolbox {
  catalog(): ToolCatalog;
  callTool(route: ToolRoute, args: Record<string, unknown>, signal?: AbortSignal): Promise<ToolOutcome>;
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
  /** A complete step (an assistant message with tool calls and all their results) was added. */
  onStep?(messages: ChatMessage[]): Promise<void>;
}

export interface AgentSettings {
  /** Undefined when no API key is configured: every turn then fails with a how-to message. */
  openai: OpenAI | undefined;
  model: string;
  instruction: string;
  maxIterations: number;
  /** A streamed answer that sends nothing (keep-alive comments count as nothing) for this long fails. */
  streamIdleMs: number;
  /** Bounds one whole model call, streamed answer included (the SDK's own timeout stops at the headers). */
  requestTimeoutMs: number;
  /** A model answer (or a tool call's arguments) longer than this is cut, with a note. */
  maxAnswerChars: number;
  /** A model error text longer than this is cut, with a note. */
  maxErrorChars: number;
  log: Logger;
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
    const catalog = toolbox.catalog();
    const messages: ChatMessage[] = [{ role: "system", content: settings.instruction }, ...history, ...kept];
    let assistant: AssistantMessage;
    try {
      assistant = await streamCompletion(openai, settings, messages, catalog, signal, hooks);
    } catch (error) {
      if (signal?.aborted) throw error;
      return fail(capText(modelErrorMessage(error), settings.maxErrorChars, "limits.max_error_chars"), error);
    }
    signal?.throwIfAborted();
    const calls = (assistant.tool_calls ?? []).filter((call): call is ToolCall => call.type === "function");
    if (calls.length === 0) {
      const answer = typeof assistant.content === "string" ? assistant.content : "";
      kept.push({ role: "assistant", content: answer });
      return { answer, messages: kept };
    }
    if (iteration === settings.maxIterations) break;
    const results = await Promise.all(
      calls.map((call) => runToolCall(toolbox, catalog, call, signal, hooks, settings.log, logFields, approve)),
    );
    signal?.throwIfAborted();
    kept.push(assistant, ...results);
    await hooks.onStep?.([assistant, ...results]);
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
  log: Logger,
  logFields: Record<string, unknown>,
  approve: Approver | undefined,
): Promise<ChatMessage> {
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
    outcome = decision.approved ? await toolbox.callTool(route, parsed.args, signal) : { ok: false, text: decision.reason };
  }
  const durationMs = Date.now() - started;
  log.info("tool_call", {
    ...logFields,
    tool: call.function.name,
    server: route?.server,
    ok: outcome.ok,
    duration_ms: durationMs,
  });
  hooks.onToolEnd?.({ callId: call.id, ok: outcome.ok, result: outcome.text, durationMs });
  // The model is told plainly when a tool failed, so it can recover instead of the turn failing.
  const content = outcome.ok ? outcome.text : `Error: ${outcome.text}`;
  return { role: "tool", tool_call_id: call.id, content };
}

/** Why a model call was stopped by one of our own deadlines (the SDK only knows "aborted"). */
class ModelLimit extends Error {
  override name = "ModelLimit";
}

/**
 * One streamed model call, assembled into the assistant message it amounts to. Bounded on every
 * side: an idle timer between chunks, a deadline for the whole call, and a cap on what is kept.
 * Tool calls get ids we assign: the model's own can repeat or be missing, and an approval, a
 * tool_end and a history entry must each point at exactly one call.
 */
async function streamCompletion(
  openai: OpenAI,
  settings: AgentSettings,
  messages: ChatMessage[],
  catalog: ToolCatalog,
  signal: AbortSignal | undefined,
  hooks: TurnHooks,
): Promise<AssistantMessage> {
  const deadlines = new AbortController();
  const overall = setTimeout(
    () =>
      deadlines.abort(
        new ModelLimit(
          `the model's answer timed out: it was not complete after ${seconds(settings.requestTimeoutMs)} s (openai.request_timeout_seconds)`,
        ),
      ),
    settings.requestTimeoutMs,
  );
  let idle: NodeJS.Timeout | undefined;
  const armIdle = () => {
    clearTimeout(idle);
    idle = setTimeout(
      () =>
        deadlines.abort(
          new ModelLimit(
            `the model's answer timed out: it sent nothing for ${seconds(settings.streamIdleMs)} s (openai.stream_idle_timeout_seconds)`,
          ),
        ),
      settings.streamIdleMs,
    );
  };
  const requestSignal = signal ? AbortSignal.any([signal, deadlines.signal]) : deadlines.signal;
  let content = "";
  let cut = false;
  const calls: { name: string; arguments: string }[] = [];
  try {
    const stream = await openai.chat.completions.create(
      {
        model: settings.model,
        messages,
        stream: true,
        ...(catalog.tools.length > 0 ? { tools: catalog.tools } : {}),
      },
      { signal: requestSignal },
    );
    armIdle();
    for await (const chunk of stream) {
      armIdle();
      const delta = chunk.choices[0]?.delta;
      if (!delta) continue;
      if (delta.content) {
        const room = settings.maxAnswerChars - content.length;
        const piece = delta.content.slice(0, Math.max(0, room));
        content += piece;
        if (piece) hooks.onTextDelta?.(piece);
        if (piece.length < delta.content.length) {
          cut = true;
          break; // leaving the loop ends the request: the rest is never downloaded
        }
      }
      for (const part of delta.tool_calls ?? []) {
        // The index comes from the model: a sparse or huge one must not make a huge array.
        if (part.index < 0 || part.index >= 128) continue;
        const slot = (calls[part.index] ??= { name: "", arguments: "" });
        if (part.function?.name) slot.name += part.function.name;
        if (part.function?.arguments) slot.arguments += part.function.arguments;
        if (slot.name.length + slot.arguments.length > settings.maxAnswerChars) {
          throw new ModelLimit(
            `the model's tool call "${slot.name.slice(0, 100)}" was longer than ${settings.maxAnswerChars} characters (limits.max_answer_chars)`,
          );
        }
      }
    }
    // The SDK's stream ends quietly when its signal aborts: say which deadline it was.
    if (!signal?.aborted && deadlines.signal.aborted) throw deadlines.signal.reason;
  } catch (error) {
    const reason: unknown = deadlines.signal.reason;
    if (!signal?.aborted && reason instanceof ModelLimit) throw reason;
    throw error;
  } finally {
    clearTimeout(overall);
    clearTimeout(idle);
  }
  if (cut) {
    const note = `\n\n[answer cut: the model wrote more than ${settings.maxAnswerChars} characters (limits.max_answer_chars)]`;
    content += note;
    hooks.onTextDelta?.(note);
  }
  const toolCalls = cut
    ? []
    : calls.filter(Boolean).map((call) => ({
        id: `call_${randomUUID()}`,
        type: "function" as const,
        function: { name: call.name, arguments: call.arguments },
      }));
  return {
    role: "assistant",
    content: content || null,
    ...(toolCalls.length > 0 ? { tool_calls: toolCalls } : {}),
  };
}

function seconds(ms: number): number {
  return Number((ms / 1000).toFixed(1));
}

/** `text`, cut to `maxChars` with a note naming the key that governs the cap. */
function capText(text: string, maxChars: number, key: string): string {
  if (text.length <= maxChars) return text;
  return `${text.slice(0, maxChars)} [cut: ${text.length} characters, only the first ${maxChars} are shown (${key})]`;
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
