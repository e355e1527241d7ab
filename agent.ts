// The agent loop: call the model (streaming), run the tool calls it asks for, append the
// results, call again — with a hard cap on model calls per turn.
import OpenAI from "openai";
import { MIN_CONTEXT_TOKENS } from "./lib/config.ts";
import { contextBudget, fitContext, RETRY_BUDGET_FACTOR, shortenToolResult, windowFromError } from "./lib/model/context.ts";
import { MESSAGE_OVERHEAD_TOKENS, type TokenCounter } from "./lib/model/tokens.ts";
import { addUsage, emptyUsage } from "./lib/model/usage.ts";
import type { TokenUsage } from "./lib/protocol.ts";
import {
  assembleCompletion,
  ChunkAssembler,
  finishNote,
  errorText,
  ModelReplyError,
  type AssembledReply,
  type AssemblyPiece,
} from "./lib/agent/stream-assembly.ts";

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

/** One model call: what it cost and how long it took. */
export interface ModelCall {
  usage: TokenUsage;
  durationMs: number;
  ok: boolean;
}

/** Live events of a turn, for streaming sockets and logs. */
export interface TurnHooks {
  /** After each model call (awaited: the session writes its usage to the store before going on). */
  onModelCall?(call: ModelCall): Promise<void> | void;
  onTextDelta?(text: string): void;
  /** The model's reasoning (`reasoning_content` / `reasoning`), streamed apart from the answer. */
  onReasoningDelta?(text: string): void;
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
  /** Tokens a request may use: the context window minus `replyReserve`. */
  contextBudget: number;
  /**
   * What the endpoint taught us, for every later request of every session (they share it):
   * `windowTokens`, the window it named when it refused a request as too long (smaller than
   * configured), so requests are fitted to it at once instead of being refused first;
   * `noStreamOptions`, set when it rejected `stream_options` (older Azure API versions, some
   * local servers): usage is then counted here.
   */
  learned: { windowTokens?: number; noStreamOptions?: boolean };
  replyReserve: number;
  tokens: TokenCounter;
  /** Shortened copies of long tool results, per original message, so each is made and counted once. */
  shortened: WeakMap<ChatMessage, ChatMessage>;
  /** Request parameters from the config: max_tokens or max_completion_tokens, reasoning_effort, user. */
  requestParams: ModelRequestParams;
  /** A streamed answer that sends nothing (keep-alive comments count as nothing) for this long fails. */
  streamIdleMs: number;
  /** Bounds one whole model call, streamed answer included (the SDK's own timeout stops at the headers). */
  requestTimeoutMs: number;
  /** A model answer (or a tool call's arguments) longer than this is cut, with a note. */
  maxAnswerChars: number;
  /** A model error text longer than this is cut, with a note. */
  maxErrorChars: number;
  /** Reasoning kept in history goes back to the model (`reasoning_content`) only when this is set (openai.send_reasoning). */
  sendReasoning: boolean;
}

export type ModelRequestParams = Partial<
  Pick<OpenAI.Chat.Completions.ChatCompletionCreateParamsStreaming, "max_tokens" | "max_completion_tokens" | "reasoning_effort" | "user">
>;

export const CONTEXT_FULL_MESSAGE =
  "this conversation no longer fits the model's context window, even with older turns left out and long tool results shortened. " +
  'Start a new chat (the "New chat" button, or send {"type":"reset"}), or send a shorter message; ' +
  "if the model allows more, raise agent.max_context_tokens";

/** A turn that failed; `messages` is the part of the turn that is safe to keep in the history. */
export class TurnError extends Error {
  readonly messages: ChatMessage[];
  /** True when the turn ended because its signal was aborted (a cancel), not because of a fault. */
  readonly cancelled: boolean;
  /** What the turn's model calls cost before it failed (they count against quotas too). */
  readonly usage: TokenUsage;
  constructor(message: string, messages: ChatMessage[], options: { cause?: unknown; cancelled?: boolean; usage?: TokenUsage } = {}) {
    super(message, { cause: options.cause });
    this.name = "TurnError";
    this.messages = messages;
    this.cancelled = options.cancelled ?? false;
    this.usage = options.usage ?? emptyUsage();
  }
}

