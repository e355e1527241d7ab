// The agent loop: call the model (lib/agent/model-call.ts) on a request fitted to the context
// window, run the tool calls it asks for, append the results, call again — with a hard cap on
// model calls per turn. Its vocabulary (messages, tools, hooks, settings) is lib/agent/types.ts.
import type OpenAI from "openai";
import { MIN_CONTEXT_TOKENS } from "./lib/config.ts";
import { callModel, isContextLengthError, modelErrorText } from "./lib/agent/model-call.ts";
import { answerChars, turnOutputRefusal } from "./lib/agent/output-budget.ts";
import { finishNote } from "./lib/agent/stream-assembly.ts";
import { CONTEXT_FULL_MESSAGE, NO_API_KEY_MESSAGE, TurnError } from "./lib/agent/turn-error.ts";
import type {
  AgentSettings,
  Approver,
  AssistantMessage,
  ChatMessage,
  LoopOptions,
  ToolCall,
  ToolCatalog,
  ToolImage,
  ToolOutcome,
  ToolProgress,
  ToolStart,
  Toolbox,
  TurnHooks,
  TurnLog,
  TurnResult,
} from "./lib/agent/types.ts";
import { contextBudget, fitContext, RETRY_BUDGET_FACTOR, shortenToolResult, windowFromError } from "./lib/model/context.ts";
import { addUsage, emptyUsage } from "./lib/model/usage.ts";
import type { TokenUsage } from "./lib/protocol.ts";

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

export async function runTurn(
  settings: AgentSettings,
  toolbox: Toolbox,
  history: readonly ChatMessage[],
  userText: string,
  options: LoopOptions = {},
): Promise<TurnResult> {
  const { signal, hooks = {}, logFields = {}, approve } = options;
  const state: TurnState = {
    kept: [{ role: "user", content: userText }, ...(options.attachments ? [options.attachments] : [])],
    usage: emptyUsage(),
    texts: [],
    outputChars: 0,
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
    return await loop(settings, toolbox, history, state, signal, hooks, logFields, approve);
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
  /** What the model's answers wrote so far, against settings.maxTurnOutputChars. */
  outputChars: number;
}

async function loop(
  settings: AgentSettings,
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
    const { message: assistant, finishReason } = await fittedModelCall(settings, history, state, catalog, signal, hooks, logFields);
    signal?.throwIfAborted();
    state.outputChars += answerChars(assistant);
    const overTurn = turnOutputRefusal(state.outputChars, settings.maxTurnOutputChars);
    // The answer past the budget is neither run nor kept: its tool calls would write what it holds.
    if (overTurn) fail(overTurn.message, overTurn);
    if (typeof assistant.content === "string" && assistant.content) state.texts.push(assistant.content);
    const calls = (assistant.tool_calls ?? []).filter((call): call is ToolCall => call.type === "function");
    if (calls.length === 0) {
      // An answer the model did not finish says so, in its text and in finishReason.
      const note = finishNote(finishReason);
      let answer = typeof assistant.content === "string" ? assistant.content : "";
      if (note) {
        const piece = `${answer ? "\n\n" : ""}${note}`;
        answer += piece;
        state.texts.push(note);
        hooks.onTextDelta?.(piece);
      }
      kept.push({ ...assistant, content: answer });
      return { answer, text: state.texts.join("\n"), usage: state.usage, messages: kept, ...(note ? { finishReason } : {}) };
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
  // An invented name is the model's text: only its start goes back into the conversation.
  if (!route) outcome = { ok: false, text: `Unknown tool "${call.function.name.slice(0, 100)}": it is not one of the tools offered` };
  else if (!parsed.ok) outcome = { ok: false, text: `Tool "${call.function.name}" was not called: ${parsed.error}` };
  else {
    const decision = approve ? await approve(start, signal) : { approved: true as const };
    signal?.throwIfAborted();
    const onProgress = (progress: ToolProgress) => hooks.onToolProgress?.(call.id, progress);
    const trace = hooks.traceOf?.(call.id);
    outcome = decision.approved
      ? await toolbox.callTool(route, parsed.args, { signal, onProgress, ...(trace ? { trace } : {}) })
      : { ok: false, text: decision.reason };
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
async function fittedModelCall(
  settings: AgentSettings,
  history: readonly ChatMessage[],
  state: TurnState,
  catalog: ToolCatalog,
  signal: AbortSignal | undefined,
  hooks: TurnHooks,
  logFields: Record<string, unknown>,
): Promise<{ message: AssistantMessage; finishReason: string | undefined }> {
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
    try {
      const answer = await callModel(
        settings,
        { messages: fit.messages, tools: catalog.tools, promptTokens: fit.tokens },
        { signal, hooks, logFields },
      );
      addUsage(state.usage, answer.usage);
      return { message: answer.message, finishReason: answer.finishReason };
    } catch (error) {
      if (signal?.aborted) throw error;
      if (!isContextLengthError(error))
        throw new TurnError(modelErrorText(error, settings.maxErrorChars), state.kept, { cause: error, usage: state.usage });
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
    }
  }
}
