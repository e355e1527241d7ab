// Token counts of chat messages with the model family's own encoding (gpt-tokenizer), cached per
// message object: the history's messages are the same objects from one model call to the next,
// so each is encoded once, not once per call.
import { createRequire } from "node:module";
import type { countTokens } from "gpt-tokenizer/encoding/o200k_base";
import type OpenAI from "openai";

type ChatMessage = OpenAI.Chat.Completions.ChatCompletionMessageParam;
export type EncodingName = "o200k_base" | "cl100k_base";
interface Encoding {
  countTokens: typeof countTokens;
}

/** What OpenAI adds per message (role, separators) beyond its content: their documented rule of thumb. */
export const MESSAGE_OVERHEAD_TOKENS = 4;
/**
 * Texts longer than this are estimated from SAMPLES spread windows of SAMPLE_CHARS each: BPE time
 * grows with the square of an unbroken run's length (100 KB of one character took seconds; 8,000
 * characters of CJK text half a second on the main thread), and spread samples follow a text that
 * changes along the way (a JSON header, then prose). Counting any one text, however long or
 * hostile (a model's invented tool names), so stays in the tens of milliseconds.
 */
const EXACT_CHARS = 2_000;
const SAMPLES = 4;
const SAMPLE_CHARS = 500;

// An encoding's rank table is immutable, takes a second or two and ~70 MB to build: loaded on
// first use (synchronously, so counting stays a plain function) and shared by every server in
// the process; never at import time.
const requireModule = createRequire(import.meta.url);
const encodings = new Map<EncodingName, Encoding>();

function encodingFor(name: EncodingName): Encoding {
  let encoding = encodings.get(name);
  if (!encoding) {
    encoding = requireModule(`gpt-tokenizer/encoding/${name}`) as Encoding;
    encodings.set(name, encoding);
  }
  return encoding;
}

/** The encoding a model name uses: cl100k_base for gpt-4 and gpt-3.5, o200k_base for the rest (newer and local models). */
export function encodingNameFor(model: string): EncodingName {
  const name = model.toLowerCase().replace(/^.*\//, "");
  if (/^gpt-4(?!o|\.\d)|^gpt-3\.5|^text-embedding/.test(name)) return "cl100k_base";
  return "o200k_base";
}

/** The text of a message that the model reads: content parts, tool call names and arguments. */
export function messageText(message: ChatMessage): string {
  let text = "";
  const content = message.content;
  if (typeof content === "string") text += content;
  else if (Array.isArray(content)) {
    for (const part of content) if ("text" in part && typeof part.text === "string") text += part.text;
  }
  if (message.role === "assistant") {
    for (const call of message.tool_calls ?? []) {
      if (call.type === "function") text += `${call.function.name}${call.function.arguments}`;
    }
  }
  return text;
}

export class TokenCounter {
  readonly #encoding: EncodingName;
  readonly #cache = new WeakMap<object, number>();

  constructor(model: string) {
    this.#encoding = encodingNameFor(model);
  }

  /** Tokens of a text (estimated beyond EXACT_CHARS from samples). */
  text(text: string): number {
    if (text.length === 0) return 0;
    const encoding = encodingFor(this.#encoding);
    if (text.length <= EXACT_CHARS) return encoding.countTokens(text);
    const step = (text.length - SAMPLE_CHARS) / (SAMPLES - 1);
    let sampled = 0;
    for (let index = 0; index < SAMPLES; index++) {
      const at = Math.round(index * step);
      sampled += encoding.countTokens(text.slice(at, at + SAMPLE_CHARS));
    }
    return Math.ceil((sampled * text.length) / (SAMPLES * SAMPLE_CHARS));
  }

  /** Tokens a message costs in a request, cached for the life of the message object. */
  message(message: ChatMessage): number {
    const cached = this.#cache.get(message);
    if (cached !== undefined) return cached;
    const count = MESSAGE_OVERHEAD_TOKENS + this.text(messageText(message));
    this.#cache.set(message, count);
    return count;
  }

  /** Tokens the tool definitions cost (sent with every call), cached per catalog array. */
  tools(tools: readonly object[]): number {
    if (tools.length === 0) return 0;
    const cached = this.#cache.get(tools);
    if (cached !== undefined) return cached;
    const count = this.text(JSON.stringify(tools));
    this.#cache.set(tools, count);
    return count;
  }
}