export interface TurnResult {
  /** The last assistant message's text. */
  answer: string;
  /** All the assistant text of the turn (also what the model wrote before its tool calls), joined with "\n". */
  text: string;
  usage: TokenUsage;
  /** Every message the turn added: the user's, assistant messages, tool results. */
  messages: ChatMessage[];
  /** How the last model call ended when it was not whole (`length`, `content_filter`); undefined when it was. */
  finishReason?: string;
}

export async function runTurn(
  settings: AgentSettings,
  toolbox: Toolbox,
  history: readonly ChatMessage[],
  userText: string,
  options: {
    signal?: AbortSignal;
    hooks?: TurnHooks;
    logFields?: Record<string, unknown>;
    approve?: Approver;
    /** The user message of the turn's attachments (lib/attachments), right after the text. */
    attachments?: ChatMessage;
  } = {},
): Promise<TurnResult> {
  const { signal, hooks = {}, logFields = {}, approve } = options;
  const state: TurnState = {
    kept: [{ role: "user", content: userText }, ...(options.attachments ? [options.attachments] : [])],
    usage: emptyUsage(),
    texts: [],
    budget:
      settings.learned.windowTokens === undefined
        ? settings.contextBudget
        : Math.min(
            settings.contextBudget,
            contextBudget({ model: settings.model, maxContextTokens: settings.learned.windowTokens, replyReserve: settings.replyReserve }),
          ),
  };
  if (!settings.openai) throw new TurnError(NO_API_KEY_MESSAGE, state.kept);
  try {
    return await loop(settings, settings.openai, toolbox, history, state, signal, hooks, logFields, approve);
  } catch (error) {
    if (signal?.aborted) throw new TurnError("the turn was cancelled", state.kept, { cause: error, cancelled: true, usage: state.usage });
    throw error;
  }
}

/** What a turn has so far: complete steps, usage, the assistant's texts, and its token budget. */
interface TurnState {
  /**
   * Only complete steps go here: an assistant message with tool calls is added together with
   * all of its results, so whatever we keep after a failure is a valid conversation.
   */
  kept: ChatMessage[];
  usage: TokenUsage;
  texts: string[];
  /** Lowered for the rest of the turn when the model said a request was too long anyway. */
  budget: number;
}

