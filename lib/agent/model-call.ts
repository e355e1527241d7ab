// The one place a chat completion is requested: every model call of the agent loop and every
// sampling request of an MCP server come here, so both send the same parameters (the answer's
// token cap as the model takes it), are held to the same deadlines and caps, and report their
// usage the same way (counted here when the endpoint reports none).
import OpenAI from "openai";
import { MESSAGE_OVERHEAD_TOKENS } from "../model/tokens.ts";
import { emptyUsage } from "../model/usage.ts";
import type { TokenUsage } from "../protocol.ts";
import { AnswerBudget } from "./output-budget.ts";
import { tokenLimitParam } from "./settings.ts";
import { NO_API_KEY_MESSAGE } from "./turn-error.ts";
import {
  assembleCompletion,
  ChunkAssembler,
  errorText,
  ModelReplyError,
  type AssembledReply,
  type AssemblyPiece,
} from "./stream-assembly.ts";
import { endModelCall, modelCallSpan } from "../telemetry/spans.ts";
import { NOOP_SPAN } from "../telemetry/tracer.ts";
import type {
  AssistantMessage,
  KeptAssistantMessage,
  ChatMessage,
  ModelCallHooks,
  ModelRequestParams,
  ModelSettings,
  ToolCall,
  ToolDefinition,
} from "./types.ts";

/** What one model call asks for. */
export interface ModelRequest {
  messages: ChatMessage[];
  tools?: ToolDefinition[];
  /**
   * The answer's token cap for this call (a sampling request's maxTokens), instead of the
   * config's openai.max_tokens; sent as the model takes it (max_completion_tokens to reasoning models).
   */
  maxTokens?: number;
  temperature?: number;
  stop?: string[];
  /** The caller's count of the request's tokens (the loop has it from fitting), used when the endpoint reports no usage. */
  promptTokens?: number;
}

/** The assistant message a model call amounts to, and what it cost. */
export interface ModelAnswer {
  message: AssistantMessage;
  /** As the endpoint reported it, else counted here (`estimated`). */
  usage: TokenUsage;
  /** choices[0].finish_reason as the endpoint sent it ("stop", "length", "tool_calls"), if it did. */
  finishReason?: string;
  /** The model that answered, as the endpoint named it, if it did. */
  model?: string;
}

export interface ModelCallOptions {
  signal?: AbortSignal;
  hooks?: ModelCallHooks;
  logFields?: Record<string, unknown>;
}

/**
 * One model call, streamed (or whole when the server ignores `stream`). Each request made is
 * reported to `hooks.onModelCall` (a failed one with no usage); an endpoint that rejects
 * `stream_options` is asked once more without it, and remembered for every later call.
 */
export async function callModel(settings: ModelSettings, request: ModelRequest, options: ModelCallOptions = {}): Promise<ModelAnswer> {
  const { signal, hooks = {}, logFields = {} } = options;
  const openai = settings.openai;
  if (!openai) throw new Error(NO_API_KEY_MESSAGE);
  for (;;) {
    const started = Date.now();
    const trace = hooks.trace;
    const span = trace
      ? modelCallSpan(trace.tracing, trace.parent, { model: settings.model, baseUrl: openai.baseURL, messages: () => request.messages })
      : NOOP_SPAN;
    let result: Completion;
    try {
      result = await completion(openai, settings, request, signal, hooks);
    } catch (error) {
      if (trace)
        endModelCall(trace.tracing, span, {
          errorType: signal?.aborted ? "cancelled" : modelErrorType(error),
          errorMessage: modelErrorMessage(error),
        });
      await hooks.onModelCall?.({ usage: emptyUsage(), durationMs: Date.now() - started, ok: false });
      if (!signal?.aborted && !settings.learned.noStreamOptions && rejectsStreamOptions(error)) {
        settings.learned.noStreamOptions = true;
        settings.log.warn("stream_options_rejected", { ...logFields, error: modelErrorMessage(error) });
        continue;
      }
      throw error;
    }
    // An endpoint that reports no usage is counted here, so totals and quotas still work.
    const usage = result.usage ?? {
      prompt_tokens: request.promptTokens ?? promptTokens(settings, request),
      completion_tokens: settings.tokens.message(result.message) - MESSAGE_OVERHEAD_TOKENS,
      cached_tokens: 0,
      total_tokens: 0,
      model_calls: 1,
      estimated: true,
    };
    if (usage.total_tokens === 0) usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;
    if (trace)
      endModelCall(trace.tracing, span, {
        inputTokens: usage.prompt_tokens,
        outputTokens: usage.completion_tokens,
        cachedTokens: usage.cached_tokens,
        ...(result.finishReason !== undefined ? { finishReasons: [result.finishReason] } : {}),
        ...(result.model !== undefined ? { responseModel: result.model } : {}),
        output: () => [result.message],
      });
    await hooks.onModelCall?.({ usage, durationMs: Date.now() - started, ok: true });
    return {
      message: result.message,
      usage,
      ...(result.finishReason !== undefined ? { finishReason: result.finishReason } : {}),
      ...(result.model !== undefined ? { model: result.model } : {}),
    };
  }
}

