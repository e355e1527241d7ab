// One model answer assembled from what an OpenAI-compatible server really sends: streamed
// chat.completion.chunk objects (or one whole chat.completion) → text, reasoning, tool calls,
// finish reason, usage. Pure: every field is read from untyped data, nothing is trusted.
import { randomUUID } from "node:crypto";
import type { TokenUsage } from "../protocol.ts";
import type { AnswerBudget } from "./output-budget.ts";

/** A tool call as the answer amounts to it; `id` is ours (see `ChunkAssembler`). */
export interface AssembledToolCall {
  id: string;
  name: string;
  arguments: string;
}

export interface AssembledReply {
  content: string;
  /** `reasoning_content` / `reasoning` of reasoning servers: never the answer. */
  reasoning: string;
  toolCalls: AssembledToolCall[];
  /** The server's last `finish_reason` (undefined when it sent none). */
  finishReason: string | undefined;
  /** The standard `usage`, else a vendor's (`x_groq.usage`, `choices[0].usage`); undefined when none came. */
  usage: TokenUsage | undefined;
  /** True when the text passed `maxChars` and was cut here (the rest was not read). */
  cut: boolean;
  /** The model that answered, as the server named it, if it did. */
  model: string | undefined;
}

/** What one chunk adds that a person should see now; `stop`: the answer is long enough, read no more. */
export interface AssemblyPiece {
  content: string;
  reasoning: string;
  stop: boolean;
}

/** A model answer that cannot be used: an error object inside the stream, or a tool call past the cap. */
export class ModelReplyError extends Error {
  override name = "ModelReplyError";
  readonly code: "model_stream_error" | "tool_call_too_long";
  constructor(code: ModelReplyError["code"], message: string) {
    super(message);
    this.code = code;
  }
}

export interface AssemblyLimits {
  /** Text (answer and reasoning each) and one tool call's name + arguments, in characters. */
  maxChars: number;
  /** Makes our tool call ids (tests give a counter). */
  newId?: () => string;
  /**
   * The answer's output budget (lib/agent/output-budget.ts): text and every tool call's name and
   * arguments count against one limits.max_answer_chars, and a call past
   * limits.max_parallel_tool_calls fails the answer (OutputBudgetError) instead of being dropped.
   * Without it text and each call are capped on their own and calls stop at MAX_TOOL_CALLS.
   */
  budget?: AnswerBudget;
}

/** Tool calls one answer may make; an index comes from the model and must not size an array. */
export const MAX_TOOL_CALLS = 128;