async function loop(
  settings: AgentSettings,
  openai: OpenAI,
  toolbox: Toolbox,
  history: readonly ChatMessage[],
  state: TurnState,
  signal: AbortSignal | undefined,
  hooks: TurnHooks,
  logFields: Record<string, unknown>,
  approve: Approver | undefined,
): Promise<TurnResult> {
  const { kept } = state;
  const fail = (message: string, cause?: unknown): never => {
    throw new TurnError(message, kept, { cause, usage: state.usage });
  };
  for (let iteration = 1; iteration <= settings.maxIterations; iteration++) {
    await toolbox.prepare?.();
    const catalog = toolbox.catalog();
    const { message: assistant, finishReason } = await callModel(settings, openai, history, state, catalog, signal, hooks, logFields);
    signal?.throwIfAborted();
    if (typeof assistant.content === "string" && assistant.content) state.texts.push(assistant.content);
    const calls = (assistant.tool_calls ?? []).filter((call): call is ToolCall => call.type === "function");
    if (calls.length === 0) {
      const answer = typeof assistant.content === "string" ? assistant.content : "";
      kept.push({ ...assistant, content: answer });
      const incomplete = finishNote(finishReason) !== undefined ? { finishReason } : {};
      return { answer, text: state.texts.join("\n"), usage: state.usage, messages: kept, ...incomplete };
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

/**
 * One model call on a request fitted to the context budget. When the model says it is too long
 * anyway (its count differs from ours, or the window is smaller than configured), the request is
 * fitted again to a lower budget and sent once more; a second refusal ends the turn with advice.
 */
async function callModel(
  settings: AgentSettings,
  openai: OpenAI,
  history: readonly ChatMessage[],
  state: TurnState,
  catalog: ToolCatalog,
  signal: AbortSignal | undefined,
  hooks: TurnHooks,
  logFields: Record<string, unknown>,
): Promise<CompletionResult> {
  const system: ChatMessage = { role: "system", content: settings.instruction };
  const shorten = (message: ChatMessage) => {
    let copy = settings.shortened.get(message);
    if (!copy) {
      copy = shortenToolResult(message);
      settings.shortened.set(message, copy);
    }
    return copy;
  };
  for (let attempt = 1; ; attempt++) {
    const fit = fitContext(
      { system, history, current: state.kept, toolTokens: settings.tokens.tools(catalog.tools), budget: state.budget },
      settings.tokens,
      shorten,
    );
    if (fit.droppedTurns > 0 || fit.shortened > 0 || !fit.fits) {
      settings.log.info("context_fitted", {
        ...logFields,
        budget: state.budget,
        estimated_tokens: fit.tokens,
        dropped_turns: fit.droppedTurns,
        shortened_tool_results: fit.shortened,
        fits: fit.fits,
      });
    }
    const started = Date.now();
    let result: CompletionResult;
    try {
      result = await completion(openai, settings, fit.messages, catalog, signal, hooks);
    } catch (error) {
      await hooks.onModelCall?.({ usage: emptyUsage(), durationMs: Date.now() - started, ok: false });
      if (signal?.aborted) throw error;
      if (!settings.learned.noStreamOptions && rejectsStreamOptions(error)) {
        settings.learned.noStreamOptions = true;
        settings.log.warn("stream_options_rejected", { ...logFields, error: modelErrorMessage(error) });
        attempt--;
        continue;
      }
      if (!isContextLengthError(error)) {
        const message = capText(modelErrorMessage(error), settings.maxErrorChars, "limits.max_error_chars");
        throw new TurnError(message, state.kept, { cause: error, usage: state.usage });
      }
      if (attempt > 1) throw new TurnError(CONTEXT_FULL_MESSAGE, state.kept, { cause: error, usage: state.usage });
      const window = windowFromError(error instanceof Error ? error.message : "");
      // A window below the smallest agent.max_context_tokens is not believed for later turns.
      if (window !== undefined && window >= MIN_CONTEXT_TOKENS && window < (settings.learned.windowTokens ?? Infinity))
        settings.learned.windowTokens = window;
      const ceiling = window === undefined ? state.budget : Math.min(state.budget, window - settings.replyReserve);
      state.budget = Math.max(1, Math.floor(Math.min(ceiling, fit.tokens) * RETRY_BUDGET_FACTOR));
      settings.log.warn("context_length_exceeded", {
        ...logFields,
        estimated_tokens: fit.tokens,
        model_window: window,
        retry_budget: state.budget,
      });
      continue;
    }
    // An endpoint that reports no usage is counted here, so totals and quotas still work.
    const usage = result.usage ?? {
      prompt_tokens: fit.tokens,
      completion_tokens: settings.tokens.message(result.message) - MESSAGE_OVERHEAD_TOKENS,
      cached_tokens: 0,
      total_tokens: 0,
      model_calls: 1,
      estimated: true,
    };
    if (usage.total_tokens === 0) usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;
    addUsage(state.usage, usage);
    await hooks.onModelCall?.({ usage, durationMs: Date.now() - started, ok: true });
    return result;
  }
}

/** A 400 that names `stream_options`: the endpoint does not take it. */
function rejectsStreamOptions(error: unknown): boolean {
  return error instanceof Error && "status" in error && error.status === 400 && /stream_options/.test(error.message);
}

/** OpenAI's "too long for the window" refusal, as its code says or, from other servers, as its message words it. */
function isContextLengthError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  if ("code" in error && error.code === "context_length_exceeded") return true;
  return /context[_ ]length|maximum context|context window/i.test(error.message);
}

/** Why a model call was stopped by one of our own deadlines (the SDK only knows "aborted"). */
class ModelLimit extends Error {
  override name = "ModelLimit";
}

/** What one model call amounts to: the assistant message (reasoning kept on it), usage, how it ended. */
interface CompletionResult {
  message: AssistantMessage;
  usage: TokenUsage | undefined;
  finishReason: string | undefined;
}

/** An assistant message as we keep it: with the model's reasoning, which is not sent back unless asked. */
export type KeptAssistantMessage = AssistantMessage & { reasoning_content?: string };

/**
 * The messages as a request sends them, without what is kept for people only: the attachments'
 * summaries, and reasoning (which goes only to servers that need it back).
 */
function requestMessages(messages: readonly ChatMessage[], sendReasoning: boolean): ChatMessage[] {
  return messages.map((message) => {
    if (message.role === "user" && "attachments" in message) {
      const { attachments: _attachments, ...rest } = message as typeof message & { attachments: unknown };
      return rest;
    }
    if (sendReasoning || message.role !== "assistant" || !("reasoning_content" in message)) return message;
    const { reasoning_content: _reasoning, ...rest } = message as KeptAssistantMessage;
    return rest;
  });
}

/** The assembled answer as the assistant message the loop goes on with, its notes streamed. */
function assistantOf(reply: AssembledReply, settings: AgentSettings, hooks: TurnHooks): CompletionResult {
  let content = reply.content;
  const notes = [
    reply.cut ? `[answer cut: the model wrote more than ${settings.maxAnswerChars} characters (limits.max_answer_chars)]` : undefined,
    finishNote(reply.finishReason),
  ].filter((note): note is string => note !== undefined);
  for (const note of notes) {
    const piece = `${content ? "\n\n" : ""}${note}`;
    content += piece;
    hooks.onTextDelta?.(piece);
  }
  const toolCalls: ToolCall[] = reply.toolCalls.map((call) => ({
    id: call.id,
    type: "function",
    function: { name: call.name, arguments: call.arguments },
  }));
  const message: KeptAssistantMessage = {
    role: "assistant",
    content: content || null,
    ...(toolCalls.length > 0 ? { tool_calls: toolCalls } : {}),
    ...(reply.reasoning ? { reasoning_content: reply.reasoning } : {}),
  };
  return { message, usage: reply.usage, finishReason: reply.finishReason };
}

/**
 * One model call, streamed (or whole when the server ignores `stream`), assembled by
 * lib/agent/stream-assembly.ts into the assistant message it amounts to. Bounded on every side:
 * an idle timer between chunks, a deadline for the whole call, and a cap on what is kept.
 */
async function completion(
  openai: OpenAI,
  settings: AgentSettings,
  messages: ChatMessage[],
  catalog: ToolCatalog,
  signal: AbortSignal | undefined,
  hooks: TurnHooks,
): Promise<CompletionResult> {
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
  const limits = { maxChars: settings.maxAnswerChars };
  const emit = (piece: AssemblyPiece) => {
    if (piece.reasoning) hooks.onReasoningDelta?.(piece.reasoning);
    if (piece.content) hooks.onTextDelta?.(piece.content);
  };
  try {
    const { data: stream, response } = await openai.chat.completions
      .create(
        {
          model: settings.model,
          messages: requestMessages(messages, settings.sendReasoning),
          stream: true,
          ...(settings.learned.noStreamOptions ? {} : { stream_options: { include_usage: true } }),
          ...settings.requestParams,
          ...(catalog.tools.length > 0 ? { tools: catalog.tools } : {}),
        },
        { signal: requestSignal },
      )
      .withResponse();
    // The stream reads the body only when iterated: a JSON answer is still unread here.
    if ((response.headers.get("content-type") ?? "").includes("application/json")) {
      const { reply, piece } = assembleCompletion(await response.json(), limits);
      emit(piece);
      return assistantOf(reply, settings, hooks);
    }
    const assembler = new ChunkAssembler(limits);
    armIdle();
    for await (const chunk of stream) {
      armIdle();
      const piece = assembler.push(chunk);
      emit(piece);
      if (piece.stop) break; // leaving the loop ends the request: the rest is never downloaded
    }
    // The SDK's stream ends quietly when its signal aborts: say which deadline it was.
    if (!signal?.aborted && deadlines.signal.aborted) throw deadlines.signal.reason;
    emit(assembler.end());
    return assistantOf(assembler.finish(), settings, hooks);
  } catch (error) {
    const reason: unknown = deadlines.signal.reason;
    if (!signal?.aborted && reason instanceof ModelLimit) throw reason;
    throw error;
  } finally {
    clearTimeout(overall);
    clearTimeout(idle);
  }
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
  if (error instanceof ModelReplyError) return error.message;
  // The SDK throws an APIError without a status for an error object inside a stream.
  if (error instanceof OpenAI.APIError && error.status === undefined)
    return `the model API sent an error instead of an answer: ${errorText(error.error ?? error.message)}`;
  if (error instanceof Error) {
    const status = "status" in error && typeof error.status === "number" ? error.status : undefined;
    const message = error.message.replace(/\s+/g, " ").trim();
    if (status !== undefined && !message.startsWith(String(status))) return `the model API answered ${status}: ${message}`;
    return `model request failed: ${message}`;
  }
  return `model request failed: ${String(error)}`;
}
