// What of a conversation goes into one model request so that it fits the model's context window:
// oversized tool results of older turns are shortened first, then the oldest whole turns are
// left out. The stored history keeps everything; only the request is cut.
import type OpenAI from "openai";

type ChatMessage = OpenAI.Chat.Completions.ChatCompletionMessageParam;

/** The smallest window agent.max_context_tokens accepts (lib/config.ts checks it). */
/** The window of a model we know nothing about: small enough for most local models. */
export const FALLBACK_CONTEXT_TOKENS = 32_768;
/** Tool results of older turns longer than this (tokens) are shortened before any turn is left out. */
export const OLD_TOOL_RESULT_TOKENS = 1_000;
/** What is kept of a shortened tool result (characters, about 500 tokens). */
export const SHORTENED_TOOL_RESULT_CHARS = 2_000;
/** After the model said the request was too long anyway, the next try aims this much lower. */
export const RETRY_BUDGET_FACTOR = 0.7;

// Input windows as the providers publish them; the first match wins, so longer names come first.
const KNOWN_WINDOWS: [RegExp, number][] = [
  [/^gpt-5/, 400_000],
  [/^gpt-4\.1/, 1_047_576],
  [/^gpt-4o/, 128_000],
  [/^chatgpt-4o/, 128_000],
  [/^gpt-4-turbo|^gpt-4-\d{4}-preview/, 128_000],
  [/^gpt-4-32k/, 32_768],
  [/^gpt-4/, 8_192],
  [/^gpt-3\.5-turbo/, 16_385],
  [/^o1-mini/, 128_000],
  [/^o[1345]/, 200_000],
];

/** The context window of a model by name (a provider prefix like "openai/" is ignored), if known. */
export function knownContextWindow(model: string): number | undefined {
  const name = model.toLowerCase().replace(/^.*\//, "");
  return KNOWN_WINDOWS.find(([pattern]) => pattern.test(name))?.[1];
}

/**
 * Tokens a request may use: the configured window (agent.max_context_tokens), else the model's
 * known one, else FALLBACK_CONTEXT_TOKENS; minus what is kept free for the reply. At least a
 * quarter of the window stays usable, so an oversized reserve cannot leave nothing.
 */
export function contextBudget(options: { model: string; maxContextTokens?: number; replyReserve: number }): number {
  const window = options.maxContextTokens ?? knownContextWindow(options.model) ?? FALLBACK_CONTEXT_TOKENS;
  return Math.max(Math.floor(window / 4), window - options.replyReserve);
}

/** The largest window an OpenAI-style `context_length_exceeded` message names, if any. */
export function windowFromError(message: string): number | undefined {
  const found = /maximum context length is (\d+) tokens/i.exec(message);
  return found?.[1] ? Number(found[1]) : undefined;
}

export interface TokenCount {
  message(message: ChatMessage): number;
}

export interface FitInput {
  system: ChatMessage;
  /** Earlier turns, oldest first; each turn starts at a user message. */
  history: readonly ChatMessage[];
  /** The running turn: always sent (its own tool results are shortened only as the last resort). */
  current: readonly ChatMessage[];
  /** What the tool definitions cost. */
  toolTokens: number;
  budget: number;
}

export interface Fit {
  messages: ChatMessage[];
  /** Estimated prompt tokens of `messages` plus the tool definitions. */
  tokens: number;
  /** Earlier turns left out of this request. */
  droppedTurns: number;
  /** Tool results sent shortened. */
  shortened: number;
  /** False when even the shortest request is over the budget (it is sent anyway: the model decides). */
  fits: boolean;
}

/** A tool result cut to its start, with a note saying so (the model can call the tool again). */
export function shortenToolResult(message: ChatMessage): ChatMessage {
  if (message.role !== "tool" || typeof message.content !== "string") return message;
  const omitted = message.content.length - SHORTENED_TOOL_RESULT_CHARS;
  if (omitted <= 0) return message;
  return {
    ...message,
    content: `${message.content.slice(0, SHORTENED_TOOL_RESULT_CHARS)}\n[… ${omitted} more characters of this tool result were left out to fit the model's context window; call the tool again if you need them]`,
  };
}

/**
 * Where each turn starts in a history (a turn starts at a message the user typed; a head without
 * one is a turn too). User messages of parts — attachments, images tools returned — belong to
 * the turn they are in.
 */
export function turnStarts(history: readonly ChatMessage[]): number[] {
  const starts: number[] = [];
  history.forEach((message, index) => {
    if (index === 0 || (message.role === "user" && typeof message.content === "string")) starts.push(index);
  });
  return starts;
}

/**
 * Fits one request into `budget` tokens. `shorten` returns the shortened form of a tool result
 * (callers cache it, so the same copy is counted once).
 */
export function fitContext(input: FitInput, count: TokenCount, shorten: (message: ChatMessage) => ChatMessage = shortenToolResult): Fit {
  const history = [...input.history];
  const current = [...input.current];
  let total = input.toolTokens + count.message(input.system);
  for (const message of [...history, ...current]) total += count.message(message);
  let shortened = 0;
  /** Shortens oversized tool results of `list` in place, oldest first, until the request fits. */
  const shortenIn = (list: ChatMessage[]) => {
    for (let index = 0; index < list.length && total > input.budget; index++) {
      const message = list[index];
      if (message?.role !== "tool") continue;
      const full = count.message(message);
      if (full <= OLD_TOOL_RESULT_TOKENS) continue;
      const short = shorten(message);
      if (short === message) continue;
      list[index] = short;
      total -= full - count.message(short);
      shortened++;
    }
  };
  shortenIn(history);
  const starts = turnStarts(history);
  let first = 0;
  let droppedTurns = 0;
  while (total > input.budget && droppedTurns < starts.length) {
    const end = starts[droppedTurns + 1] ?? history.length;
    for (let index = first; index < end; index++) total -= count.message(history[index] as ChatMessage);
    first = end;
    droppedTurns++;
  }
  shortenIn(current);
  return {
    messages: [input.system, ...history.slice(first), ...current],
    tokens: total,
    droppedTurns,
    shortened,
    fits: total <= input.budget,
  };
}
