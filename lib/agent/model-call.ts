// The one place a chat completion is requested: every model call of the agent loop and every
// sampling request of an MCP server come here, so both send the same parameters (the answer's
// token cap as the model takes it), are held to the same deadlines and caps, and report their
// usage the same way (counted here when the endpoint reports none).
import { randomUUID } from "node:crypto";
import type OpenAI from "openai";
import { MESSAGE_OVERHEAD_TOKENS } from "../model/tokens.ts";
import { emptyUsage } from "../model/usage.ts";
import type { TokenUsage } from "../protocol.ts";
import { AnswerBudget } from "./output-budget.ts";
import { tokenLimitParam } from "./settings.ts";
import { NO_API_KEY_MESSAGE } from "./turn-error.ts";
import { endModelCall, modelCallSpan } from "../telemetry/spans.ts";
import { NOOP_SPAN } from "../telemetry/tracer.ts";
import type {
  AssistantMessage,
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

/** The usage block of an OpenAI answer (a whole completion or a stream's last chunk). */
function usageOf(value: unknown): TokenUsage | undefined {
  if (!isObject(value)) return undefined;
  const prompt = numberOr(value.prompt_tokens, 0);
  const completionTokens = numberOr(value.completion_tokens, 0);
  const details = isObject(value.prompt_tokens_details) ? value.prompt_tokens_details : {};
  return {
    prompt_tokens: prompt,
    completion_tokens: completionTokens,
    cached_tokens: numberOr(details.cached_tokens, 0),
    total_tokens: numberOr(value.total_tokens, prompt + completionTokens),
    model_calls: 1,
  };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function numberOr(value: unknown, fallback: number): number {
  return typeof value === "number" && Number.isFinite(value) ? value : fallback;
}

/** What one request brought back, before usage is counted. */
interface Completion {
  message: AssistantMessage;
  usage: TokenUsage | undefined;
  finishReason?: string;
  model?: string;
}

/** Why a model call was stopped by one of our own deadlines or caps (the SDK only knows "aborted"). */
class ModelLimit extends Error {
  override name = "ModelLimit";
}

/**
 * The assistant message of an answer: a cut answer gets a note (also as a last delta) and no tool
 * calls. Tool calls get ids we assign: the model's own can repeat or be missing, and an approval,
 * a tool_end and a history entry must each point at exactly one call.
 */
function assistantMessage(
  content: string,
  cut: boolean,
  calls: readonly ({ name: string; arguments: string } | undefined)[],
  maxAnswerChars: number,
  hooks: ModelCallHooks,
): AssistantMessage {
  if (cut) {
    const note = `\n\n[answer cut: the model wrote more than ${maxAnswerChars} characters (limits.max_answer_chars)]`;
    content += note;
    hooks.onTextDelta?.(note);
  }
  const toolCalls: ToolCall[] = cut
    ? []
    : calls
        .filter((call) => call !== undefined)
        .map((call) => ({ id: `call_${randomUUID()}`, type: "function", function: { name: call.name, arguments: call.arguments } }));
  return { role: "assistant", content: content || null, ...(toolCalls.length > 0 ? { tool_calls: toolCalls } : {}) };
}

/**
 * A whole (non-streamed) completion, read from outside data field by field: what a server that
 * ignores `stream: true` sends. Its text reaches streaming sockets as one delta; it is held to the
 * same caps as a streamed one.
 */
function wholeCompletion(body: unknown, budget: AnswerBudget, hooks: ModelCallHooks): Completion {
  if (!isObject(body)) throw new Error("the model API answered JSON that is not an object");
  if (isObject(body.error)) throw new Error(`the model API answered an error: ${String(body.error.message)}`);
  const choice = Array.isArray(body.choices) ? body.choices[0] : undefined;
  const message = isObject(choice) && isObject(choice.message) ? choice.message : undefined;
  if (!message) throw new Error("the model API answered JSON without choices[0].message");
  const full = typeof message.content === "string" ? message.content : "";
  const content = budget.text(full);
  const cut = content.length < full.length;
  if (content) hooks.onTextDelta?.(content);
  const calls: { name: string; arguments: string }[] = [];
  // A cut answer keeps no tool calls (assistantMessage): they are not counted either.
  for (const [index, call] of (Array.isArray(message.tool_calls) && !cut ? message.tool_calls : []).entries()) {
    if (!isObject(call) || !isObject(call.function)) continue;
    budget.callIndex(index);
    const slot = {
      name: typeof call.function.name === "string" ? call.function.name : "",
      arguments: typeof call.function.arguments === "string" ? call.function.arguments : "",
    };
    budget.toolChars(slot.name, slot.name.length + slot.arguments.length);
    calls.push(slot);
  }
  return {
    message: assistantMessage(content, cut, calls, budget.maxChars, hooks),
    usage: usageOf(body.usage),
    ...(isObject(choice) && typeof choice.finish_reason === "string" ? { finishReason: choice.finish_reason } : {}),
    ...(typeof body.model === "string" ? { model: body.model } : {}),
  };
}

/**
 * One request, streamed (or whole when the server ignores `stream`), assembled into the assistant
 * message it amounts to. Bounded on every side: an idle timer between chunks, a deadline for the
 * whole call, and a cap on what is kept.
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
  const budget = new AnswerBudget(settings.maxAnswerChars, settings.maxParallelToolCalls);
  let content = "";
  let cut = false;
  let usage: TokenUsage | undefined;
  let finishReason: string | undefined;
  let model: string | undefined;
  const calls: { name: string; arguments: string }[] = [];
  try {
    const { data: stream, response } = await openai.chat.completions
      .create(
        {
          model: settings.model,
          messages: request.messages,
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
      return wholeCompletion(await response.json(), budget, hooks);
    }
    armIdle();
    for await (const chunk of stream) {
      armIdle();
      if (chunk.usage) usage = usageOf(chunk.usage);
      if (typeof chunk.model === "string" && chunk.model) model = chunk.model;
      const choice = chunk.choices[0];
      if (choice?.finish_reason) finishReason = choice.finish_reason;
      const delta = choice?.delta;
      if (!delta) continue;
      if (delta.content) {
        const piece = budget.text(delta.content);
        content += piece;
        if (piece) hooks.onTextDelta?.(piece);
        if (piece.length < delta.content.length) {
          cut = true;
          break; // leaving the loop ends the request: the rest is never downloaded
        }
      }
      for (const part of delta.tool_calls ?? []) {
        if (part.index < 0) continue;
        budget.callIndex(part.index);
        const slot = (calls[part.index] ??= { name: "", arguments: "" });
        if (part.function?.name) slot.name += part.function.name;
        if (part.function?.arguments) slot.arguments += part.function.arguments;
        budget.toolChars(slot.name, (part.function?.name?.length ?? 0) + (part.function?.arguments?.length ?? 0));
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
  return {
    message: assistantMessage(content, cut, calls, budget.maxChars, hooks),
    usage,
    ...(finishReason !== undefined ? { finishReason } : {}),
    ...(model !== undefined ? { model } : {}),
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

/** error.type of a failed call's span: the API's error code, else its HTTP status, else the class. */
function modelErrorType(error: unknown): string {
  if (!(error instanceof Error)) return "model_error";
  if ("code" in error && typeof error.code === "string" && error.code) return error.code;
  if ("status" in error && typeof error.status === "number") return String(error.status);
  return error.name || "model_error";
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