/** OpenAI's "too long for the window" refusal, as its code says or, from other servers, as its message words it. */
export function isContextLengthError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  if ("code" in error && error.code === "context_length_exceeded") return true;
  return /context[_ ]length|maximum context|context window/i.test(error.message);
}

/** A failed model call's error, worded for a person and cut to `maxErrorChars` (limits.max_error_chars). */
export function modelErrorText(error: unknown, maxErrorChars: number): string {
  return capText(modelErrorMessage(error), maxErrorChars, "limits.max_error_chars");
}

/** A request's tokens as we count them: what OpenAI adds to prime the reply, the messages, the tools. */
function promptTokens(settings: ModelSettings, request: ModelRequest): number {
  let total = 3 + settings.tokens.tools(request.tools ?? []);
  for (const message of request.messages) total += settings.tokens.message(message);
  return total;
}

/** The request's parameters: the config's, with this call's token cap in the form the model takes. */
function requestParams(settings: ModelSettings, request: ModelRequest): ModelRequestParams {
  if (request.maxTokens === undefined) return settings.requestParams;
  const { max_tokens: _maxTokens, max_completion_tokens: _maxCompletionTokens, ...rest } = settings.requestParams;
  return { ...rest, ...tokenLimitParam(settings.model, request.maxTokens) };
}

/** A 400 that names `stream_options`: the endpoint does not take it. */
function rejectsStreamOptions(error: unknown): boolean {
  return error instanceof Error && "status" in error && error.status === 400 && /stream_options/.test(error.message);
}

/** What one request brought back, before usage is counted. */
interface Completion {
  message: AssistantMessage;
  usage: TokenUsage | undefined;
  finishReason?: string;
  model?: string;
}

/** Why a model call was stopped by one of our own deadlines (the SDK only knows "aborted"). */
class ModelLimit extends Error {
  override name = "ModelLimit";
}

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

/**
 * The assembled answer (lib/agent/stream-assembly.ts) as the assistant message it amounts to: a
 * cut answer gets a note (also as a last delta) and no tool calls; the reasoning is kept on it.
 */
function completionOf(reply: AssembledReply, maxAnswerChars: number, hooks: ModelCallHooks): Completion {
  let content = reply.content;
  if (reply.cut) {
    const note = `\n\n[answer cut: the model wrote more than ${maxAnswerChars} characters (limits.max_answer_chars)]`;
    content += note;
    hooks.onTextDelta?.(note);
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
  return {
    message,
    usage: reply.usage,
    ...(reply.finishReason !== undefined ? { finishReason: reply.finishReason } : {}),
    ...(reply.model !== undefined ? { model: reply.model } : {}),
  };
}

/**
 * One request, streamed (or whole when the server ignores `stream`), assembled by
 * lib/agent/stream-assembly.ts — the one reader of model answers, which knows the shapes real
 * servers send. Bounded on every side: an idle timer between chunks, a deadline for the whole
 * call, and a cap on what is kept.
 */
async function completion(
  openai: OpenAI,
  settings: ModelSettings,
  request: ModelRequest,
  signal: AbortSignal | undefined,
  hooks: ModelCallHooks,
): Promise<Completion> {
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
  const { maxAnswerChars } = settings;
  // One budget per answer (lib/agent/output-budget.ts), enforced as the assembler reads it.
  const limits = { maxChars: maxAnswerChars, budget: new AnswerBudget(maxAnswerChars, settings.maxParallelToolCalls) };
  const emit = (piece: AssemblyPiece) => {
    if (piece.reasoning) hooks.onReasoningDelta?.(piece.reasoning);
    if (piece.content) hooks.onTextDelta?.(piece.content);
  };
  try {
    const { data: stream, response } = await openai.chat.completions
      .create(
        {
          model: settings.model,
          messages: requestMessages(request.messages, settings.sendReasoning),
          stream: true,
          ...(settings.learned.noStreamOptions ? {} : { stream_options: { include_usage: true } }),
          ...requestParams(settings, request),
          ...(request.tools && request.tools.length > 0 ? { tools: request.tools } : {}),
          ...(request.temperature !== undefined ? { temperature: request.temperature } : {}),
          ...(request.stop && request.stop.length > 0 ? { stop: request.stop } : {}),
        },
        { signal: requestSignal },
      )
      .withResponse();
    // The stream reads the body only when iterated: a JSON answer is still unread here.
    if ((response.headers.get("content-type") ?? "").includes("application/json")) {
      const { reply, piece } = assembleCompletion(await response.json(), limits);
      emit(piece);
      return completionOf(reply, maxAnswerChars, hooks);
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
    return completionOf(assembler.finish(), maxAnswerChars, hooks);
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

/** error.type of a failed call's span: the API's error code, else its HTTP status, else the class. */
function modelErrorType(error: unknown): string {
  if (!(error instanceof Error)) return "model_error";
  if ("code" in error && typeof error.code === "string" && error.code) return error.code;
  if ("status" in error && typeof error.status === "number") return String(error.status);
  return error.name || "model_error";
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