interface Slot {
  /** The model's `index`, when it sends one. */
  index: number | undefined;
  /** The model's id, only to tell calls apart when there is no index (it is not kept). */
  modelId: string | undefined;
  name: string;
  arguments: string;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function text(value: unknown): string {
  return typeof value === "string" ? value : "";
}

function count(value: unknown): number | undefined {
  return typeof value === "number" && Number.isFinite(value) && value >= 0 ? value : undefined;
}

/** A usage block (standard or vendor) to ours; undefined when it holds no counts. */
export function usageOf(value: unknown): TokenUsage | undefined {
  if (!isObject(value)) return undefined;
  const prompt = count(value.prompt_tokens) ?? count(value.input_tokens);
  const completion = count(value.completion_tokens) ?? count(value.output_tokens);
  if (prompt === undefined && completion === undefined) return undefined;
  const details = isObject(value.prompt_tokens_details) ? value.prompt_tokens_details : {};
  const cached = count(details.cached_tokens) ?? count(value.prompt_cache_hit_tokens) ?? 0;
  return {
    prompt_tokens: prompt ?? 0,
    completion_tokens: completion ?? 0,
    cached_tokens: cached,
    total_tokens: count(value.total_tokens) ?? (prompt ?? 0) + (completion ?? 0),
    model_calls: 1,
  };
}

/** Where servers put usage: the standard field first, then the vendors' (Groq's `x_groq`, a choice's own). */
function vendorUsage(chunk: Record<string, unknown>, choice: Record<string, unknown> | undefined): TokenUsage | undefined {
  return usageOf(chunk.usage) ?? (isObject(chunk.x_groq) ? usageOf(chunk.x_groq.usage) : undefined) ?? usageOf(choice?.usage);
}

/** The words of an error object a server put where an answer belongs. */
export function errorText(error: unknown): string {
  if (typeof error === "string") return error;
  if (!isObject(error)) return JSON.stringify(error);
  const message = typeof error.message === "string" ? error.message : JSON.stringify(error);
  const code = typeof error.code === "string" || typeof error.code === "number" ? ` (${error.code})` : "";
  return `${message}${code}`;
}

function isCompleteJson(value: string): boolean {
  if (value.trim() === "") return false;
  try {
    JSON.parse(value);
    return true;
  } catch {
    return false;
  }
}

function lastWithIndex(slots: readonly Slot[], index: number): Slot | undefined {
  for (let at = slots.length - 1; at >= 0; at--) if (slots[at]?.index === index) return slots[at];
  return undefined;
}

/**
 * Whether a tool-call part goes on with `slot` (the call of its index, or without an index the
 * last call) or starts a new call: a different model id, or a tool name while the call already
 * has one and its arguments are complete JSON (servers that number every call 0), or it is a
 * later entry of one chunk's list without an index.
 */
function continues(slot: Slot, name: string, modelId: string | undefined, laterInList: boolean): boolean {
  if (modelId !== undefined && slot.modelId !== undefined && modelId !== slot.modelId) return false;
  if (name && slot.name && (laterInList || isCompleteJson(slot.arguments))) return false;
  return true;
}

const OPEN_TAG = "<think>";
const CLOSE_TAG = "</think>";

/**
 * Servers without a reasoning parser (llama.cpp, vLLM, older Ollama) stream a reasoning model's
 * thinking inside the content, as `<think>…</think>` before the answer: that part is reasoning.
 * Only a tag at the very start counts; text that may still become a tag is held back until the
 * next piece decides.
 */
class ThinkTags {
  /** `afterThought`: the blank lines between the closing tag and the answer are dropped. */
  #state: "start" | "thinking" | "afterThought" | "answer" = "start";
  #held = "";

  push(more: string): { content: string; reasoning: string } {
    if (this.#state === "answer") return { content: more, reasoning: "" };
    if (this.#state === "afterThought") {
      const content = more.trimStart();
      if (content) this.#state = "answer";
      return { content, reasoning: "" };
    }
    this.#held += more;
    if (this.#state === "start") {
      const lead = this.#held.trimStart();
      if (lead.startsWith(OPEN_TAG)) {
        this.#state = "thinking";
        this.#held = lead.slice(OPEN_TAG.length);
      } else if (OPEN_TAG.startsWith(lead)) {
        return { content: "", reasoning: "" };
      } else {
        this.#state = "answer";
        const content = this.#held;
        this.#held = "";
        return { content, reasoning: "" };
      }
    }
    const end = this.#held.indexOf(CLOSE_TAG);
    if (end >= 0) {
      const reasoning = this.#held.slice(0, end);
      const content = this.#held.slice(end + CLOSE_TAG.length).trimStart();
      this.#state = content ? "answer" : "afterThought";
      this.#held = "";
      return { content, reasoning };
    }
    // Keep back what could be the start of the closing tag.
    let keep = 0;
    for (let length = Math.min(CLOSE_TAG.length - 1, this.#held.length); length > 0; length--) {
      if (CLOSE_TAG.startsWith(this.#held.slice(-length))) {
        keep = length;
        break;
      }
    }
    const reasoning = this.#held.slice(0, this.#held.length - keep);
    this.#held = this.#held.slice(this.#held.length - keep);
    return { content: "", reasoning };
  }

  /** At the end: whatever is held is what it would have been (an unclosed thought stays reasoning). */
  flush(): { content: string; reasoning: string } {
    const held = this.#held;
    this.#held = "";
    return this.#state === "thinking" ? { content: "", reasoning: held } : { content: held, reasoning: "" };
  }
}

/**
 * Assembles one answer chunk by chunk. Tool calls get ids made here: a model's own ids can
 * repeat (every call `call_0`) or be missing, and an approval, a tool_end and a history entry
 * must each point at exactly one call. Calls are told apart by `index` when the server sends
 * one (parts of several calls may interleave), else as `continues` says.
 */
export class ChunkAssembler {
  readonly #limits: Required<Omit<AssemblyLimits, "budget">>;
  readonly #budget: AnswerBudget | undefined;
  #content = "";
  #reasoning = "";
  #slots: Slot[] = [];
  #finishReason: string | undefined;
  #usage: TokenUsage | undefined;
  #cut = false;
  #model: string | undefined;
  readonly #thinkTags = new ThinkTags();

  constructor(limits: AssemblyLimits) {
    const { budget, ...rest } = limits;
    this.#limits = { newId: () => `call_${randomUUID()}`, ...rest };
    this.#budget = budget;
  }

  /** Adds one chunk (any JSON); throws ModelReplyError for an error object or a tool call past the cap. */
  push(chunk: unknown): AssemblyPiece {
    const piece: AssemblyPiece = { content: "", reasoning: "", stop: false };
    if (!isObject(chunk)) return piece;
    if (chunk.error !== undefined && chunk.error !== null)
      throw new ModelReplyError("model_stream_error", `the model API sent an error instead of an answer: ${errorText(chunk.error)}`);
    const choices = Array.isArray(chunk.choices) ? chunk.choices : [];
    // Only the first choice is ours (n is never asked for); filter-only chunks have none.
    const choice = choices.find((candidate) => isObject(candidate) && (candidate.index === 0 || candidate.index === undefined));
    const first = isObject(choice) ? choice : undefined;
    if (typeof chunk.model === "string" && chunk.model !== "") this.#model = chunk.model;
    const usage = vendorUsage(chunk, first);
    if (usage) this.#usage = usage;
    if (!first) return piece;
    const reason = first.finish_reason;
    if (typeof reason === "string" && reason !== "") this.#finishReason = reason;
    // A whole completion carries `message`; a chunk carries `delta`.
    const delta = isObject(first.delta) ? first.delta : isObject(first.message) ? first.message : undefined;
    if (!delta) return piece;
    const split = this.#thinkTags.push(text(delta.content));
    piece.reasoning = this.#take("reasoning", (text(delta.reasoning_content) || text(delta.reasoning)) + split.reasoning);
    piece.content = this.#take("content", split.content);
    if (this.#cut) {
      piece.stop = true;
      return piece;
    }
    const parts = Array.isArray(delta.tool_calls) ? delta.tool_calls : [];
    parts.forEach((part, position) => {
      if (isObject(part)) this.#toolPart(part, position > 0);
    });
    return piece;
  }

  /** Text up to the cap; past it the answer is cut (reasoning is only cut, it never stops the answer). */
  #take(kind: "content" | "reasoning", more: string): string {
    if (!more) return "";
    const have = kind === "content" ? this.#content : this.#reasoning;
    const kept =
      kind === "content" && this.#budget ? this.#budget.text(more) : more.slice(0, Math.max(0, this.#limits.maxChars - have.length));
    if (kind === "content") {
      this.#content += kept;
      if (kept.length < more.length) this.#cut = true;
    } else this.#reasoning += kept;
    return kept;
  }

  #toolPart(part: Record<string, unknown>, laterInList: boolean): void {
    const fn = isObject(part.function) ? part.function : {};
    const name = text(fn.name);
    // Some servers send arguments as an object rather than a JSON string.
    const args = typeof fn.arguments === "string" ? fn.arguments : isObject(fn.arguments) ? JSON.stringify(fn.arguments) : "";
    const index = typeof part.index === "number" && Number.isInteger(part.index) ? part.index : undefined;
    const modelId = typeof part.id === "string" && part.id !== "" ? part.id : undefined;
    if (index !== undefined && index < 0) return;
    // With a budget, a call past limits.max_parallel_tool_calls fails the answer (before any slot is made).
    if (index !== undefined) {
      if (this.#budget) this.#budget.callIndex(index);
      else if (index >= MAX_TOOL_CALLS) return;
    }
    const candidate = index !== undefined ? lastWithIndex(this.#slots, index) : this.#slots.at(-1);
    let slot = candidate && continues(candidate, name, modelId, index === undefined && laterInList) ? candidate : undefined;
    if (!slot) {
      if (this.#budget) this.#budget.callIndex(this.#slots.length);
      else if (this.#slots.length >= MAX_TOOL_CALLS) return;
      slot = { index, modelId, name: "", arguments: "" };
      this.#slots.push(slot);
    }
    slot.modelId ??= modelId;
    // A name arrives whole (OpenAI), in pieces, or repeated with every part (some local servers).
    const added = (name && name !== slot.name ? name.length : 0) + args.length;
    if (name && name !== slot.name) slot.name += name;
    slot.arguments += args;
    // Text and every call share the answer's budget: arguments cut short would be wrong, so past it the answer fails.
    this.#budget?.toolChars(slot.name, added);
    if (slot.name.length + slot.arguments.length > this.#limits.maxChars) {
      throw new ModelReplyError(
        "tool_call_too_long",
        `the model's tool call "${slot.name.slice(0, 100)}" was longer than ${this.#limits.maxChars} characters (limits.max_answer_chars)`,
      );
    }
  }

  /** What was held back (a possible `<think>` tag) once the stream ended: stream it too. */
  end(): AssemblyPiece {
    const rest = this.#thinkTags.flush();
    return { reasoning: this.#take("reasoning", rest.reasoning), content: this.#take("content", rest.content), stop: false };
  }

  /** The answer so far: call it once the stream ended (or was stopped). */
  finish(): AssembledReply {
    this.end();
    // A cut answer's tool calls may be cut too: none of them is run.
    const toolCalls = this.#cut
      ? []
      : this.#slots
          .filter((slot) => slot.name !== "")
          .map((slot) => ({ id: this.#limits.newId(), name: slot.name, arguments: slot.arguments }));
    return {
      content: this.#content,
      reasoning: this.#reasoning,
      toolCalls,
      finishReason: this.#finishReason,
      usage: this.#usage,
      cut: this.#cut,
      model: this.#model,
    };
  }
}

/**
 * A whole (non-streamed) completion — what a server that ignores `stream: true` answers — read
 * the same way as a stream of one chunk. Throws ModelReplyError for an error body.
 */
export function assembleCompletion(body: unknown, limits: AssemblyLimits): { reply: AssembledReply; piece: AssemblyPiece } {
  if (!isObject(body)) throw new ModelReplyError("model_stream_error", "the model API answered JSON that is not an object");
  const choice = Array.isArray(body.choices) ? body.choices[0] : undefined;
  if (body.error === undefined && !(isObject(choice) && isObject(choice.message)))
    throw new ModelReplyError("model_stream_error", "the model API answered JSON without choices[0].message");
  const assembler = new ChunkAssembler(limits);
  const piece = assembler.push(body);
  const rest = assembler.end();
  return {
    reply: assembler.finish(),
    piece: { content: piece.content + rest.content, reasoning: piece.reasoning + rest.reasoning, stop: piece.stop },
  };
}

/** Finish reasons that mean the answer is not whole, and what the person is told. */
export function finishNote(finishReason: string | undefined): string | undefined {
  if (finishReason === "length")
    return "[the answer is incomplete: the model stopped at its output limit (finish_reason: length; openai.max_tokens raises it where the model allows)]";
  if (finishReason === "content_filter")
    return "[the answer is incomplete: the provider's content filter stopped it (finish_reason: content_filter)]";
  return undefined;
}
